"""The shop API of API.md, one async method per endpoint, over one shared aiohttp session.

Every call returns a `Reply` whose `outcome` follows API.md exactly: 2xx is `ok`, 4xx is `fail`,
and anything else (5xx, a redirect, a timeout, a reset connection) is `unknown`, because the
operation may or may not have happened. The only exception: a connection that could not be opened
at all sent nothing, so that is a definite `fail`. A 2xx reply whose body breaks the contract
raises ContractError: the target is not speaking the API, and no verdict over it would mean anything.
So does a reply of any status whose body runs past MAX_BODY: reading stops there, so what a target
sends never costs more memory than that.

Ids are opaque strings (API.md): each goes into the URL percent-encoded as one path segment, and the
URL is sent exactly as built, so `a/b`, `a#b`, `a%41b` and `..` reach the target as those ids.
"""

from __future__ import annotations

import asyncio
import html.parser
import json
import re
import resource
import time
import zlib
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable, Iterator

from urllib.parse import quote

import aiohttp
from yarl import URL

from wdm_lib.config import Target
from wdm_lib.errors import ContractError, TargetUnreachable
from wdm_lib.history import FAIL, INCOMPLETE_ERROR, OK, TIMEOUT_ERROR, UNKNOWN
from wdm_lib.workloads.shop_rows import MAX_BODY, outcome

BODY_EXCERPT = 200
# The two 4xx statuses that say "not now" rather than "no" (API.md): the request timed out (408), or
# a rate limiter in front of the shop turned it away (429). Refused like any 4xx, so sent again safely.
NOT_NOW = (408, 429)
# The first request of a run waits this long for a first byte, whatever --timeout says: a port that
# accepts connections and never answers is told from a slow shop in seconds, not after a minute
# (the whole run then ends within about 10 s). A shop is slow under load, not on its first request.
FIRST_REPLY_S = 8.0


@dataclass(slots=True)
class Reply:
    endpoint: str        # the API.md row, e.g. "POST /orders/checkout/{order_id}"
    url: str
    outcome: str         # ok / fail / unknown
    status: int | None   # None when no complete reply came back (`error` says what did)
    invoke_ns: int       # wall clock when the request was sent
    complete_ns: int     # wall clock when the reply (or the error) arrived
    body: Any = None     # the parsed JSON of a 2xx reply that carries data
    error: str = ""      # why it was not ok, in a few words
    # No connection could be made: nothing was sent (a definite failure), and the first sign of a
    # target that is not there. A kind of error told by this flag, never by matching `error`.
    unreachable: bool = False
    retry_after_s: float | None = None   # what a 429 or 503 asked for (Retry-After), if anything
    html: bool = False   # a reply that is not 2xx and is an HTML page (its words are in `error`)

    @property
    def latency_s(self) -> float:
        return (self.complete_ns - self.invoke_ns) / 1e9


# --- what a 2xx body must hold, per endpoint (API.md); None: a text reply we do not read ---------

