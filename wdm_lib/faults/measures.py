"""What each fault cost, read from the history: requests in its window by outcome, downtime, and how
soon the system served again after the recovery step. Pure: tests feed it hand-made rows.

A reply counts as *served* when the system answered it definitively, 2xx or 4xx: after a fault a
shop that refuses a checkout for want of stock is up, and API.md makes a 4xx a real answer. A 5xx,
a timeout, a reset or a refused connection is not served."""

from __future__ import annotations

from bisect import bisect_left
from dataclasses import dataclass

from wdm_lib.history import OUTCOMES, Op

RATE_BEFORE_S = 5.0     # how far back the rate before a fault is measured
RATE_TOLERANCE = 0.10   # "back": a served rate within 10% of the rate before the fault
RATE_BIN_S = 1.0
RATE_STEP_S = 0.1
# The checkers' anomalies that mean a write the system acknowledged is gone.
LOST_WRITES = ("paid-flag", "lost-item", "lost-user", "lost-seed-write", "order-contents")


@dataclass(frozen=True)
class Request:
    """What measures need of one request: when it was due (the schedule's intended start; the send
    when there was no schedule), when it was sent and answered, and how."""
    intended_ns: int
    invoke_ns: int
    complete_ns: int
    status: int | None
    outcome: str

    @property
    def served(self) -> bool:
        return self.status is not None and self.status < 500


def requests_of(ops: list[Op], kind: str = "checkout") -> list[Request]:
    return [Request(op.intended_ns, op.invoke_ns, op.complete_ns, op.status, op.outcome)
            for op in ops if op.kind == kind]


def _steps(ops: list[Op]) -> dict[str, dict[str, Op]]:
    """fault name -> {"inject": Op, "recover": Op} from the history's fault rows, in schedule order."""
    found: dict[str, dict[str, Op]] = {}
    for op in ops:
        if op.fault:
            found.setdefault(op.fault["name"], {})[op.fault["step"]] = op
    return found


def _rate(times: list[int], start_ns: int, end_ns: int) -> float:
    return (bisect_left(times, end_ns) - bisect_left(times, start_ns)) / ((end_ns - start_ns) / 1e9)


def measure_fault(name: str, inject: Op, recover: Op | None, requests: list[Request], t0_ns: int,
                  end_ns: int, calm_since_ns: int | None = None) -> dict:
    """One fault's figures. `t0_ns`: when the load started; `end_ns`: when its last reply came;
    `calm_since_ns`: when the fault before it had recovered, so the rate it is compared with is not
    that fault's. Seconds are relative to the load's start; a figure the load did not last long
    enough to see is None. Requests are in the window when they were due in it: an open-loop load
    wanted them then, whether or not our own bound let them out."""
    window_end = recover.complete_ns if recover is not None else end_ns
    in_window = [r for r in requests if inject.invoke_ns <= r.intended_ns <= window_end]
    by_outcome = {o: sum(r.outcome == o for r in in_window) for o in OUTCOMES}
    slowest = max(((r.complete_ns - r.intended_ns) / 1e6 for r in in_window), default=None)
    answered = sorted((r for r in requests if r.complete_ns >= inject.invoke_ns), key=lambda r: r.complete_ns)
    first_bad = next((r for r in answered if not r.served), None)
    downtime = 0.0
    if first_bad is not None:
        back = next((r for r in answered if r.served and r.complete_ns > first_bad.complete_ns), None)
        downtime = None if back is None else (back.complete_ns - first_bad.complete_ns) / 1e9

    served_ns = sorted(r.complete_ns for r in requests if r.served)
    first_ok_s = rate_back_s = None
    if recover is not None:
        after = served_ns[bisect_left(served_ns, recover.complete_ns):]
        first_ok_s = (after[0] - recover.complete_ns) / 1e9 if after else None
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
        "downtime_s": None if downtime is None else round(downtime, 3),
        "first_served_after_recover_s": None if first_ok_s is None else round(first_ok_s, 3),
        "rate_back_after_recover_s": None if rate_back_s is None else round(rate_back_s, 3),
    }


def measure_faults(ops: list[Op], requests: list[Request], anomaly_names: list[str]) -> list[dict]:
    """Every fault of the history that was injected, in schedule order. The checkers judge the whole
    history and cannot tell which fault lost a write, so each fault carries the run's lost writes."""
    if not requests:
        return []
    t0_ns = min(r.invoke_ns for r in requests)
    end_ns = max(r.complete_ns for r in requests)
    lost = [n for n in anomaly_names if n in LOST_WRITES]
    out = []
    calm_since = None
    for name, steps in sorted(_steps(ops).items(), key=lambda kv: min(op.intended_ns for op in kv[1].values())):
        if "inject" in steps:
            recover = steps.get("recover")
            out.append({**measure_fault(name, steps["inject"], recover, requests, t0_ns, end_ns, calm_since),
                        "acknowledged_writes_lost": lost})
            calm_since = max(calm_since or 0, (recover or steps["inject"]).complete_ns)
    return out
