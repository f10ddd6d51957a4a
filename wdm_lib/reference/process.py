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

Every shop process, and a temporary data folder, is handed to the reaper (wdm_lib.reaper): a
workbench that dies however it dies, `kill -9` while a fault holds the shop paused included,
leaves neither behind. (A shop cannot watch the workbench itself: a paused one watches nothing.)
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
from wdm_lib import reaper
from wdm_lib.errors import WorkbenchError

LISTENING = "wdm reference shop listening on "
SHOP = "shop"


def _contents(file) -> str:
    """What the shop wrote to one of its output files so far. pread, not seek and read: the shop's
    descriptor shares the file offset with ours, and moving it would make the shop's next write
    land over what it wrote before."""
    return os.pread(file.fileno(), 1 << 20, 0).decode(errors="replace")


class ShopChild:
    """One process of a shop, its output in files (not pipes: nobody has to drain them). It is the
    reaper's from its start until it has been waited for here: after that its pid may be another's."""

    def __init__(self, what: str, banner: str, cmd: list[str], env: dict[str, str]):
        """`what` names it in sentences ("the stock service"); `banner`: the start of the line it
        prints once it listens, followed by its URL."""
        self.what, self.banner = what, banner
        self.stdout = tempfile.TemporaryFile()
        self.stderr = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=self.stdout, stderr=self.stderr, env=env)
        self._guard = reaper.watch_process(self.proc.pid)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def exit_code(self) -> int | None:
        """None while it runs, else how it ended (negative: the signal that ended it)."""
        code = self.proc.poll()
        if code is not None:
            self._guard.release()
        return code

    def wait(self, timeout: float | None = None) -> int:
        code = self.proc.wait(timeout)
        self._guard.release()
        return code

    def signal(self, sig: int) -> None:
        if self.exit_code() is None:
            self.proc.send_signal(sig)

    def kill(self) -> None:
        """SIGKILL, as a crash would; returns once it is gone."""
        self.signal(signal.SIGCONT)  # a paused process dies all the same, but is reaped only when it runs
        self.signal(signal.SIGKILL)
        self.wait()

    def url(self) -> str | None:
        """The URL it said it listens on; None until it has."""
        for line in _contents(self.stdout).splitlines():
            if line.startswith(self.banner):
                return line[len(self.banner):].strip()
        return None

    def listening(self, deadline: float, timeout: float) -> str | None:
        """Its URL once it listens, None while it starts; one sentence if it has exited (before or
        after it listened) or has not listened by the deadline (`timeout` after it started)."""
        code = self.exit_code()  # first: whatever it wrote before it exited can then be read
        url = self.url()
        if code is not None:
            when = f"after it had listened on {url}" if url else "before listening"
            raise WorkbenchError(f"{self.what} (pid {self.pid}) exited with code {code} {when}: "
                                 f"{self.stderr_tail() or 'no error output'}")
        if url is None and time.monotonic() > deadline:
            raise WorkbenchError(f"{self.what} (pid {self.pid}) did not start listening within {timeout:g} s: "
                                 f"{self.stderr_tail() or 'no error output'}")
        return url

    def stderr_tail(self, lines: int = 5) -> str:
        return " | ".join(_contents(self.stderr).strip().splitlines()[-lines:])

    def close(self) -> None:
        self.stdout.close()
        self.stderr.close()


def wait_listening(children: list[ShopChild], timeout: float) -> list[str]:
    """The URLs of `children` once every one listens. Each is looked at on every round, so one that
    listened and then died while another was starting is one sentence too, not a start that passed."""
    deadline = time.monotonic() + timeout
    while True:
        urls = [child.listening(deadline, timeout) for child in children]
        if None not in urls:
            return urls
        time.sleep(0.01)


def stop_together(children: list[ShopChild], timeout: float) -> None:
    """SIGTERM to each (after SIGCONT, so a paused one can act on it), SIGKILL to those still
    running `timeout` later."""
    for child in children:
        child.signal(signal.SIGCONT)
        child.signal(signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for child in children:
        try:
            child.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            child.kill()


class TemporaryDataFolder:
    """A new data folder that the reaper holds too: removed even if the workbench is killed."""

    def __init__(self, prefix: str):
        self.path = tempfile.mkdtemp(prefix=prefix)
        self._guard = reaper.watch_path(self.path)

    def remove(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)
        self._guard.release()


def cleanup(children: dict[str, ShopChild], folder: TemporaryDataFolder | None) -> None:
    """What a shop object leaves when it is stopped or was never stopped (a test that failed
    half-way): its processes, their files, and its temporary data folder."""
    for child in children.values():
        if child.exit_code() is None:
            child.kill()
        child.close()
    if folder is not None:
        folder.remove()


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
        folder = TemporaryDataFolder("wdm-shop-") if data_dir is None else None
        self.data_dir = folder.path if folder else os.fspath(data_dir)
        self._children: dict[str, ShopChild] = {}
        self.port = 0  # picked by the first start, kept by every later one
        # A test that fails half-way must not leave a shop or its temporary folder behind.
        self._finalizer = weakref.finalize(self, cleanup, self._children, folder)
        try:
            self.start(SHOP)
        except BaseException:
            self.stop()
            raise

    @property
    def _child(self) -> ShopChild:
        return self._children[SHOP]

    @property
    def pid(self) -> int:
        return self._child.pid

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
        old = self._children.get(SHOP)
        if old is not None:
            if old.exit_code() is None:
                raise WorkbenchError(f"the reference shop (pid {old.pid}) is already running; expected it stopped.")
            old.close()
        cmd = [sys.executable, "-m", "wdm_lib", "serve", "--host", "127.0.0.1", "--port", str(self.port),
               "--data", self.data_dir]
        if self.anomaly is not None:
            cmd += ["--anomaly", self.anomaly]
        self._children[SHOP] = ShopChild("the reference shop", LISTENING, cmd, shop_environment())
        [self.base_url] = wait_listening([self._child], self.start_timeout)
        self.port = urlparse(self.base_url).port

    def kill(self, service: str = SHOP) -> None:
        """SIGKILL, as a crash would: what was committed must survive it."""
        self._check(service)
        self._child.kill()

    def pause(self, service: str = SHOP) -> None:
        """SIGSTOP: the shop holds its connections and answers nothing until resumed."""
        self._check(service)
        self._child.signal(signal.SIGSTOP)

    def resume(self, service: str = SHOP) -> None:
        self._check(service)
        self._child.signal(signal.SIGCONT)

    def terminate(self, service: str = SHOP) -> None:
        """SIGTERM, then SIGKILL if the shop has not exited within stop_timeout."""
        self._check(service)
        stop_together([self._child], self.stop_timeout)

    def restart(self, service: str = SHOP) -> None:
        self.terminate(service)
        self.start(service)

    def exit_code(self, service: str = SHOP) -> int | None:
        """None while the shop runs, else how it ended (negative: the signal that ended it)."""
        self._check(service)
        return self._child.exit_code()

    def urls(self) -> dict[str, str]:
        return {"ORDER_URL": self.base_url, "PAYMENT_URL": self.base_url, "STOCK_URL": self.base_url}

    @property
    def returncode(self) -> int | None:
        return self._child.exit_code()

    def stop(self) -> int | None:
        """Stop the shop (SIGTERM, SIGKILL after stop_timeout), close its files, and remove its data
        folder if it was a temporary one. Returns its exit code."""
        code = None
        if SHOP in self._children:
            self.terminate(SHOP)
            code = self._child.exit_code()
        self._finalizer()
        return code

    def __enter__(self) -> "ReferenceShopProcess":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
