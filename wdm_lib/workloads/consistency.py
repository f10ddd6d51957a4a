"""The consistency workload: seed through the public API, build orders, fire every checkout at
once (or at most `concurrency` in flight) — under `mixed`, the generated load of every kind of
operation (workloads/mixed.py) — and read the final state back. It records; it never judges (that
is wdm_lib.checkers)."""

from __future__ import annotations

import asyncio
import itertools
import random
import time
from dataclasses import dataclass, field
from typing import Awaitable, Callable, Sequence

from wdm_lib.client import FIRST_REPLY_S, NOT_NOW, Reply, ShopClient, not_the_api, require_ok
from wdm_lib.config import Target
from wdm_lib.errors import TargetUnreachable
from wdm_lib.history import (ADD_FUNDS, ADD_ITEM, ADD_STOCK, CHECKOUT, CREATE_ITEM, CREATE_ORDER, CREATE_USER, FAIL, OK,
                             UNKNOWN, HistoryWriter)
from wdm_lib.progress import bar, noting_a_wait
from wdm_lib.workloads import mixed
from wdm_lib.workloads.consistency_scenario import MIXED, ConsistencyScenario

# A read that is not an answer (a 408 or 429, client.NOT_NOW; a gateway's 502/503/504; a timeout), and
# a write of the set-up answered "not now", are sent again after a pause growing from RETRY_BACKOFF_S
# to RETRY_BACKOFF_MAX_S, or after the Retry-After the target asked for.
RETRY_BACKOFF_S, RETRY_BACKOFF_MAX_S = 0.05, 2.0
# While a whole pass waits out the quiet window, records picked at random are read one after
# another, one every WATCH_SPACING_S (at most WATCH_IN_FLIGHT at once): a state that changes in that
# window (a late compensation, a reader that flaps to a stale copy for a moment) is seen at once,
# and the next whole pass starts then, while reading all of it only twice when nothing changes.
# Spaced in time, not in rounds that wait for each other: however slow a round trip, some read
# meets a change that lasts only a moment.
WATCH_SPACING_S, WATCH_IN_FLIGHT = 0.01, 16
# Seeding is not what a run tests: a moderate bound is faster than a thousand connections (half
# the time on the reference shop) and spares slow targets a flood during set-up.
SETUP_IN_FLIGHT = 64


def retry_pause_s(reply: Reply, attempt: int) -> float:
    """How long to wait before asking again: the Retry-After the target asked for, else a pause
    that grows with each try."""
    if reply.retry_after_s is not None:
        return reply.retry_after_s
    return min(RETRY_BACKOFF_MAX_S, RETRY_BACKOFF_S * 2 ** attempt)


