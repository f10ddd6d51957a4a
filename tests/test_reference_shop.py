"""The reference shop over real HTTP on loopback: every endpoint, atomicity, concurrency,
each anomaly, a kill -9 in the middle of a burst, and the OpenAPI description. The endpoint tests
run against both shops: the single process and the three services behind their gateway."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from collections import Counter

import aiohttp
import pytest

from processes import wait_for
from wdm_lib.errors import WorkbenchError
from wdm_lib.ports import free_port
from wdm_lib.reference.process import ReferenceShopProcess
from wdm_lib.reference.server import build_app
from wdm_lib.reference.store import Store
from wdm_lib.reference.supervisor import Shop, ShopChild, answers, shop_environment, wait_ready


def call(base: str, method: str, path: str) -> tuple[int, str]:
    req = urllib.request.Request(base + path, method=method)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def ok_json(base: str, method: str, path: str):
    status, body = call(base, method, path)
    assert status == 200, (path, status, body)
    return json.loads(body)


def item(base: str, item_id: str) -> dict:
    return ok_json(base, "GET", f"/stock/find/{item_id}")


def credit(base: str, user_id: str) -> int:
    return ok_json(base, "GET", f"/payment/find_user/{user_id}")["credit"]


def order(base: str, order_id: str) -> dict:
    return ok_json(base, "GET", f"/orders/find/{order_id}")


# The tests on the three services run in one worker, which starts them once (pyproject.toml: loadgroup).
@pytest.fixture(scope="module", params=["single", pytest.param("services", marks=pytest.mark.xdist_group("services"))])
def base(request) -> str:
    return request.getfixturevalue("shop" if request.param == "single" else "services").base_url


# ---------------------------------------------------------------- endpoints

def test_process_interface(shop):
    assert shop.base_url.startswith("http://127.0.0.1:")
    assert shop.urls() == {"ORDER_URL": shop.base_url, "PAYMENT_URL": shop.base_url,
                           "STOCK_URL": shop.base_url}
    assert shop.pid > 0 and shop.returncode is None
    assert isinstance(shop, Shop) and shop.pids == {"shop": shop.pid} and shop.exit_code("shop") is None


def test_stock_endpoints(base):
    item_id = ok_json(base, "POST", "/stock/item/create/7")["item_id"]
    assert isinstance(item_id, str)
    assert item(base, item_id) == {"stock": 0, "price": 7}
    assert call(base, "POST", f"/stock/add/{item_id}/5")[0] == 200
    assert call(base, "POST", f"/stock/subtract/{item_id}/3")[0] == 200
    assert item(base, item_id) == {"stock": 2, "price": 7}

    status, reason = call(base, "POST", f"/stock/subtract/{item_id}/3")
    assert status == 409 and "\n" not in reason.strip() and reason
    for path in (f"/stock/add/{item_id}/-1", f"/stock/add/{item_id}/abc", f"/stock/add/{item_id}/1.5",
                 f"/stock/subtract/{item_id}/-1", f"/stock/add/{item_id}/{10**30}",
                 "/stock/item/create/-3", "/stock/item/create/x", "/stock/batch_init/-1/1/1"):
        assert call(base, "POST", path)[0] == 400, path
    for method, path in (("GET", "/stock/find/nope"), ("POST", "/stock/add/nope/1"),
                         ("POST", "/stock/subtract/nope/1")):
        assert call(base, method, path)[0] == 404, path
    assert item(base, item_id) == {"stock": 2, "price": 7}, "a refused call changed the item"
    assert item(base, ok_json(base, "POST", "/stock/item/create/0")["item_id"]) == {"stock": 0, "price": 0}


def test_payment_endpoints(base):
    user_id = ok_json(base, "POST", "/payment/create_user")["user_id"]
    assert ok_json(base, "GET", f"/payment/find_user/{user_id}") == {"user_id": user_id, "credit": 0}
    assert call(base, "POST", f"/payment/add_funds/{user_id}/10")[0] == 200
    assert call(base, "POST", f"/payment/pay/{user_id}/4")[0] == 200
    assert credit(base, user_id) == 6
    assert call(base, "POST", f"/payment/pay/{user_id}/7")[0] == 409
    for path in (f"/payment/add_funds/{user_id}/-5", f"/payment/pay/{user_id}/x",
                 f"/payment/pay/{user_id}/-1", "/payment/batch_init/x/1"):
        assert call(base, "POST", path)[0] == 400, path
    for method, path in (("GET", "/payment/find_user/nope"), ("POST", "/payment/add_funds/nope/1"),
                         ("POST", "/payment/pay/nope/1")):
        assert call(base, method, path)[0] == 404, path
    assert credit(base, user_id) == 6, "a refused call changed the credit"


def test_order_endpoints(base):
    user_id = ok_json(base, "POST", "/payment/create_user")["user_id"]
    call(base, "POST", f"/payment/add_funds/{user_id}/100")
    a = ok_json(base, "POST", "/stock/item/create/3")["item_id"]
    b = ok_json(base, "POST", "/stock/item/create/5")["item_id"]
    call(base, "POST", f"/stock/add/{a}/10")
    call(base, "POST", f"/stock/add/{b}/10")
    order_id = ok_json(base, "POST", f"/orders/create/{user_id}")["order_id"]
    assert order(base, order_id) == {"order_id": order_id, "paid": False, "items": [],
                                     "user_id": user_id, "total_cost": 0}
    assert call(base, "POST", f"/orders/addItem/{order_id}/{a}/2")[0] == 200
    assert call(base, "POST", f"/orders/addItem/{order_id}/{b}/1")[0] == 200
    assert call(base, "POST", f"/orders/addItem/{order_id}/{a}/1")[0] == 200
    assert order(base, order_id) == {"order_id": order_id, "paid": False,
                                     "items": [[a, 2], [b, 1], [a, 1]], "user_id": user_id,
                                     "total_cost": 14}
    assert call(base, "POST", f"/orders/addItem/{order_id}/{a}/-1")[0] == 400
    assert call(base, "POST", f"/orders/addItem/{order_id}/nope/1")[0] == 404
    assert call(base, "POST", f"/orders/addItem/nope/{a}/1")[0] == 404
    assert call(base, "POST", "/orders/create/nope")[0] == 404
    assert call(base, "GET", "/orders/find/nope")[0] == 404
    assert call(base, "POST", "/orders/checkout/nope")[0] == 404
    assert order(base, order_id)["total_cost"] == 14, "a refused addItem changed the order"

    assert call(base, "POST", f"/orders/checkout/{order_id}")[0] == 200
    assert item(base, a)["stock"] == 7 and item(base, b)["stock"] == 9
    assert credit(base, user_id) == 86 and order(base, order_id)["paid"] is True
    # Checking out a paid order again charges and subtracts again (API.md's common behaviour).
    assert call(base, "POST", f"/orders/checkout/{order_id}")[0] == 200
    assert item(base, a)["stock"] == 4 and item(base, b)["stock"] == 8 and credit(base, user_id) == 72


def test_checkout_sums_quantities_of_one_item(base):
    user_id = ok_json(base, "POST", "/payment/create_user")["user_id"]
    call(base, "POST", f"/payment/add_funds/{user_id}/100")
    a = ok_json(base, "POST", "/stock/item/create/1")["item_id"]
    call(base, "POST", f"/stock/add/{a}/3")
    order_id = ok_json(base, "POST", f"/orders/create/{user_id}")["order_id"]
    call(base, "POST", f"/orders/addItem/{order_id}/{a}/2")
    call(base, "POST", f"/orders/addItem/{order_id}/{a}/2")
    assert call(base, "POST", f"/orders/checkout/{order_id}")[0] == 409
    assert item(base, a)["stock"] == 3 and credit(base, user_id) == 100
    assert order(base, order_id)["paid"] is False


@pytest.mark.parametrize("missing", ["stock", "credit"])
def test_checkout_is_all_or_nothing(base, missing):
    user_id = ok_json(base, "POST", "/payment/create_user")["user_id"]
    call(base, "POST", f"/payment/add_funds/{user_id}/{3 if missing == 'credit' else 100}")
    plenty = ok_json(base, "POST", "/stock/item/create/2")["item_id"]
    scarce = ok_json(base, "POST", "/stock/item/create/2")["item_id"]
    call(base, "POST", f"/stock/add/{plenty}/10")
    call(base, "POST", f"/stock/add/{scarce}/{0 if missing == 'stock' else 10}")
    order_id = ok_json(base, "POST", f"/orders/create/{user_id}")["order_id"]
    call(base, "POST", f"/orders/addItem/{order_id}/{plenty}/1")
    call(base, "POST", f"/orders/addItem/{order_id}/{scarce}/1")
    status, reason = call(base, "POST", f"/orders/checkout/{order_id}")
    assert status == 409, reason
    assert item(base, plenty)["stock"] == 10
    assert item(base, scarce)["stock"] == (0 if missing == "stock" else 10)
    assert credit(base, user_id) == (3 if missing == "credit" else 100)
    assert order(base, order_id)["paid"] is False


def test_batch_init(base):
    # The shop is shared with other tests, which may have batch-initialised before: one more row of
    # each, made first with other values, shows that a batch of n writes ids 0 to n-1 and no more.
    ok_json(base, "POST", "/stock/batch_init/51/7/1")
    ok_json(base, "POST", "/payment/batch_init/41/2")
    ok_json(base, "POST", "/orders/batch_init/31/1/1/1")
    assert "msg" in ok_json(base, "POST", "/stock/batch_init/50/20/3")
    assert "msg" in ok_json(base, "POST", "/payment/batch_init/40/9")
    assert "msg" in ok_json(base, "POST", "/orders/batch_init/30/50/40/3")
    assert item(base, "0") == {"stock": 20, "price": 3} and item(base, "49") == {"stock": 20, "price": 3}
    assert item(base, "50") == {"stock": 7, "price": 1}
    assert credit(base, "39") == 9 and credit(base, "40") == 2
    for i in range(30):
        o = order(base, str(i))
        assert o["order_id"] == str(i) and o["paid"] is False and o["total_cost"] == 6
        assert 0 <= int(o["user_id"]) < 40
        assert len(o["items"]) == 2 and all(q == 1 and 0 <= int(i) < 50 for i, q in o["items"])
    assert order(base, "30")["total_cost"] == 2  # two units at price 1: the first batch's
    # A second batch init replaces the items it names.
    ok_json(base, "POST", "/stock/batch_init/10/1/2")
    assert item(base, "0") == {"stock": 1, "price": 2} and item(base, "10") == {"stock": 20, "price": 3}
    assert call(base, "POST", "/orders/batch_init/5/0/40/3")[0] == 400
    assert call(base, "POST", "/orders/batch_init/5/50/0/3")[0] == 400


def test_malformed_paths_are_refused(base):
    for method, path in (("GET", "/stock/find/"), ("POST", "/stock/add/0"), ("GET", "/nothing"),
                         ("GET", "/orders/checkout/0"), ("POST", "/stock/find/0"),
                         ("POST", "/orders/addItem/0/0")):
        status, _ = call(base, method, path)
        assert 400 <= status < 500, (method, path, status)


def test_numbers_of_any_length_are_refused_or_taken_never_an_error(base):
    # Python refuses to convert more than 4,300 digits: the length is checked first. (Past about
    # 8,000 characters aiohttp refuses the request line itself, with a 400.)
    for digits in ("9" * 19, "9" * 4301, "1" * 8000):
        status, body = call(base, "POST", f"/stock/item/create/{digits}")
        assert status == 400 and "must be at most" in body, (len(digits), status, body)
    padded = ok_json(base, "POST", "/stock/item/create/" + "0" * 5000 + "7")
    assert item(base, padded["item_id"])["price"] == 7
    assert call(base, "POST", f"/stock/batch_init/1{'0' * 7}1/1/1")[0] == 400  # MAX_BATCH + 1


def test_openapi_matches_routes(base, tmp_path):
    spec = ok_json(base, "GET", "/openapi.json")
    assert spec["openapi"].startswith("3.")
    in_spec = {(m.upper(), p) for p, ops in spec["paths"].items() for m in ops}
    store = Store(str(tmp_path / "routes.sqlite"))
    try:
        served = {(r.method, r.resource.canonical) for r in build_app(store).router.routes()}
    finally:
        store.close()
    assert served == in_spec
    for path, ops in spec["paths"].items():
        for op in ops.values():
            names = {p["name"] for p in op["parameters"]}
            assert names == {seg[1:-1] for seg in path.split("/") if seg.startswith("{")}, path


# ---------------------------------------------------------------- load

async def _requests(base: str, calls: list[tuple[str, str]], concurrency: int = 200) -> list[int]:
    """Statuses of the calls, fired `concurrency` at a time; -1 when there was no answer."""
    sem = asyncio.Semaphore(concurrency)

    async def one(session: aiohttp.ClientSession, method: str, path: str) -> int:
        async with sem:
            try:
                async with session.request(method, base + path) as r:
                    await r.read()
                    return r.status
            except (aiohttp.ClientError, asyncio.TimeoutError):
                return -1

    connector = aiohttp.TCPConnector(limit=concurrency)
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        return list(await asyncio.gather(*(one(session, m, p) for m, p in calls)))


def requests(base: str, calls: list[tuple[str, str]], concurrency: int = 200) -> list[int]:
    return asyncio.run(_requests(base, calls, concurrency))


async def _json_all(base: str, method: str, paths: list[str]) -> list[dict]:
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=50)) as session:
        async def one(path: str) -> dict:
            async with session.request(method, base + path) as r:
                assert r.status == 200, (path, r.status)
                return await r.json()
        return list(await asyncio.gather(*(one(p) for p in paths)))


def read_all(base: str, paths: list[str]) -> list[dict]:
    """The bodies of GET requests to paths, in their order, each of which must answer 200."""
    return asyncio.run(_json_all(base, "GET", paths))


def contention(base: str, n_orders: int = 1000, stock: int = 100, user_credit: int = 1) -> list[str]:
    """One item (price 1, `stock` units) wanted by `n_orders` orders of one unit each, every order
    by its own user with `user_credit`. Returns the order ids."""
    ok_json(base, "POST", f"/stock/batch_init/1/{stock}/1")
    ok_json(base, "POST", f"/payment/batch_init/{n_orders}/{user_credit}")
    created = asyncio.run(_json_all(base, "POST", [f"/orders/create/{u}" for u in range(n_orders)]))
    order_ids = [o["order_id"] for o in created]  # user u's order at position u
    assert set(requests(base, [("POST", f"/orders/addItem/{o}/0/1") for o in order_ids])) == {200}
    return order_ids


def checkout_all(base: str, order_ids: list[str]) -> tuple[dict[str, int], int, list[int], list[bool]]:
    """Checks every order out at once; returns (status per order, final stock of item 0,
    final credit per user, paid flag per order)."""
    statuses = dict(zip(order_ids, requests(base, [("POST", f"/orders/checkout/{o}") for o in order_ids])))
    stock = item(base, "0")["stock"]
    credits = [u["credit"] for u in read_all(base, [f"/payment/find_user/{u}" for u in range(len(order_ids))])]
    paid = [o["paid"] for o in read_all(base, [f"/orders/find/{o}" for o in order_ids])]
    return statuses, stock, credits, paid


def test_concurrent_checkouts_are_consistent():
    with ReferenceShopProcess() as s:
        order_ids = contention(s.base_url, n_orders=400, stock=40)
        statuses, stock, credits, paid = checkout_all(s.base_url, order_ids)
    counts = Counter(statuses.values())
    assert counts == {200: 40, 409: 360}
    assert stock == 0
    assert sum(1 - c for c in credits) == 40 and min(credits) == 0
    for i, o in enumerate(order_ids):
        assert paid[i] == (statuses[o] == 200) == (credits[i] == 0)


def test_anomaly_lost_update_oversells():
    with ReferenceShopProcess(anomaly="lost-update") as s:
        order_ids = contention(s.base_url)
        statuses, stock, credits, paid = checkout_all(s.base_url, order_ids)
        sold = 100 - stock
        answered_ok = sum(st == 200 for st in statuses.values())
        assert answered_ok > sold, f"{answered_ok} checkouts succeeded but only {sold} units left the stock"
        assert sum(paid) == answered_ok and min(credits) >= 0

        # pay: 300 concurrent payments of 1 from one user leave more than 300 fewer credits.
        ok_json(s.base_url, "POST", "/payment/batch_init/1/1000")
        assert set(requests(s.base_url, [("POST", "/payment/pay/0/1")] * 300)) == {200}
        assert credit(s.base_url, "0") > 1000 - 300
        # subtract: the same for stock.
        ok_json(s.base_url, "POST", "/stock/batch_init/1/1000/1")
        assert set(requests(s.base_url, [("POST", "/stock/subtract/0/1")] * 300)) == {200}
        assert item(s.base_url, "0")["stock"] > 1000 - 300


def test_anomaly_no_rollback_loses_stock():
    with ReferenceShopProcess(anomaly="no-rollback") as s:
        base = s.base_url
        # 10 users with credit for 5 units each, 200 orders of 1 unit: 150 payments fail.
        ok_json(base, "POST", "/stock/batch_init/1/1000/1")
        ok_json(base, "POST", "/payment/batch_init/10/5")
        order_ids = [o["order_id"] for o in asyncio.run(_json_all(base, "POST", [f"/orders/create/{i % 10}"
                                                                                  for i in range(200)]))]
        assert set(requests(base, [("POST", f"/orders/addItem/{o}/0/1") for o in order_ids])) == {200}
        statuses = requests(base, [("POST", f"/orders/checkout/{o}") for o in order_ids])
        assert Counter(statuses) == {200: 50, 409: 150}
        spent = sum(5 - credit(base, str(u)) for u in range(10))
        sold = 1000 - item(base, "0")["stock"]
        assert spent == 50
        assert sold == 200, "refused checkouts should have kept the stock they took"


def test_anomaly_phantom_success_answers_ok_to_refusals():
    with ReferenceShopProcess(anomaly="phantom-success") as s:
        order_ids = contention(s.base_url, n_orders=400, stock=40)
        statuses, stock, credits, paid = checkout_all(s.base_url, order_ids)
    # Every other refusal is answered 200.
    assert Counter(statuses.values()) == {200: 220, 409: 180}
    assert stock == 0 and sum(paid) == 40 and sum(1 - c for c in credits) == 40
    assert sum(1 for i, o in enumerate(order_ids) if statuses[o] == 200 and not paid[i]) == 180


def test_anomaly_lost_ack_answers_500_to_commits():
    with ReferenceShopProcess(anomaly="lost-ack") as s:
        order_ids = contention(s.base_url, n_orders=400, stock=40)
        statuses, stock, credits, paid = checkout_all(s.base_url, order_ids)
    # Every third commit is answered 500.
    assert Counter(statuses.values()) == {200: 27, 500: 13, 409: 360}
    assert stock == 0 and sum(paid) == 40 and sum(1 - c for c in credits) == 40
    assert all(paid[i] for i, o in enumerate(order_ids) if statuses[o] == 500)


# ---------------------------------------------------------------- durability and life cycle

async def _burst_then_kill(shop: ReferenceShopProcess, order_ids: list[str], kill_after: int) -> dict[str, int]:
    statuses: dict[str, int] = {}
    answered = asyncio.Event()
    sem = asyncio.Semaphore(50)

    async def one(session: aiohttp.ClientSession, order_id: str) -> None:
        async with sem:
            try:
                async with session.post(f"{shop.base_url}/orders/checkout/{order_id}") as r:
                    await r.read()
                    statuses[order_id] = r.status
            except (aiohttp.ClientError, asyncio.TimeoutError):
                statuses[order_id] = -1
            if sum(st == 200 for st in statuses.values()) >= kill_after:
                answered.set()

    async def killer() -> None:
        await answered.wait()
        shop.kill()

    timeout = aiohttp.ClientTimeout(total=10)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=50), timeout=timeout) as session:
        await asyncio.gather(killer(), *(one(session, o) for o in order_ids))
    return statuses


def test_kill_9_during_checkouts_keeps_committed_state(tmp_path):
    data = tmp_path / "shop"
    n_items, n_users, n_orders, plenty = 50, 50, 3000, 10**6
    first = ReferenceShopProcess(data_dir=data)
    try:
        base = first.base_url
        ok_json(base, "POST", f"/stock/batch_init/{n_items}/{plenty}/1")
        ok_json(base, "POST", f"/payment/batch_init/{n_users}/{plenty}")
        ok_json(base, "POST", f"/orders/batch_init/{n_orders}/{n_items}/{n_users}/1")
        statuses = asyncio.run(_burst_then_kill(first, [str(i) for i in range(n_orders)], 300))
    finally:
        first.kill()
    assert first.returncode == -signal.SIGKILL

    with ReferenceShopProcess(data_dir=data) as second:
        base = second.base_url
        stocks = [r["stock"] for r in read_all(base, [f"/stock/find/{i}" for i in range(n_items)])]
        credits = [r["credit"] for r in read_all(base, [f"/payment/find_user/{u}" for u in range(n_users)])]
        orders = read_all(base, [f"/orders/find/{i}" for i in range(n_orders)])

    assert min(stocks) >= 0 and min(credits) >= 0
    paid = [o for o in orders if o["paid"]]
    acknowledged = {o for o, st in statuses.items() if st == 200}
    assert len(acknowledged) >= 300 and len(paid) < n_orders, "the kill did not land mid-burst"
    assert acknowledged <= {o["order_id"] for o in paid}, "an acknowledged checkout was lost"
    assert not any(st not in (200, -1) for st in statuses.values())
    # Conservation: every unit that left the shelves was paid for, by the owner of a paid order.
    sold = Counter()
    charged = Counter()
    for o in paid:
        for item_id, quantity in o["items"]:
            sold[int(item_id)] += quantity
        charged[int(o["user_id"])] += o["total_cost"]
    assert [plenty - s for s in stocks] == [sold[i] for i in range(n_items)]
    assert [plenty - c for c in credits] == [charged[u] for u in range(n_users)]
    assert sum(plenty - c for c in credits) == sum(plenty - s for s in stocks)  # every price is 1


def test_data_survives_clean_restart(tmp_path):
    with ReferenceShopProcess(data_dir=tmp_path) as s:
        user_id = ok_json(s.base_url, "POST", "/payment/create_user")["user_id"]
        call(s.base_url, "POST", f"/payment/add_funds/{user_id}/42")
    assert s.returncode == 0
    with ReferenceShopProcess(data_dir=tmp_path) as s:
        assert credit(s.base_url, user_id) == 42


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_serve_prints_one_line_and_stops_cleanly(tmp_path, sig):
    env = dict(os.environ, TMPDIR=str(tmp_path))
    proc = subprocess.Popen([sys.executable, "-m", "wdm_lib", "serve", "--port", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True)
    try:
        line = proc.stdout.readline()
        assert line.startswith("wdm reference shop listening on http://127.0.0.1:")
        port = int(line.rsplit(":", 1)[1])
        assert port > 0
        assert os.listdir(tmp_path), "the store should live in a temporary folder"
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0 and out == "" and err == ""
    assert os.listdir(tmp_path) == [], "the temporary store was not removed"


def test_start_failure_names_the_cause():
    with pytest.raises(WorkbenchError, match="exited with code 2 before listening.*anomaly"):
        ReferenceShopProcess(anomaly="no-such-bug")


# A process that answers health requests as a shop does (with its pid): with a reason, one request,
# and then it exits with that reason.
HEALTH_SERVER = """
import json, os, sys
from http.server import BaseHTTPRequestHandler, HTTPServer
class Health(BaseHTTPRequestHandler):
    def do_GET(self):
        body = json.dumps({"pid": os.getpid()}).encode()
        self.send_response(200); self.send_header("Content-Length", str(len(body))); self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
