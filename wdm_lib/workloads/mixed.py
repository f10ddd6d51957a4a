"""The `mixed` consistency workload: a Jepsen-style generator, seeded, of every operation the API
has. Items at varied prices; orders of 1 to `items_per_order` lines, some holding the same item
twice, quantities from a range; then, interleaved at random during the load: first checkouts,
re-checkouts of orders already checked out (some sent right behind their own first checkout, so
the two race), `add_funds` to users and `add_stock` to items that orders still waiting for their
first checkout reference, and reads (`find_item`, `find_user`, `find_order`).

Everything is drawn from the seed before the first request (`plan`), so one seed is one run's
operations in one order; only how the replies interleave is the system's. Pure apart from
`sender`, which turns a step into its request and its history row (the client is handed in, never
imported: the scenario computes the load's length from the plan without the HTTP client)."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import TYPE_CHECKING

from wdm_lib.history import ADD_FUNDS, ADD_STOCK, CHECKOUT, FIND_ITEM, FIND_ORDER, FIND_USER, OK, READS, RECHECKOUT, HistoryWriter

if TYPE_CHECKING:
    from wdm_lib.client import Reply, ShopClient
    from wdm_lib.workloads.consistency import Seeded, Send
    from wdm_lib.workloads.consistency_scenario import ConsistencyScenario

# A line after an order's first one repeats an item already in the order this often: a shop that
# collapses duplicate lines (a dict of item -> quantity) has them to get wrong in most orders.
DUPLICATE_LINE_SHARE = 0.3
# A re-checkout is sent right behind its order's first checkout this often (the two race); the
# others pick any order already checked out.
RACING_SHARE = 0.3
# The generator's token for "a read of some kind" (which kind is drawn next).
_READ = "read"


@dataclass(frozen=True, slots=True)
class Step:
    """One operation of the load: its kind (a history kind), the index of the order, user or item
    it is for, and the amount an addition adds."""
    kind: str
    index: int
    amount: int = 0


@dataclass(frozen=True)
class Plan:
    prices: list[int]                                   # per item index
    orders: list[tuple[int, list[tuple[int, int]]]]     # (user index, [(item index, quantity), ...])
    steps: list[Step]                                   # the load, in the order it is sent


def order_lines(sc: "ConsistencyScenario", rng: random.Random) -> list[tuple[int, int]]:
    """One order's lines: 1 to items_per_order, each a random item (or, after the first, an item
    already in the order), each with a quantity from the scenario's range."""
    q_lo, q_hi = sc.quantity_range
    lines: list[tuple[int, int]] = []
    for _ in range(rng.randint(*sc.lines_range)):
        if lines and rng.random() < DUPLICATE_LINE_SHARE:
            item = rng.choice(lines)[0]
        else:
            item = rng.randrange(sc.n_items)
        lines.append((item, rng.randint(q_lo, q_hi)))
    return lines


def order_cost(prices: list[int], lines: list[tuple[int, int]]) -> int:
    return sum(prices[item] * quantity for item, quantity in lines)