class Patience:
    """The writes of a set-up against a target that does not serve every request: a write that was
    not served is sent again (or its record started over) after retry_pause_s, for as long as the
    set-up made some record within the last `retry_s`. Not served: "not now" (408, 429: a 4xx,
    so it did not happen, API.md), an unknown (a 5xx, a timeout, a dropped connection: it may have
    happened), or no connection (nothing was sent), once the target has served before (a service
    restarting; before that it is a wrong address or a broken shop, said at once). A rate limiter or a
    shop that fails now and then slows the set-up down; one that lets no record be made for that
    long ends the run in one sentence, naming `option` (what sets retry_s) and `advice`. The pause
    grows with the tries missed since the last record made, whoever missed them, so a target that
    serves nothing is asked less and less often. A refusal (another 4xx) is the caller's at once."""

    def __init__(self, retry_s: float, option: str, advice: str):
        self.retry_s, self.option, self.advice = retry_s, option, advice
        self.made_at = time.monotonic()
        self.misses = 0
        self.served_once = False

    def made(self) -> None:
        """A record of the set-up is made: the target is getting somewhere."""
        self.made_at, self.misses = time.monotonic(), 0

    def _served(self, reply: Reply) -> bool:
        """Whether the reply is the caller's: a 2xx or a refusal; before the target served anything,
        anything but "not now" (a wrong address, a broken shop: said at once, not after --settle);
        and any page of a server that is not the shop."""
        if reply.outcome == OK or (reply.outcome == FAIL and reply.status not in NOT_NOW and not reply.unreachable):
            return True
        return (not self.served_once and reply.status not in NOT_NOW) or not_the_api(reply)

    async def send(self, request: Callable[[], Awaitable[Reply]], record: Callable[[Reply], None],
                   doing: str, repeatable: bool) -> Reply | None:
        """`request()` until the target serves it; `record(reply)` records each try not served. An
        unknown is sent again if the write is `repeatable` (doing it twice does it once, as a batch
        init); otherwise None says its record's fate is unknown, so the caller starts that record
        over with new ones (a second add_funds could add twice; an orphan changes no verdict: the
        run never reads it)."""
        while True:
            reply = await request()
            if self._served(reply):
                self.served_once = True
                return reply
            record(reply)
            left = self.made_at + self.retry_s - time.monotonic()
            if left <= 0:
                raise TargetUnreachable(
                    f"{reply.url}: {reply.error or 'no answer'} while {doing}, and the set-up made no record for "
                    f"{self.retry_s:g} s ({self.option}), every try meeting \"not now\", a 5xx or no answer; "
                    f"expected the target to serve the set-up ({self.advice}).")
            self.misses += 1
            await asyncio.sleep(min(retry_pause_s(reply, self.misses - 1), left))  # the last try at the very end
            if reply.outcome == UNKNOWN and not reply.unreachable and not repeatable:
                return None


# Tries of the set-up the target did not serve ("not now", unknown, no connection), and records
# left because a write of theirs went unknown (others were made in their place).
SEEDING_TALLIES = ("not_served", "records_left")


@dataclass
class Seeded:
    item_ids: list[str]
    user_ids: list[str]
    # order_id -> (user_id, [[item_id, quantity], ...]) as acknowledged by the target, in the order planned
    orders: dict[str, tuple[str, list]] = field(default_factory=dict)
    prices: dict[str, int] = field(default_factory=dict)   # item_id -> the price it was created with
    # How the target served the set-up (state.json's `seeding`): see SEEDING_TALLIES.
    tallies: dict[str, int] = field(default_factory=lambda: dict.fromkeys(SEEDING_TALLIES, 0))


# An order as planned before seeding: (user index, [(item index, quantity), ...]).
OrderPlan = tuple[int, list[tuple[int, int]]]


def original_orders(sc: ConsistencyScenario) -> list[OrderPlan]:
    """The original workload's orders: a random user and items_per_order distinct random items
    (repeats only when there are fewer items), each of quantity `quantity`. Drawn up front, in
    order, so one seed always builds the same orders."""
    rng = random.Random(sc.seed)
    plans = []
    for _ in range(sc.n_orders):
        user = rng.randrange(sc.n_users)
        if sc.items_per_order <= sc.n_items:
            chosen = rng.sample(range(sc.n_items), sc.items_per_order)
        else:
            chosen = [rng.randrange(sc.n_items) for _ in range(sc.items_per_order)]
        plans.append((user, [(item, sc.quantity) for item in chosen]))
    return plans


async def each(args: Sequence, work: Callable[[object], Awaitable], width: int, progress=None) -> list:
    """work(arg) for every arg, started in their order, at most `width` at once; the results in
    that order. A few workers taking the next arg as one ends, not a task per arg waiting on the
    client's bound: 200,000 tasks waiting on it hold 304 MB before a request is sent (measured)."""
    results: list = [None] * len(args)
    pending = iter(enumerate(args))

    async def worker() -> None:
        for k, arg in pending:
            results[k] = await work(arg)
            if progress is not None:
                progress.update()
    workers = [asyncio.ensure_future(worker()) for _ in range(min(width, len(args)))]
    try:
        await asyncio.gather(*workers)
    finally:
        for w in workers:
            w.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
    return results


