"""The three-service reference shop as child processes: a gateway and the order, stock and payment
services (service.py), each its own process with its own SQLite file in one data folder, so that a
fault can hit one service while the others keep going.

    with ReferenceServices(data_dir=None, anomaly=None) as shop:
        shop.base_url, shop.urls(), shop.pids
        shop.kill("payment"); shop.start("payment")      # or pause/resume, terminate, restart

Every service keeps its port across restarts. Every service watches the workbench (--exit-with,
as the single-process shop does) and goes when it goes, however it dies and whichever thread
started the service; a temporary data folder goes with them.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import weakref

from wdm_lib.errors import WorkbenchError
from wdm_lib.ports import free_port
from wdm_lib.reference.anomalies import check_anomaly
from wdm_lib.reference.process import SHOP, _contents, require_starting, shop_environment


def _cleanup(procs: dict[str, subprocess.Popen], data_dir: str | None) -> None:
    """What a ReferenceServices that was never stopped leaves: its children and its owned folder."""
    for proc in procs.values():
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    if data_dir is not None:
        shutil.rmtree(data_dir, ignore_errors=True)


class _Child:
    """One service process and the files its output goes to (files, not pipes: nobody has to drain them)."""

    def __init__(self, cmd: list[str], env: dict[str, str]):
        self.stdout = tempfile.TemporaryFile()
        self.stderr = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=self.stdout, stderr=self.stderr, env=env)

    def listening(self, banner: str) -> bool:
        return any(line.startswith(banner) for line in _contents(self.stdout).splitlines())

    def stderr_tail(self, lines: int = 5) -> str:
        return " | ".join(_contents(self.stderr).strip().splitlines()[-lines:])

    def close(self) -> None:
        self.stdout.close()
        self.stderr.close()


class ReferenceServices:
    SERVICES = ("gateway", "order", "stock", "payment")

    def __init__(self, data_dir: str | os.PathLike | None = None, anomaly: str | None = None, *,
                 start_timeout: float = 20.0, stop_timeout: float = 10.0,
                 host: str = "127.0.0.1", gateway_port: int = 0):
        check_anomaly(anomaly, services=True)
        self.anomaly, self.host = anomaly, host
        self.start_timeout, self.stop_timeout = start_timeout, stop_timeout
        self._owned = data_dir is None
        self.data_dir = tempfile.mkdtemp(prefix="wdm-services-") if data_dir is None else os.fspath(data_dir)
        try:
            os.makedirs(self.data_dir, exist_ok=True)
        except OSError as e:
            raise WorkbenchError(f"cannot use {self.data_dir} as the shop's data folder: {e.strerror or e}") from None
        self.ports = {name: free_port(host) for name in ("order", "stock", "payment")}
        self.ports["gateway"] = gateway_port or free_port(host)
        self.base_url = self._url("gateway")
        self._children: dict[str, _Child] = {}
        self._procs: dict[str, subprocess.Popen] = {}
        # A test that fails half-way must not leave services or their temporary folder behind.
        self._finalizer = weakref.finalize(self, _cleanup, self._procs, self.data_dir if self._owned else None)
        self._env = shop_environment()
        try:
            self._start_together(self.SERVICES)
        except BaseException:
            self.stop()
            raise

    # ---- where things are
    def _url(self, name: str) -> str:
        return f"http://{self.host}:{self.ports[name]}"

    def urls(self) -> dict[str, str]:
        return {"ORDER_URL": self.base_url, "PAYMENT_URL": self.base_url, "STOCK_URL": self.base_url}

    @property
    def pids(self) -> dict[str, int]:
        return {name: child.proc.pid for name, child in self._children.items()}

    def exit_code(self, service: str) -> int | None:
        return self._children[self._one(service)].proc.poll()

    # ---- life cycle
    def _command(self, name: str) -> list[str]:
        cmd = [sys.executable, "-m", "wdm_lib.reference.service", name, "--host", self.host,
               "--port", str(self.ports[name]), "--exit-with", str(os.getpid())]
        if name == "gateway":
            cmd += ["--order", self._url("order"), "--stock", self._url("stock"), "--payment", self._url("payment")]
        else:
            cmd += ["--data", self.data_dir] + (["--temporary"] if self._owned else [])
        if name == "order":
            cmd += ["--stock", self._url("stock"), "--payment", self._url("payment")]
            if self.anomaly is not None:
                cmd += ["--anomaly", self.anomaly]
        return cmd

    def _start_together(self, names: tuple[str, ...]) -> None:
        for name in names:
            old = self._children.get(name)
            if old is not None:
                if old.proc.poll() is None:
                    raise WorkbenchError(f"the {name} service (pid {old.proc.pid}) is still running; "
                                         f"expected it stopped before start")
                old.close()
            child = _Child(self._command(name), self._env)
            self._children[name] = child
            self._procs[name] = child.proc
        deadline = time.monotonic() + self.start_timeout
        waiting = list(names)
        while waiting:
            name = waiting[0]
            child = self._children[name]
            banner = "wdm gateway listening on " if name == "gateway" else f"wdm {name} service listening on "
            if child.listening(banner):
                waiting.pop(0)
                continue
            require_starting(f"the {name} service", child.proc, child.stderr_tail(), deadline, self.start_timeout)
            time.sleep(0.01)

    def _one(self, service: str) -> str:
        if service not in self.SERVICES:
            raise WorkbenchError(f"unknown service {service!r}; expected one of {', '.join(self.SERVICES)}")
        return service

    def _targets(self, service: str) -> list[str]:
        return list(self.SERVICES) if service == SHOP else [self._one(service)]

    def _signal(self, service: str, sig: int) -> None:
        for name in self._targets(service):
            proc = self._children[name].proc
            if proc.poll() is None:
                proc.send_signal(sig)

    def kill(self, service: str) -> None:
        """SIGKILL, as a crash would; waits until it is gone."""
        self._signal(service, signal.SIGKILL)
        for name in self._targets(service):
            self._children[name].proc.wait()

    def pause(self, service: str) -> None:
        self._signal(service, signal.SIGSTOP)

    def resume(self, service: str) -> None:
        self._signal(service, signal.SIGCONT)

    def terminate(self, service: str) -> None:
        """SIGTERM (after SIGCONT, so a paused one can act on it); SIGKILL after stop_timeout."""
        names = self._targets(service)
        self._signal(service, signal.SIGCONT)
        self._signal(service, signal.SIGTERM)
        deadline = time.monotonic() + self.stop_timeout
        for name in names:
            proc = self._children[name].proc
            try:
                proc.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def start(self, service: str) -> None:
        """Start a stopped service again, on the same port and data folder; returns when it listens."""
        self._start_together(tuple(self._targets(service)))

    def restart(self, service: str) -> None:
        self.terminate(service)
        self.start(service)

    def stop(self) -> None:
        """Every service (gateway first, so no new request comes in), and an owned data folder."""
        for name in ("gateway", "order", "stock", "payment"):
            if name in self._children:
                self.terminate(name)
                self._children[name].close()
        self._finalizer()

    def __enter__(self) -> "ReferenceServices":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def serve_services(host: str = "127.0.0.1", port: int = 8000, data_dir: str | None = None,
                   anomaly: str | None = None) -> None:
    """`wdm serve --services`: run the three-service shop until SIGTERM or SIGINT."""
    stopping = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stopping.set()) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        with ReferenceServices(data_dir, anomaly, host=host, gateway_port=port) as shop:
            pids = ", ".join(f"{name} {pid}" for name, pid in shop.pids.items())
            print(f"wdm reference shop listening on {shop.base_url} (three services; pids: {pids})", flush=True)
            stopping.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
