import itertools
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # the tests' own helpers (shop_proxy)
import wdm_lib.report  # noqa: E402,F401  before any test imports papermill: see its note on rfc3987-syntax
from wdm_lib.cli import main  # noqa: E402
from wdm_lib.reference.process import ReferenceShopProcess  # noqa: E402
from wdm_lib.reference.services import ReferenceServices  # noqa: E402

# The suite must leave nothing behind in the temporary folder (a shop's data folder, a run's files).
# It gets a folder of its own as TMPDIR, inherited by every process it starts (xdist's workers, the
# shops, `wdm` itself), so what other users of /tmp do meanwhile is never counted. At the end, only
# pytest's own tmp_path folders may be in it; a session that passed removes it.
PYTEST_OWN = "pytest-of-"
# Hypothesis (under schemathesis) builds its Unicode tables, 1.5 CPU-s, unless its storage folder
# has them: one folder for the whole suite builds them once, not once per schemathesis run. It
# holds nothing else (deterministic generation keeps no example database).
HYPOTHESIS_STORAGE = "hypothesis"
TEMP_FOLDER = pytest.StashKey[str]()


def pytest_configure(config):
    if hasattr(config, "workerinput"):  # an xdist worker: the controller's TMPDIR is already set
        return
    # Started from a shell script's background job, the suite would inherit Ctrl-C ignored, and so
    # would the workers and everything they start: the tests that press Ctrl-C could not.
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    folder = tempfile.mkdtemp(prefix="wdm-tests-")
    os.environ["TMPDIR"] = folder
    tempfile.tempdir = None  # tempfile reads TMPDIR again
    os.environ["HYPOTHESIS_STORAGE_DIRECTORY"] = os.path.join(folder, HYPOTHESIS_STORAGE)
    config.stash[TEMP_FOLDER] = folder


def pytest_sessionfinish(session, exitstatus):
    folder = session.config.stash.get(TEMP_FOLDER, None)
    if folder is None:
        return
    left = sorted(name for name in os.listdir(folder)
                  if not name.startswith(PYTEST_OWN) and name != HYPOTHESIS_STORAGE)
    if left:
        session.config.get_terminal_writer().line(
            f"\nthe suite left {len(left)} entries in its temporary folder {folder}: {', '.join(left)}",
            red=True, bold=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
    elif session.exitstatus == pytest.ExitCode.OK:
        shutil.rmtree(folder, ignore_errors=True)


def pytest_collection_modifyitems(config, items):
    """Tests marked `long` start first: xdist hands tests out in the order collected as workers
    free up (pyproject.toml), and a long test handed out last keeps every other worker waiting idle
    at the end of the suite. Within each part, the modules take turns: a module's tests tend to be
    alike (stress runs wait on Locust, notebooks keep a core busy), and in file order the waiting
    ones came all together, leaving both cores idle while every worker waited."""
    def modules_in_turn(tests):
        by_module = {}
        for test in tests:
            by_module.setdefault(test.nodeid.split("::")[0], []).append(test)
        return [test for turn in itertools.zip_longest(*by_module.values()) for test in turn if test is not None]

    long = [item for item in items if item.get_closest_marker("long") is not None]
    rest = [item for item in items if item.get_closest_marker("long") is None]
    items[:] = modules_in_turn(long) + modules_in_turn(rest)


# The embedded shops, one of each per test process, for every test that only reads what it created
# itself (every item, user and order id is new): started once, not once per module that uses them.
@pytest.fixture(scope="session")
def shop():
    with ReferenceShopProcess() as s:
        yield s


@pytest.fixture(scope="session")
def services():
    """The three services behind their gateway."""
    with ReferenceServices() as s:
        yield s


# A test marked `timing` judges figures measured in real time (a fault's gap, outage and recovery).
# Beside another CPU-heavy job its client, proxy and shop would be starved for seconds, and the
# figures be the machine's rather than the shop's: where the suite may (as root, as in CI), the
# test's process, everything it starts and the shops it uses run at a higher priority meanwhile.
# The checks stay as they are; they get the CPU that what they measure needs.
TIMING_NICENESS = -10


@pytest.fixture(autouse=True)
def _cpu_first_when_timing(request):
    if request.node.get_closest_marker("timing") is None:
        yield
        return
    pids = [0] + [pid for name in ("shop", "services") if name in request.fixturenames
                  for pid in request.getfixturevalue(name).pids.values()]
    was = {pid: os.getpriority(os.PRIO_PROCESS, pid) for pid in pids}
    try:
        for pid in pids:
            os.setpriority(os.PRIO_PROCESS, pid, TIMING_NICENESS)
    except PermissionError:
        pass  # not root: the test runs at the priority it has
    try:
        yield
    finally:
        for pid, niceness in was.items():
            try:
                os.setpriority(os.PRIO_PROCESS, pid, niceness)
            except (PermissionError, ProcessLookupError):
                pass


@pytest.fixture
def wdm(capsys):
    """`wdm ARGS` as its console script runs it (`sys.exit(main(ARGS))`), in this process: its exit
    code and what it wrote. (A `wdm` process of its own costs a second of start-up; the tests that
    need one, to send it a signal, start it themselves.)"""
    def run(*args: str) -> subprocess.CompletedProcess:
        code = main(list(args))
        out, err = capsys.readouterr()
        return subprocess.CompletedProcess(["wdm", *args], code, out, err)
    return run


@pytest.fixture
def refused_port():
    """A port on 127.0.0.1 that refuses every connection for the whole test: bound and never
    listening, so no process started meanwhile can take it. (A port that was merely free when the
    test began was taken by another test's shop during a 40 s grading on a loaded machine, and the
    team meant to be down was graded consistent.)"""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        yield s.getsockname()[1]


@pytest.fixture
def write_urls(tmp_path):
    """urls.json for a base URL (or a dict of the three), in a temporary folder."""
    def write(where, name="urls.json") -> Path:
        urls = where if isinstance(where, dict) else {k: where for k in ("ORDER_URL", "PAYMENT_URL", "STOCK_URL")}
        path = tmp_path / name
        path.write_text(json.dumps(urls))
        return path
    return write
