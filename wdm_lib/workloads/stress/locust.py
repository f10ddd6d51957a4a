"""Locust's side of a run: its command line (the scenario as the locustfile's custom arguments),
and its process, in a process group of its own with its output kept in locust.log.

Locust runs as a subprocess (`python -m locust -f locustfile.py`): it monkey-patches the standard
library with gevent on import, which must never reach the rest of wdm_lib.
"""

from __future__ import annotations

import collections
import math
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Callable

from wdm_lib import reaper
from wdm_lib.config import Target, redact
from wdm_lib.errors import WorkbenchError
from wdm_lib.ports import free_port
from wdm_lib.stopping import children_hear_ctrl_c
from wdm_lib.workloads.shop_rows import STOPPED
from wdm_lib.workloads.stress import locust_csv
from wdm_lib.workloads.stress.scenario import Distributed, StressScenario

LOCUSTFILE = Path(__file__).resolve().parent.parent / "locustfile.py"
LOCUST_PREFIX = locust_csv.PREFIX  # -> locust_stats.csv, locust_stats_history.csv, locust_failures.csv, ...
LOCUST_HTML = "locust_report.html"
LOCUST_LOG = "locust.log"
WORKERS_CSV = "workers.csv"
TAIL_LINES = 200  # of Locust's output, kept in memory for the sentence that says why it ended
EXIT_GRACE_S = 60.0      # beyond the planned run time, before a hung Locust is stopped
INTERRUPT_GRACE_S = 30.0  # for Locust to write its files after Ctrl-C
WORKER_GRACE_S = 5.0      # for a worker to tell its master it leaves
# At the end, a request in flight may finish (and be counted) for this long before it is cut off.
STOP_TIMEOUT_S = 10.0


def locust_options(sc: StressScenario, target: Target) -> list[str]:
    """The scenario as the locustfile's custom arguments (forwarded by a master to its workers)."""
    lo, hi = sc.wait_range
    opts = ["--wdm-stock-url", target.stock_url, "--wdm-payment-url", target.payment_url,
            "--wdm-n-items", str(sc.n_items), "--wdm-n-users", str(sc.n_users),
            "--wdm-n-orders", str(sc.n_orders), "--wdm-funds-amount", str(sc.funds_amount),
            "--wdm-wait-min", f"{lo:g}", "--wdm-wait-max", f"{hi:g}", "--wdm-step-time", f"{sc.step_time:g}"]
    if sc.pacing_s is not None:
        opts += ["--wdm-pacing", repr(sc.pacing_s)]
    for name, w in sc.weights().items():
        opts += [f"--wdm-{name.replace('_', '-')}-weight", str(w)]
    return opts


def locust_command(sc: StressScenario, target: Target, folder: Path, *, ui: bool = False,
                   web_port: int = 8089, dist: Distributed | None = None) -> tuple[list[str], dict[str, str]]:
    """The command line and environment of the Locust process that makes the run."""
    dist = dist or Distributed()
    cmd = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--host", target.order_url,
           "-u", str(sc.users), "-r", f"{sc.spawn_rate:g}",
           "--csv", str(folder / LOCUST_PREFIX), "--csv-full-history", "--html", str(folder / LOCUST_HTML),
           "--exit-code-on-error", "1", "--stop-timeout", f"{STOP_TIMEOUT_S:g}"]
    if ui:
        cmd += ["--web-host", "127.0.0.1", "--web-port", str(web_port)]
    else:
        cmd += ["--headless", "--only-summary"]
        if not sc.steps:
            cmd += ["-t", f"{math.ceil(sc.run_time)}s"]
    if dist.master:
        cmd += ["--master", "--expect-workers", str(dist.expect_workers),
                "--expect-workers-max-wait", str(math.ceil(dist.workers_wait_s)),
                "--master-bind-host", dist.bind_host, "--master-bind-port", str(dist.bind_port)]
    elif sc.processes != 1:
        # Locust's own master for its forked workers listens on 5557 of every interface unless told
        # otherwise: two such runs on one machine would share it (and each other's workers).
        port = str(free_port())
        cmd += ["--processes", str(sc.processes), "--master-bind-host", "127.0.0.1",
                "--master-bind-port", port, "--master-port", port]
    cmd += locust_options(sc, target)
    if sc.raw_latencies:
        cmd += ["--wdm-raw-dir", str(folder)]
    if dist.master or sc.processes != 1:
        cmd += ["--wdm-workers-file", str(folder / WORKERS_CSV)]
    env = dict(os.environ)
    env.pop("WDM_STEPS", None)
    if sc.steps:
        env["WDM_STEPS"] = ",".join(map(str, sc.steps))
    return cmd, env


