"""What each fault cost, read from the history: requests in its window by outcome, downtime, and how
soon the system served again after the recovery step. Pure: tests feed it hand-made rows.

A reply counts as *served* when the system answered it definitively, 2xx or 4xx: after a fault a
shop that refuses a checkout for want of stock is up, and API.md makes a 4xx a real answer. A 5xx,
a timeout, a reset or a refused connection is not served."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from wdm_lib.checkers import LOST_WRITES
from wdm_lib.history import CHECKOUT, OUTCOMES, Op
from wdm_lib.workloads.shop_rows import FAIL_STATUSES, OK_STATUSES

RATE_BEFORE_S = 5.0     # how far back the rate before a fault is measured
RATE_TOLERANCE = 0.10   # "back": a served rate within 10% of the rate before the fault
RATE_BIN_S = 1.0
RATE_STEP_S = 0.1
# The checkers' anomalies that mean a write the system acknowledged is gone.


@dataclass(frozen=True)
class Requests:
    """What measures need of the load's requests, as columns sorted by when they were answered:
    when each was due (the schedule's intended start; the send when there was no schedule), sent and
    answered, whether it was served, and its outcome. Columns, not objects: a stress run has millions."""
    intended_ns: np.ndarray
    invoke_ns: np.ndarray
    complete_ns: np.ndarray
    served: np.ndarray      # bool
    outcome: np.ndarray     # the OUTCOMES names

    @classmethod
    def of(cls, intended_ns, invoke_ns, complete_ns, status, outcome) -> "Requests":
        """status: the HTTP status, None or NaN (or 0, as raw rows write it) when no reply came."""
        order = np.argsort(np.asarray(complete_ns, dtype="int64"), kind="stable")
        return cls(np.asarray(intended_ns, dtype="int64")[order], np.asarray(invoke_ns, dtype="int64")[order],
                   np.asarray(complete_ns, dtype="int64")[order], served(status)[order], np.asarray(outcome, dtype=object)[order])

    def __len__(self) -> int:
        return len(self.complete_ns)


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


def _steps(ops: list[Op]) -> dict[str, dict[str, Op]]:
    """fault name -> {"inject": Op, "recover": Op} from the history's fault rows, in schedule order."""
    found: dict[str, dict[str, Op]] = {}
    for op in ops:
        if op.fault:
            found.setdefault(op.fault["name"], {})[op.fault["step"]] = op
    return found


def _rate(times: np.ndarray, start_ns: int, end_ns: int) -> float:
    return (np.searchsorted(times, end_ns) - np.searchsorted(times, start_ns)) / ((end_ns - start_ns) / 1e9)


def measure_fault(name: str, inject: Op, recover: Op | None, requests: Requests, t0_ns: int,
                  end_ns: int, calm_since_ns: int | None = None) -> dict:
    """One fault's figures. `t0_ns`: when the load started; `end_ns`: when its last reply came;
    `calm_since_ns`: when the fault before it had recovered, so the rate it is compared with is not
    that fault's. Seconds are relative to the load's start; a figure the load did not last long
    enough to see is None. Requests are in the window when they were due in it: an open-loop load
    wanted them then, whether or not our own bound let them out."""
    r = requests
    window_end = recover.complete_ns if recover is not None else end_ns
    in_window = (r.intended_ns >= inject.invoke_ns) & (r.intended_ns <= window_end)
    by_outcome = {o: int(np.sum(r.outcome[in_window] == o)) for o in OUTCOMES}
    slowest = float(np.max(r.complete_ns[in_window] - r.intended_ns[in_window]) / 1e6) if in_window.any() else None

    after = np.searchsorted(r.complete_ns, inject.invoke_ns)  # answered once the fault began
    bad = np.flatnonzero(~r.served[after:])
    downtime = 0.0
    if len(bad):
        first_bad = after + bad[0]
        back = np.flatnonzero(r.served[first_bad:] & (r.complete_ns[first_bad:] > r.complete_ns[first_bad]))
        downtime = None if not len(back) else (r.complete_ns[first_bad + back[0]] - r.complete_ns[first_bad]) / 1e9

    served_ns = r.complete_ns[r.served]
    first_ok_s = rate_back_s = None
    if recover is not None:
        i = np.searchsorted(served_ns, recover.complete_ns)
        first_ok_s = (served_ns[i] - recover.complete_ns) / 1e9 if i < len(served_ns) else None
        since = max(t0_ns, calm_since_ns or t0_ns, inject.invoke_ns - int(RATE_BEFORE_S * 1e9))
        if inject.invoke_ns - since >= int(RATE_BIN_S * 1e9):
            before = _rate(served_ns, since, inject.invoke_ns)
            t = recover.complete_ns
            while t + RATE_BIN_S * 1e9 <= end_ns and before > 0:
                if abs(_rate(served_ns, t, t + int(RATE_BIN_S * 1e9)) - before) <= RATE_TOLERANCE * before:
                    rate_back_s = (t - recover.complete_ns) / 1e9
                    break
                t += int(RATE_STEP_S * 1e9)

    def rel(ns: int | None) -> float | None:
        return None if ns is None else round((ns - t0_ns) / 1e9, 3)

    return {
        "name": name,
        "what": inject.fault["what"],
        "recover": None if recover is None else recover.fault["what"],
        "due_s": rel(inject.intended_ns),
        "started_s": rel(inject.invoke_ns),
        "late_ms": round((inject.invoke_ns - inject.intended_ns) / 1e6, 3),
        "inject_status": inject.status,
        "recovered_s": None if recover is None else rel(recover.complete_ns),
        "recover_status": None if recover is None else recover.status,
        "requests": by_outcome,
        "slowest_reply_ms": None if slowest is None else round(slowest, 3),
        "downtime_s": None if downtime is None else round(float(downtime), 3),
        "first_served_after_recover_s": None if first_ok_s is None else round(float(first_ok_s), 3),
        "rate_back_after_recover_s": None if rate_back_s is None else round(float(rate_back_s), 3),
    }


def measure_faults(ops: list[Op], requests: Requests, anomaly_names: list[str] | None) -> list[dict]:
    """Every fault of the history that was injected, in schedule order. The checkers judge the whole
    history and cannot tell which fault lost a write, so each fault carries the run's lost writes
    (None: the run has no checkers that could say)."""
    if not len(requests):
        return []
    t0_ns = int(requests.invoke_ns.min())
    end_ns = int(requests.complete_ns.max())
    lost = None if anomaly_names is None else [n for n in anomaly_names if n in LOST_WRITES]
    out = []
    calm_since = None
    for name, steps in sorted(_steps(ops).items(), key=lambda kv: min(op.intended_ns for op in kv[1].values())):
        if "inject" in steps:
            recover = steps.get("recover")
            out.append({**measure_fault(name, steps["inject"], recover, requests, t0_ns, end_ns, calm_since),
                        "acknowledged_writes_lost": lost})
            calm_since = max(calm_since or 0, (recover or steps["inject"]).complete_ns)
    return out


def _s(v: float | None) -> str:
    return "-" if v is None else f"{v:.2f} s"


def fault_lines(faults: list[dict]) -> list[str]:
    """One line per fault: when it started (and how late), what it cost, how soon the shop was back."""
    if not faults:
        return []
    lines = [f"{'fault':<20} {'started':>8} {'late':>8} {'ok/fail/unknown':>16} {'downtime':>9} "
             f"{'served again':>13} {'rate back':>10}"]
    for f in faults:
        counts = "/".join(str(f["requests"][o]) for o in OUTCOMES)
        lines.append(f"{f['name'][:20]:<20} {_s(f['started_s']):>8} {f['late_ms']:>6.1f}ms {counts:>16} "
                     f"{_s(f['downtime_s']):>9} {_s(f['first_served_after_recover_s']):>13} "
                     f"{_s(f['rate_back_after_recover_s']):>10}")
    lost = faults[0]["acknowledged_writes_lost"]
    if lost is not None:  # None: the run's checks do not say (a stress run's books are not per write)
        lines.append("acknowledged writes lost across the faults: " + (", ".join(lost) if lost else "none"))
    return lines
