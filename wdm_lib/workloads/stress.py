"""The stress scenario: batch-initialise the shop, drive it with Locust (headless, its CSVs and HTML
report into the Run folder, plus one raw row per request), and read the result into summary.json.

Locust runs as a subprocess (`python -m locust -f locustfile.py`): it monkey-patches the standard
library with gevent on import, which must never reach the rest of wdm_lib. So nothing here imports
locust; the scenario reaches the locustfile as Locust custom arguments (see locustfile.py).
"""

from __future__ import annotations

import asyncio
import math
import os
import re
import signal
import subprocess
import sys
import threading
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Callable

from wdm_lib import runs
from wdm_lib.analysis import latency_percentiles
from wdm_lib.client import ShopClient, require_ok
from wdm_lib.config import Target
from wdm_lib.errors import WorkbenchError
from wdm_lib.history import OK, OUTCOMES, UNKNOWN

LOCUSTFILE = Path(__file__).with_name("locustfile.py")
LOCUST_PREFIX = "locust"  # -> locust_stats.csv, locust_stats_history.csv, locust_failures.csv, ...
LOCUST_HTML = "locust_report.html"
LOCUST_LOG = "locust.log"
RAW_GLOB = "requests-*.csv"
RAW_COLUMNS = ["start_ns", "name", "method", "status", "latency_us", "outcome"]
NAMES = {  # the Locust request names of the scenario's operations
    "checkout": "/orders/checkout/[order_id]",
    "find_order": "/orders/find/[order_id]",
    "find_item": "/stock/find/[item_id]",
    "find_user": "/payment/find_user/[user_id]",
    "add_funds": "/payment/add_funds/[user_id]/[amount]",
}
EXIT_GRACE_S = 60.0      # beyond the planned run time, before a hung Locust is stopped
INTERRUPT_GRACE_S = 30.0  # for Locust to write its files after Ctrl-C
# At the end, a request in flight may finish (and be counted) for this long before it is cut off.
STOP_TIMEOUT_S = 10.0
VERIFY_CHUNK = 5000
VERIFY_CONNECTIONS = 64


# --- parameters --------------------------------------------------------------------------------

_DURATION = re.compile(r"^(?:(?P<h>\d+(?:\.\d+)?)h)?(?:(?P<m>\d+(?:\.\d+)?)m)?(?:(?P<s>\d+(?:\.\d+)?)s)?$")


def parse_duration(text: str | float | int, option: str = "--run-time") -> float:
    """Seconds in `30s`, `1m`, `1h30m`, `1m30s` or a bare number of seconds (Locust's notation)."""
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        seconds = float(text)
    else:
        t = str(text).strip().lower().replace(" ", "")
        m = _DURATION.match(t)
        try:
            seconds = float(t)
        except ValueError:
            if not t or m is None:
                raise WorkbenchError(f"{option} is {text!r}; expected a duration such as 30s, 5m, "
                                     f"1h30m or a number of seconds.") from None
            seconds = (float(m["h"] or 0) * 3600 + float(m["m"] or 0) * 60 + float(m["s"] or 0))
    if not math.isfinite(seconds) or seconds <= 0:
        raise WorkbenchError(f"{option} is {text!r}; expected a positive duration such as 30s.")
    return seconds


def parse_steps(text: str | list | None) -> list[int] | None:
    """`50,100,200,400` -> [50, 100, 200, 400]; None or empty -> None."""
    if text is None or text == "" or text == []:
        return None
    parts = text if isinstance(text, list) else [p for p in re.split(r"[,\s]+", str(text).strip()) if p]
    try:
        steps = [int(p) for p in parts]
    except (TypeError, ValueError):
        raise WorkbenchError(f"--steps is {text!r}; expected user counts separated by commas, "
                             f"such as 50,100,200,400.") from None
    if not steps or any(s < 1 for s in steps):
        raise WorkbenchError(f"--steps is {text!r}; expected user counts of at least 1, "
                             f"such as 50,100,200,400.")
    return steps


