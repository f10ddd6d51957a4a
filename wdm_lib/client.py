"""The shop API of API.md, one async method per endpoint, over one shared aiohttp session.

Every call returns a `Reply` whose `outcome` follows API.md exactly: 2xx is `ok`, 4xx is `fail`,
and anything else (5xx, a redirect, a timeout, a reset connection) is `unknown`, because the
operation may or may not have happened. The only exception: a connection that could not be opened
at all sent nothing, so that is a definite `fail`. A 2xx reply whose body breaks the contract
raises ContractError: the target is not speaking the API, and no verdict over it would mean anything.
"""

from __future__ import annotations

import asyncio
import json
import resource
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable, Iterator

import aiohttp

from wdm_lib.config import Target
from wdm_lib.errors import ContractError, TargetUnreachable
from wdm_lib.history import FAIL, OK, TIMEOUT_ERROR, UNKNOWN
BODY_EXCERPT = 200


@dataclass(slots=True)
class Reply:
    endpoint: str        # the API.md row, e.g. "POST /orders/checkout/{order_id}"
    url: str
    outcome: str         # ok / fail / unknown
    status: int | None   # None when no HTTP status came back
    invoke_ns: int       # wall clock when the request was sent
    complete_ns: int     # wall clock when the reply (or the error) arrived
    body: Any = None     # the parsed JSON of a 2xx reply that carries data
    error: str = ""      # why it was not ok, in a few words

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


