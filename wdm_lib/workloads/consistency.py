"""The consistency workload: seed through the public API, build orders, fire every checkout at
once (or at most `concurrency` in flight), and read the final state back. It records; it never
judges (that is wdm_lib.checkers)."""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass, field
from typing import Awaitable, Callable

from wdm_lib.client import FIRST_REPLY_S, Reply, ShopClient, require_ok, segment
from wdm_lib.config import Target
from wdm_lib.errors import TargetUnreachable
from wdm_lib.history import (ADD_FUNDS, ADD_ITEM, ADD_STOCK, CHECKOUT, CREATE_ITEM, CREATE_ORDER, CREATE_USER, OK,
                             UNKNOWN, HistoryWriter)
from wdm_lib.progress import bar, noting_a_wait
from wdm_lib.workloads.consistency_scenario import ConsistencyScenario

READ_RETRIES = 3
# Between two passes over the whole state while waiting for quiet: often enough to chart how the
# state converged, rarely enough not to load a slow system with reads.
READ_INTERVAL_S = 0.5
# Seeding and reading back are not what a run tests: a moderate bound is faster than a thousand
# connections (half the time on the reference shop) and spares slow targets a flood during set-up.
SETUP_IN_FLIGHT = 64


@dataclass
class Seeded:
    item_ids: list[str]
    user_ids: list[str]
    # order_id -> (user_id, [[item_id, quantity], ...]) as acknowledged by the target
    orders: dict[str, tuple[str, list]] = field(default_factory=dict)


async def _gather_bounded(coros: list[Awaitable], progress) -> list:
    """Run them all (the client bounds what is in flight), ticking the bar as each ends."""
    async def one(c):
        result = await c
        progress.update()
        return result
    return await asyncio.gather(*(one(c) for c in coros))


async def seed(client: ShopClient, sc: ConsistencyScenario, history: HistoryWriter, rng: random.Random,
               progress: bool | None) -> Seeded:
    def need(reply: Reply, doing: str) -> Reply:
        return require_ok(reply, doing, f"if it fails only under load, a --concurrency below "
                                        f"{min(sc.concurrency, SETUP_IN_FLIGHT)} may get it through seeding")

    total = 2 * sc.n_items + 2 * sc.n_users + sc.n_orders * (1 + sc.items_per_order)
    with bar(total, "seeding", progress) as pb:
        # The very first call tells an unreachable or dead target from a slow one, before a thousand more.
        with client.first_reply_within(FIRST_REPLY_S):
            first = need(await noting_a_wait(
                client.create_item(sc.item_price), pb,
                f"waiting for {client.target.stock_url} to answer the first request "
                f"(up to {FIRST_REPLY_S:g} s for a first byte)"), "creating the first item")
        history.record(CREATE_ITEM, first, items=[[first.body["item_id"], 0]], amount=sc.item_price)
        pb.update()

        async def new_item() -> str:
            reply = need(await client.create_item(sc.item_price), "creating items")
            history.record(CREATE_ITEM, reply, items=[[reply.body["item_id"], 0]], amount=sc.item_price)
            return reply.body["item_id"]

        item_ids = [first.body["item_id"]] + await _gather_bounded(
            [new_item() for _ in range(sc.n_items - 1)], pb)

        async def stock_up(item_id: str) -> None:
            reply = need(await client.add_stock(item_id, sc.item_stock), "adding stock")
            history.record(ADD_STOCK, reply, items=[[item_id, sc.item_stock]], amount=sc.item_stock)

        async def new_user() -> str:
            reply = need(await client.create_user(), "creating users")
            history.record(CREATE_USER, reply, user_id=reply.body["user_id"])
            pb.update()
            user_id = reply.body["user_id"]
            funds = need(await client.add_funds(user_id, sc.user_credit), "adding funds")
            history.record(ADD_FUNDS, funds, user_id=user_id, amount=sc.user_credit)
            return user_id

        await _gather_bounded([stock_up(i) for i in item_ids], pb)
        user_ids = await _gather_bounded([new_user() for _ in range(sc.n_users)], pb)

        # Choices are drawn up front, in order, so one seed always builds the same orders.
        plans = []
        for _ in range(sc.n_orders):
            user_id = rng.choice(user_ids)
            if sc.items_per_order <= len(item_ids):
                chosen = rng.sample(item_ids, sc.items_per_order)
            else:
                chosen = [rng.choice(item_ids) for _ in range(sc.items_per_order)]
            plans.append((user_id, chosen))

        async def new_order(user_id: str, chosen: list[str]) -> tuple[str, str, list]:
            reply = need(await client.create_order(user_id), "creating orders")
            order_id = reply.body["order_id"]
            history.record(CREATE_ORDER, reply, order_id=order_id, user_id=user_id)
            pb.update()
            items = []
            for item_id in chosen:
                added = need(await client.add_item(order_id, item_id, sc.quantity), "adding items to orders")
                history.record(ADD_ITEM, added, order_id=order_id, user_id=user_id,
                               items=[[item_id, sc.quantity]], amount=sc.quantity)
                items.append([item_id, sc.quantity])
                pb.update()
            return order_id, user_id, items

        made = await asyncio.gather(*(new_order(u, c) for u, c in plans))
    return Seeded(item_ids, user_ids, {order_id: (user_id, items) for order_id, user_id, items in made})