@dataclass
class StressScenario:
    """The seed benchmark's stress test by default: 100k items (stock 1M, price 1), 100k users
    (credit 1M), 100k orders of two items, each user checking out a random order and then waiting
    between 1 and 15 s (the seed's `between(1, 15)`)."""

    n_items: int = 100_000
    item_stock: int = 1_000_000
    item_price: int = 1
    n_users: int = 100_000
    user_credit: int = 1_000_000
    n_orders: int = 100_000
    users: int = 100
    spawn_rate: float = 10.0
    run_time: float = 60.0                 # seconds; ignored by a step load
    processes: int = 1                     # Locust processes on this machine (1: no master/workers)
    wait: float | None = None              # constant wait between a user's requests; else wait_between
    wait_between: tuple[float, float] = (1.0, 15.0)
    checkout_weight: int = 1
    find_order_weight: int = 0
    find_item_weight: int = 0
    find_user_weight: int = 0
    add_funds_weight: int = 0
    funds_amount: int = 1
    steps: list[int] | None = None         # step load: user counts, each held step_time seconds
    step_time: float = 30.0
    raw_latencies: bool = True             # one row per request in requests-*.csv
    timeout_s: float = 300.0               # per request of the batch init and of --verify's reads

    def __post_init__(self) -> None:
        self.run_time = parse_duration(self.run_time, "--run-time")
        self.step_time = parse_duration(self.step_time, "--step-time")
        self.steps = parse_steps(self.steps)
        self.wait_between = tuple(float(x) for x in self.wait_between)
        for name in ("n_items", "n_users", "n_orders", "users"):
            if getattr(self, name) < 1:
                raise WorkbenchError(f"{_opt(name)} is {getattr(self, name)}; expected at least 1.")
        for name in ("item_stock", "item_price", "user_credit", "funds_amount", "checkout_weight",
                     "find_order_weight", "find_item_weight", "find_user_weight", "add_funds_weight"):
            if getattr(self, name) < 0:
                raise WorkbenchError(f"{_opt(name)} is {getattr(self, name)}; expected 0 or more.")
        if self.processes < 1 and self.processes != -1:
            raise WorkbenchError(f"--processes is {self.processes}; expected at least 1 "
                                 f"(or -1 for one per CPU core).")
        if not (self.spawn_rate > 0 and math.isfinite(self.spawn_rate)):
            raise WorkbenchError(f"--spawn-rate is {self.spawn_rate}; expected a positive number of "
                                 f"users started per second.")
        if self.wait is not None and not (self.wait >= 0 and math.isfinite(self.wait)):
            raise WorkbenchError(f"--wait is {self.wait}; expected 0 or more seconds.")
        if len(self.wait_between) != 2 or not (0 <= self.wait_between[0] <= self.wait_between[1] < math.inf):
            raise WorkbenchError(f"--wait-between is {' '.join(f'{x:g}' for x in self.wait_between)}; "
                                 f"expected two numbers of seconds, 0 <= A <= B.")
        if sum(self.weights().values()) == 0:
            raise WorkbenchError("every task weight is 0; expected --checkout-weight (or another "
                                 "task's weight) to be at least 1.")
        if not self.timeout_s > 0:
            raise WorkbenchError(f"--timeout is {self.timeout_s}; expected a positive number of seconds.")

    def weights(self) -> dict[str, int]:
        return {name: getattr(self, f"{name}_weight") for name in NAMES}

    @property
    def wait_range(self) -> tuple[float, float]:
        return (self.wait, self.wait) if self.wait is not None else self.wait_between

    @property
    def planned_s(self) -> float:
        """How long the load is meant to last."""
        return len(self.steps) * self.step_time if self.steps else self.run_time

    def to_dict(self) -> dict:
        d = asdict(self)
        d["wait_between"] = list(self.wait_between)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "StressScenario":
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


def _opt(name: str) -> str:
    return "--" + name.replace("_", "-")


# --- batch init ----------------------------------------------------------------------------------

