"""Nothing outlives the workbench, whatever killed it: each test `kill -9`s a real `wdm` in the state
that once left something behind (a shop a fault held paused, a report's kernel) and looks for what
is left. (A fault command's background child: test_faults.py.)"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import psutil
import pytest

from processes import alive, process_state, wait_for
from wdm_lib.runner import run_consistency
from wdm_lib.workloads.consistency import ConsistencyScenario

GONE_WITHIN_S = 10.0  # the reaper's grace from SIGTERM to SIGKILL is 5 s; a shop goes well within it


def start_wdm(tmp_path, *args: str) -> subprocess.Popen:
    """`wdm ARGS` in a process of its own, with a temporary folder of its own (tmp_path/tmp) in
    which anything it leaves behind is seen."""
    (tmp_path / "tmp").mkdir(exist_ok=True)
    return subprocess.Popen([sys.executable, "-m", "wdm_lib", *args], stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={**os.environ, "TMPDIR": str(tmp_path / "tmp")})


def descendant(proc: subprocess.Popen, *words: str, timeout: float = 60.0) -> psutil.Process:
    """The process `proc` started (directly or not) whose command line holds every one of `words`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for p in psutil.Process(proc.pid).children(recursive=True):
            try:
                if all(w in p.cmdline() for w in words):
                    return p
            except psutil.NoSuchProcess:
                continue
        assert proc.poll() is None, f"wdm exited with code {proc.returncode} before starting {words}"
        time.sleep(0.05)
    raise AssertionError(f"wdm started no process with {words} within {timeout:g} s")


def kill_9(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait()


@pytest.mark.long
@pytest.mark.parametrize("service, shop_words", [
    ("shop", ("serve",)),                                     # the single-process shop
    ("payment", ("wdm_lib.reference.service", "payment")),   # a service of the three-service shop
])
def test_a_shop_a_fault_holds_paused_goes_with_its_data_folder_when_wdm_is_killed(tmp_path, service, shop_words):
    faults = tmp_path / "faults.yaml"
    faults.write_text(f"faults:\n  - name: stalls\n    at: 0.5s\n    action: pause {service}\n"
                      f"    recover_after: 30s\n")
    # 2,000 checkouts at 50/s: a load of 40 s, the shop paused for 30 of them.
    wdm = start_wdm(tmp_path, "consistency", "--rate", "50", "--n-orders", "2000", "--faults", str(faults),
                    "--runs-dir", str(tmp_path / "runs"))
    try:
        paused = descendant(wdm, *shop_words)
        shop = [p.pid for p in psutil.Process(wdm.pid).children()]
        cmdline = paused.cmdline()
        data_dir = cmdline[cmdline.index("--data") + 1]
        assert wait_for(lambda: process_state(paused.pid) == "T", 60), "the fault never paused it"
    finally:
        kill_9(wdm)
    assert wait_for(lambda: not any(alive(pid) for pid in shop), GONE_WITHIN_S), \
        f"a shop process outlived wdm: {[(pid, process_state(pid)) for pid in shop if alive(pid)]}"
    assert wait_for(lambda: not os.path.exists(data_dir)), "the shop's temporary data folder was left behind"


@pytest.mark.long
def test_a_report_kernel_and_its_connection_file_go_when_wdm_report_is_killed(tmp_path):
    run, _ = run_consistency(ConsistencyScenario(n_users=20, n_orders=20, item_stock=10, seed=3, quiet_s=0.2),
                             runs_dir=tmp_path / "runs")
    wdm = start_wdm(tmp_path, "report", str(run.path), "--reports-dir", str(tmp_path / "reports"))
    try:
        kernel = descendant(wdm, "ipykernel_launcher")
        # Mid-render: the kernel has read its connection file and is running the notebook's cells.
        assert wait_for(lambda: kernel.cpu_times().user > 0.5, 60), "the kernel never got going"
    finally:
        kill_9(wdm)
    assert wait_for(lambda: not alive(kernel.pid), GONE_WITHIN_S), "the report's kernel outlived wdm"
    assert wait_for(lambda: not os.listdir(tmp_path / "tmp"), GONE_WITHIN_S), \
        f"wdm report left {os.listdir(tmp_path / 'tmp')} in its temporary folder"
