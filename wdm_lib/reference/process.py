"""The reference shop as a child process: the workbench's embedded default target and the
tests' system under test.

    with ReferenceShopProcess(data_dir=..., anomaly=None) as shop:
        shop.base_url, shop.urls(), shop.pid, shop.kill()

The shop is started (and listening) when the constructor returns; leaving the `with` stops it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
import weakref

import wdm_lib
from wdm_lib.errors import WorkbenchError

LISTENING = "wdm reference shop listening on "


def _contents(file) -> str:
    """What the shop wrote to one of its output files so far. pread, not seek and read: the shop's
    descriptor shares the file offset with ours, and moving it would make the shop's next write
    land over what it wrote before."""
    return os.pread(file.fileno(), 1 << 20, 0).decode(errors="replace")


def _kill_if_running(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.kill()
        proc.wait()


class ReferenceShopProcess:
    def __init__(self, data_dir: str | os.PathLike | None = None, anomaly: str | None = None, *,
                 start_timeout: float = 20.0, stop_timeout: float = 10.0):
        self.data_dir = None if data_dir is None else os.fspath(data_dir)
        self.anomaly = anomaly
        self.stop_timeout = stop_timeout
        cmd = [sys.executable, "-m", "wdm_lib", "serve", "--host", "127.0.0.1", "--port", "0"]
        if self.data_dir is not None:
            cmd += ["--data", self.data_dir]
        if anomaly is not None:
            cmd += ["--anomaly", anomaly]
        # Files, not pipes: nobody has to keep draining them while the shop runs.
        self._stdout = tempfile.TemporaryFile()
        self._stderr = tempfile.TemporaryFile()
        env = dict(os.environ)
        package_root = os.path.dirname(os.path.dirname(os.path.abspath(wdm_lib.__file__)))
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_root, env.get("PYTHONPATH")]))
        self._proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=self._stdout,
                                      stderr=self._stderr, env=env)
        # A test that fails half-way must not leave a shop running after the interpreter exits.
        self._finalizer = weakref.finalize(self, _kill_if_running, self._proc)
        self.pid: int = self._proc.pid
        try:
            self.base_url: str = self._wait_listening(start_timeout)
        except BaseException:
            self.kill()
            raise

    def _wait_listening(self, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while True:
            for line in _contents(self._stdout).splitlines():
                if line.startswith(LISTENING):
                    return line[len(LISTENING):].strip()
            code = self._proc.poll()
            if code is not None:
                raise WorkbenchError(f"the reference shop (pid {self.pid}) exited with code {code} "
                                     f"before listening: {self._stderr_tail() or 'no error output'}")
            if time.monotonic() > deadline:
                raise WorkbenchError(f"the reference shop (pid {self.pid}) did not start listening "
                                     f"within {timeout:g} s: {self._stderr_tail() or 'no error output'}")
            time.sleep(0.01)

    def _stderr_tail(self, lines: int = 5) -> str:
        return " | ".join(_contents(self._stderr).strip().splitlines()[-lines:])

    def urls(self) -> dict[str, str]:
        return {"ORDER_URL": self.base_url, "PAYMENT_URL": self.base_url, "STOCK_URL": self.base_url}

    @property
    def returncode(self) -> int | None:
        return self._proc.poll()

    def stop(self) -> int:
        """SIGTERM, then SIGKILL if the shop has not exited within stop_timeout. Returns its exit code."""
        if self._proc.poll() is None:
            self._proc.send_signal(signal.SIGTERM)
            try:
                self._proc.wait(self.stop_timeout)
            except subprocess.TimeoutExpired:
                self._proc.kill()
        return self._close()

    def kill(self) -> int:
        """SIGKILL, as a crash would: what was committed must survive it."""
        if self._proc.poll() is None:
            self._proc.kill()
        return self._close()

    def _close(self) -> int:
        code = self._proc.wait()
        self._finalizer.detach()
        self._stdout.close()
        self._stderr.close()
        return code

    def __enter__(self) -> "ReferenceShopProcess":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