async def seed(client: ShopClient, sc: ConsistencyScenario, history: HistoryWriter, prices: list[int],
               plans: list[OrderPlan], progress: bool | None) -> Seeded:
    """Items at `prices` (one per item) with item_stock each, users with user_credit each, and the
    orders `plans` describes, all through the public API."""
    narrower = f"a --concurrency below {min(sc.concurrency, SETUP_IN_FLIGHT)}"
    patience = Patience(sc.settle_s, "--settle", f"a rate limiter in front of the shop: raise its limit or "
                                                  f"--settle; a shop failing under load: {narrower}")

    tallies = dict.fromkeys(SEEDING_TALLIES, 0)

    def not_served(kind: str, reply: Reply, fields: dict) -> None:
        tallies["not_served"] += 1
        history.record(kind, reply, **fields)

    async def write(request: Callable[[], Awaitable[Reply]], doing: str, kind: str, **fields) -> Reply | None:
        """A write of the set-up until the target serves it, each try that it did not a row of the
        history: its 2xx reply; None when its fate is unknown (its record is started over); or the
        run ends (a refusal, or patience run out) in one sentence."""
        reply = await patience.send(request, lambda tried: not_served(kind, tried, fields), doing, repeatable=False)
        if reply is None:
            tallies["records_left"] += 1
            return None
        return require_ok(reply, doing, f"if it fails only under load, {narrower} may get it through seeding")

    total = 2 * sc.n_items + 2 * sc.n_users + len(plans) + sum(len(lines) for _, lines in plans)
    with bar(total, "seeding", progress) as pb:
        async def new_item(price: int) -> str:
            """An item at `price` with item_stock; one whose creation or stock went unknown is left
            as it is, and another made in its place."""
            while True:
                made = await write(lambda: client.create_item(price), "creating items", CREATE_ITEM, amount=price)
                if made is None:
                    continue
                item_id = made.body["item_id"]
                history.record(CREATE_ITEM, made, items=[[item_id, 0]], amount=price)
                pb.update()
                added = {"items": [[item_id, sc.item_stock]], "amount": sc.item_stock}
                stocked = await write(lambda: client.add_stock(item_id, sc.item_stock), "adding stock", ADD_STOCK,
                                      **added)
                if stocked is not None:
                    history.record(ADD_STOCK, stocked, **added)
                    patience.made()
                    return item_id

        # The very first calls tell an unreachable or dead target from a slow one, before a thousand more.
        with client.first_reply_within(FIRST_REPLY_S):
            first_id = await noting_a_wait(new_item(prices[0]), pb,
                                           f"waiting for {client.target.stock_url} to answer the first request "
                                           f"(up to {FIRST_REPLY_S:g} s for a first byte)")
        item_ids = [first_id] + await each(prices[1:], new_item, client.in_flight, pb)

        async def new_user(_) -> str:
            """A user with user_credit; one whose creation or funds went unknown is left, and another made."""
            while True:
                made = await write(client.create_user, "creating users", CREATE_USER)
                if made is None:
                    continue
                user_id = made.body["user_id"]
                history.record(CREATE_USER, made, user_id=user_id)
                pb.update()
                funds = await write(lambda: client.add_funds(user_id, sc.user_credit), "adding funds", ADD_FUNDS,
                                    user_id=user_id, amount=sc.user_credit)
                if funds is not None:
                    history.record(ADD_FUNDS, funds, user_id=user_id, amount=sc.user_credit)
                    patience.made()
                    return user_id

        user_ids = await each(range(sc.n_users), new_user, client.in_flight, pb)

        async def new_order(plan: OrderPlan) -> tuple[str, str, list]:
            """The order `plan` describes; one whose creation or a line went unknown is left, and
            another made with all its lines."""
            user_id, lines = user_ids[plan[0]], [(item_ids[i], q) for i, q in plan[1]]
            while True:
                made = await write(lambda: client.create_order(user_id), "creating orders", CREATE_ORDER,
                                   user_id=user_id)
                if made is None:
                    continue
                order_id = made.body["order_id"]
                history.record(CREATE_ORDER, made, order_id=order_id, user_id=user_id)
                pb.update()
                items = []
                for item_id, quantity in lines:
                    line = {"order_id": order_id, "user_id": user_id, "items": [[item_id, quantity]],
                            "amount": quantity}
                    added = await write(lambda: client.add_item(order_id, item_id, quantity),
                                        "adding items to orders", ADD_ITEM, **line)
                    if added is None:
                        break
                    history.record(ADD_ITEM, added, **line)
                    items.append([item_id, quantity])
                    pb.update()
                else:
                    patience.made()
                    return order_id, user_id, items

        made = await each(plans, new_order, client.in_flight)
    return Seeded(item_ids, user_ids, {order_id: (user_id, items) for order_id, user_id, items in made},
                  dict(zip(item_ids, prices)), tallies)


