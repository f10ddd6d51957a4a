"""The reference shop as a child process: the workbench's embedded default target and the
tests' system under test, and what a fault schedule kills, pauses and restarts.

    with ReferenceShopProcess(data_dir=..., anomaly=None) as shop:
        shop.base_url, shop.urls(), shop.pid
        shop.kill("shop"); shop.start("shop")      # a crash, and the shop coming back
        shop.pause("shop"); shop.resume("shop")    # a process that stops answering for a while

The shop is started (and listening) when the constructor returns; leaving the `with` stops it.
It keeps its port and its data folder across kills and restarts, as a container does with its
volume, so what it committed before a kill is what it serves after. A temporary data folder (no
`data_dir` given) belongs to this object and is removed when it stops.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import weakref
from urllib.parse import urlparse

import wdm_lib
from wdm_lib.errors import WorkbenchError

LISTENING = "wdm reference shop listening on "
SHOP = "shop"


def _contents(file) -> str:
    """What the shop wrote to one of its output files so far. pread, not seek and read: the shop's
    descriptor shares the file offset with ours, and moving it would make the shop's next write
    land over what it wrote before."""
    return os.pread(file.fileno(), 1 << 20, 0).decode(errors="replace")


def require_starting(what: str, proc: subprocess.Popen, stderr_tail: str, deadline: float, timeout: float) -> None:
    """While waiting for a shop process to listen: one sentence if it exited instead, or if it has
    not listened by the deadline (`stderr_tail`: the last of what it wrote, which says why)."""
    code = proc.poll()
    if code is not None:
        raise WorkbenchError(f"{what} (pid {proc.pid}) exited with code {code} before listening: "
                             f"{stderr_tail or 'no error output'}")
    if time.monotonic() > deadline:
        raise WorkbenchError(f"{what} (pid {proc.pid}) did not start listening within {timeout:g} s: "
                             f"{stderr_tail or 'no error output'}")


def _cleanup(proc_holder: list, files: list, data_dir: str | None) -> None:
    proc = proc_holder[0]
    if proc is not None and proc.poll() is None:
        proc.kill()
        proc.wait()
    for f in files:
        f.close()
    if data_dir is not None:
        shutil.rmtree(data_dir, ignore_errors=True)


def shop_environment() -> dict[str, str]:
    """The environment a shop process starts in: this one, with this copy of wdm_lib importable.

    The reference shop speaks plain HTTP only (its services call each other on 127.0.0.1), yet
    aiohttp loads the machine's whole CA bundle into two TLS contexts as it is imported: 60-90 ms,
    a quarter of a shop process's start-up. Pointed at no bundle, it loads none."""
    env = dict(os.environ)
    package_root = os.path.dirname(os.path.dirname(os.path.abspath(wdm_lib.__file__)))
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_root, env.get("PYTHONPATH")]))
    env["SSL_CERT_FILE"] = os.devnull
    return env


