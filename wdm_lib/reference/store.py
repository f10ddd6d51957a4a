"""The reference shop's state: items, users and orders in one SQLite file.

One connection, used from the event loop thread only. Every public operation is one transaction,
so serial calls make the shop consistent; WAL with synchronous=NORMAL makes every commit survive
a kill -9 of the process (not a power cut, which the shop does not promise).
"""

from __future__ import annotations

import json
import random
import sqlite3
import uuid
from contextlib import contextmanager
from typing import Callable, Iterator

# Amounts larger than this are refused so that no sum can leave SQLite's 64-bit integers.
MAX_VALUE = 2**62
# A batch init larger than this is refused: it would hold the shop for minutes.
MAX_BATCH = 10_000_000


class ShopError(Exception):
    """A refused request: `status` is the HTTP status, the message the one-line reason."""

    status = 400


class BadInput(ShopError):
    status = 400


class UnknownId(ShopError):
    status = 404


class NotEnough(ShopError):
    """Not enough stock or credit (or a total that would overflow): the request changed nothing."""

    status = 409


_SCHEMA = """
CREATE TABLE IF NOT EXISTS items (id TEXT PRIMARY KEY, stock INTEGER NOT NULL, price INTEGER NOT NULL)
    WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS users (id TEXT PRIMARY KEY, credit INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS orders (id TEXT PRIMARY KEY, user_id TEXT NOT NULL, paid INTEGER NOT NULL,
    items TEXT NOT NULL, total_cost INTEGER NOT NULL) WITHOUT ROWID;
-- Three-service shop only. The order service's saga log: one row per checkout in flight.
CREATE TABLE IF NOT EXISTS checkouts (key TEXT PRIMARY KEY, order_id TEXT NOT NULL, user_id TEXT NOT NULL,
    items TEXT NOT NULL, total_cost INTEGER NOT NULL, step TEXT NOT NULL) WITHOUT ROWID;
-- The stock and payment services' idempotency keys: what became of each saga step they were sent.
CREATE TABLE IF NOT EXISTS steps (key TEXT PRIMARY KEY, state TEXT NOT NULL) WITHOUT ROWID;
-- The stock service's holds: stock a saga has taken and not yet confirmed. It can no longer be
-- sold, but a reader still finds it on the shelf until its checkout is paid, so no one ever sees
-- the stock of a checkout that is then refused (its payment refused, its stock given back).
CREATE TABLE IF NOT EXISTS held (key TEXT NOT NULL, item_id TEXT NOT NULL, quantity INTEGER NOT NULL,
    PRIMARY KEY (key, item_id)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS held_by_item ON held (item_id);
"""

# States of an idempotent step in the stock or payment service.
APPLIED, REFUSED, UNDONE = "applied", "refused", "undone"


def new_id() -> str:
    # 32 hex digits never equal a batch id "0".."n-1" for any n the shop accepts.
    return uuid.uuid4().hex


def item_counts(items: list[list]) -> dict[str, int]:
    """An order's items as {item_id: total quantity}: the same item may be listed twice."""
    counts: dict[str, int] = {}
    for item_id, quantity in items:
        counts[item_id] = counts.get(item_id, 0) + quantity
    return counts


class Order:
    __slots__ = ("order_id", "user_id", "paid", "items", "total_cost")

    def __init__(self, order_id: str, user_id: str, paid: bool, items: list[list], total_cost: int):
        self.order_id, self.user_id, self.paid = order_id, user_id, paid
        self.items, self.total_cost = items, total_cost

    def as_json(self) -> dict:
        return {"order_id": self.order_id, "paid": self.paid, "items": self.items,
                "user_id": self.user_id, "total_cost": self.total_cost}


class Checkout:
    """One checkout saga as the order service logged it: what to take and charge, and the step
    it had reached (`TAKING`, `PAYING` or `RETURNING`)."""

    __slots__ = ("key", "order_id", "user_id", "counts", "total_cost", "step")

    def __init__(self, key: str, order_id: str, user_id: str, counts: dict[str, int], total_cost: int, step: str):
        self.key, self.order_id, self.user_id = key, order_id, user_id
        self.counts, self.total_cost, self.step = counts, total_cost, step


TAKING, PAYING, RETURNING = "taking", "paying", "returning"


