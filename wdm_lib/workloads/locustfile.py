"""The stress scenario as Locust runs it: `locust -f this_file.py --host ORDER_URL ...`.

Standalone on purpose (no wdm_lib imports): a Locust worker on another machine, or in a Kubernetes
pod built from the stock `locustio/locust` image, needs only this file. Its parameters are Locust
custom arguments (`--wdm-...`, or the `WDM_...` environment variables), so Locust's master forwards
them to every worker at the start of a test and the workers need nothing but the master's address.

The scenario is the seed benchmark's: each user checks out a random order `0..n_orders-1` (named
`/orders/checkout/[order_id]`), optionally mixed with reads and add-funds by weight, then waits 1 s
(the seed locustfile's `constant(1)`; `--wdm-wait-min/max` draw it from a range). 4xx is a
failure in Locust's figures (the seed's rule) and so are 5xx and no reply (Locust's rule, kept so a
shop breaking under load does not look healthy).

Open loop: with `--wdm-pacing S` each user sends one request every S seconds on a fixed schedule,
whatever the replies take (as wrk2 does); a request's row carries the tick it was meant for, so the
response time can be measured from the intended start, corrected for coordinated omission.

Raw latencies: with `--wdm-raw-dir DIR` every request becomes one row of a `requests-*.csv` in DIR
(shop_rows.RAW_COLUMNS), buffered, so percentiles can be computed exactly
instead of from Locust's rounded histogram. A local run writes its own file; distributed workers
attach their rows to the stats report they send the master every few seconds anyway (and to the
final one), and the master writes one file per worker, so rows from other machines land in the
master's run folder too.

Step load: with `WDM_STEPS=50,100,200` in the environment of the master (or local) process, a
LoadTestShape holds each user count for `--wdm-step-time` seconds, then stops. The environment,
not a custom argument, because Locust picks its shape class when it imports this file.

Workers: with `--wdm-workers-file FILE` a master writes one CSV row each time a worker goes missing
(no heartbeat), comes back or leaves while the test runs, so a run that lost part of its load
says so instead of quietly measuring less.

Body cap: a reply body longer than 1 MiB decoded, whatever its status, breaks the contract (README,
as the consistency client holds it): it is read no further, counted as a failure naming the URL,
and the whole test stops (a worker asks its master) with exit code 2 and the line `STOPPED + the
sentence` in the log, which `wdm stress run` reads, as a reader of a Kubernetes pod's log can.
"""

from __future__ import annotations

import csv
import logging
import os
import random
import re
import socket
import time
import zlib
from urllib.parse import quote

import gevent
from locust import FastHttpUser, HttpUser, LoadTestShape, events
from locust.runners import STATE_MISSING, STATE_RUNNING, STATE_SPAWNING, MasterRunner, WorkerRunner
import locust.stats
# Beside this file, here and in the Kubernetes ConfigMap: the one definition of the row's columns.
from shop_rows import LOAD_STARTED, MAX_BODY, RAW_COLUMNS, STOPPED, outcome

RAW_KEY = "wdm_raw"  # where a worker's rows ride in its stats report to the master
# How often Locust rewrites its CSVs (its writer reads this at every tick; set before it starts).
CSV_TICK_S = 0.25
locust.stats.CSV_STATS_INTERVAL_SEC = CSV_TICK_S

