"""The numbers of a consistency run, checked as they are given: what the command line, the notebook
and a run's manifest share. Apart from the workload so that a report (which reads a run's scenario
back) never imports the HTTP client."""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass

from wdm_lib import options
from wdm_lib.errors import WorkbenchError


@dataclass
class ConsistencyScenario:
    """The original test's numbers by default: 1 item (stock 100, price 1), 1000 users (credit 1),
    1000 orders of one item each, checked out concurrently, at most 100 in flight: the original
    fires all 1000 at once, but its aiohttp session's default connection limit lets only 100 through
    at a time, and that is what its users' numbers come from."""

    n_items: int = 1
    item_stock: int = 100
    item_price: int = 1
    n_users: int = 1000
    user_credit: int = 1
    n_orders: int = 1000
    items_per_order: int = 1
    quantity: int = 1
    concurrency: int = 100
    # Checkouts per second, open loop (checkout k due at start + k/rate); None: all at once.
    rate: float | None = None
    timeout_s: float = 60.0
    # The verdict is taken on a state that stayed unchanged this long: a system whose reads lag its
    # writes, a saga that compensates after it replied, or a queue still working off checkouts we
    # gave up on, shows its last change within it. Real systems' lags and late steps take seconds.
    quiet_s: float = 5.0
    # The most the whole final read-back may take; a state still changing then is judged as it is.
    settle_s: float = 60.0
    seed: int | None = None

    def __post_init__(self) -> None:
        if self.seed is None:
            self.seed = random.SystemRandom().randrange(2**31)
        for name in ("n_items", "n_users", "n_orders", "items_per_order", "quantity", "concurrency"):
            if getattr(self, name) < 1:
                raise WorkbenchError(f"--{name.replace('_', '-')} is {getattr(self, name)}; expected at least 1.")
        for name in ("item_stock", "item_price", "user_credit"):
            if getattr(self, name) < 0:
                raise WorkbenchError(f"--{name.replace('_', '-')} is {getattr(self, name)}; expected 0 or more.")
        if self.rate is not None:
            options.rate("--rate", self.rate, "checkouts")
        options.seconds("--timeout", self.timeout_s)
        options.seconds("--quiet", self.quiet_s, zero=True)
        options.seconds("--settle", self.settle_s, zero=True)
        if self.settle_s < self.quiet_s:
            raise WorkbenchError(f"--settle is {self.settle_s:g} s, shorter than --quiet {self.quiet_s:g} s; expected "
                                 f"at least --quiet, since the verdict waits for the state to stay unchanged that long.")

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def load_s(self) -> float | None:
        """How long the paced load is planned to last; None for a burst."""
        return None if self.rate is None else self.n_orders / self.rate
