"""The stress scenario's parameters: one dataclass the CLI, the notebook and the tests all build,
with the seed benchmark's numbers as defaults, and the parsing of what users type for them.

Durations are parsed here rather than by Locust's own parse_timespan: importing anything from the
locust package monkey-patches this interpreter with gevent, which the workbench must never do.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, field, fields

from wdm_lib import options
from wdm_lib.errors import WorkbenchError
from wdm_lib.workloads.stress import gates as gates_

NAMES = {  # the Locust request names of the scenario's operations
    "checkout": "/orders/checkout/[order_id]",
    "find_order": "/orders/find/[order_id]",
    "find_item": "/stock/find/[item_id]",
    "find_user": "/payment/find_user/[user_id]",
    "add_funds": "/payment/add_funds/[user_id]/[amount]",
}
CLOSED_LOOP_USERS = 100
# An open loop's users by default: enough that each sends once every this many seconds, so replies
# up to that slow keep the schedule (a slower system needs more users: --users).
PACED_PERIOD_S = 0.25
CLOSED_LOOP_SPAWN_RATE = 10.0

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


def parse_wait(wait) -> float | tuple[float, float]:
    """A constant wait (`1`) or a range (`[1, 15]`, `"1 15"`), in seconds."""
    parts = wait if isinstance(wait, (list, tuple)) else re.split(r"[,\s]+", str(wait).strip())
    try:
        values = [float(p) for p in parts if p != ""]
    except (TypeError, ValueError):
        values = []
    if len(values) == 1 and 0 <= values[0] < math.inf:
        return values[0]
    if len(values) == 2 and 0 <= values[0] <= values[1] < math.inf:
        return (values[0], values[1])
    option = "--wait-between" if isinstance(wait, (list, tuple)) and len(wait) == 2 else "--wait"
    shown = " ".join(f"{p:g}" if isinstance(p, (int, float)) else str(p) for p in parts) \
        if isinstance(wait, (list, tuple)) else repr(wait)
    raise WorkbenchError(f"{option} is {shown}; expected 0 or more seconds (--wait S), or two of them "
                         f"A <= B (--wait-between A B).")


@dataclass
class StressScenario:
    """The seed benchmark's stress test by default: 100k items (stock 1M, price 1), 100k users
    (credit 1M), 100k orders of two items, each of 100 users checking out a random order and then
    waiting 1 s (the seed locustfile's `constant(1)`, which the figures users know come from).

    `rate` makes it an open loop: that many requests per second across all users, each user on a
    fixed schedule; `users` then defaults to enough for replies up to PACED_PERIOD_S, and they all
    start within a second."""

    n_items: int = 100_000
    item_stock: int = 1_000_000
    item_price: int = 1
    n_users: int = 100_000
    user_credit: int = 1_000_000
    n_orders: int = 100_000
    users: int | None = None               # None: CLOSED_LOOP_USERS, or enough for the rate
    spawn_rate: float | None = None        # users started per second; None: 10, or all in 1 s when paced
    run_time: float = 60.0                 # seconds; ignored by a step load
    processes: int = 1                     # Locust processes on this machine (1: no master/workers)
    wait: float | tuple[float, float] | None = 1.0  # constant, or (A, B) drawn uniformly; None when paced
    rate: float | None = None              # open loop: requests/s across all users
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
    thresholds: list[str] = field(default_factory=list)  # gates, k6-style (see gates.py)

    def __post_init__(self) -> None:
        self.run_time = parse_duration(self.run_time, "--run-time")
        self.step_time = parse_duration(self.step_time, "--step-time")
        self.steps = parse_steps(self.steps)
        if isinstance(self.thresholds, str):
            self.thresholds = [self.thresholds]
        self.thresholds = list(self.thresholds or [])
        self.gates = gates_.parse_all(self.thresholds, NAMES)
        if self.rate is not None:
            options.rate("--rate", self.rate, "requests")
            if self.steps:
                raise WorkbenchError("--rate holds one arrival rate for the whole run; expected either "
                                     "--rate or --steps, not both.")
            self.wait = None  # the schedule decides when each user sends
            if self.users is None:
                self.users = max(1, math.ceil(self.rate * PACED_PERIOD_S))
            if self.spawn_rate is None:
                self.spawn_rate = float(max(CLOSED_LOOP_SPAWN_RATE, self.users))
        else:
            self.wait = parse_wait(1.0 if self.wait is None else self.wait)
        if self.users is None:
            self.users = CLOSED_LOOP_USERS
        if self.spawn_rate is None:
            self.spawn_rate = CLOSED_LOOP_SPAWN_RATE
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
        options.rate("--spawn-rate", self.spawn_rate, "users started")
        if sum(self.weights().values()) == 0:
            raise WorkbenchError("every task weight is 0; expected --checkout-weight (or another "
                                 "task's weight) to be at least 1.")
        options.seconds("--timeout", self.timeout_s)
        if self.thresholds and not self.raw_latencies:
            raise WorkbenchError("--threshold is judged on the raw rows of every request; expected a run "
                                 "without --no-raw-latencies.")

    def weights(self) -> dict[str, int]:
        return {name: getattr(self, f"{name}_weight") for name in NAMES}

    @property
    def wait_range(self) -> tuple[float, float]:
        """The wait between a user's requests, as (shortest, longest); (0, 0) when paced."""
        if self.wait is None:
            return (0.0, 0.0)
        return self.wait if isinstance(self.wait, tuple) else (self.wait, self.wait)

    @property
    def pacing_s(self) -> float | None:
        """Open loop: the period of each user's schedule."""
        return None if self.rate is None else self.users / self.rate

    @property
    def ramp_s(self) -> float:
        """How long spawning all users takes."""
        return self.users / self.spawn_rate

    @property
    def planned_s(self) -> float:
        """How long the load is meant to last."""
        return len(self.steps) * self.step_time if self.steps else self.run_time

    def to_dict(self) -> dict:
        d = asdict(self)
        if isinstance(self.wait, tuple):
            d["wait"] = list(self.wait)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "StressScenario":
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


def _opt(name: str) -> str:
    return "--" + name.replace("_", "-")


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