# (option, environment variable, type, default, help): the scenario's knobs, as Locust options.
OPTIONS = [
    ("--wdm-stock-url", "WDM_STOCK_URL", str, "", "STOCK_URL (default: the --host)"),
    ("--wdm-payment-url", "WDM_PAYMENT_URL", str, "", "PAYMENT_URL (default: the --host)"),
    ("--wdm-n-items", "WDM_N_ITEMS", int, 100_000, "items batch-initialised, ids 0..n-1"),
    ("--wdm-n-users", "WDM_N_USERS", int, 100_000, "users batch-initialised, ids 0..n-1"),
    ("--wdm-n-orders", "WDM_N_ORDERS", int, 100_000, "orders batch-initialised, ids 0..n-1"),
    ("--wdm-checkout-weight", "WDM_CHECKOUT_WEIGHT", int, 1, "weight of checkout"),
    ("--wdm-find-order-weight", "WDM_FIND_ORDER_WEIGHT", int, 0, "weight of find order"),
    ("--wdm-find-item-weight", "WDM_FIND_ITEM_WEIGHT", int, 0, "weight of find item"),
    ("--wdm-find-user-weight", "WDM_FIND_USER_WEIGHT", int, 0, "weight of find user"),
    ("--wdm-add-funds-weight", "WDM_ADD_FUNDS_WEIGHT", int, 0, "weight of add funds"),
    ("--wdm-funds-amount", "WDM_FUNDS_AMOUNT", int, 1, "credit each add funds adds"),
    ("--wdm-wait-min", "WDM_WAIT_MIN", float, 1.0, "shortest wait between a user's requests (s)"),
    ("--wdm-wait-max", "WDM_WAIT_MAX", float, 1.0, "longest wait between a user's requests (s)"),
    ("--wdm-pacing", "WDM_PACING", float, 0.0, "open loop: each user sends once every this many s (0: off)"),
    ("--wdm-step-time", "WDM_STEP_TIME", float, 30.0, "seconds each step of WDM_STEPS lasts"),
]
# A local run writes its buffer every this many rows, or seconds: the live line and a run that is
# killed see rows at most that old.
FLUSH_ROWS, FLUSH_S = 5000, 2.0
READ_CHUNK = 64 << 10  # a body is read this much at a time and dropped: the scenario never uses it
STOP_MESSAGE = "wdm_stop"  # a worker to its master: the test must end, and why


@events.init_command_line_parser.add_listener
def _options(parser):
    for option, env, type_, default, help_ in OPTIONS:
        parser.add_argument(option, env_var=env, type=type_, default=default, help=help_)
    parser.add_argument("--wdm-raw-dir", env_var="WDM_RAW_DIR", default="", include_in_web_ui=False,
                        help="write one CSV row per request into this folder (default: off)")
    parser.add_argument("--wdm-workers-file", env_var="WDM_WORKERS_FILE", default="", include_in_web_ui=False,
                        help="master: record workers going missing or leaving in this CSV (default: off)")


# --- the users ---------------------------------------------------------------------------------