def load_steps(sc: "ConsistencyScenario", rng: random.Random, prices: list[int],
               orders: list[tuple[int, list[tuple[int, int]]]]) -> list[Step]:
    """The load: every order's first checkout once, in a random order, and between them the other
    kinds drawn by weight (each weight: how many of that kind per first checkout, on average).
    A re-checkout needs an order already checked out; an addition is for an order still waiting
    for its first checkout, and adds what that order needs (its cost to its user, a line's
    quantity to that line's item), so refused checkouts can turn into successful ones."""
    waiting = list(range(len(orders)))
    rng.shuffle(waiting)
    checked: list[int] = []
    steps: list[Step] = []
    sizes = {FIND_ITEM: sc.n_items, FIND_USER: sc.n_users, FIND_ORDER: len(orders)}
    weights = [(CHECKOUT, 1.0), (RECHECKOUT, sc.recheckout_weight), (ADD_FUNDS, sc.add_funds_weight),
               (ADD_STOCK, sc.add_stock_weight), (_READ, sc.read_weight)]
    while waiting:
        usable = [(kind, w) for kind, w in weights if w > 0 and (checked or kind != RECHECKOUT)]
        pick = rng.random() * sum(w for _, w in usable)
        kind = next((k for k, w in usable if (pick := pick - w) < 0), usable[-1][0])
        if kind == CHECKOUT:
            order = waiting.pop()
            checked.append(order)
            steps.append(Step(CHECKOUT, order))
        elif kind == RECHECKOUT:
            order = checked[-1] if rng.random() < RACING_SHARE else rng.choice(checked)
            steps.append(Step(CHECKOUT, order))
        elif kind == ADD_FUNDS:
            user, lines = orders[rng.choice(waiting)]
            steps.append(Step(ADD_FUNDS, user, max(1, order_cost(prices, lines))))
        elif kind == ADD_STOCK:
            item, quantity = rng.choice(orders[rng.choice(waiting)][1])
            steps.append(Step(ADD_STOCK, item, quantity))
        else:
            read = rng.choice(READS)
            steps.append(Step(read, rng.randrange(sizes[read])))
    return steps


def plan(sc: "ConsistencyScenario") -> Plan:
    """Everything a mixed run sends, drawn from its seed: prices, orders, then the load."""
    rng = random.Random(sc.seed)
    prices = [rng.randint(*sc.price_range) for _ in range(sc.n_items)]
    orders = [(rng.randrange(sc.n_users), order_lines(sc, rng)) for _ in range(sc.n_orders)]
    return Plan(prices, orders, load_steps(sc, rng, prices, orders))


def sender(client: "ShopClient", history: HistoryWriter, seeded: "Seeded", prices: dict[str, int]) -> "Send":
    """step, due_ns -> (its request, what records its reply as a history row). A checkout's amount
    is its cost at `prices` (as read back after seeding)."""
    order_ids = list(seeded.orders)

    def send(step: Step, due_ns: int):
        if step.kind == CHECKOUT:
            order_id = order_ids[step.index]
            user_id, items = seeded.orders[order_id]
            cost = sum(q * prices.get(i, 0) for i, q in items)
            return client.checkout(order_id), lambda r: history.record(
                CHECKOUT, r, order_id=order_id, user_id=user_id, items=items, amount=cost, intended_ns=due_ns)
        if step.kind == ADD_FUNDS:
            user_id = seeded.user_ids[step.index]
            return client.add_funds(user_id, step.amount), lambda r: history.record(
                ADD_FUNDS, r, user_id=user_id, amount=step.amount, intended_ns=due_ns)
        if step.kind == ADD_STOCK:
            item_id = seeded.item_ids[step.index]
            return client.add_stock(item_id, step.amount), lambda r: history.record(
                ADD_STOCK, r, items=[[item_id, step.amount]], amount=step.amount, intended_ns=due_ns)
        if step.kind == FIND_ITEM:
            item_id = seeded.item_ids[step.index]
            return client.find_item(item_id), lambda r: history.record(
                FIND_ITEM, r, items=[[item_id, 0]], amount=r.body["stock"] if r.outcome == OK else None,
                intended_ns=due_ns)
        if step.kind == FIND_USER:
            user_id = seeded.user_ids[step.index]
            return client.find_user(user_id), lambda r: history.record(
                FIND_USER, r, user_id=user_id, amount=r.body["credit"] if r.outcome == OK else None,
                intended_ns=due_ns)
        order_id = order_ids[step.index]

        def record_order(r: "Reply") -> None:
            read = r.body if r.outcome == OK else None
            history.record(FIND_ORDER, r, order_id=order_id, user_id=read["user_id"] if read else "",
                           items=read["items"] if read else [], amount=int(read["paid"]) if read else None,
                           intended_ns=due_ns)
        return client.find_order(order_id), record_order
    return send
