"""The numbers of a consistency run, checked as they are given: what the command line, the notebook
and a run's manifest share. Apart from the workload so that a report (which reads a run's scenario
back) never imports the HTTP client."""

from __future__ import annotations

import math
import random
from dataclasses import asdict, dataclass

from wdm_lib import options
from wdm_lib.errors import WorkbenchError

# The workloads: `original` replays the seed benchmark's one pattern (one burst of first checkouts);
# `mixed` is a seeded generator of every operation the API has, interleaved (workloads/mixed.py).
ORIGINAL, MIXED = "original", "mixed"
WORKLOADS = (ORIGINAL, MIXED)
# What a size left None means, per workload: the original test's numbers, and for mixed contention
# (few items, little stock and credit, so refusals, races and sell-outs all happen) with orders of
# several lines at varied prices and quantities. A price or quantity may be a range "LO-HI".
WORKLOAD_DEFAULTS: dict[str, dict] = {
    ORIGINAL: dict(n_items=1, item_stock=100, item_price=1, n_users=1000, user_credit=1, n_orders=1000,
                   items_per_order=1, quantity=1, recheckout_weight=0.0, add_funds_weight=0.0,
                   add_stock_weight=0.0, read_weight=0.0),
    MIXED: dict(n_items=8, item_stock=12, item_price="1-5", n_users=40, user_credit=25, n_orders=400,
                items_per_order=3, quantity="1-3", recheckout_weight=0.3, add_funds_weight=0.2,
                add_stock_weight=0.2, read_weight=0.3),
}
WEIGHTS = ("recheckout_weight", "add_funds_weight", "add_stock_weight", "read_weight")


def option_name(field_name: str) -> str:
    return "--" + field_name.replace("_", "-")


def parse_range(field_name: str, value, least: int) -> int | str:
    """A number, or a range "LO-HI" (least <= LO <= HI), as the scenario keeps it: an int, or the
    range's text when LO < HI. One sentence naming the option otherwise."""
    text = str(value).strip() if not isinstance(value, bool) else ""
    lo, sep, hi = text.partition("-")
    bounds = (lo, hi) if sep else (lo, lo)
    if not all(b.strip().isascii() and b.strip().isdigit() for b in bounds) or not least <= int(bounds[0]) <= int(bounds[1]):
        raise WorkbenchError(f"{option_name(field_name)} is {value!r}; expected a whole number of at least {least}, "
                             f"or a range LO-HI with {least} <= LO <= HI (e.g. {least + 1}-{least + 4}).")
    lo_, hi_ = int(bounds[0]), int(bounds[1])
    return lo_ if lo_ == hi_ else f"{lo_}-{hi_}"


def bounds(value: int | str) -> tuple[int, int]:
    """(LO, HI) of a number or a range the scenario holds."""
    if isinstance(value, int):
        return value, value
    lo, _, hi = value.partition("-")
    return int(lo), int(hi)


