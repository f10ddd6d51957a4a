"""The embedded shop's processes and their life cycle, implemented once for both shapes of the shop:
one process (process.py) or a gateway and three services (services.py).

    shop.start(service), .kill, .pause, .resume, .terminate, .restart    # what a fault schedule does
    shop.SERVICES, shop.base_url, shop.urls(), shop.pids, shop.exit_code(service)   # what a run reads

`service` names one process, or "shop" for every one. A process is started on a port chosen here
and kept across kills and restarts, as is the data folder (a container keeps its volume), so what
it committed before a kill is what it serves after. It is ready once it answers GET /health on that
port with its own pid: not a line it prints, and not another process that took the port meanwhile.
A temporary data folder (no `data_dir` given) belongs to the shop object, removed when it stops.

Every process, and a temporary data folder, is handed to the reaper (wdm_lib.reaper): a workbench
that dies however it dies, `kill -9` while a fault holds the shop paused included, leaves neither
behind. (A shop cannot watch the workbench itself: a paused one watches nothing.)
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import weakref
from typing import ClassVar, Protocol, runtime_checkable

import wdm_lib
from wdm_lib import reaper
from wdm_lib.errors import WorkbenchError
from wdm_lib.ports import free_port

SHOP = "shop"
HEALTH = "/health"  # each process answers it ({"service": ..., "pid": ...}) beside the API, outside API.md


@runtime_checkable
class Shop(Protocol):
    """The embedded shop as a run holds it: what a fault schedule's built-in actions call, and what
    the workbench reads."""

    SERVICES: ClassVar[tuple[str, ...]]  # its processes, each a name a fault can act on ("shop": all)
    base_url: str

    def urls(self) -> dict[str, str]: ...
    @property
    def pids(self) -> dict[str, int]: ...
    def exit_code(self, service: str) -> int | None: ...
    def start(self, service: str) -> None: ...
    def kill(self, service: str) -> None: ...
    def pause(self, service: str) -> None: ...
    def resume(self, service: str) -> None: ...
    def terminate(self, service: str) -> None: ...
    def restart(self, service: str) -> None: ...


def _contents(file) -> str:
    """What a process wrote to its error file so far. pread, not seek and read: its descriptor shares
    the file offset with ours, and moving it would make its next write land over what it wrote before."""
    return os.pread(file.fileno(), 1 << 20, 0).decode(errors="replace")


def answers(host: str, port: int, pid: int, timeout: float) -> bool:
    """Whether process `pid` answers GET /health on host:port (a refused connection: not yet)."""
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request("GET", HEALTH)
        reply = conn.getresponse()
        said = json.loads(reply.read()) if reply.status == 200 else None
        return isinstance(said, dict) and said.get("pid") == pid
    except (OSError, http.client.HTTPException, ValueError):
        return False
    finally:
        conn.close()


class ShopChild:
    """One process of a shop, answering on host:port once ready; its error output in a file (not a
    pipe: nobody has to drain it). It is the reaper's from its start until it has been waited for
    here: after that its pid may be another's."""

    def __init__(self, what: str, host: str, port: int, cmd: list[str], env: dict[str, str]):
        """`what` names it in sentences ("the stock service")."""
        self.what, self.host, self.port = what, host, port
        self.answered = False
        self.stderr = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=self.stderr,
                                     env=env)
        self._guard = reaper.watch_process(self.proc.pid)

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

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

    def ready(self, deadline: float, timeout: float) -> bool:
        """Whether it has answered its health request; one sentence if it has exited (before or after
        it answered) or has not answered by the deadline (`timeout` after it started)."""
        code = self.exit_code()
        if code is not None:
            when = f"after it had listened on {self.url}" if self.answered else "before listening"
            raise WorkbenchError(f"{self.what} (pid {self.pid}) exited with code {code} {when}: "
                                 f"{self.stderr_tail() or 'no error output'}")
        if not self.answered:
            self.answered = answers(self.host, self.port, self.pid, min(1.0, max(0.1, deadline - time.monotonic())))
            if not self.answered and time.monotonic() > deadline:
                raise WorkbenchError(f"{self.what} (pid {self.pid}) did not start listening within {timeout:g} s: "
                                     f"{self.stderr_tail() or 'no error output'}")
        return self.answered

    def stderr_tail(self, lines: int = 5) -> str:
        return " | ".join(_contents(self.stderr).strip().splitlines()[-lines:])

    def close(self) -> None:
        self.stderr.close()


def wait_ready(children: list[ShopChild], timeout: float) -> None:
    """Return once every one of `children` answers. Each is looked at on every round, so one that
    answered and then died while another was starting is one sentence too, not a start that passed."""
    deadline = time.monotonic() + timeout
    while not all([child.ready(deadline, timeout) for child in children]):
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


def _cleanup(children: dict[str, ShopChild], folder: TemporaryDataFolder | None) -> None:
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


