"""The order service of the three-service reference shop: orders in its own SQLite file, prices and
users asked of the stock and payment services over HTTP, and checkout as a saga.

A checkout is logged (the order's items and cost, under a fresh key) before its first step, and
each step is logged before it is taken: take the stock (held: readers still see it on the shelf),
charge the user, confirm the stock (now readers see it gone), mark the order paid; when the payment
is refused, give the stock back. So no read ever shows the stock of a checkout that is refused. The stock and payment services apply each step at most
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
# Short: a checkout in doubt should settle soon after its service is back, while a reader waits
# for a quiet state.
RETRY_DELAYS_S = (0.02, 0.05, 0.1, 0.2, 0.25)
# Batches of steps on their way to one service at a time; more steps wait for the next batch.
BATCHES_IN_FLIGHT = 4
MAX_STEPS_PER_BATCH = 256


class Unsure(Exception):
    """A call to another service that has no verdict: no answer, a timeout, or a 5xx."""


class InDoubt(ShopError):
    status = 503


class Peers:
    """HTTP to the stock and payment services: pooled keep-alive connections, a verdict per call."""

    def __init__(self, stock_url: str, payment_url: str, timeout_s: float = STEP_TIMEOUT_S):
        self.stock_url, self.payment_url = stock_url, payment_url
        self.stock_steps = StepBatcher(self, f"{stock_url}/stock/internal/steps")
        self.payment_steps = StepBatcher(self, f"{payment_url}/payment/internal/steps")
        # sock_read, not total: waiting for a pooled connection is not the peer being slow.
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=128, keepalive_timeout=60),
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=timeout_s, sock_read=timeout_s),
            cookie_jar=aiohttp.DummyCookieJar(), auto_decompress=False,
            skip_auto_headers=("User-Agent", "Accept-Encoding"))

    async def close(self) -> None:
        await self.session.close()

    async def call(self, method: str, url: str, payload: dict | list | None = None) -> tuple[bool, bytes]:
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


class StepBatcher:
    """Saga steps for one service, sent together: the steps of every checkout that reached the same
    point in one turn of the event loop, or while earlier batches were on their way, go in one
    request. Under load one HTTP round trip carries tens of steps; alone, a step goes at once.
    Each step keeps its own key and its own verdict; a batch without an answer leaves every step
    of it in doubt."""

    def __init__(self, peers: Peers, url: str):
        self.peers, self.url = peers, url
        self.waiting: list[tuple[dict, asyncio.Future]] = []
        self.in_flight = 0
        self.flush_soon = False

    async def send(self, step: dict) -> tuple[bool, str]:
        """(True, "") when the step was taken, (False, reason) when it was refused; raises Unsure."""
        loop = asyncio.get_running_loop()
        done = loop.create_future()
        self.waiting.append((step, done))
        if self.in_flight < BATCHES_IN_FLIGHT and not self.flush_soon:
            self.flush_soon = True
            loop.call_soon(self._flush)
        return await done

    def _flush(self) -> None:
        self.flush_soon = False
        if self.waiting:
            batch, self.waiting = self.waiting[:MAX_STEPS_PER_BATCH], self.waiting[MAX_STEPS_PER_BATCH:]
            self.in_flight += 1
            asyncio.get_running_loop().create_task(self._post(batch))

    async def _post(self, batch: list[tuple[dict, asyncio.Future]]) -> None:
        try:
            answered, body = await self.peers.call("POST", self.url, [step for step, _ in batch])
            verdicts = json.loads(body) if answered else None
            if not (isinstance(verdicts, list) and len(verdicts) == len(batch)):
                raise Unsure(f"POST {self.url} did not answer the batch: {body[:200].decode(errors='replace')}")
            for (_, done), (status, reason) in zip(batch, verdicts):
                if not done.done():
                    done.set_result((200 <= status < 300, reason))
        except (Unsure, ValueError) as e:
            for _, done in batch:
                if not done.done():
                    done.set_exception(Unsure(str(e)))
        finally:
            self.in_flight -= 1
            self._flush()


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
        # aiohttp lets a handler finish when its client hangs up (no handler_cancellation), so a
        # saga stops half-way only when the service dies; then its log resumes it on start.
        c = self.store.begin_checkout(request.match_info["order_id"])
        try:
            await self._drive(c)
        except Unsure as e:
            self._recover_later(c)
            raise InDoubt(f"checkout of order {c.order_id} is in doubt ({e}); it will be completed "
                          f"or compensated") from None
        return web.Response(text=f"order {c.order_id}: checkout successful")

    # ---- the saga
    async def _drive(self, c: Checkout) -> None:
        """From the logged step to the end: returns when the order is paid, raises NotEnough when
        the checkout was refused and nothing of it is left, Unsure when a peer does not answer."""
        reason = ""
        if c.step == TAKING:
            taken, reason = await self.peers.stock_steps.send({"op": "take", "key": c.key, "items": c.counts})
            if not taken:
                self.store.end_checkout(c, paid=False)
                raise NotEnough(reason)
            self.store.log_step(c, PAYING)
        if c.step == PAYING:
            paid, reason = await self._pay(c)
            if paid:
                # Before the reply: a read sent after it must see the stock gone (the hold is
                # released once per key; a retry after a restart sends it again, harmlessly).
                await self.peers.stock_steps.send({"op": "confirm", "key": c.key})
                self.store.end_checkout(c, paid=True)
                return
            self.store.log_step(c, RETURNING)
        if c.step == RETURNING:
            await self.peers.stock_steps.send({"op": "return", "key": c.key, "items": c.counts})
            self.store.end_checkout(c, paid=False)
            raise NotEnough(reason or f"checkout of order {c.order_id} was compensated")

    async def _pay(self, c: Checkout) -> tuple[bool, str]:
        try:
            return await self.peers.payment_steps.send({"op": "pay", "key": c.key, "user_id": c.user_id,
                                                        "amount": c.total_cost})
        except Unsure:
            if self.anomaly != "retry-double-charge":
                raise
            # The bug: the reply was lost, so the payment is sent again, without its key, through
            # the public endpoint; the first one may have been charged already.
            paid, body = await self.peers.call(
                "POST", f"{self.peers.payment_url}/payment/pay/{quote(c.user_id, safe='')}/{c.total_cost}")
            return paid, body.decode(errors="replace")

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
