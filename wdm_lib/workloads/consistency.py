"""The consistency scenario: seed through the public API, build orders, fire every checkout at
once (or at most `concurrency` in flight), and read the final state back. It records; it never
judges (that is wdm_lib.checkers)."""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import asdict, dataclass, field
from typing import Awaitable, Callable

from wdm_lib.client import Reply, ShopClient, require_ok
from wdm_lib.config import Target
from wdm_lib.errors import TargetUnreachable, WorkbenchError
from wdm_lib.history import OK, UNKNOWN, HistoryWriter
from wdm_lib.progress import bar

READ_RETRIES = 3
SETTLE_INTERVAL_S = 0.25
QUIET_S = 1.0  # unchanged for this long, the target counts as quiet
# Seeding and reading back are not what a run tests: a moderate bound is faster than a thousand
# connections (half the time on the reference shop) and spares slow targets a flood during set-up.
SETUP_IN_FLIGHT = 64


@dataclass
class ConsistencyScenario:
    """The original test's numbers by default: 1 item (stock 100, price 1), 1000 users (credit 1),
    1000 orders of one item each, all checked out at once."""

    n_items: int = 1
    item_stock: int = 100
    item_price: int = 1
    n_users: int = 1000
    user_credit: int = 1
    n_orders: int = 1000
    items_per_order: int = 1
    quantity: int = 1
    concurrency: int = 1000
    timeout_s: float = 60.0
    # How long the final read-back may wait for a quiet target (two reads in a row that agree):
    # a system whose reads lag its writes, or that still works off requests we gave up on, settles.
    settle_s: float = 10.0
    seed: int | None = None

    def __post_init__(self) -> None:
        if self.seed is None:
            self.seed = random.SystemRandom().randrange(2**31)
        for name in ("n_items", "n_users", "n_orders", "items_per_order", "quantity", "concurrency"):
            if getattr(self, name) < 1:
                raise WorkbenchError(f"--{name.replace('_', '-')} is {getattr(self, name)}; expected at least 1.")
        for name in ("item_stock", "item_price", "user_credit"):
            if getattr(self, name) < 0:
                raise WorkbenchError(f"--{name.replace('_', '-')} is {getattr(self, name)}; expected 0 or more.")
        if self.timeout_s <= 0:
            raise WorkbenchError(f"--timeout is {self.timeout_s}; expected a positive number of seconds.")
        if self.settle_s < 0:
            raise WorkbenchError(f"--settle is {self.settle_s}; expected 0 or more seconds.")

    def to_dict(self) -> dict:
        return asdict(self)


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
        # The very first call tells an unreachable target from a slow one, before a thousand more.
        first = need(await client.create_item(sc.item_price), "creating the first item")
        history.record("create_item", first, items=[[first.body["item_id"], 0]], amount=sc.item_price)
        pb.update()

        async def new_item() -> str:
            reply = need(await client.create_item(sc.item_price), "creating items")
            history.record("create_item", reply, items=[[reply.body["item_id"], 0]], amount=sc.item_price)
            return reply.body["item_id"]

        item_ids = [first.body["item_id"]] + await _gather_bounded(
            [new_item() for _ in range(sc.n_items - 1)], pb)

        async def stock_up(item_id: str) -> None:
            reply = need(await client.add_stock(item_id, sc.item_stock), "adding stock")
            history.record("add_stock", reply, items=[[item_id, sc.item_stock]], amount=sc.item_stock)

        async def new_user() -> str:
            reply = need(await client.create_user(), "creating users")
            history.record("create_user", reply, user_id=reply.body["user_id"])
            pb.update()
            user_id = reply.body["user_id"]
            funds = need(await client.add_funds(user_id, sc.user_credit), "adding funds")
            history.record("add_funds", funds, user_id=user_id, amount=sc.user_credit)
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
            history.record("create_order", reply, order_id=order_id, user_id=user_id)
            pb.update()
            items = []
            for item_id in chosen:
                added = need(await client.add_item(order_id, item_id, sc.quantity), "adding items to orders")
                history.record("add_item", added, order_id=order_id, user_id=user_id,
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
        if reply.error.startswith("cannot connect"):
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


async def read_settled_state(client: ShopClient, ids: tuple, settle_s: float, desc: str,
                             progress: bool | None, accept: Callable[[dict], bool] | None = None
                             ) -> tuple[dict, int, bool]:
    """Read the state; unless `accept` takes a read, read again until it has not changed for
    QUIET_S (the target is quiet) or settle_s runs out. The last read wins. Returns it, how many
    reads it took, and whether it settled (accepted or quiet) rather than ran out of time.

    A system whose reads lag its writes, or that still works off requests we gave up on, gets time
    to settle before anything is concluded from what it shows."""
    deadline = time.monotonic() + settle_s
    state, reads = await read_state(client, *ids, desc, progress), 1
    quiet_since = time.monotonic()
    while True:
        if accept is not None and accept(state):
            return state, reads, True
        if time.monotonic() >= deadline:
            return state, reads, False
        await asyncio.sleep(SETTLE_INTERVAL_S)
        again = await read_state(client, *ids, desc, progress)
        reads += 1
        if again != state:
            state, quiet_since = again, time.monotonic()
        elif time.monotonic() - quiet_since >= QUIET_S:
            return state, reads, True


def _shows_seeding(sc: ConsistencyScenario, state: dict) -> bool:
    return (all(v is not None and v["stock"] == sc.item_stock and v["price"] == sc.item_price
                for v in state["items"].values())
            and all(v is not None and v["credit"] == sc.user_credit for v in state["users"].values()))


async def fire_checkouts(client: ShopClient, seeded: Seeded, prices: dict[str, int], history: HistoryWriter,
                         progress: bool | None) -> None:
    """Every checkout at once; the client lets at most `concurrency` be in flight. `intended_ns` is
    the moment the burst was launched, so queueing behind our own limit shows in the history."""
    launched = time.time_ns()
    with bar(len(seeded.orders), "checkouts", progress) as pb:
        async def one(order_id: str, user_id: str, items: list) -> None:
            reply = await client.checkout(order_id)
            cost = sum(q * prices.get(i, 0) for i, q in items)
            history.record("checkout", reply, order_id=order_id, user_id=user_id, items=items,
                           amount=cost, intended_ns=launched)
            pb.update()
        await asyncio.gather(*(one(o, u, items) for o, (u, items) in seeded.orders.items()))


async def execute(sc: ConsistencyScenario, target: Target, history: HistoryWriter,
                  progress: bool | None = None, on_phase: Callable[[str, float], None] | None = None,
                  accept_final: Callable[[dict], bool] | None = None) -> dict:
    """Seed, check out, read back. Returns the state dict that state.json holds.

    `accept_final(state)` may take the first final read as settled (the caller knows when a read
    leaves nothing in doubt); otherwise the read-back waits for two reads in a row to agree."""
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
            initial, _, _ = await read_settled_state(
                client, (seeded.item_ids, seeded.user_ids, []), sc.settle_s, "reading initial state", progress,
                accept=lambda s: _shows_seeding(sc, s))
            initial["after_op"] = history.last_op_id
            phase("initial_read")
        prices = {i: v["price"] for i, v in initial["items"].items() if v is not None}
        await fire_checkouts(client, seeded, prices, history, progress)
        phase("checkouts")
        with client.at_most(SETUP_IN_FLIGHT):
            final, reads, settled = await read_settled_state(
                client, (seeded.item_ids, seeded.user_ids, list(seeded.orders)), sc.settle_s,
                "reading final state", progress,
                accept=None if accept_final is None else lambda f: accept_final({"initial": initial, "final": f}))
        phase("final_read")
    return {"initial": initial, "final": final, "final_reads": reads, "final_settled": settled}
