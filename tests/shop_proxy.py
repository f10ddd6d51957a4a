"""A misbehaving front for the reference shop, for the workbench's own tests: the shop systems
the workbench is judged on are slow, answer 5xx, lag their reads, break the API, send endless
replies or hand out ids full of URL syntax, and the reference shop is none of those. Runs an
aiohttp reverse proxy on a thread of its own."""

from __future__ import annotations

import asyncio
import bisect
import gzip
import json
import os
import random
import threading
import time
from dataclasses import dataclass
from urllib.parse import quote, unquote

import aiohttp
from aiohttp import web
from yarl import URL


@dataclass
class Misbehaviour:
    checkout_delay_s: float = 0.0   # checkouts served one at a time, each this slow (a slow system)
    checkout_503_every: int = 0     # every Nth checkout answers 503 without reaching the shop
    read_lag_s: float = 0.0         # a GET answers what it answered up to this long ago (stale reads)
    garbage_path: str = ""          # a 2xx reply of "<html>oops</html>" to paths starting with this
    error_path: str = ""            # a 500 to paths starting with this (a system that crashes there)
    # Every Nth checkout that happened answers 503 (or drops the connection) after it committed.
    ack_503_every: int = 0
    ack_reset_every: int = 0
    # Every Nth checkout that answered 2xx is undone this long after the reply: its stock and credit
    # are given back, the order stays paid (a saga compensating after it replied, wrongly).
    late_undo_every: int = 0
    late_undo_s: float = 0.0
    # Checkouts wait in a queue this long before the shop works them off, whether or not the client
    # is still waiting (a queue that keeps working after the client gave up).
    queue_s: float = 0.0
    # With queue_s: the queue's worker takes the stock but never charges or marks the order paid.
    queue_forgets_payment: bool = False
    # A checkout of an order already paid answers 200 and changes nothing (an idempotent checkout,
    # which API.md does not allow: a 2xx checkout charged and took the stock).
    paid_checkout_noop: bool = False
    # A checkout of an unpaid order that was checked out before (a retry of a refused one) takes the
    # stock, then crashes: 500, nothing charged, nothing given back, the order unpaid.
    retry_crashes_after_stock: bool = False
    # Once checkouts began, every Nth add stock or add funds answers 503: every other one of those
    # after it was applied (an acknowledgement lost), the others without reaching the shop.
    addition_503_every: int = 0
    # Every this many seconds after the first checkout, one more unit of stock appears on the first
    # item checked out: a system that never goes quiet.
    drift_every_s: float = 0.0
    endless_body_path: str = ""     # a reply of endless_body_status to paths starting with this, whose
    endless_body_status: int = 200  # body never ends and comes as fast as it is read
    trickle_body_path: str = ""     # a 200 whose body comes a byte every 0.1 s and never ends
    hostile_ids: bool = False       # every id shows as hostile_id(shop's id); see there
    # What real gateways do to a correct shop's reads: nginx's `gzip on` for JSON (to a client that
    # asks for it), a rate limiter answering every Nth read 429 with Retry-After, a reader that for
    # flap_for_s of every flap_every_s serves the first copy it ever served of a record (a replica
    # that falls back to a stale snapshot), and an order's lines in a new order on every read.
    gzip_replies: bool = False
    reads_429_every: int = 0
    # nginx's limit_req with limit_req_status 429: every Nth write (any request but a GET) is turned
    # away with an HTML page and no Retry-After, before it reaches the shop.
    writes_429_every: int = 0
    # A shop that fails now and then where it hurts most: every Nth write is done, then answered 503.
    writes_503_after_every: int = 0
    flap_every_s: float = 0.0
    flap_for_s: float = 0.0
    shuffle_lines: bool = False
    # Reads served by an asynchronous replica that lags this long: right after every write the
    # proxy copies the records it touched from the shop, and a GET answers the newest copy at least
    # this old (the oldest copy when there is none yet so old), as a replica that applies each write
    # replica_lag_s after the primary does.
    replica_lag_s: float = 0.0
    # A cache in front of every GET whose path starts with this, never invalidated: each record
    # answers the first copy it served, for ever.
    stale_cache_path: str = ""
    # A dependency that a fault schedule takes down and brings back: while the file `down_flag`
    # exists (a fault's `run: touch FILE`, its recovery `rm FILE`), checkouts meet `while_down`:
    # "out-of-stock" answers `400 Out of stock` at once without reaching the shop (the template's
    # order service when its stock service is dead), "freeze" holds every checkout until the file
    # is gone, then forwards it (a payment service stopped with SIGSTOP). Once it was down and is
    # back, every checkout takes `slow_after_s` longer (a shop that comes back slow). Every checkout
    # it forwards takes `latency_s` at least (a shop whose latency the test machine's own load
    # cannot move by 10%).
    down_flag: str = ""
    while_down: str = ""
    slow_after_s: float = 0.0
    latency_s: float = 0.0
    # A slow target: at most serve_at_once requests served at a time, each held serve_s (a course
    # template's gunicorn with two sync workers); the rest wait their turn.
    serve_at_once: int = 0
    serve_s: float = 0.0


