"""The three-service reference shop: its process class, the CLI around it, and its saga when two
services die at once mid-load, with the workbench's own consistency run going through the gateway:
the correct shop must come out consistent; and no reader ever sees the stock of a checkout the saga
then refuses. (Every endpoint is tested against it in
test_reference_shop.py; one service killed or paused by a fault schedule, with each anomaly mode
caught, in test_faults.py.)"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

import pytest

from wdm_lib.cli import main
from wdm_lib.client import ShopClient
from wdm_lib.config import Target
from wdm_lib.errors import WorkbenchError
from wdm_lib.reference.services import ReferenceServices
from wdm_lib.reference.supervisor import Shop
from wdm_lib.runner import run_consistency
from wdm_lib.workloads.consistency import ConsistencyScenario
from processes import alive, process_state, wait_for


def status(url: str, method: str = "GET") -> int:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, method=method), timeout=10) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


# ---------------------------------------------------------------- the process class

def test_services_life_cycle(tmp_path):
    with ReferenceServices(tmp_path) as shop:
        assert shop.urls() == dict.fromkeys(("ORDER_URL", "PAYMENT_URL", "STOCK_URL"), shop.base_url)
        assert isinstance(shop, Shop) and set(shop.pids) == set(ReferenceServices.SERVICES)
        assert {"order.sqlite", "payment.sqlite", "stock.sqlite"} <= set(os.listdir(tmp_path))
        user = f"{shop.base_url}/payment/find_user/0"
        assert status(f"{shop.base_url}/payment/batch_init/1/5", "POST") == 200

        old = shop.pids["payment"]
        shop.kill("payment")
        assert shop.exit_code("payment") == -signal.SIGKILL and not alive(old)
        assert status(user) == 502, "the gateway should say the payment service is unreachable"
        shop.start("payment")
        assert shop.pids["payment"] != old and shop.exit_code("payment") is None
        assert status(user) == 200, "the restarted service lost its data or its port"

        shop.pause("stock")
        assert wait_for(lambda: process_state(shop.pids["stock"]) == "T"), "SIGSTOP did not stop the stock service"
        shop.resume("stock")
        assert status(f"{shop.base_url}/stock/find/0") == 404
        assert status(f"{shop.base_url}/stock/internal/steps", "POST") == 404, "the saga's steps are not public"

        shop.restart("gateway")
        assert shop.exit_code("gateway") is None and status(user) == 200
        shop.terminate("order")
        assert shop.exit_code("order") == 0
        with pytest.raises(WorkbenchError, match="unknown service"):
            shop.kill("orders")
        pids = shop.pids
    assert all(not alive(pid) for pid in pids.values())
    assert os.path.isdir(tmp_path), "a data folder that was given is not removed"


def test_services_die_with_the_workbench():
    """A workbench killed with SIGKILL cannot stop its services: they notice and go, and take
    their temporary data folder with them."""
    script = ("import sys, time; from wdm_lib.reference.services import ReferenceServices\n"
              "s = ReferenceServices()\nprint(s.data_dir, *s.pids.values(), flush=True)\ntime.sleep(60)\n")
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        data_dir, *pids = parent.stdout.readline().split()
        pids = [int(p) for p in pids]
        assert len(pids) == 4 and all(alive(p) for p in pids) and os.path.isdir(data_dir)
    finally:
        parent.kill()
        parent.wait()
    assert wait_for(lambda: not any(alive(p) for p in pids), 10), "a service outlived the workbench"
    assert wait_for(lambda: not os.path.exists(data_dir)), "the temporary data folder was left behind"


@pytest.mark.parametrize("argv, says", [
    (["serve", "--services", "--anomaly", "lost-update"], "only without --services"),
    (["serve", "--anomaly", "no-recovery"], "only with --services"),
    (["serve", "--services", "--anomaly", "nonsense"], "unknown anomaly"),
])
def test_serve_refuses_a_mode_of_the_other_shop(capsys, argv, says):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert says in err and len(err.splitlines()) == 1


def test_serve_services_prints_one_line_and_stops_cleanly(tmp_path):
    proc = subprocess.Popen([sys.executable, "-m", "wdm_lib", "serve", "--services", "--port", "0",
                             "--data", str(tmp_path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert line.startswith("wdm reference shop listening on http://127.0.0.1:"), line
        base = line.split()[5]
        assert status(f"{base}/stock/item/create/3", "POST") == 200
        pids = [int(p.strip(",)")) for p in line.split("pids: ")[1].split()[1::2]]
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0 and out == "" and err == ""
    assert len(pids) == 4 and not any(alive(p) for p in pids)


def test_a_service_of_serve_services_restarted_by_hand_with_its_own_command_line_stays_up(tmp_path):
    proc = subprocess.Popen([sys.executable, "-m", "wdm_lib", "serve", "--services", "--port", "0",
                             "--data", str(tmp_path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    by_hand = None
    try:
        line = proc.stdout.readline()
        base = line.split()[5]
        pids = {name: int(pid) for name, pid in (p.split() for p in line.rstrip(")\n").split("pids: ")[1].split(", "))}
        with open(f"/proc/{pids['payment']}/cmdline") as f:
            command = f.read().split("\0")[:-1]
        os.kill(pids["payment"], signal.SIGKILL)
        assert wait_for(lambda: not alive(pids["payment"]))
        by_hand = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert by_hand.stdout.readline().startswith("wdm payment service listening on "), by_hand.stderr.read()
        # A service that watched for its first parent gave up on a new one within half a second.
        time.sleep(1.5)
        assert by_hand.poll() is None, f"it exited with code {by_hand.returncode}: {by_hand.stderr.read()}"
        assert status(f"{base}/payment/create_user", "POST") == 200
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=15)
    finally:
        for p in filter(None, (by_hand, proc)):
            if p.poll() is None:
                p.kill()
                p.wait()


@pytest.mark.parametrize("method, path", [("POST", "/stock/item/create/%0A"), ("POST", "/payment/add_funds/0/%0A"),
                                          ("GET", "/stock/find/%0A"), ("GET", "/orders/find/a%0Ab")])
def test_the_gateway_answers_a_newline_in_a_path_value_as_the_single_process_does(shop, services, method, path):
    answer = status(services.base_url + path, method)
    assert answer == status(shop.base_url + path, method), "the gateway and the single process disagree"
    assert answer == (400 if path.endswith("%0A") and method == "POST" else 404)


# ---------------------------------------------------------------- the saga under faults

# Plenty of stock, not quite enough credit: most checkouts take stock and pay, some are refused by
# the payment service and must give their stock back. 100 in flight keep many sagas half-way.
SCENARIO = dict(n_items=8, item_stock=60, item_price=1, n_users=100, user_credit=4, n_orders=400,
                concurrency=100, timeout_s=30, settle_s=15, quiet_s=1.0)


def _steps_taken(shop: ReferenceServices) -> int:
    """Checkouts that reached the stock service so far, read from its database."""
    db = sqlite3.connect(f"file:{os.path.join(shop.data_dir, 'stock.sqlite')}?mode=ro", uri=True)
    try:
        return db.execute("SELECT count(*) FROM steps").fetchone()[0]
    finally:
        db.close()


def crash(shop: ReferenceServices) -> None:
    """The payment service dies, then at once the order service with checkouts in flight (some of
    them waiting for the payment); both come back. The gateway stalls meanwhile, so the rest of the
    load waits for them rather than failing fast and ending before they are back."""
    shop.kill("payment")
    shop.kill("order")
    shop.pause("gateway")
    try:
        shop.start("payment")
        shop.start("order")
    finally:
        shop.resume("gateway")


class MidLoad(threading.Thread):
    """Runs `fault` once `at` checkouts have reached the stock service: timing from observed
    progress, so the fault lands among the checkouts on a fast machine and a slow one alike."""

    def __init__(self, shop: ReferenceServices, at: int, fault):
        super().__init__(daemon=True)
        self.shop, self.at, self.fault = shop, at, fault
        self.landed_at: int | None = None
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            deadline = time.monotonic() + 60
            while (progress := _steps_taken(self.shop)) < self.at:
                if time.monotonic() > deadline:
                    return
                time.sleep(0.003)
            self.landed_at = progress
            self.fault(self.shop)
        except BaseException as e:  # reported by the test, not lost in a thread
            self.error = e


def run_with_fault(tmp_path, write_urls, fault) -> dict:
    rng = random.Random()
    scenario = ConsistencyScenario(**SCENARIO, seed=rng.randrange(2**31))
    at = int(scenario.n_orders * rng.uniform(0.15, 0.35))
    with ReferenceServices() as shop:
        owned = shop.data_dir
        injector = MidLoad(shop, at, fault)
        injector.start()
        _, summary = run_consistency(scenario, urls=write_urls(shop.base_url), runs_dir=tmp_path / "runs",
                                     progress=False)
        injector.join(30)
    assert not os.path.exists(owned), "the temporary data folder was left behind"
    assert injector.error is None, f"the fault failed: {injector.error!r}"
    assert injector.landed_at is not None and injector.landed_at < scenario.n_orders, \
        f"the fault did not land among the checkouts (at {at} of {scenario.n_orders}, seed {scenario.seed})"
    summary["names"] = {a["name"] for a in summary["anomalies"]}
    summary["context"] = f"fault at {injector.landed_at} of {scenario.n_orders}, seed {scenario.seed}: {summary}"
    return summary


@pytest.mark.long
def test_the_saga_stays_consistent_when_two_services_die_at_once(tmp_path, write_urls):
    summary = run_with_fault(tmp_path, write_urls, crash)
    assert summary["outcomes"]["unknown"] > 0, "no checkout was in doubt: the fault hit nothing"
    assert summary["valid"], summary["context"]
    assert summary["outcomes"]["ok"] > 50, summary["context"]


def test_the_saga_shows_no_reader_the_stock_of_a_checkout_it_refuses(services):
    """Every checkout here takes the stock, then is refused for want of credit and gives it back: a
    reader meanwhile must find the stock untouched (API.md: a 4xx changed nothing)."""
    async def race() -> tuple[set, list[int]]:
        async with ShopClient(Target(services.base_url, services.base_url, services.base_url, "test")) as client:
            item = (await client.create_item(1)).body["item_id"]
            await client.add_stock(item, 1000)
            user = (await client.create_user()).body["user_id"]
            orders = []
            for _ in range(200):
                order = (await client.create_order(user)).body["order_id"]
                await client.add_item(order, item, 1)
                orders.append(order)
            seen, done = [], asyncio.Event()

            async def read():
                while not done.is_set():
                    seen.append((await client.find_item(item)).body["stock"])
            readers = [asyncio.ensure_future(read()) for _ in range(8)]
            replies = await asyncio.gather(*(client.checkout(order) for order in orders))
            done.set()
            await asyncio.gather(*readers)
            return {r.status for r in replies}, seen
    statuses, seen = asyncio.run(race())
    assert statuses == {409} and len(seen) > 50
    assert set(seen) == {1000}
