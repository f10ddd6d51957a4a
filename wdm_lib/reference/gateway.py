"""The gateway of the three-service reference shop: one port that routes `/orders`, `/stock` and
`/payment` to their services, as the course template's nginx does.

A service's `/<prefix>/internal/...` endpoints (its idempotent saga steps) are for the other
services only: the gateway answers 404, so the public API stays exactly API.md's. A service that
cannot be reached is a 502, one that does not answer in time a 504, as nginx says it.
"""

from __future__ import annotations

import asyncio

import aiohttp
from aiohttp import web

from wdm_lib.reference.openapi import SPEC

PREFIXES = ("orders", "stock", "payment")
# Hop-by-hop, or written by the gateway's own server: every other header of a reply is passed on
# (a 405's Allow among them).
NOT_PASSED_ON = frozenset(("content-length", "transfer-encoding", "connection", "keep-alive", "date", "server"))
# nginx's proxy_read_timeout: the client's own timeout decides earlier.
UPSTREAM_TIMEOUT_S = 60.0


class Gateway:
    def __init__(self, upstreams: dict[str, str]):
        """`upstreams`: prefix ("orders", "stock", "payment") -> that service's base URL."""
        self.upstreams = upstreams
        self.session: aiohttp.ClientSession | None = None

    async def start(self, app: web.Application) -> None:
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit_per_host=256, keepalive_timeout=60),
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=5, sock_read=UPSTREAM_TIMEOUT_S),
            cookie_jar=aiohttp.DummyCookieJar(), auto_decompress=False, skip_auto_headers=("User-Agent", "Accept-Encoding"))

    async def close(self, app: web.Application) -> None:
        await self.session.close()

    async def forward(self, request: web.Request) -> web.Response:
        prefix, _, rest = request.raw_path.lstrip("/").partition("/")
        upstream = self.upstreams.get(prefix)
        if upstream is None or rest.startswith("internal/"):
            return web.Response(status=404, text=f"no service routes {request.path}")
        body = await request.read() if request.can_read_body else None
        try:
            async with self.session.request(request.method, upstream + request.raw_path, data=body) as r:
                payload = await r.read()
                headers = [(k, v) for k, v in r.headers.items() if k.lower() not in NOT_PASSED_ON]
                return web.Response(status=r.status, body=payload, headers=headers)
        except asyncio.TimeoutError:
            return web.Response(status=504, text=f"the {prefix} service at {upstream} did not answer in time")
        except aiohttp.ClientError as e:
            return web.Response(status=502, text=f"the {prefix} service at {upstream} failed: {e}")

    async def openapi(self, request: web.Request) -> web.Response:
        if request.method != "GET":
            raise web.HTTPMethodNotAllowed(request.method, ["GET"])
        return web.json_response(SPEC)


def build_gateway(upstreams: dict[str, str]) -> web.Application:
    gateway = Gateway(upstreams)
    app = web.Application()
    app.on_startup.append(gateway.start)
    app.on_cleanup.append(gateway.close)
    app.router.add_route("*", "/openapi.json", gateway.openapi)
    app.router.add_route("*", "/{path:[\s\S]*}", gateway.forward)
    return app
