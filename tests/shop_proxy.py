"""A misbehaving front for the reference shop, for the workbench's own tests: the shop systems
the workbench is judged on are slow, answer 5xx, lag their reads or break the API, and the
reference shop is none of those. Runs an aiohttp reverse proxy on a thread of its own."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from dataclasses import dataclass

import aiohttp
from aiohttp import web


def free_port() -> int:
    """A loopback port nothing listens on (until someone binds it)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Misbehaviour:
    checkout_delay_s: float = 0.0   # checkouts served one at a time, each this slow (a slow system)
    checkout_503_every: int = 0     # every Nth checkout answers 503 without reaching the shop
    read_lag_s: float = 0.0         # a GET answers what it answered up to this long ago (stale reads)
    garbage_path: str = ""          # a 2xx reply of "<html>oops</html>" to paths starting with this
    error_path: str = ""            # a 500 to paths starting with this (a system that crashes there)


class ShopProxy:
    def __init__(self, upstream: str, misbehaviour: Misbehaviour):
        self.upstream = upstream.rstrip("/")
        self.m = misbehaviour
        self._cache: dict[str, tuple[float, int, bytes]] = {}
        self._checkouts = 0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("proxy did not start")

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._start())
        self._ready.set()
        self._loop.run_forever()

    async def _start(self) -> None:
        self._session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
        self._serial = asyncio.Lock()
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]
        self.base_url = f"http://127.0.0.1:{self.port}"

    async def _forward(self, request: web.Request) -> tuple[int, bytes]:
        async with self._session.request(request.method, self.upstream + request.path_qs) as r:
            return r.status, await r.read()

    async def _handle(self, request: web.Request) -> web.Response:
        path = request.path
        if self.m.garbage_path and path.startswith(self.m.garbage_path):
            return web.Response(status=200, text="<html>oops</html>")
        if self.m.error_path and path.startswith(self.m.error_path):
            return web.Response(status=500, text="Internal Server Error")
        if path.startswith("/orders/checkout/"):
            self._checkouts += 1
            if self.m.checkout_503_every and self._checkouts % self.m.checkout_503_every == 0:
                return web.Response(status=503, text="service unavailable")
            if self.m.checkout_delay_s:
                async with self._serial:
                    await asyncio.sleep(self.m.checkout_delay_s)
                    status, body = await self._forward(request)
                return web.Response(status=status, body=body, content_type="text/plain")
        if request.method == "GET" and self.m.read_lag_s:
            cached = self._cache.get(path)
            if cached and time.monotonic() - cached[0] < self.m.read_lag_s:
                return web.Response(status=cached[1], body=cached[2], content_type="application/json")
            status, body = await self._forward(request)
            self._cache[path] = (time.monotonic(), status, body)
            return web.Response(status=status, body=body, content_type="application/json")
        status, body = await self._forward(request)
        ctype = "application/json" if body[:1] in (b"{", b"[") else "text/plain"
        return web.Response(status=status, body=body, content_type=ctype)

    def urls(self) -> dict[str, str]:
        return {"ORDER_URL": self.base_url, "PAYMENT_URL": self.base_url, "STOCK_URL": self.base_url}

    def close(self) -> None:
        async def stop():
            await self._runner.cleanup()
            await self._session.close()
        asyncio.run_coroutine_threadsafe(stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def __enter__(self) -> "ShopProxy":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