class ShopTasks:
    """The tasks, shared by the FastHttpUser that runs them and the HttpUser the benchmark compares."""

    def on_start(self):
        o = self.environment.parsed_options
        host = (self.host or "").rstrip("/")
        self.order_url = host
        self.stock_url = (o.wdm_stock_url or host).rstrip("/")
        self.payment_url = (o.wdm_payment_url or host).rstrip("/")
        self.n_items, self.n_users, self.n_orders = o.wdm_n_items, o.wdm_n_users, o.wdm_n_orders
        self.funds_amount = o.wdm_funds_amount
        self.wait_min, self.wait_max = o.wdm_wait_min, o.wdm_wait_max
        self.pacing_ns = int(o.wdm_pacing * 1e9)
        # Locust runs the first task right after on_start: a paced user's schedule starts now. The
        # users' schedules are spread by their spawning, one after another over the ramp-up.
        self.next_tick_ns = time.time_ns()
        self.intended_ns = 0
        ops = [(self.checkout, o.wdm_checkout_weight), (self.find_order, o.wdm_find_order_weight),
               (self.find_item, o.wdm_find_item_weight), (self.find_user, o.wdm_find_user_weight),
               (self.add_funds, o.wdm_add_funds_weight)]
        self.ops = [op for op, w in ops if w > 0]
        self.weights = [w for _, w in ops if w > 0]

    def wait_time(self):
        if self.pacing_ns:
            return max(0.0, (self.next_tick_ns - time.time_ns()) / 1e9)
        return random.uniform(self.wait_min, self.wait_max)

    def one_operation(self):
        # Locust's constant_pacing anchors each wait on the previous task's start, so after a stall
        # the schedule slides and the requests it held back are never charged for the wait. A fixed
        # schedule keeps each tick where it was: a late request is sent at once, and its intended
        # start is the tick it missed.
        if self.pacing_ns:
            self.intended_ns = self.next_tick_ns
            self.next_tick_ns += self.pacing_ns
        # One task drawing by weight: the weights arrive with the master's options, after import.
        if len(self.ops) == 1:
            self.ops[0]()
        else:
            random.choices(self.ops, self.weights)[0]()

    tasks = [one_operation]  # a plain list: Locust collects @task only from User classes themselves

    def _call(self, method, url, name):
        # catch_response: a failure is named by its status only, so Locust's failure table has one
        # row per status instead of one per order id in the URL (a body past the cap names its URL:
        # it ends the run). stream: the body is read here, capped, never whole; its time still
        # counts, as it did when Locust read it.
        started = time.perf_counter()
        with self.client.request(method, url, name=name, catch_response=True, stream=True,
                                 context={"intended_ns": self.intended_ns}) as response:
            status = response.status_code or 0
            try:
                size = body_size(response) if status else 0
            except Exception as e:  # the connection broke, or went quiet, while the body came
                response.failure(f"HTTP {status}, its body did not arrive whole: {e!r}")
                return
            finally:
                response.request_meta["response_time"] = (time.perf_counter() - started) * 1000
            response.request_meta["response_length"] = min(size, MAX_BODY)
            if size > MAX_BODY:
                response.failure(f"{method} {url}: a reply body of more than {MAX_BODY >> 20} MiB, read no further")
                stop_test(self.environment, f"{method} {url} answered {status} with a reply body of more than "
                                            f"{MAX_BODY >> 20} MiB (read no further); API.md expects short "
                                            f"replies, so the run was stopped.")
            elif 200 <= status < 300:
                response.success()
            else:
                response.failure(f"HTTP {status}" if status else f"no complete reply: {response.error!r}")

    def checkout(self):
        self._call("POST", f"{self.order_url}/orders/checkout/{segment(random.randrange(self.n_orders))}",
                   "/orders/checkout/[order_id]")

    def find_order(self):
        self._call("GET", f"{self.order_url}/orders/find/{segment(random.randrange(self.n_orders))}",
                   "/orders/find/[order_id]")

    def find_item(self):
        self._call("GET", f"{self.stock_url}/stock/find/{segment(random.randrange(self.n_items))}",
                   "/stock/find/[item_id]")

    def find_user(self):
        self._call("GET", f"{self.payment_url}/payment/find_user/{segment(random.randrange(self.n_users))}",
                   "/payment/find_user/[user_id]")

    def add_funds(self):
        self._call("POST", f"{self.payment_url}/payment/add_funds/{segment(random.randrange(self.n_users))}/"
                           f"{self.funds_amount}", "/payment/add_funds/[user_id]/[amount]")


def segment(id_) -> str:
    """An id as one path segment: ids are opaque strings (API.md), and one holding a `/`, `?` or
    `%` must not turn into another path or a query."""
    return quote(str(id_), safe="")


def body_size(response) -> int:
    """The decoded size of a streamed reply's body, read a chunk at a time and dropped, counted no
    further than MAX_BODY + 1: past that the connection is closed unread. A declared length past
    the cap is enough, whatever the status (FastHttpUser leaves the body of a non-2xx reply unread)."""
    headers = response.headers or {}
    declared = headers.get("content-length") or ""
    if declared.isdigit() and int(declared) > MAX_BODY and not headers.get("content-encoding"):
        _close(response)
        return int(declared)
    raw = getattr(response, "raw", None)  # requests (HttpUser): urllib3's response, read undecoded
    decoded = Decoded(headers.get("content-encoding", ""))
    size = 0
    while size <= MAX_BODY:
        chunk = raw.read(READ_CHUNK, decode_content=False) if raw is not None else response.read(READ_CHUNK)
        if not chunk:
            return size
        size += decoded.size(chunk, MAX_BODY - size)
    _close(response)
    return size


def _close(response) -> None:
    """Drop the connection of a body left unread (geventhttpclient closes one released mid-body)."""
    (getattr(response, "release", None) or response.close)()