class ReferenceShopProcess:
    SERVICES = (SHOP,)

    def __init__(self, data_dir: str | os.PathLike | None = None, anomaly: str | None = None, *,
                 start_timeout: float = 20.0, stop_timeout: float = 10.0):
        self.anomaly = anomaly
        self.start_timeout = start_timeout
        self.stop_timeout = stop_timeout
        self._owned = data_dir is None
        self.data_dir = tempfile.mkdtemp(prefix="wdm-shop-") if data_dir is None else os.fspath(data_dir)
        # Files, not pipes: nobody has to keep draining them while the shop runs.
        self._stdout = tempfile.TemporaryFile()
        self._stderr = tempfile.TemporaryFile()
        self._proc_holder: list[subprocess.Popen | None] = [None]
        self.port = 0  # picked by the first start, kept by every later one
        # A test that fails half-way must not leave a shop or its temporary folder behind.
        self._finalizer = weakref.finalize(self, _cleanup, self._proc_holder, [self._stdout, self._stderr],
                                           self.data_dir if self._owned else None)
        try:
            self.start(SHOP)
        except BaseException:
            self.stop()
            raise

    @property
    def _proc(self) -> subprocess.Popen:
        return self._proc_holder[0]

    @property
    def pid(self) -> int:
        return self._proc.pid

    @property
    def pids(self) -> dict[str, int]:
        return {SHOP: self.pid}

    def _check(self, service: str) -> None:
        if service not in self.SERVICES:
            raise WorkbenchError(f"the embedded reference shop runs as one process, {SHOP!r}; "
                                 f"{service!r} names none of its services.")

    # --- the actions a fault schedule takes ----------------------------------------------------------
    def start(self, service: str = SHOP) -> None:
        """Start the shop (again) on its port and data folder; returns once it listens."""
        self._check(service)
        if self._proc is not None and self._proc.poll() is None:
            raise WorkbenchError(f"the reference shop (pid {self.pid}) is already running; expected it stopped.")
        # --exit-with: the shop watches the workbench and goes when it goes, however it dies, so no
        # shop outlives the run that started it (whichever thread started it).
        cmd = [sys.executable, "-m", "wdm_lib", "serve", "--host", "127.0.0.1", "--port", str(self.port),
               "--data", self.data_dir, "--exit-with", str(os.getpid())] + (["--temporary"] if self._owned else [])
        if self.anomaly is not None:
            cmd += ["--anomaly", self.anomaly]
        env = shop_environment()
        for f in (self._stdout, self._stderr):  # a restarted shop's listening line is the one to read
            f.truncate(0)
            f.seek(0)  # the offset is shared with the child; none runs now to move it
        self._proc_holder[0] = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=self._stdout,
                                                stderr=self._stderr, env=env)
        self.base_url: str = self._wait_listening(self.start_timeout)
        self.port = urlparse(self.base_url).port

    def kill(self, service: str = SHOP) -> None:
        """SIGKILL, as a crash would: what was committed must survive it."""
        self._check(service)
        if self._proc.poll() is None:
            self.resume(service)  # a paused process dies all the same, but is reaped only when it runs
            self._proc.kill()
        self._proc.wait()

    def pause(self, service: str = SHOP) -> None:
        """SIGSTOP: the shop holds its connections and answers nothing until resumed."""
        self._check(service)
        if self._proc.poll() is None:
            self._proc.send_signal(signal.SIGSTOP)

    def resume(self, service: str = SHOP) -> None:
        self._check(service)
        if self._proc.poll() is None:
            self._proc.send_signal(signal.SIGCONT)

    def terminate(self, service: str = SHOP) -> None:
        """SIGTERM, then SIGKILL if the shop has not exited within stop_timeout."""
        self._check(service)
        if self._proc.poll() is None:
            self.resume(service)
            self._proc.send_signal(signal.SIGTERM)
            try:
                self._proc.wait(self.stop_timeout)
            except subprocess.TimeoutExpired:
                self._proc.kill()
        self._proc.wait()

    def restart(self, service: str = SHOP) -> None:
        self.terminate(service)
        self.start(service)

    def exit_code(self, service: str = SHOP) -> int | None:
        """None while the shop runs, else how it ended (negative: the signal that ended it)."""
        self._check(service)
        return self._proc.poll()

    # -------------------------------------------------------------------------------------------------
    def _wait_listening(self, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while True:
            for line in _contents(self._stdout).splitlines():
                if line.startswith(LISTENING):
                    return line[len(LISTENING):].strip()
            require_starting("the reference shop", self._proc, self._stderr_tail(), deadline, timeout)
            time.sleep(0.01)

    def _stderr_tail(self, lines: int = 5) -> str:
        return " | ".join(_contents(self._stderr).strip().splitlines()[-lines:])

    def urls(self) -> dict[str, str]:
        return {"ORDER_URL": self.base_url, "PAYMENT_URL": self.base_url, "STOCK_URL": self.base_url}

    @property
    def returncode(self) -> int | None:
        return self._proc.poll()

    def stop(self) -> int | None:
        """Stop the shop (SIGTERM, SIGKILL after stop_timeout), close its files, and remove its data
        folder if it was a temporary one. Returns its exit code."""
        if self._proc is not None:
            self.terminate(SHOP)
        code = None if self._proc is None else self._proc.returncode
        self._finalizer()
        return code

    def __enter__(self) -> "ReferenceShopProcess":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
