"""One process of the three-service reference shop: the gateway, or the order, stock or payment
service, each with its own SQLite file. ReferenceServices (services.py) starts them as

    python -m wdm_lib.reference.service ROLE --port P [--data DIR] [--order URL] [--stock URL]
        [--payment URL] [--anomaly NAME]

The stock and payment services serve their part of the public API (ShopHandlers) and the saga's
idempotent steps at `/<prefix>/internal/steps`, which the gateway does not route.

A service watches nothing but its own signals: the command line ReferenceServices started it with
starts it again by hand (the reaper, not the service, sees to it that none outlives the workbench).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from typing import Callable

from aiohttp import web

from wdm_lib.errors import WorkbenchError
from wdm_lib.reference.anomalies import check_anomaly
from wdm_lib.reference.gateway import build_gateway
from wdm_lib.reference.saga import OrderService, Peers
from wdm_lib.reference.server import ROUTES, ShopHandlers, add_routes, listen_until_signalled
from wdm_lib.reference.store import BadInput, ShopError, Store

ROLES = ("gateway", "order", "stock", "payment")
PREFIX = {"order": "/orders/", "stock": "/stock/", "payment": "/payment/"}


def db_file(data_dir: str, role: str) -> str:
    return os.path.join(data_dir, f"{role}.sqlite")


class Steps:
    """The saga's steps as the stock and payment services take them: at most once per key. A
    request carries a batch of steps; the reply lists [status, reason] for each, in order."""

    def __init__(self, store: Store, ops: dict[str, Callable[[Store, dict], None]]):
        self.store, self.ops = store, ops

    async def apply(self, request: web.Request) -> web.Response:
        try:
            steps = await request.json()
            results = [self._one(step) for step in steps]
        except (ValueError, TypeError, KeyError, AttributeError) as e:
            raise BadInput(f"expected a JSON list of saga steps: {e.__class__.__name__} {e}") from None
        return web.json_response(results)

    def _one(self, step: dict) -> list:
        try:
            self.ops[step["op"]](self.store, step)
        except ShopError as e:
            return [e.status, str(e)]
        return [200, ""]


def _take_stock(store: Store, step: dict) -> None:
    store.apply_once(step["key"], lambda: store.hold_stock(step["key"], step["items"]))


def _confirm_stock(store: Store, step: dict) -> None:
    """The checkout was paid: the stock it took leaves the shelf for readers too."""
    store.release_hold(step["key"])


def _return_stock(store: Store, step: dict) -> None:
    def give_back() -> None:
        for item_id, quantity in step["items"].items():
            store.add_stock(item_id, quantity)
        store.release_hold(step["key"])
    store.undo_once(step["key"], give_back)


def _pay(store: Store, step: dict) -> None:
    store.apply_once(step["key"], lambda: store.pay(step["user_id"], step["amount"]))


STEPS = {"stock": {"take": _take_stock, "confirm": _confirm_stock, "return": _return_stock}, "payment": {"pay": _pay}}


def _public_routes(role: str) -> list[tuple[str, str, str]]:
    return [route for route in ROUTES if route[1].startswith(PREFIX[role])]


async def _serve(args: argparse.Namespace) -> None:
    name = f"wdm {args.role} service" if args.role != "gateway" else "wdm gateway"
    if args.role == "gateway":
        app = build_gateway({"orders": args.order, "stock": args.stock, "payment": args.payment})
        await listen_until_signalled(app, args.host, args.port, name)
        return
    store = Store(db_file(args.data, args.role))
    app = web.Application()
    try:
        if args.role == "order":
            peers = Peers(args.stock, args.payment)
            orders = OrderService(store, peers, args.anomaly)
            add_routes(app, orders, _public_routes("order"))
            orders.recover_all()
            try:
                await listen_until_signalled(app, args.host, args.port, name)
            finally:
                await orders.close()
                await peers.close()
        else:
            add_routes(app, ShopHandlers(store, None), _public_routes(args.role))
            add_routes(app, Steps(store, STEPS[args.role]), [("POST", f"{PREFIX[args.role]}internal/steps", "apply")])
            await listen_until_signalled(app, args.host, args.port, name)
    finally:
        store.close()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m wdm_lib.reference.service")
    p.add_argument("role", choices=ROLES)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--data", help="folder of the service's SQLite file")
    for peer in ("order", "stock", "payment"):
        p.add_argument(f"--{peer}", metavar="URL", help=f"base URL of the {peer} service")
    p.add_argument("--anomaly")
    args = p.parse_args(argv)
    needs = {"gateway": ("order", "stock", "payment"), "order": ("data", "stock", "payment"),
             "stock": ("data",), "payment": ("data",)}[args.role]
    missing = [f"--{n}" for n in needs if getattr(args, n) is None]
    if missing:
        p.error(f"the {args.role} needs {', '.join(missing)}")
    try:
        check_anomaly(args.anomaly, services=True)
        asyncio.run(_serve(args))
    except WorkbenchError as e:
        print(f"wdm: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