@dataclass
class ConsistencyScenario:
    """The original test's numbers by default: 1 item (stock 100, price 1), 1000 users (credit 1),
    1000 orders of one item each, checked out concurrently, at most 100 in flight: the original
    fires all 1000 at once, but its aiohttp session's default connection limit lets only 100 through
    at a time, and that is what its users' numbers come from. A size left None is the workload's
    (WORKLOAD_DEFAULTS); `mixed` adds re-checkouts, additions and reads during the load, each
    drawn with its weight per first checkout (see workloads/mixed.py)."""

    workload: str = ORIGINAL
    n_items: int | None = None
    item_stock: int | None = None
    item_price: int | str | None = None      # a number, or under mixed a range "LO-HI"
    n_users: int | None = None
    user_credit: int | None = None
    n_orders: int | None = None
    items_per_order: int | None = None       # original: every order's lines; mixed: at most
    quantity: int | str | None = None        # a number, or under mixed a range "LO-HI"
    recheckout_weight: float | None = None
    add_funds_weight: float | None = None
    add_stock_weight: float | None = None
    read_weight: float | None = None
    concurrency: int = 100
    # Operations per second, open loop (operation k due at start + k/rate); None: all at once.
    # Under original every operation of the load is a checkout.
    rate: float | None = None
    timeout_s: float = 60.0
    # The verdict is taken on a state that stayed unchanged this long: a system whose reads lag its
    # writes, a saga that compensates after it replied, or a queue still working off checkouts we
    # gave up on, shows its last change within it. Real systems' lags and late steps take seconds.
    quiet_s: float = 5.0
    # The most the whole final read-back may take; a state still changing then is judged as it is.
    settle_s: float = 60.0
    seed: int | None = None
    # Reads made during the load (wdm_lib/reads.py): a stale read is a warning, as API.md defines
    # consistency on the quiet state; True makes it an anomaly, for a system that promises
    # linearizable reads. An impossible read is an anomaly either way.
    linearizable: bool = False

    def __post_init__(self) -> None:
        # The sizes left to the workload, which a fault schedule may raise (room_for_faults). Not a
        # field: the manifest records the sizes the run used.
        self._left_to_workload = {name for name in WORKLOAD_DEFAULTS[ORIGINAL] if getattr(self, name) is None}
        self.sized_for_faults: str | None = None
        if self.seed is None:
            self.seed = random.SystemRandom().randrange(2**31)
        if not isinstance(self.linearizable, bool):
            raise WorkbenchError(f"--linearizable is {self.linearizable!r}; expected true or false.")
        if self.workload not in WORKLOADS:
            raise WorkbenchError(f"--workload is {self.workload!r}; expected one of {', '.join(WORKLOADS)}.")
        for name, default in WORKLOAD_DEFAULTS[self.workload].items():
            if getattr(self, name) is None:
                setattr(self, name, default)
        for name in ("n_items", "n_users", "n_orders", "items_per_order", "concurrency"):
            if getattr(self, name) < 1:
                raise WorkbenchError(f"{option_name(name)} is {getattr(self, name)}; expected at least 1.")
        for name in ("item_stock", "user_credit"):
            if getattr(self, name) < 0:
                raise WorkbenchError(f"{option_name(name)} is {getattr(self, name)}; expected 0 or more.")
        self.item_price = parse_range("item_price", self.item_price, 0)
        self.quantity = parse_range("quantity", self.quantity, 1)
        for name in WEIGHTS:
            weight = getattr(self, name)
            if not (isinstance(weight, (int, float)) and math.isfinite(weight) and weight >= 0):
                raise WorkbenchError(f"{option_name(name)} is {weight!r}; expected a number of 0 or more.")
        if self.workload == ORIGINAL:
            self._refuse_what_only_mixed_does()
        if self.rate is not None:
            options.rate("--rate", self.rate, "operations")
        options.seconds("--timeout", self.timeout_s)
        options.seconds("--quiet", self.quiet_s, zero=True)
        options.seconds("--settle", self.settle_s, zero=True)
        if self.settle_s < self.quiet_s:
            raise WorkbenchError(f"--settle is {self.settle_s:g} s, shorter than --quiet {self.quiet_s:g} s; expected "
                                 f"at least --quiet, since the verdict waits for the state to stay unchanged that long.")

    def _refuse_what_only_mixed_does(self) -> None:
        """The original workload is the seed benchmark's pattern, whose figures stay comparable: one
        price, one quantity, first checkouts only."""
        for name in ("item_price", "quantity"):
            if isinstance(getattr(self, name), str):
                raise WorkbenchError(f"{option_name(name)} {getattr(self, name)} is a range; expected a single number "
                                     f"under --workload original (ranges are for --workload mixed).")
        for name in WEIGHTS:
            if getattr(self, name):
                raise WorkbenchError(f"{option_name(name)} is {getattr(self, name):g}; expected it only with "
                                     f"--workload mixed (the original workload makes first checkouts only).")

    def room_for_faults(self) -> str | None:
        """Under `original`, stock and credit left to the workload that no checkout of the run can
        exhaust, so checkouts keep succeeding through every fault (the default 100 units sell out in
        a second at --rate 100, and a fault on a shop that refuses everything anyway tests nothing).
        The sentence that says so, or None when nothing changed (sizes given, or `mixed`, whose
        additions during the load restock it)."""
        if self.workload != ORIGINAL or not {"item_stock", "user_credit"} & self._left_to_workload:
            return None
        per_order = self.items_per_order * self.quantity_range[1]
        changed = []
        if "item_stock" in self._left_to_workload:
            self.item_stock = max(self.item_stock, self.n_orders * per_order)
            changed.append(f"item stock {self.item_stock}")
        if "user_credit" in self._left_to_workload:
            self.user_credit = max(self.user_credit, self.n_orders * per_order * self.price_range[1])
            changed.append(f"user credit {self.user_credit}")
        self.sized_for_faults = (f"--faults: {' and '.join(changed)} (not the original's "
                                 f"{' and '.join(str(WORKLOAD_DEFAULTS[ORIGINAL][n]) for n in ('item_stock', 'user_credit') if n in self._left_to_workload)}), "
                                 f"so that checkouts keep succeeding for the whole run and each fault has something to "
                                 f"break; give --item-stock or --user-credit to choose")
        return self.sized_for_faults

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def price_range(self) -> tuple[int, int]:
        return bounds(self.item_price)

    @property
    def quantity_range(self) -> tuple[int, int]:
        return bounds(self.quantity)

    @property
    def lines_range(self) -> tuple[int, int]:
        """How many lines an order has: exactly items_per_order under original, 1 to it under mixed."""
        return (self.items_per_order if self.workload == ORIGINAL else 1), self.items_per_order

    @property
    def load_s(self) -> float | None:
        """How long the paced load is planned to last; None for a burst."""
        if self.rate is None:
            return None
        if self.workload == MIXED:
            from wdm_lib.workloads.mixed import plan

            return len(plan(self).steps) / self.rate
        return self.n_orders / self.rate