def says_absent(reply: Reply) -> bool:
    """Only a 4xx other than 408 and 429 says a record does not exist."""
    return reply.outcome == FAIL and reply.status not in NOT_NOW


async def _read_all(ids: list[str], find: Callable[[str], Awaitable[Reply]],
                    shape: Callable[[dict | None], dict | None], what: str, pb, retry_s: float, width: int,
                    last: dict | None = None) -> dict:
    """id -> the record as `shape` keeps it, None when the target says it does not exist. A read
    that is not an answer (a 5xx, 408, 429, a timeout, a dropped connection) is retried, after the
    Retry-After it asked for or a growing pause, for up to retry_s; still none then, the state
    cannot be read. A record that reads as `last` (the pass before) had it is kept as that very
    object: a pass that changed little costs little memory beside the one before."""
    until = time.monotonic() + retry_s
    last = last or {}

    async def one(record_id: str):
        attempt = 0
        while True:
            reply = await find(record_id)
            if reply.outcome == OK or says_absent(reply) or reply.unreachable:
                break
            left = until - time.monotonic()
            if left <= 0:
                break
            await asyncio.sleep(min(retry_pause_s(reply, attempt), left))  # the last try at the very end
            attempt += 1
        pb.update()
        if reply.outcome == OK:
            value = shape(reply.body)
            before = last.get(record_id)
            return record_id, before if before == value else value
        if reply.unreachable:
            require_ok(reply, f"reading {what}")
        if not says_absent(reply):
            raise TargetUnreachable(f"{reply.url}: {reply.error or 'no answer'} on every try for {retry_s:g} s while "
                                    f"reading {what}; expected the state to be readable once the load is over "
                                    f"(--settle is how long the read-back waits).")
        return record_id, None
    return dict(await each(ids, one, width))


def _item(r: dict | None) -> dict | None:
    return None if r is None else {"stock": r["stock"], "price": r["price"]}


def _user(r: dict | None) -> dict | None:
    return None if r is None else {"credit": r["credit"]}


def _order(r: dict | None) -> dict | None:
    # An order's lines are a multiset: a shop that returns them in another order on each read (a
    # SELECT without ORDER BY) shows the same order, and the state it is part of has not changed.
    return None if r is None else {"paid": r["paid"], "items": sorted(r["items"], key=lambda line: (line[0], line[1])),
                                   "user_id": r["user_id"], "total_cost": r["total_cost"]}


def _readers(client: ShopClient) -> tuple:
    """(kind, how one record is read, what of it is kept) for items, users and orders, in the order
    of the ids a read-back is given: what a whole pass and the watch between passes both read."""
    return (("items", client.find_item, _item), ("users", client.find_user, _user),
            ("orders", client.find_order, _order))


async def read_state(client: ShopClient, item_ids: list[str], user_ids: list[str], order_ids: list[str],
                     desc: str, progress: bool | None, retry_s: float = 60.0, last: dict | None = None) -> dict:
    last = last or {}
    with bar(len(item_ids) + len(user_ids) + len(order_ids), desc, progress) as pb:
        items, users, orders = await asyncio.gather(*(
            _read_all(ids, find, shape, kind, pb, retry_s, client.in_flight, last.get(kind))
            for ids, (kind, find, shape) in zip((item_ids, user_ids, order_ids), _readers(client))))
    state = {"items": items, "users": users}
    if order_ids:
        state["orders"] = orders
    return state


