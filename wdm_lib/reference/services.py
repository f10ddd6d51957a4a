"""The three-service reference shop as child processes: a gateway and the order, stock and payment
services (service.py), each its own process with its own SQLite file in one data folder, so that a
fault can hit one service while the others keep going.

    with ReferenceServices(data_dir=None, anomaly=None) as shop:
        shop.base_url, shop.urls(), shop.pids
        shop.kill("payment"); shop.start("payment")      # or pause/resume, terminate, restart

Every service keeps its port across restarts, and can be restarted by hand with the command
line it was started with. Every service, and a temporary data folder, is handed to the reaper (as
the single-process shop's are), so nothing of it outlives the workbench, however it dies.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import weakref

from wdm_lib.errors import WorkbenchError
from wdm_lib.ports import free_port
from wdm_lib.reference.anomalies import check_anomaly
from wdm_lib.reference.process import (SHOP, ShopChild, TemporaryDataFolder, cleanup, shop_environment,
                                       stop_together, wait_listening)


class ReferenceServices:
    SERVICES = ("gateway", "order", "stock", "payment")

    def __init__(self, data_dir: str | os.PathLike | None = None, anomaly: str | None = None, *,
                 start_timeout: float = 20.0, stop_timeout: float = 10.0,
                 host: str = "127.0.0.1", gateway_port: int = 0):
        check_anomaly(anomaly, services=True)
        self.anomaly, self.host = anomaly, host
        self.start_timeout, self.stop_timeout = start_timeout, stop_timeout
        folder = TemporaryDataFolder("wdm-services-") if data_dir is None else None
        self.data_dir = folder.path if folder else os.fspath(data_dir)
        try:
            os.makedirs(self.data_dir, exist_ok=True)
        except OSError as e:
            raise WorkbenchError(f"cannot use {self.data_dir} as the shop's data folder: {e.strerror or e}") from None
        self.ports = {name: free_port(host) for name in ("order", "stock", "payment")}
        self.ports["gateway"] = gateway_port or free_port(host)
        self.base_url = self._url("gateway")
        self._children: dict[str, ShopChild] = {}
        # A test that fails half-way must not leave services or their temporary folder behind.
        self._finalizer = weakref.finalize(self, cleanup, self._children, folder)
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
        return {name: child.pid for name, child in self._children.items()}

    def exit_code(self, service: str) -> int | None:
        return self._children[self._one(service)].exit_code()

    # ---- life cycle
    def _command(self, name: str) -> list[str]:
        cmd = [sys.executable, "-m", "wdm_lib.reference.service", name, "--host", self.host,
               "--port", str(self.ports[name])]
        if name == "gateway":
            cmd += ["--order", self._url("order"), "--stock", self._url("stock"), "--payment", self._url("payment")]
        else:
            cmd += ["--data", self.data_dir]
        if name == "order":
            cmd += ["--stock", self._url("stock"), "--payment", self._url("payment")]
            if self.anomaly is not None:
                cmd += ["--anomaly", self.anomaly]
        return cmd

    def _start_together(self, names: tuple[str, ...]) -> None:
        for name in names:
            old = self._children.get(name)
            if old is not None:
                if old.exit_code() is None:
                    raise WorkbenchError(f"the {name} service (pid {old.pid}) is still running; "
                                         f"expected it stopped before start")
                old.close()
            banner = "wdm gateway listening on " if name == "gateway" else f"wdm {name} service listening on "
            self._children[name] = ShopChild(f"the {name} service", banner, self._command(name), self._env)
        wait_listening([self._children[name] for name in names], self.start_timeout)

    def _one(self, service: str) -> str:
        if service not in self.SERVICES:
            raise WorkbenchError(f"unknown service {service!r}; expected one of {', '.join(self.SERVICES)}")
        return service

    def _names(self, service: str) -> tuple[str, ...]:
        return self.SERVICES if service == SHOP else (self._one(service),)

    def _targets(self, service: str) -> list[ShopChild]:
        return [self._children[name] for name in self._names(service)]

    def kill(self, service: str) -> None:
        """SIGKILL, as a crash would; waits until it is gone."""
        for child in self._targets(service):
            child.kill()

    def pause(self, service: str) -> None:
        for child in self._targets(service):
            child.signal(signal.SIGSTOP)

    def resume(self, service: str) -> None:
        for child in self._targets(service):
            child.signal(signal.SIGCONT)

    def terminate(self, service: str) -> None:
        """SIGTERM (after SIGCONT, so a paused one can act on it); SIGKILL after stop_timeout."""
        stop_together(self._targets(service), self.stop_timeout)

    def start(self, service: str) -> None:
        """Start a stopped service again, on the same port and data folder; returns when it listens."""
        self._start_together(self._names(service))

    def restart(self, service: str) -> None:
        self.terminate(service)
        self.start(service)

    def stop(self) -> None:
        """Every service (gateway first, so no new request comes in), and an owned data folder."""
        for name in ("gateway", "order", "stock", "payment"):
            if name in self._children:
                self.terminate(name)
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
