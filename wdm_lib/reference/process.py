"""The reference shop as one child process: the workbench's embedded default target and the tests'
system under test, and what a fault schedule kills, pauses and restarts (its life cycle, shared
with the three-service shop, is supervisor.py's).

    with ReferenceShopProcess(data_dir=..., anomaly=None) as shop:
        shop.base_url, shop.urls(), shop.pid
        shop.kill("shop"); shop.start("shop")      # a crash, and the shop coming back
        shop.pause("shop"); shop.resume("shop")    # a process that stops answering for a while
"""

from __future__ import annotations

import os
import sys

from wdm_lib.reference.supervisor import SHOP, ShopSupervisor


class ReferenceShopProcess(ShopSupervisor):
    SERVICES = (SHOP,)
    NAME = "the embedded reference shop, which runs as one process"
    FOLDER_PREFIX = "wdm-shop-"

    def __init__(self, data_dir: str | os.PathLike | None = None, anomaly: str | None = None, *,
                 start_timeout: float = 20.0, stop_timeout: float = 10.0):
        super().__init__(data_dir, anomaly, host="127.0.0.1", ports={}, start_timeout=start_timeout,
                         stop_timeout=stop_timeout)

    def _command(self, name: str) -> list[str]:
        cmd = [sys.executable, "-m", "wdm_lib", "serve", "--host", self.host, "--port", str(self.ports[SHOP]),
               "--data", self.data_dir]
        return cmd + (["--anomaly", self.anomaly] if self.anomaly is not None else [])

    def _what(self, name: str) -> str:
        return "the reference shop"

    @property
    def pid(self) -> int:
        return self._children[SHOP].pid

    @property
    def returncode(self) -> int | None:
        return self.exit_code(SHOP)

    def stop(self) -> int | None:
        """Stop the shop (SIGTERM, SIGKILL after stop_timeout), close its files, and remove its data
        folder if it was a temporary one. Returns its exit code."""
        super().stop()
        return self.returncode if SHOP in self._children else None