async def _read_all(ids: list[str], find: Callable[[str], Awaitable[Reply]], what: str, pb) -> dict:
    """id -> the parsed record, None when the target says it does not exist (4xx)."""
    async def one(record_id: str):
        for attempt in range(READ_RETRIES):
            reply = await find(record_id)
            if reply.outcome != UNKNOWN:
                break
            await asyncio.sleep(0.1 * 2 ** attempt)
        pb.update()
        if reply.outcome == OK:
            return record_id, reply.body
        if reply.unreachable:
            require_ok(reply, f"reading {what}")
        if reply.outcome == UNKNOWN:
            raise TargetUnreachable(f"{reply.url}: {reply.error} on {READ_RETRIES} tries while reading {what}; "
                                    f"expected the state to be readable once the load is over.")
        return record_id, None
    return dict(await asyncio.gather(*(one(i) for i in ids)))


def _items(records: dict) -> dict:
    return {i: None if r is None else {"stock": r["stock"], "price": r["price"]} for i, r in records.items()}


def _users(records: dict) -> dict:
    return {u: None if r is None else {"credit": r["credit"]} for u, r in records.items()}


def _orders(records: dict) -> dict:
    return {o: None if r is None else {"paid": r["paid"], "items": r["items"], "user_id": r["user_id"],
                                       "total_cost": r["total_cost"]} for o, r in records.items()}


async def read_state(client: ShopClient, item_ids: list[str], user_ids: list[str], order_ids: list[str],
                     desc: str, progress: bool | None) -> dict:
    with bar(len(item_ids) + len(user_ids) + len(order_ids), desc, progress) as pb:
        items, users, orders = await asyncio.gather(
            _read_all(item_ids, client.find_item, "items", pb),
            _read_all(user_ids, client.find_user, "users", pb),
            _read_all(order_ids, client.find_order, "orders", pb))
    state = {"items": _items(items), "users": _users(users)}
    if order_ids:
        state["orders"] = _orders(orders)
    return state


@dataclass
class ReadBack:
    """The outcome of reading the state until it went quiet: the last read, how many passes it took,
    whether it stayed unchanged for the quiet window (rather than ran out of time), and how long
    it had been unchanged when the reading stopped."""
    state: dict
    reads: int
    settled: bool
    quiet_for_s: float


async def read_until_quiet(client: ShopClient, ids: tuple, quiet_s: float, settle_s: float, desc: str,
                           progress: bool | None, accept: Callable[[dict], bool] | None = None,
                           on_read: Callable[[dict, int, bool], None] | None = None) -> ReadBack:
    """Read the whole state again and again until it has stayed unchanged for quiet_s, or until
    settle_s runs out (then the last read is what there is). Quiet is measured from the end of the
    first pass that showed the state to the start of the latest pass that still shows it, so both
    ends saw it whole. `accept` may take a read at once (the initial read, when it shows exactly what
    seeding acknowledged); `on_read(state, started_ns, changed)` sees every pass, for a caller that
    charts how the state converged.

    A read that merely adds up proves nothing about a system that is still working: a saga's late
    compensation or a queue's late work lands after it. Only a quiet state is judged."""
    started = time.monotonic()
    state: dict | None = None
    stable_since = started
    reads = 0
    while True:
        pass_start, pass_start_ns = time.monotonic(), time.time_ns()
        label = desc if reads == 0 else f"{desc} (pass {reads + 1}, unchanged {pass_start - stable_since:.1f}/{quiet_s:g} s)"
        again = await read_state(client, *ids, label, progress)
        reads += 1
        changed = again != state
        if changed:
            state, stable_since = again, time.monotonic()
        if on_read is not None:
            on_read(state, pass_start_ns, changed)
        quiet_for = 0.0 if changed else pass_start - stable_since
        if (accept is not None and accept(state)) or quiet_s == 0 or quiet_for >= quiet_s:
            return ReadBack(state, reads, True, quiet_for)
        if time.monotonic() - started >= settle_s:
            return ReadBack(state, reads, False, quiet_for)
        # The pass that can confirm quiet starts no earlier than needed, and none starts past settle_s.
        wait = min(READ_INTERVAL_S, max(0.0, stable_since + quiet_s - time.monotonic()))
        await asyncio.sleep(min(wait, max(0.0, started + settle_s - time.monotonic())))