class Decoded:
    """Counts the decoded bytes of a body as its chunks arrive (gzip, deflate, br: what Locust asks
    for), inflating each chunk no further than the room left: a small compressed chunk may hold
    gigabytes, and counting must not hold them. A body that does not decode as its header says is
    counted as sent."""

    def __init__(self, encoding: str):
        self.encoding = encoding.strip().lower()
        self.decoded = 0
        self._zlib = self._br = None
        if self.encoding in ("gzip", "x-gzip", "deflate"):
            self._zlib = zlib.decompressobj(zlib.MAX_WBITS | 32)  # a gzip or a zlib header, told apart
        elif self.encoding == "br":
            try:
                import brotli  # geventhttpclient's dependency, so on every Locust image
                self._br = brotli.Decompressor()
            except ImportError:
                pass

    def size(self, chunk: bytes, room: int) -> int:
        """This chunk's decoded bytes, counted up to room + 1."""
        try:
            n = self._inflate(chunk, room) if self._zlib else self._unbrotli(chunk, room) if self._br else len(chunk)
        except zlib.error:
            if self.encoding == "deflate" and self.decoded == 0:  # deflate sent raw, without its zlib header
                self._zlib = zlib.decompressobj(-zlib.MAX_WBITS)
                return self.size(chunk, room)
            self._zlib, n = None, len(chunk)
        except Exception:  # brotli.error
            self._br, n = None, len(chunk)
        self.decoded += n
        return n

    def _inflate(self, chunk: bytes, room: int) -> int:
        n = 0
        while chunk and n <= room:
            n += len(self._zlib.decompress(chunk, room + 1 - n))
            chunk = self._zlib.unconsumed_tail
        return n

    def _unbrotli(self, chunk: bytes, room: int) -> int:
        n = len(self._br.process(chunk, output_buffer_limit=room + 1))
        while n <= room and not self._br.can_accept_more_data():
            n += len(self._br.process(b"", output_buffer_limit=room + 1 - n))
        return n


def stop_test(environment, sentence: str) -> None:
    """End the whole test for a reason the figures cannot show (a body past the cap): once, from
    whichever user saw it first. A worker cannot end the test: it asks its master, whose handler
    comes back here."""
    if getattr(environment, "wdm_stopped", None):
        return
    environment.wdm_stopped = sentence
    runner = environment.runner
    if isinstance(runner, WorkerRunner):
        # Not at once: this runs inside the request that said why, whose failure is counted when
        # it ends. Then a stats report (with its raw rows) before the stop, on the one socket to
        # the master, in order: else the master could end the test without this worker's last
        # figures, the failure among them.
        def tell_master():
            gevent.sleep(0)
            runner._send_stats()  # Locust's own report to the master, sent now rather than in 3 s
            runner.send_message(STOP_MESSAGE, sentence)
        gevent.spawn(tell_master)
        return
    logging.getLogger("wdm").error(STOPPED + sentence)
    environment.process_exit_code = 2  # as wdm's own "the run could not be made"
    # Not from this greenlet: quit() kills the users' greenlets (and a master's message listener).
    gevent.spawn(runner.quit)


def _stop_asked(environment, msg, **_):
    """On a master: a worker's stop_test."""
    stop_test(environment, msg.data)


# Only one of the two runs: the benchmark sets WDM_HTTP_CLIENT=requests to compare the clients.
_REQUESTS = os.environ.get("WDM_HTTP_CLIENT", "fast") == "requests"


class ShopUser(ShopTasks, FastHttpUser):
    abstract = _REQUESTS
    # FastHttpUser's default keeps one connection per user; the shop's replies are small.
    network_timeout = 60.0
    connection_timeout = 60.0


class ShopHttpUser(ShopTasks, HttpUser):
    abstract = not _REQUESTS


# --- step load -----------------------------------------------------------------------------------

def parse_steps(text: str) -> list[int]:
    return [int(s) for s in re.split(r"[,\s]+", text.strip()) if s]


_STEPS = parse_steps(os.environ.get("WDM_STEPS", ""))


class StepShape(LoadTestShape):
    """Each user count of WDM_STEPS for --wdm-step-time seconds, spawned at --spawn-rate."""

    abstract = not _STEPS
    steps = _STEPS

    def tick(self):
        o = self.runner.environment.parsed_options
        step = int(self.get_run_time() // o.wdm_step_time)
        if step >= len(self.steps):
            return None
        return self.steps[step], o.spawn_rate or 1


@events.test_start.add_listener
def note_load_start(environment, **_):
    """The load starts (on the master, or the only process): its clock is written beside the raw
    rows (shop_rows.LOAD_STARTED), for the fault schedule and the step figures to count from."""
    options = environment.parsed_options
    folder = getattr(options, "wdm_raw_dir", "") if options is not None else ""
    if not folder or isinstance(environment.runner, WorkerRunner):
        return
    try:
        with open(os.path.join(folder, LOAD_STARTED), "w") as f:
            f.write(f"{time.time_ns()}\n")
    except OSError as e:  # steps then count from the first request; a fault schedule never starts (wdm says so)
        logging.getLogger("wdm").warning(f"cannot write {LOAD_STARTED} in {folder}: {e}")


# --- raw latencies ---------------------------------------------------------------------------------

def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text)