server = HTTPServer(("127.0.0.1", int(sys.argv[1])), Health)
if sys.argv[2:]:
    server.handle_request()
    sys.exit(sys.argv[2])
server.serve_forever()
"""


def python(what: str, port: int, code: str, *args: str) -> ShopChild:
    return ShopChild(what, "127.0.0.1", port, [sys.executable, "-c", code, *args], shop_environment())


def test_a_shop_that_listened_and_then_died_is_not_said_to_have_died_before_listening():
    """One process answered and died while another was still starting: said as it happened."""
    port = free_port()
    died = python("the gateway service", port, HEALTH_SERVER, str(port), "database disk image is malformed")
    slow = python("the stock service", free_port(), "import time; time.sleep(30)")
    try:
        with pytest.raises(WorkbenchError, match=rf"^the gateway service \(pid {died.pid}\) exited with code 1 after "
                                                 rf"it had listened on http://127.0.0.1:{port}: database disk image "
                                                 rf"is malformed$"):
            wait_ready([died, slow], 10)
    finally:
        for child in (died, slow):
            child.kill()
            child.close()


def test_ready_means_the_shop_itself_answers_not_whatever_holds_its_port(tmp_path):
    """Readiness is the health request answered with the shop's own pid: another process answering
    on the shop's port (one that took it meanwhile) is not taken for the shop, which says why it
    could not start; one that never answers is one sentence too."""
    port = free_port()
    other = subprocess.Popen([sys.executable, "-c", HEALTH_SERVER, str(port)])
    children = []
    try:
        assert wait_for(lambda: answers("127.0.0.1", port, other.pid, 1)), "the other server never answered"
        children.append(python("the reference shop", port, "import sys, wdm_lib.cli; sys.exit(wdm_lib.cli.main())",
                               "serve", "--port", str(port), "--data", str(tmp_path)))
        with pytest.raises(WorkbenchError, match=rf"^the reference shop \(pid \d+\) exited with code 2 before "
                                                 rf"listening: wdm: the wdm reference shop cannot listen on "
                                                 rf"http://127.0.0.1:{port}: "):
            wait_ready(children, 20)
        children.append(python("the reference shop", port,
                               "import sys, time; print('starting', file=sys.stderr, flush=True); time.sleep(30)"))
        # 5 s: a Python's start-up on a busy machine can take longer than the 0.5 s this once waited,
        # and the sentence would quote nothing yet.
        with pytest.raises(WorkbenchError, match=r"^the reference shop \(pid \d+\) did not start listening within "
                                                 r"5 s: starting$"):
            wait_ready(children[1:], 5)
    finally:
        for child in children:
            child.kill()
            child.close()
        other.kill()
        other.wait()


@pytest.mark.xdist_group("services")
def test_every_shop_process_answers_its_health_request_beside_the_api(shop, services):
    assert json.loads(call(shop.base_url, "GET", "/health")[1]) == {"service": "wdm reference shop", "pid": shop.pid}
    for name, pid in services.pids.items():
        said = json.loads(call(services.url(name), "GET", "/health")[1])
        assert said == {"service": "wdm gateway" if name == "gateway" else f"wdm {name} service", "pid": pid}


def test_the_shop_dies_with_the_workbench_and_takes_its_temporary_folder(tmp_path):
    """A workbench killed with SIGKILL cannot stop its shop: the shop notices and goes, and removes
    the temporary data folder the workbench made for it."""
    import time

    script = ("import sys, time\nfrom wdm_lib.reference.process import ReferenceShopProcess\n"
              "shop = ReferenceShopProcess()\nprint(shop.pid, shop.data_dir, flush=True)\ntime.sleep(60)\n")
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    pid, data_dir = parent.stdout.readline().split()
    assert os.path.isdir(data_dir)
    parent.kill()
    parent.wait()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and (os.path.exists(f"/proc/{pid}") or os.path.isdir(data_dir)):
        time.sleep(0.1)
    status = open(f"/proc/{pid}/stat").read().split()[2] if os.path.exists(f"/proc/{pid}") else "gone"
    assert status in ("gone", "Z"), "the shop outlived the workbench"
    assert not os.path.isdir(data_dir), "the shop's temporary folder was left behind"
