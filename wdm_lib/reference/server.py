"""The reference shop's HTTP face: the whole API of API.md on one aiohttp port.

Handlers call the SQLite store synchronously on the event loop thread: one request's transaction
runs to its end before the next starts, which is what keeps the shop consistent. Only the
`lost-update` anomaly yields in the middle of an operation.
"""

from __future__ import annotations

import asyncio
import os
import signal
from typing import Awaitable, Callable

from aiohttp import web

from wdm_lib.errors import WorkbenchError
from wdm_lib.reference.anomalies import IN_MEMORY, behaviour, check_anomaly
from wdm_lib.reference.openapi import SPEC
from wdm_lib.reference.supervisor import HEALTH, TemporaryDataFolder
from wdm_lib.reference.store import MAX_BATCH, MAX_VALUE, BadInput, ShopError, Store

DB_FILE = "shop.sqlite"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _int(request: web.Request, name: str, limit: int = MAX_VALUE) -> int:
    text = request.match_info[name]
    if not (text.isascii() and text.isdigit()):
        raise BadInput(f"{name} must be a non-negative integer, got {text[:40]!r}")
    # Length first: int() refuses more than 4,300 digits (a 500), and costs time on fewer.
    digits = text.lstrip("0") or "0"
    if len(digits) > len(str(limit)) or int(digits) > limit:
        raise BadInput(f"{name} must be at most {limit}, got a number of {len(digits)} digits"
                       + (f" ({digits})" if len(digits) <= 40 else ""))
    return int(digits)