class ShopSupervisor:
    """A Shop made of one process per name in SERVICES, in one data folder; started (every process
    answering) when the constructor returns, stopped when the `with` is left. A shape of the shop
    says which processes it has, how each is started (`_command`) and which one the API is served on."""

    SERVICES: ClassVar[tuple[str, ...]]  # in the order they stop: the one the API is served on first
    NAME: ClassVar[str]  # the shop's, in sentences
    FOLDER_PREFIX: ClassVar[str]

    def __init__(self, data_dir: str | os.PathLike | None, anomaly: str | None, *, host: str,
                 ports: dict[str, int], start_timeout: float, stop_timeout: float):
        """`ports`: a fixed port for some processes; every other one gets a free port."""
        self.anomaly, self.host = anomaly, host
        self.start_timeout, self.stop_timeout = start_timeout, stop_timeout
        folder = TemporaryDataFolder(self.FOLDER_PREFIX) if data_dir is None else None
        self.data_dir = folder.path if folder else os.fspath(data_dir)
        self._children: dict[str, ShopChild] = {}
        # A test that fails half-way must not leave processes or their temporary folder behind.
        self._finalizer = weakref.finalize(self, _cleanup, self._children, folder)
        try:
            os.makedirs(self.data_dir, exist_ok=True)
        except OSError as e:
            raise WorkbenchError(f"cannot use {self.data_dir} as the shop's data folder: {e.strerror or e}") from None
        self.ports = {name: ports.get(name) or free_port(host) for name in self.SERVICES}
        self.base_url = self.url(self.SERVICES[0])
        self._env = shop_environment()
        try:
            self.start(SHOP)
        except BaseException:
            self.stop()
            raise

    def _command(self, name: str) -> list[str]:
        raise NotImplementedError

    def _what(self, name: str) -> str:
        """How a sentence names process `name`."""
        return f"the {name} service"

    # --- where things are ------------------------------------------------------------------------------
    def url(self, name: str) -> str:
        return f"http://{self.host}:{self.ports[name]}"

    def urls(self) -> dict[str, str]:
        return {"ORDER_URL": self.base_url, "PAYMENT_URL": self.base_url, "STOCK_URL": self.base_url}

    @property
    def pids(self) -> dict[str, int]:
        return {name: child.pid for name, child in self._children.items()}

    def exit_code(self, service: str = SHOP) -> int | None:
        """None while process `service` runs, else how it ended (negative: the signal that ended it)."""
        return self._children[self._one(service)].exit_code()

    def _one(self, service: str) -> str:
        if service not in self.SERVICES:
            raise WorkbenchError(f"unknown service {service!r} of {self.NAME}; "
                                 f"expected one of {', '.join(self.SERVICES)}")
        return service

    def _names(self, service: str) -> tuple[str, ...]:
        return self.SERVICES if service == SHOP else (self._one(service),)

    def _targets(self, service: str) -> list[ShopChild]:
        return [self._children[name] for name in self._names(service)]

    # --- the actions a fault schedule takes -------------------------------------------------------------
    def start(self, service: str = SHOP) -> None:
        """Start stopped processes again, on their ports and data folder; returns once each answers."""
        names = self._names(service)
        for name in names:
            old = self._children.get(name)
            if old is not None and old.exit_code() is None:
                raise WorkbenchError(f"{old.what} (pid {old.pid}) is still running; expected it stopped before start")
        for name in names:
            if name in self._children:
                self._children[name].close()
            self._children[name] = ShopChild(self._what(name), self.host, self.ports[name], self._command(name),
                                             self._env)
        wait_ready([self._children[name] for name in names], self.start_timeout)

    def kill(self, service: str = SHOP) -> None:
        """SIGKILL, as a crash would (what was committed must survive it); returns once it is gone."""
        for child in self._targets(service):
            child.kill()

    def pause(self, service: str = SHOP) -> None:
        """SIGSTOP: it holds its connections and answers nothing until resumed."""
        for child in self._targets(service):
            child.signal(signal.SIGSTOP)

    def resume(self, service: str = SHOP) -> None:
        for child in self._targets(service):
            child.signal(signal.SIGCONT)

    def terminate(self, service: str = SHOP) -> None:
        """SIGTERM (after SIGCONT, so a paused one can act on it); SIGKILL after stop_timeout."""
        stop_together(self._targets(service), self.stop_timeout)

    def restart(self, service: str = SHOP) -> None:
        self.terminate(service)
        self.start(service)

    # --- the shop's own end ------------------------------------------------------------------------------
    def stop(self) -> None:
        """Every process, one after another in SERVICES order (so no new request comes in through the
        first while the others stop), then its files, and the data folder if it was a temporary one."""
        for name in self.SERVICES:
            if name in self._children:
                stop_together([self._children[name]], self.stop_timeout)
        self._finalizer()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