class RawFile:
    """One requests-*.csv, appended to in batches. A file that cannot be written (a full disk)
    ends the test: figures that silently miss rows would be wrong figures."""

    def __init__(self, environment, folder: str, tag: str):
        self.environment = environment
        self.path = os.path.join(folder, f"requests-{_safe(tag)}.csv")
        self._file = None
        try:
            self._file = open(self.path, "w", newline="", encoding="utf-8")
            self._csv = csv.writer(self._file)
            self._csv.writerow(RAW_COLUMNS)
            self._file.flush()
        except OSError as e:
            self._failed(e)

    def write(self, rows) -> None:
        """rows: RAW_COLUMNS but the outcome, which is added here, off the request's path."""
        if self._file is None:
            return
        try:
            self._csv.writerows(r + [outcome(r[4])] for r in rows)
            self._file.flush()
        except OSError as e:
            self._failed(e)

    def _failed(self, e: OSError) -> None:
        if self._file is not None:
            try:
                self._file.close()
            except OSError:
                pass
        self._file = None
        stop_test(self.environment, f"{self.path}: cannot be written ({e.strerror or e}); the run stopped there, "
                                    f"and what was recorded before is kept in {os.path.dirname(self.path)}.")

    def close(self) -> None:
        if self._file is not None and not self._file.closed:
            try:
                self._file.close()
            except OSError:  # what could not be flushed ended the test already
                pass


class RawLatencies:
    """The request hook: one row per request into a buffer; the buffer goes to a file (local) or
    into the next stats report (worker); a master writes what its workers report."""

    def __init__(self, environment):
        self.environment = environment
        self.buffer: list = []
        self.file: RawFile | None = None
        self.files: dict[str, RawFile] = {}  # master: one per worker
        self._flush_by_ns = 0
        self.on = False
        ev = environment.events
        runner = environment.runner
        if isinstance(runner, MasterRunner):
            ev.worker_report.add_listener(self.on_worker_report)
        else:
            ev.request.add_listener(self.on_request)
            ev.test_start.add_listener(self.on_test_start)
            ev.test_stop.add_listener(self.flush)
            if isinstance(runner, WorkerRunner):
                ev.report_to_master.add_listener(self.on_report_to_master)
                ev.test_stop.add_listener(self.report_now)
        ev.quit.add_listener(self.close)

    def report_now(self, **_):
        """On a worker, as its master's "stop" arrives: the last rows go in a report at once. Locust's
        worker then sleeps --stop-timeout in its message loop before it reads "quit" (where it sends
        its final report), while the master waits half a second for that report and goes: a step
        load, which the master stops before it quits, lost its workers' last seconds of rows."""
        if self.buffer:
            self.environment.runner._send_stats()

    def raw_dir(self) -> str:
        o = self.environment.parsed_options
        return getattr(o, "wdm_raw_dir", "") if o is not None else ""

    def on_test_start(self, environment, **_):
        # On a worker the master's options (and so --wdm-raw-dir) have just arrived.
        self.on = bool(self.raw_dir())
        if self.on and not isinstance(environment.runner, WorkerRunner) and self.file is None:
            self.file = RawFile(self.environment, self.raw_dir(), f"{socket.gethostname()}-{os.getpid()}")

    def on_request(self, request_type, name, response_time, response, start_time=None, context=None, **_):
        if not self.on:
            return
        status = getattr(response, "status_code", 0) or 0
        start_ns = int((start_time or 0) * 1e9)
        # Closed loop (no tick): the request was meant to go when it went.
        intended_ns = (context or {}).get("intended_ns") or start_ns
        self.buffer.append([start_ns, intended_ns, name, request_type, status,
                            int(round((response_time or 0) * 1000))])
        if self.file is not None and (len(self.buffer) >= FLUSH_ROWS or start_ns > self._flush_by_ns):
            self.flush()

    def flush(self, **_):
        if self.file is not None and self.buffer:
            rows, self.buffer = self.buffer, []
            self.file.write(rows)
        self._flush_by_ns = time.time_ns() + int(FLUSH_S * 1e9)

    def on_report_to_master(self, client_id, data):
        if self.buffer:
            data[RAW_KEY], self.buffer = self.buffer, []

    def on_worker_report(self, client_id, data):
        rows = data.get(RAW_KEY)
        folder = self.raw_dir()
        if not rows or not folder:
            return
        if client_id not in self.files:
            self.files[client_id] = RawFile(self.environment, folder, client_id)
        self.files[client_id].write(rows)

    def close(self, **_):
        self.flush()
        for f in [self.file, *self.files.values()]:
            if f is not None:
                f.close()


