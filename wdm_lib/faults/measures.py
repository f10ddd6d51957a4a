"""What each fault cost the users, read from the history on two time axes: when each request was
due (the schedule's intended start) and when its reply came. Pure: tests feed it hand-made rows.

Each measure answers what a user met, and none of them takes a 4xx for "the shop is fine": a
template whose order service turns the 502 of a dead stock service into `400 Out of stock` refuses
every checkout while it is down, and a shop whose payment service is frozen answers nothing at all.

- *no-answer gap*: the longest stretch, starting within the fault's window, in which no request got
  any reply (an HTTP status of any kind; a refused or reset connection, or a timeout, is none). A
  payment service frozen for 3 s whose checkouts all complete late with 200 has a gap of 3 s.
- *success rate* and *outage*: 2xx replies per second (by when they came) against the baseline, the
  median of the whole seconds before the fault; the outage is the time that rate stayed below half
  the baseline, in stretches that began within the window (a stretch that goes on after the recover
  step is counted whole: the shop was still down).
- *refusal share*: the share of requests due in the window that were refused (4xx) against the share
  among those due before it and sent before it began. A jump is a *masked outage*: errors turned
  into refusals.
- *latency*: p50 and p99 from the due time to the reply, of the requests due before, in and after
  the window that got a reply.
- *recovered*: the first moment after the recover step from which, for 3 s, every second has a 2xx
  rate within 10% of the baseline, and the replies of those 3 s a p50 no more than 10% above the
  one before (or 2 ms: a p50 of a few ms moves that much with the machine's load alone; faster is
  back too); None when the run never shows that.
- *tested nothing*: at the fault's start no checkout still to come could succeed (every one lacks
  stock or credit, from the history's own books), or none had succeeded in the seconds before it.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Callable

import numpy as np

from wdm_lib.checkers import LOST_WRITES
from wdm_lib.history import ADD_FUNDS, ADD_STOCK, CHECKOUT, FAIL, OK, OUTCOMES, Op
from wdm_lib.workloads.shop_rows import FAIL_STATUSES, OK_STATUSES

S = 1_000_000_000
BASELINE_MAX_S = 10       # the baseline is the median of at most this many whole seconds before a fault
BACK_WITHIN = 0.10        # "back": a second's 2xx rate and p50 within 10% of the baseline's
# A p50 of a few milliseconds moves by more than 10% with the machine's load alone: a difference
# this small is never taken for "not back".
BACK_WITHIN_MS = 2.0
STAY_BACK_S = 3           # ... and so for this many whole seconds in a row
STEP_S = 0.1              # recovery is looked for every 0.1 s after the recover step
OUTAGE_BELOW = 0.5        # an outage: the 2xx rate below half the baseline
# The 2xx rate behind the outage is counted in a sliding window that holds about this many of the
# baseline's successes (at least 0.2 s, at most 1 s): short enough to time a 3 s freeze to a tenth
# of a second at 100 checkouts/s, long enough that the gaps of a paced load are no outage.
OUTAGE_WINDOW_SUCCESSES = 20
OUTAGE_WINDOW_S = (0.2, 1.0)
OUTAGE_GRID_S = 0.01
# A masked outage: the share of refusals in the window at least this much above the share before.
MASKED_JUMP = 0.2


@dataclass(frozen=True)
class Requests:
    """What measures need of the load's requests, as columns sorted by when they were answered:
    when each was due (the schedule's intended start; the send when there was no schedule), sent and
    answered, its HTTP status (NaN: no reply) and its outcome. Columns, not objects: a stress run
    has millions."""
    intended_ns: np.ndarray
    invoke_ns: np.ndarray
    complete_ns: np.ndarray
    status: np.ndarray      # float, NaN for no reply
    outcome: np.ndarray     # the OUTCOMES names

    @classmethod
    def of(cls, intended_ns, invoke_ns, complete_ns, status, outcome) -> "Requests":
        """status: the HTTP status, None or NaN (or 0, as raw rows write it) when no reply came."""
        order = np.argsort(np.asarray(complete_ns, dtype="int64"), kind="stable")
        status = _statuses(status)
        status = np.where(status > 0, status, np.nan)
        return cls(np.asarray(intended_ns, dtype="int64")[order], np.asarray(invoke_ns, dtype="int64")[order],
                   np.asarray(complete_ns, dtype="int64")[order], status[order],
                   np.asarray(outcome, dtype=object)[order])

    def __len__(self) -> int:
        return len(self.complete_ns)

    # Each computed once over the whole run: the recovery search asks for a slice of them thousands of times.
    @cached_property
    def replied(self) -> np.ndarray:
        return ~np.isnan(self.status)

    @cached_property
    def succeeded(self) -> np.ndarray:
        return (self.status >= OK_STATUSES.start) & (self.status < OK_STATUSES.stop)

    @cached_property
    def refused(self) -> np.ndarray:
        return (self.status >= FAIL_STATUSES.start) & (self.status < FAIL_STATUSES.stop)


def served(status) -> np.ndarray:
    """Which replies the system answered definitively, 2xx or 4xx (the outcomes ok and fail, as
    shop_rows.outcome maps them: a 3xx is unknown); no reply is None, NaN or 0 (as raw rows write it)."""
    status = _statuses(status)
    return np.logical_or.reduce([(status >= r.start) & (status < r.stop) for r in (OK_STATUSES, FAIL_STATUSES)])


def _statuses(values) -> np.ndarray:
    """Statuses as floats, no reply as NaN."""
    return np.array([np.nan if v is None else v for v in values], dtype="float64") \
        if isinstance(values, (list, tuple)) else np.asarray(values, dtype="float64")


def requests_of(ops: list[Op], kind: str = CHECKOUT) -> Requests:
    """The requests of a consistency run's history."""
    mine = [op for op in ops if op.kind == kind]
    return Requests.of([op.intended_ns for op in mine], [op.invoke_ns for op in mine], [op.complete_ns for op in mine],
                       [op.status for op in mine], [op.outcome for op in mine])


def requests_of_raw(frame) -> Requests:
    """The requests of a stress run's raw rows (analysis.load_requests: start_ns, latency_ms,
    response_ms from the intended start, status, outcome)."""
    start = frame["start_ns"].to_numpy(dtype="int64")
    intended = start - np.round((frame["response_ms"] - frame["latency_ms"]).to_numpy(dtype="float64") * 1e6).astype("int64")
    complete = start + np.round(frame["latency_ms"].to_numpy(dtype="float64") * 1e6).astype("int64")
    return Requests.of(intended, start, complete, frame["status"].astype("float64").to_numpy(),
                       frame["outcome"].astype(str).to_numpy())


# --- could a checkout still succeed? The history's own books ------------------------------------

def could_succeed(ops: list[Op]) -> Callable[[int], bool] | None:
    """A function of a moment: could any checkout due from then on still succeed? Every order is
    given the most it could have: the stock and funds of every addition that was not refused (later
    ones too), less what the checkouts that answered 2xx before that moment took. None when the
    history holds no books (a stress run's history holds only its faults)."""
    checkouts = [op for op in ops if op.kind == CHECKOUT]
    additions = [op for op in ops if op.kind in (ADD_STOCK, ADD_FUNDS) and op.outcome != FAIL]
    if not checkouts or not additions:
        return None
    stock: dict[str, int] = {}
    credit: dict[str, int] = {}
    for op in additions:
        if op.kind == ADD_STOCK:
            for item, amount in op.items:
                stock[item] = stock.get(item, 0) + int(amount)
        else:
            credit[op.user_id] = credit.get(op.user_id, 0) + int(op.amount or 0)
    taken = sorted((op for op in checkouts if op.outcome == OK), key=lambda op: op.complete_ns)

    def needs(op: Op) -> dict[str, int]:
        lines: dict[str, int] = {}
        for item, quantity in op.items:
            lines[item] = lines.get(item, 0) + int(quantity)
        return lines

    def at(moment_ns: int) -> bool:
        left_stock, left_credit = dict(stock), dict(credit)
        for op in taken:
            if op.complete_ns >= moment_ns:
                break
            for item, quantity in needs(op).items():
                left_stock[item] = left_stock.get(item, 0) - quantity
            left_credit[op.user_id] = left_credit.get(op.user_id, 0) - int(op.amount or 0)
        return any(left_credit.get(op.user_id, 0) >= (op.amount or 0)
                   and all(left_stock.get(item, 0) >= q for item, q in needs(op).items())
                   for op in checkouts if op.intended_ns >= moment_ns)
    return at


# --- the measures ---------------------------------------------------------------------------------

def _count(times: np.ndarray, start_ns: int, end_ns: int) -> int:
    return int(np.searchsorted(times, end_ns) - np.searchsorted(times, start_ns))


def _p(values: np.ndarray, q: float) -> float | None:
    return None if not len(values) else round(float(np.percentile(values, q, method="inverted_cdf")), 3)


def _latency(r: Requests, due: np.ndarray) -> dict:
    """p50 and p99 (ms, nearest rank) from the due time to the reply, of the requests picked by
    `due` that got one."""
    ms = (r.complete_ns[due & r.replied] - r.intended_ns[due & r.replied]) / 1e6
    return {"p50": _p(ms, 50), "p99": _p(ms, 99)}


def _refusal_share(r: Requests, due: np.ndarray) -> float | None:
    n = int(due.sum())
    return None if n == 0 else round(float((r.refused & due).sum()) / n, 4)


def no_answer_gap_s(r: Requests, start_ns: int, window_end_ns: int, last_due_ns: int) -> float:
    """The longest stretch without any reply that begins within [start, window end]: from the fault's
    start or a reply, to the next reply (or the load's last due time when none came again)."""
    replies = r.complete_ns[r.replied]
    i = np.searchsorted(replies, start_ns, side="right")
    j = np.searchsorted(replies, window_end_ns, side="right")
    starts = np.concatenate([[start_ns], replies[i:j]])
    ends = np.concatenate([replies[i:j + 1], [max(last_due_ns, start_ns)]])[:len(starts)]
    return round(float(np.max(ends - starts)) / S, 3)


def outage_s(success_ns: np.ndarray, baseline_per_s: float, start_ns: int, window_end_ns: int,
             last_due_ns: int) -> float:
    """How long the 2xx rate (success_ns: when each 2xx came, sorted) stayed below half the baseline,
    in stretches that began within [start, window end], counted until the load's last due time."""
    if start_ns >= last_due_ns:
        return 0.0
    width_s = float(np.clip(OUTAGE_WINDOW_SUCCESSES / baseline_per_s, *OUTAGE_WINDOW_S))
    half = int(width_s / 2 * S)
    grid = np.arange(start_ns, last_due_ns, int(OUTAGE_GRID_S * S), dtype="int64")
    rate = (np.searchsorted(success_ns, grid + half) - np.searchsorted(success_ns, grid - half)) / width_s
    low = rate < OUTAGE_BELOW * baseline_per_s
    # Stretches of low rate, kept when they began within the window.
    edges = np.flatnonzero(np.diff(np.concatenate([[False], low, [False]]).astype("int8")))
    total = 0
    for begin, end in zip(edges[::2], edges[1::2]):
        if grid[begin] <= window_end_ns:
            total += end - begin
    return round(float(total) * OUTAGE_GRID_S, 3)


def _successes(r: Requests, start_ns: int, end_ns: int) -> int:
    a, b = np.searchsorted(r.complete_ns, [start_ns, end_ns])
    return int(r.succeeded[a:b].sum())


def _p50_of_replies(r: Requests, start_ns: int, end_ns: int) -> float | None:
    """The p50 (ms from the due time) of every reply that came in [start, end)."""
    a, b = np.searchsorted(r.complete_ns, [start_ns, end_ns])
    replied = r.replied[a:b]
    return _p((r.complete_ns[a:b][replied] - r.intended_ns[a:b][replied]) / 1e6, 50)


def _rate_back(value: int, before: float) -> bool:
    """Within 10% either way: a rate well above the old one is a backlog still being answered."""
    return abs(value - before) <= BACK_WITHIN * before


def _p50_back(value: float | None, before: float) -> bool:
    """No more than 10% (or BACK_WITHIN_MS) above the old p50: faster is back too (refusals answered
    at once are faster than the checkouts they replace)."""
    return value is not None and value - before <= max(BACK_WITHIN * before, BACK_WITHIN_MS)


def recovered_after_s(r: Requests, from_ns: int, last_due_ns: int, rate_before: float,
                      p50_before: float) -> float | None:
    """Seconds after from_ns to the first moment from which STAY_BACK_S whole seconds in a row each
    have a 2xx rate back within 10% of before, and their replies a p50 back as well (the p50 of the
    three seconds together: one second's p50 of a few ms jumps with the machine's load); None when
    the load does not show that."""
    t = from_ns
    while t + STAY_BACK_S * S <= last_due_ns:
        if all(_rate_back(_successes(r, t + k * S, t + (k + 1) * S), rate_before) for k in range(STAY_BACK_S)) \
                and _p50_back(_p50_of_replies(r, t, t + STAY_BACK_S * S), p50_before):
            return round((t - from_ns) / S, 3)
        t += int(STEP_S * S)
    return None


def baseline_span(calm_since_ns: int, until_ns: int, t0_ns: int) -> tuple[int, int] | None:
    """The whole seconds (as [from, until)) of at most BASELINE_MAX_S just before until_ns, none
    earlier than calm_since_ns (the load's start, or the end of the fault before); None without a
    whole second. The load's first second is left out when another remains: its first replies are
    still on their way, and a shop warms up."""
    if calm_since_ns == t0_ns and until_ns - t0_ns >= 2 * S:
        calm_since_ns += S
    seconds = min(BASELINE_MAX_S, int((until_ns - calm_since_ns) // S))
    return None if seconds < 1 else (until_ns - seconds * S, until_ns)


def _median_successes(r: Requests, span: tuple[int, int]) -> float:
    success = r.complete_ns[r.succeeded]
    return float(np.median([_count(success, t, t + S) for t in range(span[0], span[1], S)]))


def measure_fault(name: str, inject: Op, recover: Op | None, requests: Requests, t0_ns: int, end_ns: int,
                  baseline: tuple[int, int] | None | str = "before", could_succeed_at: Callable[[int], bool] | None = None,
                  next_start_ns: int | None = None) -> dict:
    """One fault's figures. `t0_ns`: when the load's first request was due; `end_ns`: when its last
    reply came; `baseline`: the calm seconds its users' figures are compared with (measure_faults
    picks them; by default the whole seconds just before it), None when there are none;
    `next_start_ns`: when the next fault began (what comes after it is that fault's). Seconds are
    relative to the load's start; a figure the run does not show is None. Requests are in the
    window when they were due in it: an open-loop load wanted them then, whether or not our own
    bound let them out."""
    r = requests
    start = inject.invoke_ns
    window_end = recover.complete_ns if recover is not None else end_ns
    last_due = int(r.intended_ns.max())
    horizon = min(next_start_ns or last_due, last_due)   # what is still this fault's to see
    during = (r.intended_ns >= start) & (r.intended_ns <= window_end)
    after = (r.intended_ns > window_end) & (r.intended_ns <= horizon)
    if baseline == "before":
        baseline = baseline_span(t0_ns, start, t0_ns)
    # Before it: due in the baseline and sent before it began. A checkout due just before the fault
    # that a busy client sent only after it met the fault, and is no figure of the shop before it.
    before = ((r.intended_ns >= baseline[0]) & (r.intended_ns < baseline[1]) & (r.invoke_ns < start)
              if baseline else np.zeros(len(r), bool))
    rate_before = _median_successes(r, baseline) if baseline else None
    latency = {"before": _latency(r, before), "during": _latency(r, during), "after": _latency(r, after)}
    refusal = {"before": _refusal_share(r, before), "during": _refusal_share(r, during)}

    why_nothing = None
    if could_succeed_at is not None and not could_succeed_at(start):
        why_nothing = "no checkout due from its start could succeed any more (stock sold out or credit spent)"
    elif baseline and rate_before == 0:
        why_nothing = f"no request had succeeded in the {(baseline[1] - baseline[0]) // S} s before it"
    # Refusals that jump while checkouts could still succeed (a sell-out in the window is no outage).
    still_possible = could_succeed_at is None or could_succeed_at(window_end)
    masked = (why_nothing is None and still_possible and refusal["before"] is not None and refusal["during"] is not None
              and refusal["during"] - refusal["before"] >= MASKED_JUMP)

    outage = recovered = None
    recovery = "no baseline"
    if rate_before:
        outage = outage_s(r.complete_ns[r.succeeded], rate_before, start, window_end, last_due)
        p50_before = latency["before"]["p50"]
        if p50_before is not None:
            recovered = recovered_after_s(r, (recover or inject).complete_ns, horizon, rate_before, p50_before)
            recovery = (f"{recovered:.2f} s" if recovered is not None else "not within the run" if horizon == last_due
                        else "not before the next fault")

    def rel(ns: int | None) -> float | None:
        return None if ns is None else round((ns - t0_ns) / S, 3)

    return {
        "name": name,
        "what": inject.fault["what"],
        "recover": None if recover is None else recover.fault["what"],
        "due_s": rel(inject.intended_ns),
        "started_s": rel(start),
        "late_ms": round((start - inject.intended_ns) / 1e6, 3),
        "inject_status": inject.status,
        "recover_step_s": None if recover is None else rel(recover.complete_ns),
        "recover_status": None if recover is None else recover.status,
        "requests": {o: int(np.sum(r.outcome[during] == o)) for o in OUTCOMES},
        "baseline_s": None if not baseline else [rel(baseline[0]), rel(baseline[1])],
        "success_per_s_before": rate_before,
        "no_answer_gap_s": no_answer_gap_s(r, start, window_end, last_due),
        "outage_s": outage,
        "refusal_share": refusal,
        "masked_outage": bool(masked),
        "latency_ms": latency,
        "recovered_s": recovered,
        "recovery": recovery,
        "tested_nothing": why_nothing is not None,
        "tested_nothing_why": why_nothing,
    }


def _steps(ops: list[Op]) -> dict[str, dict[str, Op]]:
    """fault name -> {"inject": Op, "recover": Op} from the history's fault rows, in schedule order."""
    found: dict[str, dict[str, Op]] = {}
    for op in ops:
        if op.fault:
            found.setdefault(op.fault["name"], {})[op.fault["step"]] = op
    return found


def measure_faults(ops: list[Op], requests: Requests, anomaly_names: list[str] | None) -> list[dict]:
    """Every fault of the history that was injected, in the order they began. The checkers judge the
    whole history and cannot tell which fault lost a write, so each fault carries the run's lost
    writes (None: the run has no checkers that could say). Faults that overlap share the baseline
    before the first of them."""
    if not len(requests):
        return []
    t0_ns = int(requests.intended_ns.min())
    end_ns = int(requests.complete_ns.max())
    lost = None if anomaly_names is None else [n for n in anomaly_names if n in LOST_WRITES]
    books = could_succeed(ops)
    faults = sorted(((name, steps["inject"], steps.get("recover")) for name, steps in _steps(ops).items()
                     if "inject" in steps), key=lambda f: f[1].invoke_ns)
    out = []
    calm_since = t0_ns     # the end of the last fault that was over before this one began
    busy_until = t0_ns     # the end of every fault so far
    baseline = None        # the calm seconds before the first of the faults that overlap this one
    for i, (name, inject, recover) in enumerate(faults):
        if inject.invoke_ns >= busy_until:
            calm_since = busy_until
            # Too little calm since the fault before: the calm seconds before that one still say
            # what the shop does when nothing is wrong.
            baseline = baseline_span(calm_since, inject.invoke_ns, t0_ns) or baseline
        next_start = faults[i + 1][1].invoke_ns if i + 1 < len(faults) else None
        out.append({**measure_fault(name, inject, recover, requests, t0_ns, end_ns, baseline, books, next_start),
                    "acknowledged_writes_lost": lost})
        busy_until = max(busy_until, (recover or inject).complete_ns)
    return out


# --- in words -------------------------------------------------------------------------------------

# What a report says under its faults table: each measure, with the course template's two faults.
EXPLAINED = """\
**How to read the fault figures.** Each is what the fault's users met, on two time axes: when each
request was due and when its reply came.

- **no answer for**: the longest stretch, from within the fault's window, in which no request got any
  reply at all. The template's payment service frozen (SIGSTOP) for 3 s: its checkouts all completed late
  with 200, and nothing answered for 3 s.
- **outage**: how long the 2xx rate stayed below half its baseline (the median of the seconds before
  the fault); a frozen service's 3 s are an outage of about 3 s.
- **refused before → during**: the share of requests due in the window refused with a 4xx, against
  before. A jump is a **masked outage**: errors turned into refusals. The template's stock service
  killed: its order service answered every checkout `400 Out of stock`, so nothing looked down, yet
  no checkout succeeded for 4–5 s.
- **p50 / p99 before / during / after**: from the due time to the reply, in ms.
- **recovered after**: seconds from the recover step until the 2xx rate and the p50 were both back
  within 10% of before, and stayed so for 3 s; *not within the run* when they never were (a shop that
  comes back 20× slower is not back).
- **tested**: *nothing* when at the fault's start no checkout could succeed any more (stock sold out
  or credit spent): a fault then changes nothing a user could see.
"""


def _s(v: float | None, never: str = "-") -> str:
    return never if v is None else f"{v:.2f} s"


def _ms(v: float | None) -> str:
    return "-" if v is None else f"{v:,.0f}" if v >= 100 else f"{v:.1f}"


def _share(v: float | None) -> str:
    return "-" if v is None else f"{v:.0%}"


def recovered_words(f: dict) -> str:
    return f["recovery"]


def fault_lines(faults: list[dict]) -> list[str]:
    """One line per fault: when it started (and how late), what its users met, whether it came back;
    then one sentence for each masked outage and each fault that tested nothing."""
    if not faults:
        return []
    lines = [f"{'fault':<20} {'started':>8} {'ok/fail/unknown':>16} {'no answer':>10} {'outage':>8} "
             f"{'refused before>during':>22} {'p50 ms before>during>after':>27} {'recovered':>25}"]
    for f in faults:
        counts = "/".join(str(f["requests"][o]) for o in OUTCOMES)
        refused = f"{_share(f['refusal_share']['before'])} > {_share(f['refusal_share']['during'])}"
        lat = f["latency_ms"]
        p50 = " > ".join(_ms(lat[k]["p50"]) for k in ("before", "during", "after"))
        lines.append(f"{f['name'][:20]:<20} {_s(f['started_s']):>8} {counts:>16} {_s(f['no_answer_gap_s']):>10} "
                     f"{_s(f['outage_s']):>8} {refused:>22} {p50:>27} {recovered_words(f):>25}")
    for f in faults:
        if f["masked_outage"]:
            lines.append(f"masked outage: fault '{f['name']}': errors turned into refusals — "
                         f"{_share(f['refusal_share']['during'])} of the requests due in its window were refused "
                         f"(4xx), against {_share(f['refusal_share']['before'])} before; a 4xx says the shop is up, "
                         f"but checkouts that succeeded before and after failed (outage {_s(f['outage_s'])})")
        if f["tested_nothing"]:
            lines.append(f"warning: fault '{f['name']}' tested nothing: {f['tested_nothing_why']}; "
                         f"give the run stock and credit that last it (e.g. --item-stock, --user-credit)")
    lost = faults[0]["acknowledged_writes_lost"]
    if lost is not None:  # None: the run's checks do not say (a stress run's books are not per write)
        lines.append("acknowledged writes lost across the faults: " + (", ".join(lost) if lost else "none"))
    return lines
