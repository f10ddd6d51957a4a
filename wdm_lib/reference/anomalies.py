"""Named bugs the reference shop can be started with, so the checkers are proven to catch them.

Each one is a bug real student systems have. `behaviour(store, anomaly)` picks the operations the
server runs: `Consistent` (the default, no bug) or one subclass that replaces some of them.
"""

from __future__ import annotations

import asyncio

from wdm_lib.errors import WorkbenchError
from wdm_lib.reference.store import NotEnough, ShopError, Store, item_counts

ANOMALIES: dict[str, str] = {
    "lost-update": "stock subtract, pay and checkout read the value, yield to other requests, then "
                   "write the computed value without a transaction: concurrent requests overwrite "
                   "each other (oversold stock, credit not fully charged)",
    "no-rollback": "checkout commits the stock subtraction first, then charges the user; when the "
                   "payment is refused the stock is not given back (and the checkout answers 4xx)",
    "phantom-success": "every 2nd refused checkout (not enough stock or credit) answers 200 anyway, "
                       "changing nothing",
    "lost-ack": "every 3rd successful checkout commits but answers 500",
    "volatile": "the shop keeps its state in memory only (a cache used as the database): whatever it "
                "acknowledged is gone when it is killed or restarted (shows under a fault schedule)",
    # Bugs that only a load with re-checkouts, additions racing checkouts, and orders of several lines
    # shows (wdm consistency --workload mixed):
    "recheckout-no-stock": "a checkout of an order already paid charges the user again but takes no stock "
                           "(the shop thinks the goods left with the first checkout)",
    "racy-add-funds": "add funds reads the credit, waits for a round trip, then writes credit + amount: a "
                      "payment made meanwhile is overwritten (the user keeps the money)",
    "collapsed-lines": "checkout takes the stock of {item: quantity for item, quantity in lines}: of two "
                       "lines of one item, only the last line's quantity is taken",
    "first-item-stock": "checkout takes every line's quantity from the first line's item",
}
# Anomalies that live in the storage, not in the operations: the server picks the store by them.
IN_MEMORY = "volatile"

# Modes of the three-service shop (`wdm serve --services`): bugs that only a system whose checkout
# spans services can have. The order service's saga (saga.py) implements them.
SERVICES_ANOMALIES: dict[str, str] = {
    "no-recovery": "the order service forgets the checkouts it had in flight when it restarts: stock "
                   "taken and held for ever, users charged for orders never paid",
    "retry-double-charge": "when the payment service does not answer in time, the order service sends "
                           "the payment again without its idempotency key: a payment whose reply was "
                           "lost is charged twice",
}


def check_anomaly(anomaly: str | None, services: bool) -> None:
    """One sentence when `anomaly` is not a mode of the single-process shop (or, with `services`,
    of the three-service shop)."""
    if anomaly is None:
        return
    modes, other = (SERVICES_ANOMALIES, ANOMALIES) if services else (ANOMALIES, SERVICES_ANOMALIES)
    if anomaly in modes:
        return
    shop = "the three-service shop (--services)" if services else "the single-process shop"
    if anomaly in other:
        where = "only with --services" if not services else "only without --services"
        raise WorkbenchError(f"anomaly {anomaly!r} is a mode {where}; {shop} has {', '.join(sorted(modes))}.")
    raise WorkbenchError(f"unknown anomaly {anomaly!r}; {shop} has {', '.join(sorted(modes))}.")


class DroppedAck(ShopError):
    """The work was committed, yet the client hears a server error."""

    status = 500


class Consistent:
    """The shop without bugs: each operation is one transaction of the store."""

    def __init__(self, store: Store):
        self.store = store

    async def subtract_stock(self, item_id: str, amount: int) -> None:
        self.store.subtract_stock(item_id, amount)

    async def pay(self, user_id: str, amount: int) -> None:
        self.store.pay(user_id, amount)

    async def checkout(self, order_id: str) -> None:
        self.store.checkout(order_id)

    async def add_funds(self, user_id: str, amount: int) -> None:
        self.store.add_funds(user_id, amount)


