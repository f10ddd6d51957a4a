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
}
# Anomalies that live in the storage, not in the operations: the server picks the store by them.
IN_MEMORY = "volatile"

# Modes of the three-service shop (`wdm serve --services`): bugs that only a system whose checkout
# spans services can have. The order service's saga (saga.py) implements them.
SERVICES_ANOMALIES: dict[str, str] = {
    "no-recovery": "the order service forgets the checkouts it had in flight when it restarts: stock "
                   "taken, never paid, never returned",
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


_BEHAVIOURS: dict[str, type[Consistent]] = {
    "lost-update": LostUpdate,
    "no-rollback": NoRollback,
    "phantom-success": PhantomSuccess,
    "lost-ack": LostAck,
}


def behaviour(store: Store, anomaly: str | None) -> Consistent:
    return _BEHAVIOURS.get(anomaly, Consistent)(store)
