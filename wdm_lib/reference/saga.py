"""The order service of the three-service reference shop: orders in its own SQLite file, prices and
users asked of the stock and payment services over HTTP, and checkout as a saga.

A checkout is logged (the order's items and cost, under a fresh key) before its first step, and
each step is logged before it is taken: take the stock, charge the user, mark the order paid; when
the payment is refused, give the stock back. The stock and payment services apply each step at most
once per key, so a step can be sent again whenever its reply is in doubt. A checkout whose service
does not answer is answered 503 (it may or may not happen) and handed to recovery, which retries
until it is paid or compensated; on start the service recovers every checkout its log still holds.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from urllib.parse import quote

import aiohttp
from aiohttp import web

from wdm_lib.reference.server import ShopHandlers, _int
from wdm_lib.reference.store import PAYING, RETURNING, TAKING, Checkout, NotEnough, ShopError, Store, UnknownId

# How long a step waits for its reply before it counts as in doubt. Short enough that a paused
# service is noticed, long enough that a busy one is not.
STEP_TIMEOUT_S = 2.0
RETRY_DELAYS_S = (0.05, 0.1, 0.2, 0.5, 1.0)


class Unsure(Exception):
    """A call to another service that has no verdict: no answer, a timeout, or a 5xx."""


class InDoubt(ShopError):
    status = 503


class Peers:
    """HTTP to the stock and payment services: pooled keep-alive connections, a verdict per call."""

    def __init__(self, stock_url: str, payment_url: str, timeout_s: float = STEP_TIMEOUT_S):
        self.stock_url, self.payment_url = stock_url, payment_url
        # sock_read, not total: waiting for a pooled connection is not the peer being slow.
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=128, keepalive_timeout=60),
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=timeout_s, sock_read=timeout_s))

    async def close(self) -> None:
        await self.session.close()

    async def call(self, method: str, url: str, payload: dict | None = None) -> tuple[bool, bytes]:
        """(True, body) for a 2xx, (False, reason) for a 4xx; raises Unsure for anything else."""
        try:
            async with self.session.request(method, url, json=payload) as r:
                body = await r.read()
        except (aiohttp.ClientError, asyncio.TimeoutError) as e:
            raise Unsure(f"{method} {url}: {e.__class__.__name__} {e}".strip()) from None
        if 200 <= r.status < 300:
            return True, body
        if 400 <= r.status < 500:
            return False, body
        raise Unsure(f"{method} {url} answered {r.status}")


class OrderService(ShopHandlers):
    """The /orders endpoints of ShopHandlers, with what the order service does not own asked of its peers."""

    def __init__(self, store: Store, peers: Peers, anomaly: str | None = None):
        self.store, self.peers, self.anomaly = store, peers, anomaly
        self._recovering: dict[str, asyncio.Task] = {}

    def recover_all(self) -> None:
        """On start: finish or compensate every checkout the log says was in flight."""
        if self.anomaly == "no-recovery":
            return  # the bug: what was in flight when the service died stays as it was
        for c in self.store.checkouts_in_flight():
            self._recover_later(c)

    async def close(self) -> None:
        for task in self._recovering.values():
            task.cancel()
        await asyncio.gather(*self._recovering.values(), return_exceptions=True)

    # ---- endpoints that ask a peer
    async def create_order(self, request: web.Request) -> web.Response:
        user_id = request.match_info["user_id"]
        await self._must_exist(f"{self.peers.payment_url}/payment/find_user/{quote(user_id, safe='')}",
                               f"user {user_id}")
        return web.json_response({"order_id": self.store.insert_order(user_id)})

    async def add_item(self, request: web.Request) -> web.Response:
        order_id, item_id = request.match_info["order_id"], request.match_info["item_id"]
        quantity = _int(request, "quantity")
        self.store.find_order(order_id)
        body = await self._must_exist(f"{self.peers.stock_url}/stock/find/{quote(item_id, safe='')}",
                                      f"item {item_id}")
        price = json.loads(body)["price"]
        self.store.add_priced_item(order_id, item_id, quantity, price)
        return web.Response(text=f"order {order_id}: added {quantity} of item {item_id}")

    async def _must_exist(self, url: str, what: str) -> bytes:
        try:
            found, body = await self.peers.call("GET", url)
        except Unsure as e:
            raise InDoubt(f"cannot look {what} up: {e}") from None
        if not found:
            raise UnknownId(f"{what} not found")
        return body

    async def checkout(self, request: web.Request) -> web.Response:
        c = self.store.begin_checkout(request.match_info["order_id"])
        # Shielded: a client that hangs up does not stop a saga half-way.
        await asyncio.shield(self._checkout(c))
        return web.Response(text=f"order {c.order_id}: checkout successful")

    async def _checkout(self, c: Checkout) -> None:
        try:
            await self._drive(c)
        except Unsure as e:
            self._recover_later(c)
            raise InDoubt(f"checkout of order {c.order_id} is in doubt ({e}); it will be completed "
                          f"or compensated") from None

    # ---- the saga
    async def _drive(self, c: Checkout) -> None:
        """From the logged step to the end: returns when the order is paid, raises NotEnough when
        the checkout was refused and nothing of it is left, Unsure when a peer does not answer."""
        reason = ""
        if c.step == TAKING:
            taken, reason = await self._step("POST", f"{self.peers.stock_url}/stock/internal/take/{c.key}",
                                             {"items": c.counts})
            if not taken:
                self.store.end_checkout(c, paid=False)
                raise NotEnough(reason)
            self.store.log_step(c, PAYING)
        if c.step == PAYING:
            paid, reason = await self._pay(c)
            if paid:
                self.store.end_checkout(c, paid=True)
                return
            self.store.log_step(c, RETURNING)
        if c.step == RETURNING:
            await self._step("POST", f"{self.peers.stock_url}/stock/internal/return/{c.key}", {"items": c.counts})
            self.store.end_checkout(c, paid=False)
            raise NotEnough(reason or f"checkout of order {c.order_id} was compensated")

    async def _step(self, method: str, url: str, payload: dict | None = None) -> tuple[bool, str]:
        done, body = await self.peers.call(method, url, payload)
        return done, body.decode(errors="replace").strip()

    async def _pay(self, c: Checkout) -> tuple[bool, str]:
        try:
            return await self._step("POST", f"{self.peers.payment_url}/payment/internal/pay/{c.key}",
                                    {"user_id": c.user_id, "amount": c.total_cost})
        except Unsure:
            if self.anomaly != "retry-double-charge":
                raise
            # The bug: the reply was lost, so the payment is sent again, without its key, through
            # the public endpoint; the first one may have been charged already.
            return await self._step("POST", f"{self.peers.payment_url}/payment/pay/"
                                            f"{quote(c.user_id, safe='')}/{c.total_cost}")

    # ---- recovery
    def _recover_later(self, c: Checkout) -> None:
        if c.key not in self._recovering:
            self._recovering[c.key] = asyncio.get_running_loop().create_task(self._recover(c))

    async def _recover(self, c: Checkout) -> None:
        """Retry until the checkout ends. One that had not taken its stock for sure is compensated
        (its client heard 503, so either outcome is true to the API); one that had is resumed."""
        try:
            for attempt in itertools.count():
                if c.step == TAKING:
                    self.store.log_step(c, RETURNING)
                try:
                    await self._drive(c)
                    return
                except ShopError:
                    return  # refused and compensated: nothing of it is left
                except Unsure:
                    await asyncio.sleep(RETRY_DELAYS_S[min(attempt, len(RETRY_DELAYS_S) - 1)])
        finally:
            del self._recovering[c.key]