# A shop's id as a hostile target shows it: every character that can end a URL segment, path or
# URL, an escape that must not be decoded, dot segments, spaces and non-ASCII.
HOSTILE_PREFIX, HOSTILE_SUFFIX = "../", " #?%41%2F ü/.."
# Where the ids sit in each path of API.md: (first two segments) -> positions of the id segments.
ID_SEGMENTS = {("stock", "find"): (2,), ("stock", "add"): (2,), ("stock", "subtract"): (2,),
               ("payment", "find_user"): (2,), ("payment", "add_funds"): (2,), ("payment", "pay"): (2,),
               ("orders", "create"): (2,), ("orders", "find"): (2,), ("orders", "checkout"): (2,),
               ("orders", "addItem"): (2, 3)}
ID_FIELDS = ("item_id", "user_id", "order_id")


def hostile_id(shop_id: str) -> str:
    return f"{HOSTILE_PREFIX}{shop_id}{HOSTILE_SUFFIX}"


def shop_id(hostile: str) -> str | None:
    if hostile.startswith(HOSTILE_PREFIX) and hostile.endswith(HOSTILE_SUFFIX):
        return hostile[len(HOSTILE_PREFIX):-len(HOSTILE_SUFFIX)]
    return None


class ShopProxy:
    def __init__(self, upstream: str, misbehaviour: Misbehaviour):
        self.upstream = upstream.rstrip("/")
        self.m = misbehaviour
        self._cache: dict[str, tuple[float, int, bytes]] = {}
        self._first_copy: dict[str, tuple[int, bytes]] = {}
        self._copies: dict[str, tuple[list[float], list[tuple[int, bytes]]]] = {}   # replica_lag_s: path -> times, copies
        self._reads = 0
        self._writes = 0
        self._writes_done = 0
        self._t0 = time.monotonic()
        self._checkouts = 0
        self._was_down = False
        self._successes = 0
        self._background: set[asyncio.Task] = set()  # late work that outlives the request
        self.endless_bytes_sent = 0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("proxy did not start")

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._start())
        self._ready.set()
        self._loop.run_forever()

    async def _start(self) -> None:
        self._session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
        self._serial = asyncio.Lock()
        self._tried: set[str] = set()   # orders a checkout was sent for
        self._additions = 0
        self._workers = asyncio.Semaphore(self.m.serve_at_once) if self.m.serve_at_once else None
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]
        self.base_url = f"http://127.0.0.1:{self.port}"

    async def _forward(self, request: web.Request) -> tuple[int, bytes]:
        raw = request.raw_path
        if self.m.hostile_ids:
            raw = self._to_shop(raw)
            if raw is None:
                return 404, b"no such id (ids must come percent-encoded, one path segment each)"
        status, body = await self._upstream(request.method, raw)
        if self.m.hostile_ids and status == 200 and body[:1] == b"{":
            body = json.dumps(self._to_hostile(json.loads(body))).encode()
        return status, body

    async def _upstream(self, method: str, path: str) -> tuple[int, bytes]:
        # encoded=True: the path goes on exactly as it came.
        async with self._session.request(method, URL(self.upstream + path, encoded=True)) as r:
            return r.status, await r.read()

    def _later(self, delay_s: float, work) -> asyncio.Task:
        """Run work() after delay_s on the proxy's loop, whatever becomes of the request."""
        async def run():
            await asyncio.sleep(delay_s)
            return await work()
        task = self._loop.create_task(run())
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return task

    async def _order(self, order_id: str) -> dict:
        status, body = await self._upstream("GET", f"/orders/find/{order_id}")
        assert status == 200, (order_id, status, body)
        return json.loads(body)

    async def _undo(self, order_id: str) -> None:
        order = await self._order(order_id)
        for item_id, quantity in order["items"]:
            await self._upstream("POST", f"/stock/add/{item_id}/{quantity}")
        await self._upstream("POST", f"/payment/add_funds/{order['user_id']}/{order['total_cost']}")

    async def _take_stock_only(self, order_id: str) -> tuple[int, bytes]:
        for item_id, quantity in (await self._order(order_id))["items"]:
            await self._upstream("POST", f"/stock/subtract/{item_id}/{quantity}")
        return 200, b"queued"

    async def _drift(self, item_id: str) -> None:
        while True:
            await asyncio.sleep(self.m.drift_every_s)
            await self._upstream("POST", f"/stock/add/{item_id}/1")

    async def _checkout(self, request: web.Request) -> web.StreamResponse:
        order_id = request.match_info["tail"].rsplit("/", 1)[-1]
        tried = order_id in self._tried
        self._tried.add(order_id)
        if self.m.paid_checkout_noop and (await self._order(order_id))["paid"]:
            return web.Response(status=200, text=f"order {order_id} is paid already")
        if self.m.retry_crashes_after_stock and tried and not (await self._order(order_id))["paid"]:
            await self._take_stock_only(order_id)
            return web.Response(status=500, text="Internal Server Error")
        if self.m.drift_every_s and self._checkouts == 1:
            self._background.add(self._loop.create_task(self._drift((await self._order(order_id))["items"][0][0])))
        if self.m.queue_s:
            work = (lambda: self._take_stock_only(order_id)) if self.m.queue_forgets_payment \
                else (lambda: self._forward(request))
            # Shielded: a client that gives up cancels its handler, not the queue's work.
            status, body = await asyncio.shield(self._later(self.m.queue_s, work))
        else:
            status, body = await self._forward(request)
        if 200 <= status < 300:
            self._successes += 1
            if self.m.late_undo_every and self._successes % self.m.late_undo_every == 0:
                self._later(self.m.late_undo_s, lambda: self._undo(order_id))
            if self.m.ack_503_every and self._successes % self.m.ack_503_every == 0:
                return web.Response(status=503, text="service unavailable")
            if self.m.ack_reset_every and self._successes % self.m.ack_reset_every == 0:
                request.transport.close()  # the checkout committed; the client hears a dropped connection
                return web.Response(status=200)
        return web.Response(status=status, body=body, content_type="text/plain")

    @staticmethod
    def _to_shop(raw_path: str) -> str | None:
        """The shop's own path for one with hostile ids, split where the client put its slashes;
        None when an id segment is not a hostile id sent as one segment."""
        segments = raw_path.lstrip("/").split("/")
        for position in ID_SEGMENTS.get(tuple(segments[:2]), ()):
            found = shop_id(unquote(segments[position])) if position < len(segments) else None
            if found is None:
                return None
            segments[position] = found
        return "/" + "/".join(segments)

    @staticmethod
    def _to_hostile(body: dict) -> dict:
        for key in ID_FIELDS:
            if key in body:
                body[key] = hostile_id(body[key])
        if "items" in body:
            body["items"] = [[hostile_id(i), q] for i, q in body["items"]]
        return body

    async def _endless(self, request: web.Request, status: int, chunk: bytes, pause_s: float) -> web.StreamResponse:
        resp = web.StreamResponse(status=status, headers={"Content-Type": "text/plain"})
        await resp.prepare(request)
        try:
            while True:
                await resp.write(chunk)
                self.endless_bytes_sent += len(chunk)
                await asyncio.sleep(pause_s)
        except ConnectionError:
            return resp  # the client stopped reading, as it should

    async def _addition(self, request: web.Request) -> web.StreamResponse:
        self._additions += 1
        if self._additions % self.m.addition_503_every:
            status, body = await self._forward(request)
            return web.Response(status=status, body=body, content_type="text/plain")
        if self._additions % (2 * self.m.addition_503_every) == 0:
            await self._forward(request)
        return web.Response(status=503, text="service unavailable")

    async def _copy(self, path: str) -> tuple[int, bytes]:
        """The shop's record at `path` now, kept as the replica's newest copy of it."""
        status, body = await self._upstream("GET", path)
        times, copies = self._copies.setdefault(path, ([], []))
        times.append(time.monotonic())
        copies.append((status, body))
        return status, body

    async def _replicate(self, raw_path: str, body: bytes) -> None:
        """Copy every record a write touched (the item, the user, or the order with its items and
        user; a new record from its id in the reply)."""
        parts = raw_path.strip("/").split("/")
        paths = []
        if parts[:2] in (["stock", "add"], ["stock", "subtract"]):
            paths.append(f"/stock/find/{parts[2]}")
        elif parts[:2] in (["payment", "add_funds"], ["payment", "pay"]):
            paths.append(f"/payment/find_user/{parts[2]}")
        elif parts[:2] in (["orders", "checkout"], ["orders", "addItem"]):
            status, order = await self._copy(f"/orders/find/{parts[2]}")
            if status == 200:
                order = json.loads(order)
                paths += [f"/stock/find/{quote(i, safe='')}" for i, _ in order["items"]]
                paths.append(f"/payment/find_user/{quote(order['user_id'], safe='')}")
        elif body[:1] == b"{":
            made = json.loads(body)
            for key, path in (("item_id", "/stock/find/"), ("user_id", "/payment/find_user/"), ("order_id", "/orders/find/")):
                if key in made:
                    paths.append(path + quote(made[key], safe=""))
        for path in paths:
            await self._copy(path)

    async def _replica(self, request: web.Request) -> web.StreamResponse:
        """A write goes to the shop, then its records are copied; a read answers a copy at least
        replica_lag_s old."""
        if request.method != "GET":
            status, body = await self._forward(request)
            if 200 <= status < 300:
                await self._replicate(request.raw_path, body)
            return web.Response(status=status, body=body, content_type="text/plain")
        if request.raw_path not in self._copies:
            status, body = await self._copy(request.raw_path)
        else:
            times, copies = self._copies[request.raw_path]
            status, body = copies[max(bisect.bisect_right(times, time.monotonic() - self.m.replica_lag_s) - 1, 0)]
        return web.Response(status=status, body=body, content_type="application/json")

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        if self._workers is None:
            return await self._serve_one(request)
        async with self._workers:
            await asyncio.sleep(self.m.serve_s)
            return await self._serve_one(request)

    async def _serve_one(self, request: web.Request) -> web.StreamResponse:
        path = request.path
        if self.m.replica_lag_s:
            return await self._replica(request)
        if self.m.stale_cache_path and request.method == "GET" and path.startswith(self.m.stale_cache_path):
            if request.raw_path not in self._first_copy:
                self._first_copy[request.raw_path] = await self._forward(request)
            status, body = self._first_copy[request.raw_path]
            return web.Response(status=status, body=body, content_type="application/json")
        if self.m.writes_429_every and request.method != "GET":
            self._writes += 1
            if self._writes % self.m.writes_429_every == 0:
                return web.Response(status=429, content_type="text/html", text=(
                    "<html><head><title>429 Too Many Requests</title></head><body><center><h1>429 Too Many "
                    "Requests</h1></center><hr><center>nginx/1.22.1</center></body></html>"))
        if self.m.writes_503_after_every and request.method != "GET":
            self._writes_done += 1
            if self._writes_done % self.m.writes_503_after_every == 0:
                await self._forward(request)
                return web.Response(status=503, text="Service Unavailable")
        if self.m.addition_503_every and self._checkouts and path.startswith(("/stock/add/", "/payment/add_funds/")):
            return await self._addition(request)
        if self.m.endless_body_path and path.startswith(self.m.endless_body_path):
            return await self._endless(request, self.m.endless_body_status, b"x" * 65536, 0)
        if self.m.trickle_body_path and path.startswith(self.m.trickle_body_path):
            return await self._endless(request, 200, b"x", 0.1)
        if self.m.garbage_path and path.startswith(self.m.garbage_path):
            return web.Response(status=200, text="<html>oops</html>")
        if self.m.error_path and path.startswith(self.m.error_path):
            return web.Response(status=500, text="Internal Server Error")
        if path.startswith("/orders/checkout/") and self.m.down_flag:
            return await self._dependency(request)
        if path.startswith("/orders/checkout/"):
            self._checkouts += 1
            if self.m.checkout_503_every and self._checkouts % self.m.checkout_503_every == 0:
                return web.Response(status=503, text="service unavailable")
            if self.m.checkout_delay_s:
                async with self._serial:
                    await asyncio.sleep(self.m.checkout_delay_s)
                    status, body = await self._forward(request)
                return web.Response(status=status, body=body, content_type="text/plain")
            return await self._checkout(request)
        if request.method == "GET" and self.m.read_lag_s:
            cached = self._cache.get(path)
            if cached and time.monotonic() - cached[0] < self.m.read_lag_s:
                return web.Response(status=cached[1], body=cached[2], content_type="application/json")
            status, body = await self._forward(request)
            self._cache[path] = (time.monotonic(), status, body)
            return web.Response(status=status, body=body, content_type="application/json")
        if request.method == "GET" and (self.m.reads_429_every or self.m.flap_every_s or self.m.shuffle_lines
                                        or self.m.gzip_replies):
            return await self._gateway_read(request)
        status, body = await self._forward(request)
        ctype = "application/json" if body[:1] in (b"{", b"[") else "text/plain"
        return web.Response(status=status, body=body, content_type=ctype)

    async def _dependency(self, request: web.Request) -> web.StreamResponse:
        if os.path.exists(self.m.down_flag):
            self._was_down = True
            if self.m.while_down == "out-of-stock":
                return web.Response(status=400, text="Out of stock")
            while os.path.exists(self.m.down_flag):
                await asyncio.sleep(0.005)
        elif self._was_down and self.m.slow_after_s:
            await asyncio.sleep(self.m.slow_after_s)
        await asyncio.sleep(self.m.latency_s)
        status, body = await self._forward(request)
        return web.Response(status=status, body=body, content_type="text/plain")

    async def _gateway_read(self, request: web.Request) -> web.StreamResponse:
        self._reads += 1
        if self.m.reads_429_every and self._reads % self.m.reads_429_every == 0:
            return web.Response(status=429, text="Too Many Requests", headers={"Retry-After": "1"})
        status, body = await self._forward(request)
        first = self._first_copy.setdefault(request.path, (status, body))
        if self.m.flap_every_s and (time.monotonic() - self._t0) % self.m.flap_every_s < self.m.flap_for_s:
            status, body = first
        if self.m.shuffle_lines and status == 200 and request.path.startswith("/orders/find/"):
            order = json.loads(body)
            random.shuffle(order["items"])
            body = json.dumps(order).encode()
        headers = {}
        if self.m.gzip_replies and "gzip" in request.headers.get("Accept-Encoding", "") and body[:1] == b"{":
            body, headers["Content-Encoding"] = gzip.compress(body), "gzip"
        return web.Response(status=status, body=body, content_type="application/json", headers=headers)

    def urls(self) -> dict[str, str]:
        return {"ORDER_URL": self.base_url, "PAYMENT_URL": self.base_url, "STOCK_URL": self.base_url}

    def close(self) -> None:
        async def stop():
            for task in list(self._background):
                task.cancel()
            await self._runner.cleanup()
            await self._session.close()
        asyncio.run_coroutine_threadsafe(stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def __enter__(self) -> "ShopProxy":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