def _shows_seeding(sc: ConsistencyScenario, state: dict) -> bool:
    return (all(v is not None and v["stock"] == sc.item_stock and v["price"] == sc.item_price
                for v in state["items"].values())
            and all(v is not None and v["credit"] == sc.user_credit for v in state["users"].values()))


STOPPED_IN_FLIGHT = "the run stopped while this checkout was in flight"


async def fire_checkouts(client: ShopClient, seeded: Seeded, prices: dict[str, int], history: HistoryWriter,
                         progress: bool | None, rate: float | None = None) -> None:
    """The checkouts; the client lets at most `concurrency` be in flight. Without `rate`, all at
    once, `intended_ns` the moment the burst was launched. With it, open loop: checkout k is due at
    start + k/rate whatever became of the ones before (a slow reply never delays the next), and
    `intended_ns` is when it was due. Either way, time spent queueing behind our own limit or a busy
    client shows as invoke_ns - intended_ns in the history.

    A checkout still in flight when the run stops (Ctrl-C, a fault that failed, the shop dying) is
    recorded as unknown: it may have happened."""
    start, start_ns = time.monotonic(), time.time_ns()
    with bar(len(seeded.orders), "checkouts", progress) as pb:
        async def one(order_id: str, user_id: str, items: list, due_ns: int) -> None:
            def record(reply: Reply) -> None:
                history.record(CHECKOUT, reply, order_id=order_id, user_id=user_id, items=items,
                               amount=sum(q * prices.get(i, 0) for i, q in items), intended_ns=due_ns)

            sent_ns = time.time_ns()
            try:
                reply = await client.checkout(order_id)
            except asyncio.CancelledError:
                record(Reply("POST /orders/checkout/{order_id}",
                             f"{client.target.order_url}/orders/checkout/{segment(order_id)}",
                             UNKNOWN, None, sent_ns, time.time_ns(), error=STOPPED_IN_FLIGHT))
                raise
            record(reply)
            pb.update()

        if rate is None:
            await asyncio.gather(*(one(o, u, items, start_ns) for o, (u, items) in seeded.orders.items()))
            return
        tasks = []
        try:
            for k, (order_id, (user_id, items)) in enumerate(seeded.orders.items()):
                delay = start + k / rate - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                tasks.append(asyncio.ensure_future(one(order_id, user_id, items, start_ns + round(k / rate * 1e9))))
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)


async def execute(sc: ConsistencyScenario, target: Target, history: HistoryWriter,
                  progress: bool | None = None, on_phase: Callable[[str, float], None] | None = None,
                  on_final_read: Callable[[dict, int, bool], None] | None = None,
                  around_load: Callable[[Awaitable], Awaitable] | None = None) -> dict:
    """Seed, check out, read back until quiet. Returns the state dict that state.json holds.

    `on_final_read(state, started_ns, changed)` sees every pass of the final read-back, where state
    is {"initial": ..., "final": that pass} (the shape the checkers take). `around_load(load)` runs
    the checkouts, for a caller that runs something beside them (a fault schedule)."""
    rng = random.Random(sc.seed)
    clock = time.perf_counter()

    def phase(name: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        if on_phase:
            on_phase(name, now - clock)
        clock = now

    async with ShopClient(target, timeout_s=sc.timeout_s, connections=sc.concurrency) as client:
        with client.at_most(SETUP_IN_FLIGHT):
            seeded = await seed(client, sc, history, rng, progress)
            phase("seed")
            initial = (await read_until_quiet(
                client, (seeded.item_ids, seeded.user_ids, []), sc.quiet_s, sc.settle_s, "reading initial state",
                progress, accept=lambda s: _shows_seeding(sc, s))).state
            initial["after_op"] = history.last_op_id
            phase("initial_read")
        prices = {i: v["price"] for i, v in initial["items"].items() if v is not None}
        load = fire_checkouts(client, seeded, prices, history, progress, sc.rate)
        await (load if around_load is None else around_load(load))
        phase("checkouts")
        with client.at_most(SETUP_IN_FLIGHT):
            final = await read_until_quiet(
                client, (seeded.item_ids, seeded.user_ids, list(seeded.orders)), sc.quiet_s, sc.settle_s,
                "reading final state", progress,
                on_read=None if on_final_read is None
                else lambda f, ns, changed: on_final_read({"initial": initial, "final": f}, ns, changed))
        phase("final_read")
    return {"initial": initial, "final": final.state, "final_reads": final.reads, "final_settled": final.settled,
            "final_quiet_s": round(final.quiet_for_s, 3)}