class Store:
    def __init__(self, path: str):
        # isolation_level=None: no implicit transactions; `transaction()` says where they are.
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False,
                                   cached_statements=256)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        self._x = self._db.execute

    def close(self) -> None:
        self._db.close()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        self._x("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._x("ROLLBACK")
            raise
        self._x("COMMIT")

    # ---- stock
    def create_item(self, price: int) -> str:
        item_id = new_id()
        self._x("INSERT INTO items (id, stock, price) VALUES (?, 0, ?)", (item_id, price))
        return item_id

    def batch_init_items(self, n: int, starting_stock: int, item_price: int) -> None:
        with self.transaction():
            self._db.executemany("INSERT OR REPLACE INTO items (id, stock, price) VALUES (?, ?, ?)",
                                 ((str(i), starting_stock, item_price) for i in range(n)))

    def find_item(self, item_id: str) -> tuple[int, int]:
        """(stock, price): the stock on the shelf, held stock included (see `hold_stock`)."""
        row = self._x("SELECT stock + COALESCE((SELECT SUM(quantity) FROM held WHERE item_id = items.id), 0), price "
                      "FROM items WHERE id = ?", (item_id,)).fetchone()
        if row is None:
            raise UnknownId(f"item {item_id} not found")
        return row

    def add_stock(self, item_id: str, amount: int) -> None:
        cur = self._x("UPDATE items SET stock = stock + ? WHERE id = ? AND stock <= ?",
                      (amount, item_id, MAX_VALUE - amount))
        if cur.rowcount == 0:
            self.find_item(item_id)
            raise NotEnough(f"stock of item {item_id} would exceed {MAX_VALUE}")

    def subtract_stock(self, item_id: str, amount: int) -> None:
        cur = self._x("UPDATE items SET stock = stock - ? WHERE id = ? AND stock >= ?",
                      (amount, item_id, amount))
        if cur.rowcount == 0:
            self.find_item(item_id)
            raise NotEnough(f"item {item_id} has less than {amount} in stock")

    def set_stock(self, item_id: str, stock: int) -> None:
        self._x("UPDATE items SET stock = ? WHERE id = ?", (stock, item_id))

    def take_stock(self, counts: dict[str, int]) -> None:
        """Subtract every item's quantity, or raise (the caller's transaction rolls back)."""
        for item_id, quantity in counts.items():
            if quantity > MAX_VALUE:
                raise NotEnough(f"item {item_id} has less than {quantity} in stock")
            self.subtract_stock(item_id, quantity)

    def hold_stock(self, key: str, counts: dict[str, int]) -> None:
        """Take every item's quantity for the saga step `key`, held: no other checkout can have it,
        and readers still see it until `release_hold` (the checkout was paid) or until it is given
        back (it was refused). Raises like take_stock."""
        self.take_stock(counts)
        self._db.executemany("INSERT INTO held (key, item_id, quantity) VALUES (?, ?, ?)",
                             ((key, item_id, quantity) for item_id, quantity in counts.items()))

    def release_hold(self, key: str) -> None:
        """The stock held for `key` is gone for good (its checkout was paid), or back on the shelf
        (given back): either way no longer shown as held. Idempotent."""
        self._x("DELETE FROM held WHERE key = ?", (key,))

    # ---- payment
    def create_user(self) -> str:
        user_id = new_id()
        self._x("INSERT INTO users (id, credit) VALUES (?, 0)", (user_id,))
        return user_id

    def batch_init_users(self, n: int, starting_money: int) -> None:
        with self.transaction():
            self._db.executemany("INSERT OR REPLACE INTO users (id, credit) VALUES (?, ?)",
                                 ((str(i), starting_money) for i in range(n)))

    def find_credit(self, user_id: str) -> int:
        row = self._x("SELECT credit FROM users WHERE id = ?", (user_id,)).fetchone()
        if row is None:
            raise UnknownId(f"user {user_id} not found")
        return row[0]

    def add_funds(self, user_id: str, amount: int) -> None:
        cur = self._x("UPDATE users SET credit = credit + ? WHERE id = ? AND credit <= ?",
                      (amount, user_id, MAX_VALUE - amount))
        if cur.rowcount == 0:
            self.find_credit(user_id)
            raise NotEnough(f"credit of user {user_id} would exceed {MAX_VALUE}")

    def pay(self, user_id: str, amount: int) -> None:
        cur = self._x("UPDATE users SET credit = credit - ? WHERE id = ? AND credit >= ?",
                      (amount, user_id, amount))
        if cur.rowcount == 0:
            self.find_credit(user_id)
            raise NotEnough(f"user {user_id} has less than {amount} credit")

    def set_credit(self, user_id: str, credit: int) -> None:
        self._x("UPDATE users SET credit = ? WHERE id = ?", (credit, user_id))

    # ---- orders
    def create_order(self, user_id: str) -> str:
        self.find_credit(user_id)
        return self.insert_order(user_id)

    def insert_order(self, user_id: str) -> str:
        """A new empty order for a user the caller knows exists."""
        order_id = new_id()
        self._x("INSERT INTO orders (id, user_id, paid, items, total_cost) VALUES (?, ?, 0, '[]', 0)",
                (order_id, user_id))
        return order_id

    def batch_init_orders(self, n: int, n_items: int, n_users: int, item_price: int) -> None:
        r = random.Random()
        rand = r.randrange
        rows = ((str(i), str(rand(n_users)), f'[["{rand(n_items)}",1],["{rand(n_items)}",1]]')
                for i in range(n))
        with self.transaction():
            self._db.executemany(
                "INSERT OR REPLACE INTO orders (id, user_id, paid, items, total_cost) "
                f"VALUES (?, ?, 0, ?, {2 * item_price})", rows)

    def find_order(self, order_id: str) -> Order:
        row = self._x("SELECT user_id, paid, items, total_cost FROM orders WHERE id = ?",
                      (order_id,)).fetchone()
        if row is None:
            raise UnknownId(f"order {order_id} not found")
        return Order(order_id, row[0], bool(row[1]), json.loads(row[2]), row[3])

    def add_item(self, order_id: str, item_id: str, quantity: int) -> None:
        _, price = self.find_item(item_id)
        self.add_priced_item(order_id, item_id, quantity, price)

    def add_priced_item(self, order_id: str, item_id: str, quantity: int, price: int) -> None:
        """addItem with the price already looked up (by the stock service, in the three-service shop)."""
        with self.transaction():
            order = self.find_order(order_id)
            total_cost = order.total_cost + quantity * price
            if total_cost > MAX_VALUE:
                raise NotEnough(f"total cost of order {order_id} would exceed {MAX_VALUE}")
            order.items.append([item_id, quantity])
            self._x("UPDATE orders SET items = ?, total_cost = ? WHERE id = ?",
                    (json.dumps(order.items), total_cost, order_id))

    def mark_paid(self, order_id: str) -> None:
        self._x("UPDATE orders SET paid = 1 WHERE id = ?", (order_id,))

    def checkout(self, order_id: str) -> None:
        """All or nothing: every item's stock, the user's credit and the paid flag, or no change."""
        with self.transaction():
            order = self.find_order(order_id)
            self.take_stock(item_counts(order.items))
            self.pay(order.user_id, order.total_cost)
            self.mark_paid(order_id)

    # ---- the three-service shop: the order service's saga log
    def begin_checkout(self, order_id: str) -> Checkout:
        """Log a new checkout saga of the order as it is now, before its first step is taken."""
        order = self.find_order(order_id)
        c = Checkout(new_id(), order_id, order.user_id, item_counts(order.items), order.total_cost, TAKING)
        self._x("INSERT INTO checkouts (key, order_id, user_id, items, total_cost, step) VALUES (?, ?, ?, ?, ?, ?)",
                (c.key, order_id, c.user_id, json.dumps(c.counts), c.total_cost, TAKING))
        return c

    def log_step(self, c: Checkout, step: str) -> None:
        self._x("UPDATE checkouts SET step = ? WHERE key = ?", (step, c.key))
        c.step = step

    def end_checkout(self, c: Checkout, paid: bool) -> None:
        """The saga is over: the order is paid (every step done) or nothing of it is left. Two
        commits, not one transaction: a crash between them leaves a paid order whose saga is
        still logged, and resuming it (its payment step answers what it did) ends the same."""
        if paid:
            self.mark_paid(c.order_id)
        self._x("DELETE FROM checkouts WHERE key = ?", (c.key,))

    def checkouts_in_flight(self) -> list[Checkout]:
        return [Checkout(key, order_id, user_id, json.loads(items), total_cost, step)
                for key, order_id, user_id, items, total_cost, step in
                self._x("SELECT key, order_id, user_id, items, total_cost, step FROM checkouts")]

    # ---- the three-service shop: idempotent steps of the stock and payment services
    def _step_state(self, key: str) -> str | None:
        row = self._x("SELECT state FROM steps WHERE key = ?", (key,)).fetchone()
        return None if row is None else row[0]

    def apply_once(self, key: str, step: Callable[[], None]) -> None:
        """Run `step` and record its key in one transaction, unless the key was seen before: a
        retried step answers what the first one did. A refusal is recorded too, so a first attempt
        that arrives after its retry was refused cannot apply late."""
        state = self._step_state(key)
        if state is None:
            try:
                with self.transaction():
                    step()
                    self._x("INSERT INTO steps (key, state) VALUES (?, ?)", (key, APPLIED))
            except ShopError:
                self._x("INSERT INTO steps (key, state) VALUES (?, ?)", (key, REFUSED))
                raise
        elif state != APPLIED:
            raise NotEnough(f"step {key} was {'refused' if state == REFUSED else 'compensated'} before")

    def undo_once(self, key: str, undo: Callable[[], None]) -> None:
        """Compensate the step of that key if it was applied; either way leave a record, so the
        step itself, arriving late, is refused. Idempotent."""
        with self.transaction():
            state = self._step_state(key)
            if state == APPLIED:
                undo()
            if state in (None, APPLIED):
                self._x("INSERT OR REPLACE INTO steps (key, state) VALUES (?, ?)", (key, UNDONE))