def worker_command(master_host: str, master_port: int = 5557, processes: int = 1) -> list[str]:
    cmd = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--worker",
           "--master-host", master_host, "--master-port", str(master_port)]
    if processes != 1:
        cmd += ["--processes", str(processes)]
    return cmd


class LocustProcess:
    """Locust in its own process group, its output copied into locust.log (the terminal shows the
    live progress line instead). Ctrl-C reaches it once, through us, so it always gets to write its
    CSVs and report. Out of a terminal's reach, it would outlive a wdm killed with -9 and load a
    dead target for the rest of its -t: the reaper ends the group then (SIGTERM first, so Locust
    still writes its files)."""

    def __init__(self, cmd: list[str], env: dict[str, str], log_path: Path):
        self.log_path = log_path
        self._log = open(log_path, "w", encoding="utf-8", errors="replace")
        self._tail: collections.deque[str] = collections.deque(maxlen=TAIL_LINES)
        self._stopped: str | None = None
        self.log_failure: str | None = None
        with children_hear_ctrl_c():
            self.proc = subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                         stderr=subprocess.STDOUT, start_new_session=True)
        self._guard = reaper.watch_group(self.proc.pid)
        self._copier = threading.Thread(target=self._copy, daemon=True)
        self._copier.start()

    def _copy(self) -> None:
        # The copier closes the log itself: Locust's forked workers may hold the pipe open a little
        # after their parent exits, and their last lines still belong in the log. It keeps the
        # last lines (and the locustfile's own reason to stop) in memory too, and drains the pipe
        # even when the log cannot be written (a full disk): a Locust whose output is not read
        # blocks, and the run would hang until its bound instead of saying why it stopped.
        for raw in self.proc.stdout:
            line = redact(raw.decode("utf-8", "replace"))
            self._tail.append(line)
            if STOPPED in line and self._stopped is None:
                self._stopped = line.split(STOPPED, 1)[1].strip()
            if self.log_failure is None:
                try:
                    self._log.write(line)
                    self._log.flush()
                except OSError as e:
                    self.log_failure = (f"{self.log_path}: cannot be written ({e.strerror or e}); the run stopped "
                                        f"there, and what was recorded before is kept in {self.log_path.parent}.")
        try:
            self._log.close()
        except OSError:
            pass

    def _output_read(self) -> None:
        """Once Locust has ended: wait (a little) for the copier to read its last lines."""
        if self.proc.poll() is not None:
            self._copier.join(5)

    def wait(self, bound_s: float | None, every_s: float = 2.0, tick: Callable[[], None] = lambda: None) -> int:
        """Locust's exit code, calling `tick` every `every_s` meanwhile; a Locust still running
        after bound_s is stopped (SIGINT, then kill)."""
        deadline = None if bound_s is None else time.monotonic() + bound_s
        while True:
            step = every_s if deadline is None else max(0.0, min(every_s, deadline - time.monotonic()))
            try:
                return self.proc.wait(step)
            except subprocess.TimeoutExpired:
                if deadline is not None and time.monotonic() >= deadline:
                    break
                tick()
        self.interrupt()
        raise WorkbenchError(f"Locust (pid {self.proc.pid}) was still running {bound_s:g} s after it "
                             f"started, past its planned run time; it was stopped (see {self.log_path}).")

    def interrupt(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(INTERRUPT_GRACE_S)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        return self.close()

    def close(self) -> int:
        code = self.proc.wait()
        self._copier.join(5)
        end_group(self.proc)  # those that ended with their master closed the log's pipe by now
        self._guard.release()
        return code

    def stopped_because(self) -> str | None:
        """The sentence with which the locustfile ended the test itself (a reply body past the cap,
        a raw file that could not be written), or the log that could not be written."""
        self._output_read()
        return self._stopped or self.log_failure

    def log_tail(self, lines: int = 40) -> list[str]:
        self._output_read()
        return [line.rstrip() for line in self._tail if line.strip()][-lines:]


# What Locust's master logs when its port is taken (zmq's words, e.g. "Address already in use").
BIND_FAILURE = re.compile(r"Socket bind failure: (?P<why>.+?) \(addr='tcp://(?P<addr>[^']+)'\)")


def end_group(proc: subprocess.Popen, sig: int = signal.SIGKILL) -> None:
    """Whatever is left of the process group `proc` led (by default once `proc` has gone): the
    workers that `--processes` forked and whose master died without telling them (they go on trying
    to reach it for five minutes)."""
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:  # the whole group has gone, as it should
        pass


def locust_failure(code: int, log_tail: list[str], dist: Distributed | None) -> str | None:
    """One sentence when Locust could not make the run, None when it did (exit 0, or 1: some
    requests failed)."""
    bind = next((m for m in map(BIND_FAILURE.search, reversed(log_tail)) if m), None)
    if bind is not None:
        # Locust exits 1 here, as for a run with failed requests, and writes no statistics.
        if dist is not None and dist.master:
            return (f"Locust's master could not listen on {bind['addr']} ({bind['why']}); expected a "
                    f"--master-bind-port that nothing else listens on.")
        return (f"Locust's master for --processes could not listen on {bind['addr']} ({bind['why']}): the "
                f"port wdm picked for it was taken before Locust started; run again.")
    if dist is not None and dist.master and any("Gave up waiting for workers" in line for line in log_tail):
        return (f"not all --expect-workers {dist.expect_workers} workers connected within "
                f"--workers-wait {dist.workers_wait_s:g} s; expected them to be started with "
                f"`wdm stress worker --master-host <this machine> --master-port {dist.bind_port}`.")
    if code in (0, 1):
        return None
    errors = [line.strip() for line in log_tail if "rror" in line]
    detail = errors[-1] if errors else (log_tail[-1].strip() if log_tail else "no output")
    return f"Locust exited with code {code} without finishing the run: {detail[:300]}"


def run_worker(master_host: str, master_port: int = 5557, processes: int = 1) -> int:
    """`wdm stress worker`: a Locust worker of a master elsewhere; the master sends the scenario."""
    if processes < 1 and processes != -1:
        raise WorkbenchError(f"--processes is {processes}; expected at least 1 (or -1 for one per CPU core).")
    if not 0 < master_port < 65536:
        raise WorkbenchError(f"--master-port is {master_port}; expected a TCP port 1..65535.")
    try:  # Locust would print the resolver's error once and then wait five minutes for nothing
        socket.getaddrinfo(master_host, master_port, type=socket.SOCK_STREAM)
    except socket.gaierror as e:
        raise WorkbenchError(f"--master-host {master_host}: cannot resolve it ({e.strerror}); expected the name "
                             f"or address of the machine running `wdm stress run --master`.") from None
    # Locust has a session of its own: Ctrl-C (and a kill, see cli.main) reaches only us, and we end
    # it; a kill -9 only the reaper sees.
    with children_hear_ctrl_c():
        proc = subprocess.Popen(worker_command(master_host, master_port, processes), stdin=subprocess.DEVNULL,
                                start_new_session=True)
    guard = reaper.watch_group(proc.pid)
    try:
        return proc.wait()
    except KeyboardInterrupt:
        # A worker has nothing to write (its master keeps the figures), and one still trying to
        # reach its master pays no heed to SIGINT: a short grace, then the whole group goes.
        end_group(proc, signal.SIGINT)
        try:
            proc.wait(WORKER_GRACE_S)
        except subprocess.TimeoutExpired:
            pass
        raise
    finally:
        end_group(proc)
        proc.wait()
        guard.release()