async def batch_init(sc: StressScenario, target: Target) -> dict:
    """The three batch-init calls, in order, each timed. Returns the timings in seconds."""
    async with ShopClient(target, timeout_s=sc.timeout_s, connections=1) as client:
        items = require_ok(await client.batch_init_items(sc.n_items, sc.item_stock, sc.item_price),
                           "batch-initialising items")
        users = require_ok(await client.batch_init_users(sc.n_users, sc.user_credit),
                           "batch-initialising users")
        orders = require_ok(await client.batch_init_orders(sc.n_orders, sc.n_items, sc.n_users, sc.item_price),
                            "batch-initialising orders")
    timings = {"stock_s": items.latency_s, "payment_s": users.latency_s, "orders_s": orders.latency_s}
    timings = {k: round(v, 4) for k, v in timings.items()}
    timings["total_s"] = round(sum(timings.values()), 4)
    return timings


async def check_reachable(target: Target, timeout_s: float = 10.0) -> None:
    """One read per distinct service URL: an unreachable target ends here, in one sentence, instead
    of as a Locust run where every request failed."""
    async with ShopClient(target, timeout_s=timeout_s, connections=3) as client:
        calls = {target.order_url: client.find_order, target.stock_url: client.find_item,
                 target.payment_url: client.find_user}
        for reply in await asyncio.gather(*(find("0") for find in calls.values())):
            if reply.error.startswith("cannot connect") or reply.status is None:
                require_ok(reply, "checking that the target answers")


# --- the Locust command ----------------------------------------------------------------------------

@dataclass
class Distributed:
    """How this machine takes part: alone (processes), or as the master of workers elsewhere."""

    master: bool = False
    expect_workers: int = 1
    bind_host: str = "*"
    bind_port: int = 5557
    workers_wait_s: float = 60.0

    def __post_init__(self) -> None:
        if self.master and self.expect_workers < 1:
            raise WorkbenchError(f"--expect-workers is {self.expect_workers}; expected at least 1.")
        if not 0 < self.bind_port < 65536:
            raise WorkbenchError(f"--master-bind-port is {self.bind_port}; expected a TCP port 1..65535.")
        self.workers_wait_s = parse_duration(self.workers_wait_s, "--workers-wait")


def locust_options(sc: StressScenario, target: Target) -> list[str]:
    """The scenario as the locustfile's custom arguments (forwarded by a master to its workers)."""
    lo, hi = sc.wait_range
    opts = ["--wdm-stock-url", target.stock_url, "--wdm-payment-url", target.payment_url,
            "--wdm-n-items", str(sc.n_items), "--wdm-n-users", str(sc.n_users),
            "--wdm-n-orders", str(sc.n_orders), "--wdm-funds-amount", str(sc.funds_amount),
            "--wdm-wait-min", f"{lo:g}", "--wdm-wait-max", f"{hi:g}", "--wdm-step-time", f"{sc.step_time:g}"]
    for name, w in sc.weights().items():
        opts += [f"--wdm-{name.replace('_', '-')}-weight", str(w)]
    return opts


def locust_command(sc: StressScenario, target: Target, folder: Path, *, ui: bool = False,
                   web_port: int = 8089, dist: Distributed | None = None) -> tuple[list[str], dict[str, str]]:
    """The command line and environment of the Locust process that makes the run."""
    dist = dist or Distributed()
    cmd = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--host", target.order_url,
           "-u", str(sc.users), "-r", f"{sc.spawn_rate:g}",
           "--csv", str(folder / LOCUST_PREFIX), "--csv-full-history", "--html", str(folder / LOCUST_HTML),
           "--exit-code-on-error", "1", "--stop-timeout", f"{STOP_TIMEOUT_S:g}"]
    if ui:
        cmd += ["--web-host", "127.0.0.1", "--web-port", str(web_port)]
    else:
        cmd += ["--headless", "--only-summary"]
        if not sc.steps:
            cmd += ["-t", f"{math.ceil(sc.run_time)}s"]
    if dist.master:
        cmd += ["--master", "--expect-workers", str(dist.expect_workers),
                "--expect-workers-max-wait", str(math.ceil(dist.workers_wait_s)),
                "--master-bind-host", dist.bind_host, "--master-bind-port", str(dist.bind_port)]
    elif sc.processes != 1:
        cmd += ["--processes", str(sc.processes)]
    cmd += locust_options(sc, target)
    if sc.raw_latencies:
        cmd += ["--wdm-raw-dir", str(folder)]
    env = dict(os.environ)
    env.pop("WDM_STEPS", None)
    if sc.steps:
        env["WDM_STEPS"] = ",".join(map(str, sc.steps))
    return cmd, env