def check_body(endpoint: str, status: int, text: str, schema: Schema) -> dict:
    """The parsed body of a 2xx reply, or ContractError naming the endpoint, status and body."""
    fault = None
    try:
        body = json.loads(text)
    except ValueError:
        body, fault = None, "not JSON"
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

    async def __aenter__(self) -> "ShopClient":
        raise_open_file_limit()
        connector = aiohttp.TCPConnector(limit=0, ttl_dns_cache=None, force_close=False)
        self._session = aiohttp.ClientSession(
            connector=connector, timeout=aiohttp.ClientTimeout(total=self.timeout_s), auto_decompress=False)
        self._slots = asyncio.Semaphore(self.connections)
        return self

    @contextmanager
    def at_most(self, in_flight: int) -> Iterator[None]:
        """Narrow the bound for a phase with nothing in flight yet (seeding, reading back)."""
        saved = self._slots
        self._slots = asyncio.Semaphore(min(in_flight, self.connections))
        try:
            yield
        finally:
            self._slots = saved

    async def __aexit__(self, *exc) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _call(self, method: str, base: str, path: str, endpoint: str,
                    schema: Schema | None = None) -> Reply:
        url = base + path
        async with self._slots:
            invoke = time.time_ns()
            try:
                async with self._session.request(method, url, allow_redirects=False) as resp:
                    status = resp.status
                    if 200 <= status < 300:
                        body = None
                        if schema is not None:
                            body = check_body(f"{method} {url}", status, await resp.text(errors="replace"),
                                              schema)
                        else:
                            await resp.read()
                        return Reply(endpoint, url, OK, status, invoke, time.time_ns(), body)
                    text = (await resp.read())[:BODY_EXCERPT].decode("utf-8", "replace")
                    outcome = FAIL if 400 <= status < 500 else UNKNOWN
                    return Reply(endpoint, url, outcome, status, invoke, time.time_ns(),
                                 error=f"HTTP {status}: {text.strip()}")
            except ContractError:
                raise
            except asyncio.TimeoutError:
                return Reply(endpoint, url, UNKNOWN, None, invoke, time.time_ns(),
                             error=f"{TIMEOUT_ERROR} {self.timeout_s:g} s")
            except aiohttp.ClientConnectorError as e:
                # Nothing was sent: a definite failure, and the first sign of an unreachable target.
                return Reply(endpoint, url, FAIL, None, invoke, time.time_ns(),
                             error=f"cannot connect: {e.os_error.strerror or e.os_error}")
            except (aiohttp.ClientError, OSError) as e:
                return Reply(endpoint, url, UNKNOWN, None, invoke, time.time_ns(),
                             error=f"{e.__class__.__name__}: {e}"[:BODY_EXCERPT])

    # --- stock ---------------------------------------------------------------------------------
    def create_item(self, price: int):
        return self._call("POST", self.target.stock_url, f"/stock/item/create/{price}",
                          "POST /stock/item/create/{price}", ITEM_ID)

    def batch_init_items(self, n: int, starting_stock: int, item_price: int):
        return self._call("POST", self.target.stock_url, f"/stock/batch_init/{n}/{starting_stock}/{item_price}",
                          "POST /stock/batch_init/{n}/{starting_stock}/{item_price}")

    def find_item(self, item_id: str):
        return self._call("GET", self.target.stock_url, f"/stock/find/{item_id}",
                          "GET /stock/find/{item_id}", ITEM)

    def add_stock(self, item_id: str, amount: int):
        return self._call("POST", self.target.stock_url, f"/stock/add/{item_id}/{amount}",
                          "POST /stock/add/{item_id}/{amount}")

    def subtract_stock(self, item_id: str, amount: int):
        return self._call("POST", self.target.stock_url, f"/stock/subtract/{item_id}/{amount}",
                          "POST /stock/subtract/{item_id}/{amount}")

    # --- payment -------------------------------------------------------------------------------
    def create_user(self):
        return self._call("POST", self.target.payment_url, "/payment/create_user",
                          "POST /payment/create_user", USER_ID)

    def batch_init_users(self, n: int, starting_money: int):
        return self._call("POST", self.target.payment_url, f"/payment/batch_init/{n}/{starting_money}",
                          "POST /payment/batch_init/{n}/{starting_money}")

    def find_user(self, user_id: str):
        return self._call("GET", self.target.payment_url, f"/payment/find_user/{user_id}",
                          "GET /payment/find_user/{user_id}", USER)

    def add_funds(self, user_id: str, amount: int):
        return self._call("POST", self.target.payment_url, f"/payment/add_funds/{user_id}/{amount}",
                          "POST /payment/add_funds/{user_id}/{amount}")

    def pay(self, user_id: str, amount: int):
        return self._call("POST", self.target.payment_url, f"/payment/pay/{user_id}/{amount}",
                          "POST /payment/pay/{user_id}/{amount}")

    # --- orders --------------------------------------------------------------------------------
    def create_order(self, user_id: str):
        return self._call("POST", self.target.order_url, f"/orders/create/{user_id}",
                          "POST /orders/create/{user_id}", ORDER_ID)

    def batch_init_orders(self, n: int, n_items: int, n_users: int, item_price: int):
        return self._call("POST", self.target.order_url,
                          f"/orders/batch_init/{n}/{n_items}/{n_users}/{item_price}",
                          "POST /orders/batch_init/{n}/{n_items}/{n_users}/{item_price}")

    def find_order(self, order_id: str):
        return self._call("GET", self.target.order_url, f"/orders/find/{order_id}",
                          "GET /orders/find/{order_id}", ORDER)

    def add_item(self, order_id: str, item_id: str, quantity: int):
        return self._call("POST", self.target.order_url, f"/orders/addItem/{order_id}/{item_id}/{quantity}",
                          "POST /orders/addItem/{order_id}/{item_id}/{quantity}")

    def checkout(self, order_id: str):
        return self._call("POST", self.target.order_url, f"/orders/checkout/{order_id}",
                          "POST /orders/checkout/{order_id}")


def require_ok(reply: Reply, doing: str, when_overloaded: str = "") -> Reply:
    """For set-up steps a run cannot go on without: an unreachable target or a refusal is fatal.
    `when_overloaded` is advice added to a 5xx, the usual answer of a system drowning in requests."""
    if reply.outcome == OK:
        return reply
    if reply.error.startswith("cannot connect"):
        raise TargetUnreachable(f"{reply.url}: {reply.error} while {doing}; expected the system to be "
                                f"running there (is urls.json pointing at it?).")
    if reply.status is None:
        raise TargetUnreachable(f"{reply.url}: {reply.error} while {doing}; expected a reply "
                                f"(raise --timeout if the system is just slow).")
    advice = f" ({when_overloaded})" if when_overloaded and reply.status >= 500 else ""
    raise ContractError(f"{reply.endpoint} at {reply.url} answered {reply.error} while {doing}; "
                        f"expected a 2xx reply{advice}.")
