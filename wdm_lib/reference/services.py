"""The three-service reference shop as child processes: a gateway and the order, stock and payment
services (service.py), each its own process with its own SQLite file in one data folder, so that a
fault can hit one service while the others keep going.

    with ReferenceServices(data_dir=None, anomaly=None) as shop:
        shop.base_url, shop.urls(), shop.pids
        shop.kill("payment"); shop.start("payment")      # or pause/resume, terminate, restart

Their life cycle is supervisor.py's, as the single-process shop's is: every service keeps its port
across restarts (and can be restarted by hand with the command line it was started with), and
nothing of it outlives the workbench, however it dies.
"""

from __future__ import annotations

import os
import signal
import sys
import threading

from wdm_lib.reference.anomalies import check_anomaly
from wdm_lib.reference.supervisor import ShopSupervisor


class ReferenceServices(ShopSupervisor):
    SERVICES = ("gateway", "order", "stock", "payment")
    NAME = "the three-service reference shop"
    FOLDER_PREFIX = "wdm-services-"

    def __init__(self, data_dir: str | os.PathLike | None = None, anomaly: str | None = None, *,
                 start_timeout: float = 20.0, stop_timeout: float = 10.0,
                 host: str = "127.0.0.1", gateway_port: int = 0):
        check_anomaly(anomaly, services=True)
        super().__init__(data_dir, anomaly, host=host, ports={"gateway": gateway_port},
                         start_timeout=start_timeout, stop_timeout=stop_timeout)

    def _command(self, name: str) -> list[str]:
        cmd = [sys.executable, "-m", "wdm_lib.reference.service", name, "--host", self.host,
               "--port", str(self.ports[name])]
        if name == "gateway":
            cmd += ["--order", self.url("order"), "--stock", self.url("stock"), "--payment", self.url("payment")]
        else:
            cmd += ["--data", self.data_dir]
        if name == "order":
            cmd += ["--stock", self.url("stock"), "--payment", self.url("payment")]
            if self.anomaly is not None:
                cmd += ["--anomaly", self.anomaly]
        return cmd


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