async def _watch(client: ShopClient, ids: tuple, seen: dict, until: float, rng: random.Random) -> dict:
    """Read records picked at random, one every WATCH_SPACING_S, until `until` or until one shows
    anything but what the last whole pass saw: what those reads showed (kind -> {id: value}), empty
    when nothing changed. A read that is not an answer is no change (the next whole pass retries it)."""
    kinds = [(list(every), find, kind, shape) for every, (kind, find, shape) in zip(ids, _readers(client)) if every]
    changed = asyncio.Event()
    changes: dict[str, dict] = {}
    if not kinds:
        await asyncio.sleep(max(0.0, until - time.monotonic()))
        return changes

    async def look(find, kind: str, shape, record_id: str) -> None:
        reply = await find(record_id)
        if reply.outcome == OK or says_absent(reply):
            value = shape(reply.body if reply.outcome == OK else None)
            if seen[kind].get(record_id) != value:
                changes.setdefault(kind, {})[record_id] = value
                changed.set()

    pending: set[asyncio.Task] = set()
    try:
        for k in itertools.count():
            if time.monotonic() >= until or changed.is_set():
                break
            if len(pending) >= WATCH_IN_FLIGHT:
                await asyncio.wait(pending, timeout=max(0.0, until - time.monotonic()),
                                   return_when=asyncio.FIRST_COMPLETED)
                continue
            every, find, kind, shape = kinds[k % len(kinds)]
            task = asyncio.ensure_future(look(find, kind, shape, rng.choice(every)))
            pending.add(task)
            task.add_done_callback(pending.discard)
            await asyncio.sleep(WATCH_SPACING_S)
    finally:
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
    return changes


@dataclass
class ReadBack:
    """The outcome of reading the state until it went quiet: the last read, how many passes it took,
    whether it stayed unchanged for the quiet window (rather than ran out of time), and how long
    it had been unchanged when the reading stopped, and the longest whole pass (seconds)."""
    state: dict
    reads: int
    settled: bool
    quiet_for_s: float
    pass_s: float = 0.0


def _changes(old: dict | None, new: dict) -> dict:
    """The records `new` shows otherwise than `old` did, as `old` had them: all that is kept of a
    state once a later pass replaced it (at 100,000 records a whole copy per pass is what filled
    the memory)."""
    if old is None:
        return {}
    return {kind: {i: v for i, v in records.items() if new[kind].get(i) != v} for kind, records in old.items()}


def _reverted(before: dict, now: dict) -> bool:
    """Whether `now` shows some record as it was before the last change (`before`, from _changes):
    a value that went and came back (a correct system's records move on; a flapping reader's come back)."""
    return any(i in now.get(kind, {}) and now[kind][i] == v for kind, records in before.items()
               for i, v in records.items())


