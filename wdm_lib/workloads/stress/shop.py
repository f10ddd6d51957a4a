"""The shop's side of a stress run, over the workbench's HTTP client: the batch init before the
load, a reachability check, and --verify's read-back of every balance after it (judged by the pure
stress checkers in wdm_lib.checkers)."""

from __future__ import annotations

import asyncio
import time

from wdm_lib.checkers import check_money, stress_books
from wdm_lib.client import ShopClient, require_ok
from wdm_lib.config import Target
from wdm_lib.progress import bar
from wdm_lib.workloads.consistency import Patience, read_state
from wdm_lib.workloads.stress.scenario import StressScenario

VERIFY_CHUNK = 5000       # ids per chunk: bounds the coroutines alive at once, not the concurrency
VERIFY_CONNECTIONS = 256  # reads in flight: a read-back of 200,000 balances is worth a burst
# How long the batch init waits out a target that serves none of its calls ("not now", a 5xx, no answer).
INIT_PATIENCE_S = 60.0


async def batch_init(sc: StressScenario, target: Target) -> dict:
    """The three batch-init calls, in order, each timed (its last try, when a rate limiter in front
    turned the ones before away, or a 5xx or timeout came: a batch init done twice is done once, as
    it replaces the records it makes). Returns the timings in seconds."""
    patience = Patience(INIT_PATIENCE_S, "fixed", "a rate limiter in front of the shop: raise its limit")

    async def init(request, doing: str):
        reply = require_ok(await patience.send(request, lambda tried: None, doing, repeatable=True), doing)
        patience.made()
        return reply
    async with ShopClient(target, timeout_s=sc.timeout_s, connections=1) as client:
        items = await init(lambda: client.batch_init_items(sc.n_items, sc.item_stock, sc.item_price),
                           "batch-initialising items")
        users = await init(lambda: client.batch_init_users(sc.n_users, sc.user_credit), "batch-initialising users")
        orders = await init(lambda: client.batch_init_orders(sc.n_orders, sc.n_items, sc.n_users, sc.item_price),
                            "batch-initialising orders")
    timings = {"stock_s": items.latency_s, "payment_s": users.latency_s, "orders_s": orders.latency_s}
    timings = {k: round(v, 4) for k, v in timings.items()}
    timings["total_s"] = round(sum(timings.values()), 4)
    return timings


async def check_reachable(target: Target, timeout_s: float = 10.0) -> None:
    """One read per distinct service URL: an unreachable target ends here, in one sentence, instead
    of as a Locust run where every request failed."""
    async with ShopClient(target, timeout_s=timeout_s, connections=3) as client:
        calls = {target.order_url: client.find_order, target.stock_url: client.find_item,
                 target.payment_url: client.find_user}
        for reply in await asyncio.gather(*(find("0") for find in calls.values())):
            if reply.unreachable or reply.status is None:
                require_ok(reply, "checking that the target answers")


async def read_balances(sc: StressScenario, target: Target, progress: bool | None = None) -> dict:
    """Every item's stock and user's credit of the batch init, a chunk of ids at a time, under one
    progress bar: {"items": {id: {...} or None}, "users": {...}}."""
    items: dict = {}
    users: dict = {}
    async with ShopClient(target, timeout_s=sc.timeout_s, connections=VERIFY_CONNECTIONS) as client:
        with bar(sc.n_items + sc.n_users, "verifying", progress) as pb:
            for start in range(0, max(sc.n_items, sc.n_users), VERIFY_CHUNK):
                item_ids = [str(i) for i in range(start, min(start + VERIFY_CHUNK, sc.n_items))]
                user_ids = [str(u) for u in range(start, min(start + VERIFY_CHUNK, sc.n_users))]
                state = await read_state(client, item_ids, user_ids, [], "verifying", False)
                items.update(state["items"])
                users.update(state["users"])
                pb.update(len(item_ids) + len(user_ids))
    return {"items": items, "users": users}


def verify(sc: StressScenario, target: Target, recorded: dict, progress: bool | None = None) -> dict:
    """summary.json's `verify`: the stress checkers' verdict on the balances read back, the
    figures they compared, and how long the read-back took."""
    started = time.monotonic()
    state = asyncio.run(read_balances(sc, target, progress))
    read_s = time.monotonic() - started
    result = check_money(sc, recorded, state)
    return {"valid": result.valid, "anomalies": [a.__dict__ for a in result.anomalies], "notes": result.notes,
            **stress_books(sc, recorded, state), "reads": sc.n_items + sc.n_users, "read_s": round(read_s, 3)}
