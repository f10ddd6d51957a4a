"""Whether a run lost part of its load: a Locust worker that stopped sending heartbeats or left
while the test ran (the master's workers.csv, written by the locustfile), or a user count that fell
below the target after the ramp-up (Locust's own locust_stats_history.csv). Locust carries on
without them and exits 0; the run must not look complete. The judging is pure."""

from __future__ import annotations

import csv
from pathlib import Path

from wdm_lib.workloads.stress import locust_csv

# The last samples of a run fall while Locust stops its users; a drop then is the end, not a loss.
END_MARGIN_S = 2.0
EVENTS = {"missing": "stopped sending heartbeats", "left": "disconnected"}


def read_worker_events(path: str | Path) -> list[dict]:
    """workers.csv as rows of t_s (epoch seconds), worker, event, users; [] when there is none."""
    try:
        with open(path, newline="", encoding="utf-8") as f:
            return [{"t_s": int(r["t_ns"]) / 1e9, "worker": r["worker"], "event": r["event"],
                     "users": int(r["users"] or 0)} for r in csv.DictReader(f) if r.get("users") is not None]
    except FileNotFoundError:
        return []


def read_user_counts(history_csv: str | Path) -> list[tuple[float, int]]:
    """(epoch seconds, users running) at each of Locust's samples of the whole run."""
    return [(float(r[locust_csv.TIMESTAMP]), int(r[locust_csv.USERS])) for r in locust_csv.total_rows(history_csv)
            if (r.get(locust_csv.USERS) or "").isdigit()]


def degradation(events: list[dict], user_counts: list[tuple[float, int]], target_users: int | None,
                start_s: float, planned_s: float) -> list[dict]:
    """Each way the run lost load, with when (seconds into the run), and what share of the planned
    run it covers (from then to the end). `target_users` None: no fixed target (a step load)."""
    end_s = start_s + planned_s

    def share(at_s: float) -> float:
        return round(max(0.0, min(1.0, (end_s - at_s) / planned_s)), 3)

    found = []
    for e in events:
        if e["event"] not in EVENTS:
            continue
        at = e["t_s"] - start_s
        of = f" of {target_users}" if target_users else ""
        found.append({
            "what": f"worker {e['event']}", "worker": e["worker"], "at_s": round(at, 1), "users": e["users"],
            "share_of_run": share(e["t_s"]),
            "sentence": f"Locust worker {e['worker']} {EVENTS[e['event']]} {at:.1f} s into the run, taking "
                        f"its {e['users']}{of} users with it for the remaining {100 * share(e['t_s']):.0f}% of "
                        f"the run; the requests it had not yet reported are not in the figures."})
    if target_users:
        ramped = next((i for i, (_, users) in enumerate(user_counts) if users >= target_users), None)
        if ramped is not None:
            low = [(t, users) for t, users in user_counts[ramped:] if users < target_users and t < end_s - END_MARGIN_S]
            if low:
                t, users = low[0]
                fewest = min(u for _, u in low)
                found.append({
                    "what": "users below target", "worker": None, "at_s": round(t - start_s, 1), "users": fewest,
                    "share_of_run": share(t),
                    "sentence": f"the running users fell below the target of {target_users} {t - start_s:.1f} s "
                                f"into the run (to {fewest} at the fewest), for the remaining "
                                f"{100 * share(t):.0f}% of the run."})
    return found