async def read_until_quiet(client: ShopClient, ids: tuple, quiet_s: float, settle_s: float, desc: str,
                           progress: bool | None, accept: Callable[[dict], bool] | None = None,
                           on_read: Callable[[dict, int, bool, bool], None] | None = None) -> ReadBack:
    """Read the whole state until it has stayed unchanged for quiet_s: two whole passes bracket
    the quiet window, and cheap reads of a few records watch it in between (_watch), so a change
    inside the window (a late compensation, a reader flapping to a stale copy for a moment) starts
    the next whole pass at once, back to back, while a state that does not change is read whole
    twice. Quiet runs from the end of the pass that showed the state to the start of the pass that
    still shows it, so both ends saw it whole. `settle_s` bounds the wait for quiet: past it, the
    last pass is what there is, but a run always gets two whole passes and the quiet window
    between them, however long one pass takes.
    `accept` may take a read at once (the initial read, when it shows exactly what seeding
    acknowledged); `on_read(state, started_ns, changed, reverted)` sees every whole pass, and the
    last pass with what the watch read when it saw a change (`reverted`: it brought a record back to
    what it was before the read before changed it), which the caller judges: a right state that a
    later read shows wrong is the system regressing.

    A read that merely adds up proves nothing about a system that is still working: a saga's late
    compensation or a queue's late work lands after it. Only a quiet state is judged."""
    started = time.monotonic()
    state: dict | None = None
    before: dict = {}  # the records the last change changed, as they were: a value that went and came back
    stable_since = started
    reads, longest = 0, 0.0
    rng = random.Random(0)  # which records the watch samples: nothing the verdict depends on
    while True:
        pass_start, pass_start_ns = time.monotonic(), time.time_ns()
        label = desc if reads == 0 else f"{desc} (pass {reads + 1}, unchanged {pass_start - stable_since:.1f}/{quiet_s:g} s)"
        again = await read_state(client, *ids, label, progress, retry_s=settle_s, last=state)
        reads, longest = reads + 1, max(longest, time.monotonic() - pass_start)
        changed = again != state
        reverted = changed and _reverted(before, again)
        if changed:
            before, state, stable_since = _changes(state, again), again, time.monotonic()
        del again
        if on_read is not None:
            on_read(state, pass_start_ns, changed, reverted)
        quiet_for = 0.0 if changed else pass_start - stable_since
        if (accept is not None and accept(state)) or quiet_s == 0 or quiet_for >= quiet_s:
            return ReadBack(state, reads, True, quiet_for, longest)
        if reads == 1:
            # --settle bounds the wait for quiet, not the passes: however long the first pass
            # took, the quiet window after it is waited out whole, so that a state which does not
            # change is confirmed quiet by the second pass.
            deadline = max(started + settle_s, time.monotonic() + quiet_s)
        elif time.monotonic() >= deadline:
            return ReadBack(state, reads, False, quiet_for, longest)
        changes = await _watch(client, ids, state, min(stable_since + quiet_s, deadline), rng)
        if changes:
            watched_ns = time.time_ns()  # _watch returns as soon as a change is seen
            # Something showed another value: the state was not quiet, whatever the next whole pass
            # shows. The state as last read is the last pass with what the watch read: judged like a
            # pass, so a record that the next pass shows back as it was (a reader that flapped to a
            # stale copy for a moment, over before a whole pass could land on it) is a value that
            # went and came back, however short the flap and however slow the pass.
            reverted = _reverted(before, changes)
            before = {kind: {i: state[kind].get(i) for i in records} for kind, records in changes.items()}
            for kind, records in changes.items():
                state[kind].update(records)
            stable_since = time.monotonic()
            if on_read is not None:
                on_read(state, watched_ns, True, reverted)


def _shows_seeding(sc: ConsistencyScenario, seeded: Seeded, state: dict) -> bool:
    return (all(v is not None and v["stock"] == sc.item_stock and v["price"] == seeded.prices.get(i)
                for i, v in state["items"].items())
            and all(v is not None and v["credit"] == sc.user_credit for v in state["users"].values()))


STOPPED_IN_FLIGHT = "the run stopped while this operation was in flight"
# One operation of the load: step, due_ns -> (its request, what records its reply as a history row).
Send = Callable[[object, int], tuple[Awaitable[Reply], Callable[[Reply], None]]]


async def fire(steps: list, send: Send, desc: str, progress: bool | None, rate: float | None = None,
               width: int = 1000) -> None:
    """The load's operations; the client lets at most `concurrency` be in flight. Without `rate`,
    all at once (`width`, the client's bound, started together, each next one as one ends),
    `intended_ns` the moment the burst was launched. With it, open loop: operation k is
    due at start + k/rate whatever became of the ones before (a slow reply never delays the next),
    and `intended_ns` is when it was due. Either way, time spent queueing behind our own limit or a
    busy client shows as invoke_ns - intended_ns in the history.

    An operation still in flight when the run stops (Ctrl-C, a fault that failed, the shop dying)
    is recorded as unknown: it may have happened."""
    start, start_ns = time.monotonic(), time.time_ns()
    with bar(len(steps), desc, progress) as pb:
        async def one(step, due_ns: int) -> None:
            request, record = send(step, due_ns)
            sent_ns = time.time_ns()
            try:
                reply = await request
            except asyncio.CancelledError:
                record(Reply("", "", UNKNOWN, None, sent_ns, time.time_ns(), error=STOPPED_IN_FLIGHT))
                raise
            record(reply)
            pb.update()

        if rate is None:
            await each(steps, lambda step: one(step, start_ns), width)
            return
        tasks = []
        try:
            for k, step in enumerate(steps):
                delay = start + k / rate - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                tasks.append(asyncio.ensure_future(one(step, start_ns + round(k / rate * 1e9))))
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)