def worker_command(master_host: str, master_port: int = 5557, processes: int = 1) -> list[str]:
    cmd = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--worker",
           "--master-host", master_host, "--master-port", str(master_port)]
    if processes != 1:
        cmd += ["--processes", str(processes)]
    return cmd


class LocustProcess:
    """Locust in its own process group, its output copied into locust.log (and to the terminal when
    `echo`). Ctrl-C reaches it once, through us, so it always gets to write its CSVs and report."""

    def __init__(self, cmd: list[str], env: dict[str, str], log_path: Path, echo: bool = False):
        self.log_path = log_path
        self._log = open(log_path, "w", encoding="utf-8", errors="replace")
        self.proc = subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        self._copier = threading.Thread(target=self._copy, args=(echo,), daemon=True)
        self._copier.start()

    def _copy(self, echo: bool) -> None:
        for raw in self.proc.stdout:
            line = raw.decode("utf-8", "replace")
            self._log.write(line)
            self._log.flush()
            if echo:
                sys.stderr.write(line)

    def wait(self, bound_s: float | None) -> int:
        """Locust's exit code; a Locust still running after bound_s is stopped (SIGINT, then kill)."""
        try:
            return self.proc.wait(bound_s)
        except subprocess.TimeoutExpired:
            self.interrupt()
            raise WorkbenchError(f"Locust (pid {self.proc.pid}) was still running {bound_s:g} s after it "
                                 f"started, past its planned run time; it was stopped (see {self.log_path}).") \
                from None

    def interrupt(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(INTERRUPT_GRACE_S)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        return self.close()

    def close(self) -> int:
        code = self.proc.wait()
        self._copier.join(5)
        self._log.close()
        return code

    def log_tail(self, lines: int = 40) -> list[str]:
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace").strip().splitlines()[-lines:]
        except OSError:
            return []


def locust_failure(code: int, log_tail: list[str], dist: Distributed | None) -> str | None:
    """One sentence when Locust could not make the run, None when it did (exit 0, or 1: some
    requests failed)."""
    if dist is not None and dist.master and any("Gave up waiting for workers" in line for line in log_tail):
        return (f"not all --expect-workers {dist.expect_workers} workers connected within "
                f"--workers-wait {dist.workers_wait_s:g} s; expected them to be started with "
                f"`wdm stress worker --master-host <this machine> --master-port {dist.bind_port}`.")
    if code in (0, 1):
        return None
    errors = [line.strip() for line in log_tail if "rror" in line]
    detail = errors[-1] if errors else (log_tail[-1].strip() if log_tail else "no output")
    return f"Locust exited with code {code} without finishing the run: {detail[:300]}"


# --- reading a run ---------------------------------------------------------------------------------

def raw_files(folder: str | Path) -> list[Path]:
    return sorted(Path(folder).glob(RAW_GLOB))


def read_raw(folder: str | Path):
    """Every raw row of a run as one DataFrame, read as the notebooks read it (latency_ms, t_s)."""
    from wdm_lib.analysis import load_requests

    return load_requests(folder)


def _percentiles(latency_ms) -> dict:
    """latency_percentiles over a column, sorted by numpy first (so the pure function's own sort
    of millions of values only confirms the order)."""
    import numpy as np

    return latency_percentiles(np.sort(np.asarray(latency_ms, dtype="float64")).tolist())


def summarize_raw(df, steps: list[int] | None = None, step_time: float | None = None) -> dict:
    """The exact figures of summary.json from the raw rows (a read_raw frame)."""
    from wdm_lib.analysis import step_figures

    n = len(df)
    counts = df["outcome"].astype("string").value_counts() if n else {}
    outcomes = {k: int(counts.get(k, 0)) for k in OUTCOMES}
    out = {
        "requests": int(n),
        "failures": int(n - outcomes["ok"]),
        "duration_s": 0.0,
        "throughput_rps": 0.0,
        "latency_ms": _percentiles(df["latency_ms"]),
        "by_name": {str(name): _percentiles(g["latency_ms"])
                    for name, g in df.groupby("name", observed=True, sort=True) if len(g)},
        "outcomes": outcomes,
        "steps": None,
    }
    if n:
        # From the first request's start to the last one's end.
        span_ns = (df["start_ns"] + df["latency_ms"] * 1e6).max() - df["start_ns"].min()
        out["duration_s"] = round(max(float(span_ns), 1.0) / 1e9, 3)
        out["throughput_rps"] = round(n / out["duration_s"], 3)
    if steps and step_time:
        table = step_figures(df, steps, step_time)
        out["steps"] = [{"users": int(r.users), "requests": int(r.requests),
                         "throughput_rps": round(float(r.throughput_rps), 3),
                         "p99_ms": None if r.p99_ms != r.p99_ms or r.p99_ms is None else float(r.p99_ms)}
                        for r in table.itertuples()]
    return out


def _number(v) -> float | int | None:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    if not math.isfinite(f):
        return None
    return int(f) if f.is_integer() else f


def read_locust_aggregated(stats_csv: str | Path) -> dict | None:
    """Locust's own Aggregated row of locust_stats.csv, None when the file is missing."""
    import csv

    try:
        with open(stats_csv, newline="", encoding="utf-8") as f:
            rows = [r for r in csv.DictReader(f) if r.get("Name") == "Aggregated"]
    except FileNotFoundError:
        return None
    if not rows:
        return None
    r = rows[-1]
    return {"requests": _number(r["Request Count"]) or 0, "failures": _number(r["Failure Count"]) or 0,
            "median_ms": _number(r["Median Response Time"]), "p95_ms": _number(r["95%"]),
            "p99_ms": _number(r["99%"]), "rps": _number(r["Requests/s"])}


def first_exception(exceptions_csv: str | Path) -> str | None:
    """The message of the most frequent error in Locust's locust_exceptions.csv."""
    import csv

    try:
        with open(exceptions_csv, newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
    except FileNotFoundError:
        return None
    rows.sort(key=lambda r: -(_number(r.get("Count")) or 0))
    return rows[0]["Message"].strip()[:300] if rows else None


def summarize(run_id: str, sc: StressScenario, folder: str | Path, verify: dict | None = None) -> dict:
    """summary.json of a stress run: exact figures from the raw rows, Locust's own beside them."""
    folder = Path(folder)
    locust = read_locust_aggregated(folder / f"{LOCUST_PREFIX}_stats.csv")
    df = read_raw(folder)
    raw = summarize_raw(df, sc.steps, sc.step_time)
    if not raw_files(folder) and locust is not None:
        # Raw latencies were off: the counts are Locust's, the percentiles unknown.
        raw["requests"], raw["failures"] = int(locust["requests"]), int(locust["failures"])
        raw["duration_s"] = sc.planned_s
        raw["throughput_rps"] = locust["rps"] or 0.0
    return {"run_id": run_id, "kind": "stress", **{k: raw[k] for k in (
        "requests", "failures", "duration_s", "throughput_rps", "latency_ms", "by_name", "outcomes")},
        "locust": locust, "verify": verify, "steps": raw["steps"]}


def funds_added(df, amount: int) -> tuple[int, int]:
    """(credit certainly added by add funds, add funds whose outcome is unknown)."""
    if not len(df):
        return 0, 0
    mine = df[df["name"] == NAMES["add_funds"]]
    return int((mine["outcome"] == OK).sum()) * amount, int((mine["outcome"] == UNKNOWN).sum())


# --- verify ----------------------------------------------------------------------------------------

def check_money(sc: StressScenario, items: dict, users: dict, added: int = 0, added_unknown: int = 0) -> dict:
    """Pure: no stock or credit negative, and credit spent == price * stock sold since the batch
    init. `items` maps id -> {"stock"} (None: unknown to the target), `users` id -> {"credit"}.
    An add funds of unknown outcome may or may not have added `funds_amount`; the books balance if
    they do for some number of them."""
    stocks = {i: v["stock"] for i, v in items.items() if v is not None}
    credits = {u: v["credit"] for u, v in users.items() if v is not None}
    negative_stock = sorted((i for i, s in stocks.items() if s < 0), key=_id_key)
    negative_credit = sorted((u for u, c in credits.items() if c < 0), key=_id_key)
    missing_items = len(items) - len(stocks)
    missing_users = len(users) - len(credits)
    stock_sold = sc.n_items * sc.item_stock - sum(stocks.values())
    credit_spent = sc.n_users * sc.user_credit + added - sum(credits.values())
    stock_value_sold = sc.item_price * stock_sold
    gap = stock_value_sold - credit_spent  # what unknown add funds would have to explain
    balanced = gap == 0 or (sc.funds_amount > 0 and gap % sc.funds_amount == 0
                            and 0 <= gap // sc.funds_amount <= added_unknown)
    notes = []
    if missing_items or missing_users:
        notes.append(f"{missing_items} items and {missing_users} users of the batch init are unknown to "
                     f"the target; was it initialised with these sizes (wdm stress init, or --init)?")
    if not balanced:
        notes.append(f"credit spent ({credit_spent}) differs from price times stock sold "
                     f"({stock_value_sold}) by {gap}.")
    return {
        "valid": not negative_stock and not negative_credit and balanced and not missing_items and not missing_users,
        "negative_stock": len(negative_stock), "negative_credit": len(negative_credit),
        "credit_spent": credit_spent, "stock_sold": stock_sold, "stock_value_sold": stock_value_sold,
        "funds_added": added, "add_funds_unknown": added_unknown,
        "missing_items": missing_items, "missing_users": missing_users,
        "examples": {"negative_stock": negative_stock[:10], "negative_credit": negative_credit[:10]},
        "notes": notes,
    }


def _id_key(i: str):
    return (0, int(i)) if i.isdigit() else (1, i)


async def read_balances(sc: StressScenario, target: Target, progress: bool | None = None) -> tuple[dict, dict]:
    """Every item's stock and user's credit of the batch init, a chunk of ids at a time."""
    from wdm_lib.workloads.consistency import read_state

    items: dict = {}
    users: dict = {}
    async with ShopClient(target, timeout_s=sc.timeout_s, connections=VERIFY_CONNECTIONS) as client:
        for start in range(0, max(sc.n_items, sc.n_users), VERIFY_CHUNK):
            item_ids = [str(i) for i in range(start, min(start + VERIFY_CHUNK, sc.n_items))]
            user_ids = [str(u) for u in range(start, min(start + VERIFY_CHUNK, sc.n_users))]
            state = await read_state(client, item_ids, user_ids, [], "verifying", progress)
            items.update(state["items"])
            users.update(state["users"])
    return items, users


def verify(sc: StressScenario, target: Target, folder: str | Path, progress: bool | None = None) -> dict:
    df = read_raw(folder) if sc.add_funds_weight else None
    if sc.add_funds_weight and not raw_files(folder):
        raise WorkbenchError("--verify with --add-funds-weight needs the raw latencies (to count the "
                             "funds added); expected a run without --no-raw-latencies.")
    added, unknown = funds_added(df, sc.funds_amount) if df is not None else (0, 0)
    items, users = asyncio.run(read_balances(sc, target, progress))
    return check_money(sc, items, users, added, unknown)


# --- making runs -----------------------------------------------------------------------------------

def run_init(sc: StressScenario, urls: str | Path | None, runs_dir: str | Path | None = None) -> tuple[runs.Run, dict]:
    """`wdm stress init`: the three batch-init calls, timed, as a Run of kind stress-init."""
    from wdm_lib.config import load_urls
    from wdm_lib.target import describe

    target = load_urls(urls)
    run = runs.Run.create(runs_dir, "stress-init", sc.to_dict(), describe(target))
    try:
        timings = asyncio.run(batch_init(sc, target))
    except KeyboardInterrupt:
        run.finish(runs.INTERRUPTED, "interrupted by the user (Ctrl-C)")
        raise
    except WorkbenchError as e:
        run.finish(runs.FAILED, str(e))
        raise
    except BaseException as e:
        run.finish(runs.FAILED, f"{e.__class__.__name__}: {e}")
        raise
    run.write_json("init.json", timings)
    summary = {"run_id": run.id, "kind": "stress-init", "batch_init_s": timings,
               "sizes": {k: getattr(sc, k) for k in ("n_items", "item_stock", "item_price", "n_users",
                                                      "user_credit", "n_orders")}}
    run.write_json("summary.json", summary)
    run.finish(runs.COMPLETED)
    return run, summary


def run_stress(sc: StressScenario, urls: str | Path | None = None, anomaly: str | None = None,
               runs_dir: str | Path | None = None, *, init: bool = False, check: bool = False,
               ui: bool = False, web_port: int = 8089, dist: Distributed | None = None,
               echo: bool | None = None, say: Callable[[str], None] = lambda s: None) -> tuple[runs.Run, dict]:
    """`wdm stress run`. Without urls the embedded reference shop is started (and, being empty,
    batch-initialised) for the run. Whatever happens, the Run folder keeps Locust's files and the
    raw rows written so far, and its manifest says how the run ended."""
    from wdm_lib.progress import progress_wanted
    from wdm_lib.target import describe, open_target

    echo = progress_wanted() if echo is None else echo
    with open_target(urls, anomaly) as target:
        init = init or urls is None
        run = runs.Run.create(runs_dir, "stress", sc.to_dict(), describe(target, anomaly))
        mode = ("master" if dist and dist.master else "processes" if sc.processes != 1 else "local")
        run.update(init=init, verify=check, ui=ui, mode=mode,
                   workers=dist.expect_workers if dist and dist.master else None)
        locust = None
        try:
            if init:
                say("batch-initialising the shop ...")
                run.write_json("init.json", asyncio.run(batch_init(sc, target)))
            else:
                asyncio.run(check_reachable(target))
            cmd, env = locust_command(sc, target, run.path, ui=ui, web_port=web_port, dist=dist)
            run.update(locust_command=cmd[2:], locust_started_at=runs._now())
            locust = LocustProcess(cmd, env, run.file(LOCUST_LOG), echo=echo)
            if ui:
                say(f"Locust's web UI: http://127.0.0.1:{web_port}  (Ctrl-C here ends the run)")
            else:
                say(f"Locust running for {sc.planned_s:g} s (log: {run.file(LOCUST_LOG)}) ...")
            bound = None if ui else sc.planned_s + EXIT_GRACE_S + (dist.workers_wait_s if dist and dist.master else 0)
            try:
                code = locust.wait(bound)
            except KeyboardInterrupt:
                code = locust.interrupt()
                if not ui:
                    raise
            locust.close()
            run.update(locust_ended_at=runs._now(), locust_exit_code=code)
            failure = locust_failure(code, locust.log_tail(), dist)
            if failure:
                raise WorkbenchError(failure)
            if not run.file(f"{LOCUST_PREFIX}_stats.csv").is_file():
                raise WorkbenchError(f"Locust exited (code {code}) without writing its statistics; "
                                     f"expected {run.file(LOCUST_PREFIX + '_stats.csv')} (see {run.file(LOCUST_LOG)}).")
            if not ui and (read_locust_aggregated(run.file(f"{LOCUST_PREFIX}_stats.csv")) or {}).get("requests") == 0:
                raise WorkbenchError(f"Locust made no request in {sc.planned_s:g} s: "
                                     f"{first_exception(run.file(LOCUST_PREFIX + '_exceptions.csv')) or 'no error'}"
                                     f" (see {run.file(LOCUST_LOG)}).")
            verdict = None
            if check:
                say(f"verifying {sc.n_items} items and {sc.n_users} users ...")
                verdict = verify(sc, target, run.path)
            summary = summarize(run.id, sc, run.path, verdict)
            run.write_json("summary.json", summary)
        except KeyboardInterrupt:
            if locust is not None:
                locust.interrupt()
            _keep_what_was_measured(run, sc)
            run.finish(runs.INTERRUPTED, "interrupted by the user (Ctrl-C)")
            raise
        except WorkbenchError as e:
            if locust is not None:
                locust.interrupt()
            _keep_what_was_measured(run, sc)
            run.finish(runs.FAILED, str(e))
            raise
        except BaseException as e:
            if locust is not None:
                locust.interrupt()
            _keep_what_was_measured(run, sc)
            run.finish(runs.FAILED, f"{e.__class__.__name__}: {e}")
            raise
    run.finish(runs.COMPLETED)
    return run, summary


def _keep_what_was_measured(run: runs.Run, sc: StressScenario) -> None:
    """A summary of whatever Locust and the hook wrote before the run ended early; never raises."""
    try:
        if run.file(f"{LOCUST_PREFIX}_stats.csv").is_file() or raw_files(run.path):
            run.write_json("summary.json", summarize(run.id, sc, run.path))
    except Exception:  # the run is already failing; its first error is the one to report
        pass


def run_worker(master_host: str, master_port: int = 5557, processes: int = 1) -> int:
    """`wdm stress worker`: a Locust worker of a master elsewhere; the master sends the scenario."""
    if processes < 1 and processes != -1:
        raise WorkbenchError(f"--processes is {processes}; expected at least 1 (or -1 for one per CPU core).")
    if not 0 < master_port < 65536:
        raise WorkbenchError(f"--master-port is {master_port}; expected a TCP port 1..65535.")
    proc = subprocess.Popen(worker_command(master_host, master_port, processes), stdin=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        return proc.wait()
    except KeyboardInterrupt:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(INTERRUPT_GRACE_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        raise



def render_table(summary: dict) -> str:
    """The few lines a terminal shows at the end of a stress run."""
    lat, o, loc = summary["latency_ms"], summary["outcomes"], summary.get("locust") or {}

    def ms(v):
        return "-" if v is None else f"{v:.1f}"

    lines = [f"requests: {summary['requests']}  ok {o['ok']}  refused {o['fail']}  unknown {o['unknown']}"
             f"  | {summary['throughput_rps']:.1f} req/s over {summary['duration_s']:.1f} s   (run {summary['run_id']})",
             f"latency ms (exact):  p50 {ms(lat['p50'])}  p95 {ms(lat['p95'])}  p99 {ms(lat['p99'])}  "
             f"max {ms(lat['max'])}",
             f"latency ms (Locust): p50 {ms(loc.get('median_ms'))}  p95 {ms(loc.get('p95_ms'))}  "
             f"p99 {ms(loc.get('p99_ms'))}  ({loc.get('requests', 0)} requests, {loc.get('failures', 0)} failures)"]
    for step in summary.get("steps") or []:
        lines.append(f"step {step['users']:>6} users: {step['throughput_rps']:>9.1f} req/s  p99 {ms(step['p99_ms'])} ms")
    if summary["requests"] and o["fail"] > summary["requests"] / 2:
        lines.append(f"note: {o['fail']} of {summary['requests']} requests were refused (4xx); was the target "
                     f"batch-initialised with these sizes (wdm stress init, or --init)?")
    if o["unknown"]:
        lines.append(f"note: {o['unknown']} requests got no verdict (5xx, timeout or no connection).")
    v = summary.get("verify")
    if v is not None:
        lines.append(f"verify: {'VALID' if v['valid'] else 'VIOLATED'}  negative stock {v['negative_stock']}, "
                     f"negative credit {v['negative_credit']}, credit spent {v['credit_spent']} vs price x "
                     f"stock sold {v['stock_value_sold']}")
        lines += [f"note: {n}" for n in v["notes"]]
    return "\n".join(lines)