class LostUpdate(Consistent):
    """Read, yield, write: the read-modify-write race of a shop without transactions or locks."""

    async def subtract_stock(self, item_id: str, amount: int) -> None:
        stock, _ = self.store.find_item(item_id)
        if stock < amount:
            raise NotEnough(f"item {item_id} has less than {amount} in stock")
        await asyncio.sleep(0)
        self.store.set_stock(item_id, stock - amount)

    async def pay(self, user_id: str, amount: int) -> None:
        credit = self.store.find_credit(user_id)
        if credit < amount:
            raise NotEnough(f"user {user_id} has less than {amount} credit")
        await asyncio.sleep(0)
        self.store.set_credit(user_id, credit - amount)

    async def checkout(self, order_id: str) -> None:
        order = self.store.find_order(order_id)
        counts = item_counts(order.items)
        stocks = {item_id: self.store.find_item(item_id)[0] for item_id in counts}
        credit = self.store.find_credit(order.user_id)
        for item_id, quantity in counts.items():
            if stocks[item_id] < quantity:
                raise NotEnough(f"item {item_id} has less than {quantity} in stock")
        if credit < order.total_cost:
            raise NotEnough(f"user {order.user_id} has less than {order.total_cost} credit")
        await asyncio.sleep(0)
        for item_id, quantity in counts.items():
            self.store.set_stock(item_id, stocks[item_id] - quantity)
        self.store.set_credit(order.user_id, credit - order.total_cost)
        self.store.mark_paid(order_id)


class NoRollback(Consistent):
    """Two steps, two commits, and no compensation when the second one fails."""

    async def checkout(self, order_id: str) -> None:
        order = self.store.find_order(order_id)
        with self.store.transaction():
            self.store.take_stock(item_counts(order.items))
        with self.store.transaction():
            self.store.pay(order.user_id, order.total_cost)
            self.store.mark_paid(order_id)


class PhantomSuccess(Consistent):
    def __init__(self, store: Store):
        super().__init__(store)
        self.refusals = 0

    async def checkout(self, order_id: str) -> None:
        try:
            self.store.checkout(order_id)
        except NotEnough:
            self.refusals += 1
            if self.refusals % 2 == 0:
                return
            raise


class LostAck(Consistent):
    def __init__(self, store: Store):
        super().__init__(store)
        self.successes = 0

    async def checkout(self, order_id: str) -> None:
        self.store.checkout(order_id)
        self.successes += 1
        if self.successes % 3 == 0:
            raise DroppedAck(f"checkout of order {order_id} committed, but the reply was lost")


class RecheckoutNoStock(Consistent):
    """A re-checkout is a payment only: the stock of a paid order is taken to be gone already."""

    async def checkout(self, order_id: str) -> None:
        order = self.store.find_order(order_id)
        if not order.paid:
            self.store.checkout(order_id)
            return
        with self.store.transaction():
            self.store.pay(order.user_id, order.total_cost)


# How long a racy add funds holds the credit it read before writing it back: a round trip to the
# database or another service, in which a checkout paying the same user can land.
RACY_ADD_FUNDS_PAUSE_S = 0.005


class RacyAddFunds(Consistent):
    """Read, wait, write: add funds as a read-modify-write outside any transaction."""

    async def add_funds(self, user_id: str, amount: int) -> None:
        credit = self.store.find_credit(user_id)
        await asyncio.sleep(RACY_ADD_FUNDS_PAUSE_S)
        self.store.set_credit(user_id, credit + amount)


class CollapsedLines(Consistent):
    """The order's lines as a dict: a later line of the same item replaces the earlier one."""

    async def checkout(self, order_id: str) -> None:
        with self.store.transaction():
            order = self.store.find_order(order_id)
            self.store.take_stock({item_id: quantity for item_id, quantity in order.items})
            self.store.pay(order.user_id, order.total_cost)
            self.store.mark_paid(order_id)


class FirstItemStock(Consistent):
    """Every line's quantity is taken from the first line's item (an index that never moves on)."""

    async def checkout(self, order_id: str) -> None:
        with self.store.transaction():
            order = self.store.find_order(order_id)
            first = order.items[0][0] if order.items else None
            if first is not None:
                self.store.take_stock({first: sum(quantity for _, quantity in order.items)})
            self.store.pay(order.user_id, order.total_cost)
            self.store.mark_paid(order_id)


_BEHAVIOURS: dict[str, type[Consistent]] = {
    "lost-update": LostUpdate,
    "no-rollback": NoRollback,
    "phantom-success": PhantomSuccess,
    "lost-ack": LostAck,
    "recheckout-no-stock": RecheckoutNoStock,
    "racy-add-funds": RacyAddFunds,
    "collapsed-lines": CollapsedLines,
    "first-item-stock": FirstItemStock,
}


def behaviour(store: Store, anomaly: str | None) -> Consistent:
    return _BEHAVIOURS.get(anomaly, Consistent)(store)