def checkout_sender(client: ShopClient, history: HistoryWriter, prices: dict[str, int]) -> Send:
    """The original workload's one operation: the checkout of (order_id, (user_id, items))."""
    def send(order: tuple[str, tuple[str, list]], due_ns: int):
        order_id, (user_id, items) = order
        return client.checkout(order_id), lambda reply: history.record(
            CHECKOUT, reply, order_id=order_id, user_id=user_id, items=items,
            amount=sum(q * prices.get(i, 0) for i, q in items), intended_ns=due_ns)
    return send


async def execute(sc: ConsistencyScenario, target: Target, history: HistoryWriter,
                  progress: bool | None = None, on_phase: Callable[[str, float], None] | None = None,
                  on_final_read: Callable[[dict, int, bool, bool], None] | None = None,
                  around_load: Callable[[Awaitable], Awaitable] | None = None) -> dict:
    """Seed, run the load (the checkouts; under mixed, every kind of operation), read back until
    quiet. Returns the state dict that state.json holds.

    `on_final_read(state, started_ns, changed, reverted)` sees every pass of the final read-back, where state
    is {"initial": ..., "final": that pass} (the shape the checkers take). `around_load(load)` runs
    the load, for a caller that runs something beside it (a fault schedule)."""
    clock = time.perf_counter()

    def phase(name: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        if on_phase:
            on_phase(name, now - clock)
        clock = now

    plan = mixed.plan(sc) if sc.workload == MIXED else None
    async with ShopClient(target, timeout_s=sc.timeout_s, connections=sc.concurrency) as client:
        with client.at_most(SETUP_IN_FLIGHT):
            seeded = await seed(client, sc, history, plan.prices if plan else [sc.item_price] * sc.n_items,
                                plan.orders if plan else original_orders(sc), progress)
        phase("seed")
        # Reads go as wide as --concurrency, the width the user says the target takes (the
        # original reads with aiohttp's 100 connections, the default): on the embedded shop, which
        # is bound by CPU, 16, 64 and 256 in flight read alike; on a distant target width is speed.
        initial = (await read_until_quiet(
            client, (seeded.item_ids, seeded.user_ids, []), sc.quiet_s, sc.settle_s, "reading initial state",
            progress, accept=lambda s: _shows_seeding(sc, seeded, s))).state
        initial["after_op"] = history.last_op_id
        phase("initial_read")
        prices = {i: v["price"] for i, v in initial["items"].items() if v is not None}
        if plan:
            load = fire(plan.steps, mixed.sender(client, history, seeded, prices), "operations", progress, sc.rate,
                        client.in_flight)
        else:
            load = fire(list(seeded.orders.items()), checkout_sender(client, history, prices), "checkouts",
                        progress, sc.rate, client.in_flight)
        await (load if around_load is None else around_load(load))
        phase("checkouts")
        final = await read_until_quiet(
            client, (seeded.item_ids, seeded.user_ids, list(seeded.orders)), sc.quiet_s, sc.settle_s,
            "reading final state", progress,
            on_read=None if on_final_read is None
            else lambda f, ns, *seen: on_final_read({"initial": initial, "final": f}, ns, *seen))
        phase("final_read")
    return {"initial": initial, "final": final.state, "seeding": seeded.tallies,
            "final_reads": final.reads, "final_settled": final.settled,
            "final_quiet_s": round(final.quiet_for_s, 3), "final_pass_s": round(final.pass_s, 3)}