def _is_int(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_id(v: object) -> bool:
    # Ids are opaque strings; a system that hands out integers still names its rows unambiguously.
    return isinstance(v, str) or _is_int(v)


def _is_items(v: object) -> bool:
    return isinstance(v, list) and all(
        isinstance(p, (list, tuple)) and len(p) == 2 and _is_id(p[0]) and _is_int(p[1]) for p in v)


Schema = dict[str, Callable[[object], bool]]
ITEM_ID: Schema = {"item_id": _is_id}
USER_ID: Schema = {"user_id": _is_id}
ORDER_ID: Schema = {"order_id": _is_id}
ITEM: Schema = {"stock": _is_int, "price": _is_int}
USER: Schema = {"credit": _is_int}
ORDER: Schema = {"paid": lambda v: isinstance(v, bool), "items": _is_items, "user_id": _is_id,
                 "total_cost": _is_int}
EXPECTED = {
    "item_id": "a string id", "user_id": "a string id", "order_id": "a string id",
    "stock": "an integer", "price": "an integer", "credit": "an integer", "total_cost": "an integer",
    "paid": "a boolean", "items": "a list of [item_id, quantity] pairs",
}


def _normalise(body: dict, schema: Schema) -> dict:
    out = dict(body)
    for key in ("item_id", "user_id", "order_id"):
        if key in schema and key in out:
            out[key] = str(out[key])
    if "items" in schema:
        out["items"] = [[str(i), q] for i, q in out["items"]]
    return out


# --- a page from a web server that is not the shop -------------------------------------------------
# A shop's replies are JSON or short text (API.md), whatever Content-Type it sends (Flask says text/html
# for a plain string). A body that opens as an HTML document is a page: a web server's error page, the
# shop's own framework's (Flask's abort) or its gateway's (nginx's 502). It is said in its words, never
# dumped: a terminal full of markup hides the sentence.
HTML_START = re.compile(r"\s*(<!--.*?-->\s*)*<(!doctype\s+html|html)[\s>]", re.IGNORECASE | re.DOTALL)
# Statuses by which no server speaking the API answers these calls: the method is not served there
# (405, 501), or a path that names no record was not found (404).
NOT_SERVED = (405, 501)


def is_html(text: str) -> bool:
    return HTML_START.match(text) is not None


class _Words(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.words: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag, attrs):
        self._skip += tag in ("script", "style")

    def handle_endtag(self, tag):
        self._skip -= tag in ("script", "style") and self._skip > 0

    def handle_data(self, data):
        if not self._skip:
            self.words += data.split()


def page_words(text: str, most: int = 100) -> str:
    """What an HTML page says (its title, heading and first lines), without its markup."""
    parser = _Words()
    parser.feed(text)
    said = " ".join(parser.words)
    return said if len(said) <= most else said[:most - 1] + "…"


def not_the_api(reply: Reply) -> bool:
    """An HTML page in answer to a call that a server speaking the API serves: another web server
    is at that address. (A 404 to a path naming a record may be the shop's: that record is unknown.)"""
    return reply.html and (reply.status in NOT_SERVED or (reply.status == 404 and "_id}" not in reply.endpoint))


def origin(url: str) -> str:
    return str(URL(url, encoded=True).origin())


def check_body(endpoint: str, status: int, text: str, schema: Schema, url: str = "") -> dict:
    """The parsed body of a 2xx reply, or ContractError naming the endpoint, status and body."""
    if is_html(text):
        raise ContractError(f"{endpoint} answered {status} with an HTML page ({page_words(text)}): this is not the "
                            f"shop API (an HTML page from {origin(url) if url else 'there'}); expected JSON with "
                            f"{', '.join(schema)} (is urls.json pointing at the shop's port?).")
    fault = None
    try:
        body = json.loads(text)
    except json.JSONDecodeError:
        body, fault = None, "not JSON"
    except ValueError as e:  # JSON, but a number Python refuses to convert (over 4,300 digits)
        body, fault = None, f"JSON holding a value no shop's id or amount can be ({e})"
    if fault is None and not isinstance(body, dict):
        fault = "not a JSON object"
    if fault is None:
        for key, ok in schema.items():
            if key not in body:
                fault = f"no field {key!r}"
                break
            if not ok(body[key]):
                fault = f"field {key!r} is {body[key]!r}, expected {EXPECTED[key]}"
                break
    if fault:
        raise ContractError(f"{endpoint} answered {status} with {text[:BODY_EXCERPT]!r}: {fault}; "
                            f"API.md expects JSON with {', '.join(schema)}.")
    return _normalise(body, schema)


def segment(value: object) -> str:
    """An id (or a number) as one URL path segment: every character that could end the segment,
    the path or the URL (`/ ? # %`, spaces, non-ASCII) is percent-encoded."""
    return quote(str(value), safe="")


class _TooLong(Exception):
    """A reply body ran past MAX_BODY."""


class _Undecodable(Exception):
    """A reply body in an encoding the client did not ask for, or not valid in the one it names."""


# What the client asks for, and decodes as the body arrives: a gateway (nginx with gzip on) may
# compress JSON replies, and a client that advertised an encoding it would not decode would take
# a correct shop's replies for garbage.
ACCEPT_ENCODING = "gzip, deflate"


class _Decoder:
    """A reply body decoded chunk by chunk, never more than the room left under the cap at a time:
    a compression bomb is found out after at most MAX_BODY bytes of output, not after all of it."""

    def __init__(self, content_encoding: str | None):
        self.encoding = (content_encoding or "identity").strip().lower()
        if self.encoding in ("", "identity"):
            self._z = None
        elif self.encoding in ("gzip", "x-gzip"):
            self._z = zlib.decompressobj(16 + zlib.MAX_WBITS)
        elif self.encoding == "deflate":
            self._z = zlib.decompressobj()
        else:
            raise _Undecodable(f"Content-Encoding {self.encoding}, which the client did not ask for "
                               f"(Accept-Encoding: {ACCEPT_ENCODING})")
        self._started = False

    def feed(self, chunk: bytes, room: int) -> bytes:
        """The decoded bytes of one chunk; more than `room` of them means the body is too long."""
        if self._z is None:
            return chunk
        try:
            out = self._z.decompress(chunk, room + 1)
        except zlib.error:
            if self.encoding == "deflate" and not self._started:
                # "deflate" sent raw, without its zlib header, as some servers do.
                self._z = zlib.decompressobj(-zlib.MAX_WBITS)
                self._started = True
                return self.feed(chunk, room)
            raise _Undecodable(f"a body that is not valid {self.encoding}") from None
        self._started = True
        return out


async def _read_capped(resp: aiohttp.ClientResponse, keep_all: bool) -> bytes:
    """The decoded body (all of it if keep_all, else its first BODY_EXCERPT bytes, the rest read
    and dropped), or _TooLong as soon as it runs past MAX_BODY, decoded."""
    if resp.content_length is not None and resp.content_length > MAX_BODY:
        raise _TooLong
    encoding = resp.headers.get("Content-Encoding")
    if encoding is None and resp.content_length is not None:
        # The common reply, plain and of a stated length under the cap: read whole at once, without
        # the chunk loop below (which a compressed or unsized body needs).
        data = await resp.read()
        return data if keep_all else data[:BODY_EXCERPT]
    decoder = _Decoder(encoding)
    kept, size = bytearray(), 0
    async for raw in resp.content.iter_any():
        chunk = decoder.feed(raw, MAX_BODY - size)
        size += len(chunk)
        if size > MAX_BODY:
            raise _TooLong
        if keep_all:
            kept += chunk
        elif len(kept) < BODY_EXCERPT:
            kept += chunk[:BODY_EXCERPT - len(kept)]
    return bytes(kept)


def retry_after_s(value: str | None) -> float | None:
    """Retry-After in seconds (a number, or an HTTP date), None when absent or unreadable."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        from email.utils import parsedate_to_datetime

        when = parsedate_to_datetime(value)
        return max(0.0, when.timestamp() - time.time())
    except (TypeError, ValueError, IndexError):
        return None


def raise_open_file_limit() -> None:
    """A thousand checkouts in flight need a thousand sockets; the default soft limit is often 1024."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard if hard != resource.RLIM_INFINITY else 65536, hard))
        except (ValueError, OSError):
            pass


class ShopClient:
    """One aiohttp session for a whole run.

    `connections` bounds the requests in flight. The bound is a semaphore taken *before* the clock
    starts, so time spent queueing behind our own limit is never counted against `timeout_s` or in
    the latency: on a slow system a checkout that waits for a slot does not time out into nonsense.
    """

    def __init__(self, target: Target, timeout_s: float = 60.0, connections: int = 1000):
        if timeout_s <= 0:
            raise ValueError("timeout_s must be positive")
        self.target = target
        self.timeout_s = timeout_s
        self.connections = connections
        self._session: aiohttp.ClientSession | None = None
        self._slots: asyncio.Semaphore | None = None
        self.in_flight = connections   # the bound in force: at_most narrows it for a phase
        self._first_reply_s: float | None = None
        # Each service's base URL as yarl encodes it, once: the ids are appended already encoded.
        self._encoded_bases = {base: str(URL(base)) for base in target.as_urls().values()}

    async def __aenter__(self) -> "ShopClient":
        raise_open_file_limit()
        connector = aiohttp.TCPConnector(limit=0, ttl_dns_cache=None, force_close=False)
        self._session = aiohttp.ClientSession(
            connector=connector, timeout=aiohttp.ClientTimeout(total=self.timeout_s), auto_decompress=False,
            headers={"Accept-Encoding": ACCEPT_ENCODING})
        self._slots = asyncio.Semaphore(self.connections)
        return self

    @contextmanager
    def at_most(self, in_flight: int) -> Iterator[None]:
        """Narrow the bound for a phase with nothing in flight yet (seeding, reading back)."""
        saved, saved_width = self._slots, self.in_flight
        self.in_flight = min(in_flight, self.connections)
        self._slots = asyncio.Semaphore(self.in_flight)
        try:
            yield
        finally:
            self._slots, self.in_flight = saved, saved_width

    @contextmanager
    def first_reply_within(self, seconds: float) -> Iterator[None]:
        """For the first request of a run: a target that accepts the connection and then sends
        nothing for `seconds` is not alive (TargetUnreachable), however long --timeout is. A slow
        target that answers within `seconds` is not affected."""
        saved = self._first_reply_s
        self._first_reply_s = seconds if seconds < self.timeout_s else None
        try:
            yield
        finally:
            self._first_reply_s = saved

    async def __aexit__(self, *exc) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _call(self, method: str, base: str, path: str, endpoint: str,
                    schema: Schema | None = None) -> Reply:
        # encoded=True: the ids in `path` are encoded already, and must not be normalised again
        # (yarl would turn %41 into A and resolve `..`).
        url = URL(self._encoded_bases[base] + path, encoded=True)
        shown = str(url)
        first_reply_s = self._first_reply_s
        # The session's timeout unless a first-reply deadline is on (None would mean no timeout at all).
        timeout = self._session.timeout if first_reply_s is None else aiohttp.ClientTimeout(
            total=self.timeout_s, sock_read=first_reply_s)
        async with self._slots:
            invoke = time.time_ns()
            status = None
            try:
                async with self._session.request(method, url, allow_redirects=False, timeout=timeout) as resp:
                    status = resp.status
                    parse = outcome(status) == OK and schema is not None
                    data = await _read_capped(resp, keep_all=parse)
                    if outcome(status) == OK:
                        body = None
                        if parse:
                            body = check_body(f"{method} {shown}", status, data.decode("utf-8", "replace"),
                                              schema, shown)
                        return Reply(endpoint, shown, OK, status, invoke, time.time_ns(), body)
                    text = data.decode("utf-8", "replace")
                    page = is_html(text)
                    return Reply(endpoint, shown, outcome(status), status, invoke, time.time_ns(),
                                 error=f"HTTP {status}: " + (f"an HTML page ({page_words(text)})" if page else text.strip()),
                                 retry_after_s=retry_after_s(resp.headers.get("Retry-After")), html=page)
            except ContractError:
                raise
            except _Undecodable as e:
                raise ContractError(f"{method} {shown} answered {status} with {e}; API.md expects JSON "
                                    f"or short text replies.") from None
            except _TooLong:
                expected = f"JSON with {', '.join(schema)}" if parse else "a short text reply"
                raise ContractError(f"{method} {shown} answered {status} with a body of more than "
                                    f"{MAX_BODY >> 20} MiB; API.md expects {expected}.") from None
            except asyncio.TimeoutError as e:
                # A read deadline (ServerTimeoutError) is only set for a run's first request.
                stalled = isinstance(e, aiohttp.ServerTimeoutError)
                waited = first_reply_s if stalled else self.timeout_s
                if status is None and stalled:
                    raise TargetUnreachable(
                        f"{shown}: the target accepted the connection but sent nothing within {waited:g} s "
                        f"of the run's first request; expected the shop's API to answer there (is the "
                        f"shop up, and is this its port?).") from None
                # A target still sending its reply is not a target that never replied.
                error = (f"{TIMEOUT_ERROR} {waited:g} s" if status is None else
                         f"{INCOMPLETE_ERROR} {waited:g} s (HTTP {status} came, its body was still arriving)")
                return Reply(endpoint, shown, UNKNOWN, None, invoke, time.time_ns(), error=error)
            except aiohttp.ClientConnectorError as e:
                # Nothing was sent: a definite failure, and the first sign of an unreachable target.
                return Reply(endpoint, shown, FAIL, None, invoke, time.time_ns(),
                             error=f"cannot connect: {e.os_error.strerror or e.os_error}", unreachable=True)
            except (aiohttp.ClientError, OSError) as e:
                return Reply(endpoint, shown, UNKNOWN, None, invoke, time.time_ns(),
                             error=f"{e.__class__.__name__}: {e}"[:BODY_EXCERPT])

    # --- stock ---------------------------------------------------------------------------------
    def create_item(self, price: int):
        return self._call("POST", self.target.stock_url, f"/stock/item/create/{price}",
                          "POST /stock/item/create/{price}", ITEM_ID)

    def batch_init_items(self, n: int, starting_stock: int, item_price: int):
        return self._call("POST", self.target.stock_url, f"/stock/batch_init/{n}/{starting_stock}/{item_price}",
                          "POST /stock/batch_init/{n}/{starting_stock}/{item_price}")

    def find_item(self, item_id: str):
        return self._call("GET", self.target.stock_url, f"/stock/find/{segment(item_id)}",
                          "GET /stock/find/{item_id}", ITEM)

    def add_stock(self, item_id: str, amount: int):
        return self._call("POST", self.target.stock_url, f"/stock/add/{segment(item_id)}/{amount}",
                          "POST /stock/add/{item_id}/{amount}")

    def subtract_stock(self, item_id: str, amount: int):
        return self._call("POST", self.target.stock_url, f"/stock/subtract/{segment(item_id)}/{amount}",
                          "POST /stock/subtract/{item_id}/{amount}")

    # --- payment -------------------------------------------------------------------------------
    def create_user(self):
        return self._call("POST", self.target.payment_url, "/payment/create_user",
                          "POST /payment/create_user", USER_ID)

    def batch_init_users(self, n: int, starting_money: int):
        return self._call("POST", self.target.payment_url, f"/payment/batch_init/{n}/{starting_money}",
                          "POST /payment/batch_init/{n}/{starting_money}")

    def find_user(self, user_id: str):
        return self._call("GET", self.target.payment_url, f"/payment/find_user/{segment(user_id)}",
                          "GET /payment/find_user/{user_id}", USER)

    def add_funds(self, user_id: str, amount: int):
        return self._call("POST", self.target.payment_url, f"/payment/add_funds/{segment(user_id)}/{amount}",
                          "POST /payment/add_funds/{user_id}/{amount}")

    def pay(self, user_id: str, amount: int):
        return self._call("POST", self.target.payment_url, f"/payment/pay/{segment(user_id)}/{amount}",
                          "POST /payment/pay/{user_id}/{amount}")

    # --- orders --------------------------------------------------------------------------------
    def create_order(self, user_id: str):
        return self._call("POST", self.target.order_url, f"/orders/create/{segment(user_id)}",
                          "POST /orders/create/{user_id}", ORDER_ID)

    def batch_init_orders(self, n: int, n_items: int, n_users: int, item_price: int):
        return self._call("POST", self.target.order_url,
                          f"/orders/batch_init/{n}/{n_items}/{n_users}/{item_price}",
                          "POST /orders/batch_init/{n}/{n_items}/{n_users}/{item_price}")

    def find_order(self, order_id: str):
        return self._call("GET", self.target.order_url, f"/orders/find/{segment(order_id)}",
                          "GET /orders/find/{order_id}", ORDER)

    def add_item(self, order_id: str, item_id: str, quantity: int):
        return self._call("POST", self.target.order_url,
                          f"/orders/addItem/{segment(order_id)}/{segment(item_id)}/{quantity}",
                          "POST /orders/addItem/{order_id}/{item_id}/{quantity}")

    def checkout(self, order_id: str):
        return self._call("POST", self.target.order_url, f"/orders/checkout/{segment(order_id)}",
                          "POST /orders/checkout/{order_id}")


def require_ok(reply: Reply, doing: str, when_overloaded: str = "") -> Reply:
    """For set-up steps a run cannot go on without: an unreachable target or a refusal is fatal.
    `when_overloaded` is advice added to a 5xx, the usual answer of a system drowning in requests."""
    if reply.outcome == OK:
        return reply
    if reply.unreachable:
        raise TargetUnreachable(f"{reply.url}: {reply.error} while {doing}; expected the system to be "
                                f"running there (is urls.json pointing at it?).")
    if reply.status is None and reply.error.startswith(TIMEOUT_ERROR):
        raise TargetUnreachable(f"{reply.url}: {reply.error} while {doing}; expected a reply "
                                f"(raise --timeout if the system is just slow).")
    if reply.status is None and reply.error.startswith(INCOMPLETE_ERROR):
        raise TargetUnreachable(f"{reply.url}: {reply.error} while {doing}; expected the whole reply within "
                                f"--timeout (raise it if the system is just slow to send its bodies).")
    if reply.status is None:
        raise TargetUnreachable(f"{reply.url}: the connection was dropped before a reply came ({reply.error}) "
                                f"while {doing}; expected a reply (the system or a proxy in front of it closed "
                                f"the connection: its logs say why).")
    if not_the_api(reply):
        raise ContractError(f"{reply.endpoint.split()[0]} {reply.url} answered {reply.error} while {doing}: this is "
                            f"not the shop API (an HTML page from {origin(reply.url)}); expected the shop's API "
                            f"there (is urls.json pointing at the shop's port?).")
    advice = f" ({when_overloaded})" if when_overloaded and reply.status >= 500 else ""
    raise ContractError(f"{reply.endpoint} at {reply.url} answered {reply.error} while {doing}; "
                        f"expected a 2xx reply{advice}.")