def _refusals_as_text(handler: Handler) -> Handler:
    async def answer(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except ShopError as e:
            return web.Response(status=e.status, text=str(e))
    return answer


class ShopHandlers:
    def __init__(self, store: Store, anomaly: str | None):
        self.store = store
        self.ops = behaviour(store, anomaly)

    # ---- stock
    async def create_item(self, request: web.Request) -> web.Response:
        return web.json_response({"item_id": self.store.create_item(_int(request, "price"))})

    async def batch_init_stock(self, request: web.Request) -> web.Response:
        n = _int(request, "n", MAX_BATCH)
        self.store.batch_init_items(n, _int(request, "starting_stock"), _int(request, "item_price"))
        return web.json_response({"msg": f"batch init of {n} items successful"})

    async def find_item(self, request: web.Request) -> web.Response:
        stock, price = self.store.find_item(request.match_info["item_id"])
        return web.json_response({"stock": stock, "price": price})

    async def add_stock(self, request: web.Request) -> web.Response:
        item_id, amount = request.match_info["item_id"], _int(request, "amount")
        self.store.add_stock(item_id, amount)
        return web.Response(text=f"item {item_id}: stock increased by {amount}")

    async def subtract_stock(self, request: web.Request) -> web.Response:
        item_id, amount = request.match_info["item_id"], _int(request, "amount")
        await self.ops.subtract_stock(item_id, amount)
        return web.Response(text=f"item {item_id}: stock decreased by {amount}")

    # ---- payment
    async def create_user(self, request: web.Request) -> web.Response:
        return web.json_response({"user_id": self.store.create_user()})

    async def batch_init_users(self, request: web.Request) -> web.Response:
        n = _int(request, "n", MAX_BATCH)
        self.store.batch_init_users(n, _int(request, "starting_money"))
        return web.json_response({"msg": f"batch init of {n} users successful"})

    async def find_user(self, request: web.Request) -> web.Response:
        user_id = request.match_info["user_id"]
        return web.json_response({"user_id": user_id, "credit": self.store.find_credit(user_id)})

    async def add_funds(self, request: web.Request) -> web.Response:
        user_id, amount = request.match_info["user_id"], _int(request, "amount")
        await self.ops.add_funds(user_id, amount)
        return web.Response(text=f"user {user_id}: credit increased by {amount}")

    async def pay(self, request: web.Request) -> web.Response:
        user_id, amount = request.match_info["user_id"], _int(request, "amount")
        await self.ops.pay(user_id, amount)
        return web.Response(text=f"user {user_id}: paid {amount}")

    # ---- orders
    async def create_order(self, request: web.Request) -> web.Response:
        return web.json_response({"order_id": self.store.create_order(request.match_info["user_id"])})

    async def batch_init_orders(self, request: web.Request) -> web.Response:
        n = _int(request, "n", MAX_BATCH)
        n_items, n_users = _int(request, "n_items"), _int(request, "n_users")
        item_price = _int(request, "item_price", MAX_VALUE // 2)
        if n_items == 0 or n_users == 0:
            raise BadInput("n_items and n_users must be at least 1 to make orders")
        self.store.batch_init_orders(n, n_items, n_users, item_price)
        return web.json_response({"msg": f"batch init of {n} orders successful"})

    async def find_order(self, request: web.Request) -> web.Response:
        return web.json_response(self.store.find_order(request.match_info["order_id"]).as_json())

    async def add_item(self, request: web.Request) -> web.Response:
        order_id, item_id = request.match_info["order_id"], request.match_info["item_id"]
        quantity = _int(request, "quantity")
        self.store.add_item(order_id, item_id, quantity)
        return web.Response(text=f"order {order_id}: added {quantity} of item {item_id}")

    async def checkout(self, request: web.Request) -> web.Response:
        order_id = request.match_info["order_id"]
        await self.ops.checkout(order_id)
        return web.Response(text=f"order {order_id}: checkout successful")

    async def openapi(self, request: web.Request) -> web.Response:
        return web.json_response(SPEC)


# (method, path, handler name). The paths and parameter names are those of openapi.SPEC.
ROUTES: list[tuple[str, str, str]] = [
    ("POST", "/stock/item/create/{price}", "create_item"),
    ("POST", "/stock/batch_init/{n}/{starting_stock}/{item_price}", "batch_init_stock"),
    ("GET", "/stock/find/{item_id}", "find_item"),
    ("POST", "/stock/add/{item_id}/{amount}", "add_stock"),
    ("POST", "/stock/subtract/{item_id}/{amount}", "subtract_stock"),
    ("POST", "/payment/create_user", "create_user"),
    ("POST", "/payment/batch_init/{n}/{starting_money}", "batch_init_users"),
    ("GET", "/payment/find_user/{user_id}", "find_user"),
    ("POST", "/payment/add_funds/{user_id}/{amount}", "add_funds"),
    ("POST", "/payment/pay/{user_id}/{amount}", "pay"),
    ("POST", "/orders/create/{user_id}", "create_order"),
    ("POST", "/orders/batch_init/{n}/{n_items}/{n_users}/{item_price}", "batch_init_orders"),
    ("GET", "/orders/find/{order_id}", "find_order"),
    ("POST", "/orders/addItem/{order_id}/{item_id}/{quantity}", "add_item"),
    ("POST", "/orders/checkout/{order_id}", "checkout"),
    ("GET", "/openapi.json", "openapi"),
]


def add_routes(app: web.Application, handlers: object, routes: list[tuple[str, str, str]]) -> None:
    """Each (method, path, handler name) of `routes` to that method of `handlers`, refusals as 4xx text."""
    for method, path, name in routes:
        app.router.add_route(method, path, _refusals_as_text(getattr(handlers, name)))


def build_app(store: Store, anomaly: str | None = None) -> web.Application:
    check_anomaly(anomaly, services=False)
    app = web.Application()
    add_routes(app, ShopHandlers(store, anomaly), ROUTES)
    return app


def _url(host: str, port: int) -> str:
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


async def listen_until_signalled(app: web.Application, host: str, port: int, name: str) -> None:
    """Serve `app` until SIGTERM or SIGINT; once listening, print `<name> listening on <url>`. Beside
    the app, the process answers GET /health with its pid: how its supervisor knows it is ready."""
    async def health(request: web.Request) -> web.Response:
        return web.json_response({"service": name, "pid": os.getpid()})

    app.router.add_get(HEALTH, health)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port, backlog=1024, reuse_address=True)
        try:
            await site.start()
        except OSError as e:
            raise WorkbenchError(f"the {name} cannot listen on {_url(host, port)}: {e.strerror or e}") from None
        stopping = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stopping.set)
        print(f"{name} listening on {_url(host, runner.addresses[0][1])}", flush=True)
        await stopping.wait()
    finally:
        await runner.cleanup()


async def _run(host: str, port: int, data_dir: str, anomaly: str | None) -> None:
    store = Store(":memory:" if anomaly == IN_MEMORY else os.path.join(data_dir, DB_FILE))
    try:
        await listen_until_signalled(build_app(store, anomaly), host, port, "wdm reference shop")
    finally:
        store.close()


def serve(host: str = "127.0.0.1", port: int = 8000, data_dir: str | None = None,
          anomaly: str | None = None) -> None:
    """Run the shop until SIGTERM or SIGINT. Without `data_dir` the store lives in a temporary
    folder, removed when the shop stops (by the reaper if it is killed)."""
    folder = TemporaryDataFolder("wdm-shop-") if data_dir is None else None
    if folder is None:
        try:
            os.makedirs(data_dir, exist_ok=True)
        except OSError as e:
            raise WorkbenchError(f"cannot use {data_dir} as the shop's data folder: {e.strerror or e}") from None
    try:
        asyncio.run(_run(host, port, folder.path if folder else data_dir, anomaly))
    finally:
        if folder is not None:
            folder.remove()