# --- workers -------------------------------------------------------------------------------------

WORKER_COLUMNS = ["t_ns", "worker", "event", "users"]


class WorkerWatch:
    """On a master: every second, each worker's state; a row when one goes missing (no heartbeat
    for HEARTBEAT_LIVENESS s), comes back, or leaves while the test is running. `users` is how many
    users it held at the last look before it went, the load the run lost with it."""

    def __init__(self, environment, path: str):
        self.runner = environment.runner
        self.path = path
        self.seen: dict[str, tuple[str, int]] = {}  # worker id -> (state, users at the last look)
        self._file = open(path, "w", newline="", encoding="utf-8")
        self._csv = csv.writer(self._file)
        self._csv.writerow(WORKER_COLUMNS)
        self._file.flush()
        self._greenlet = gevent.spawn(self._watch)
        environment.events.quit.add_listener(self.close)

    def _watch(self):
        while True:
            gevent.sleep(1)
            self.look()

    def look(self):
        # Workers leave at the end of every test; only what happens while it runs costs it load.
        running = self.runner.state in (STATE_RUNNING, STATE_SPAWNING)
        now = {w.id: w for w in self.runner.clients.values()}
        for wid, (state, users) in list(self.seen.items()):
            worker = now.get(wid)
            if worker is None:
                if running and state != STATE_MISSING:  # a missing one is dropped later: said once
                    self._row(wid, "left", users)
                del self.seen[wid]
            elif running and worker.state == STATE_MISSING and state != STATE_MISSING:
                self._row(wid, "missing", users)
            elif running and worker.state != STATE_MISSING and state == STATE_MISSING:
                self._row(wid, "back", 0)
        for wid, w in now.items():
            # A missing worker's users are cleared by Locust: keep the count it had.
            users = w.user_count if w.state != STATE_MISSING else self.seen.get(wid, ("", 0))[1]
            self.seen[wid] = (w.state, users)

    def _row(self, wid, event, users):
        self._csv.writerow([time.time_ns(), wid, event, users])
        self._file.flush()

    def close(self, **_):
        self._greenlet.kill(block=False)
        if not self._file.closed:
            self._file.close()


@events.init.add_listener
def _hook(environment, **_):
    environment.wdm_raw = RawLatencies(environment)
    o = environment.parsed_options
    if isinstance(environment.runner, MasterRunner):
        environment.runner.register_message(STOP_MESSAGE, _stop_asked)
        if o is not None and getattr(o, "wdm_workers_file", ""):
            environment.wdm_workers = WorkerWatch(environment, o.wdm_workers_file)
    o = environment.parsed_options
    if o is not None and getattr(o, "csv_prefix", None) and not isinstance(environment.runner, WorkerRunner):
        # Locust rewrites its CSVs every CSV_STATS_INTERVAL_SEC but not at exit, so they would miss
        # the last moments (and a master the workers' final reports). By `quit` the figures are
        # final: give its writer one more tick, and close_files() then flushes it. A quarter of a
        # second, not Locust's second, so a run stopped by Ctrl-C (the web UI's only end) stops at
        # once; a master waits a whole second more, for its workers' last reports.
        wait_s = CSV_TICK_S + (1.0 if isinstance(environment.runner, MasterRunner) else 0.25)
        environment.events.quit.add_listener(lambda **_: gevent.sleep(wait_s))
