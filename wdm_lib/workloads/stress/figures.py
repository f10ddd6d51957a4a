"""A stress run's figures: the raw rows (one per request) and Locust's CSVs -> summary.json.
Exact nearest-rank percentiles over every request; Locust's own rounded figures beside them.
Apart from the readers, pure: tests feed it made-up rows."""

from __future__ import annotations

import math
from pathlib import Path

from wdm_lib.analysis import (latency_percentiles, load_locust_history, load_locust_stats, load_requests,
                              step_figures, load_started_ns)
from wdm_lib import summaries
from wdm_lib.errors import WorkbenchError
from wdm_lib.faults.measures import measure_faults, requests_of_raw
from wdm_lib.history import OK, OUTCOMES, UNKNOWN, read_ops
from wdm_lib.workloads.stress import locust_csv
from wdm_lib.workloads.stress.scenario import NAMES, StressScenario

RAW_GLOB = "requests-*.csv"
SHORTFALL_WARNING = 0.05  # an open loop that achieved less than 95% of its rate says so


def raw_files(folder: str | Path) -> list[Path]:
    return sorted(Path(folder).glob(RAW_GLOB))


def read_raw(folder: str | Path):
    """Every raw row of a run as one DataFrame, read as the notebooks read it (see load_requests)."""
    return load_requests(folder)


def summarize_raw(df, steps: list[int] | None = None, step_time: float | None = None,
                  load_started: int | None = None) -> dict:
    """The exact figures of summary.json from the raw rows (a read_raw frame); a step load's steps
    counted from `load_started` (analysis.load_started_ns) when it is known."""
    n = len(df)
    counts = df["outcome"].astype("string").value_counts() if n else {}
    outcomes = {k: int(counts.get(k, 0)) for k in OUTCOMES}
    out = {
        "requests": int(n),
        "failures": int(n - outcomes["ok"]),
        "duration_s": 0.0,
        "throughput_rps": 0.0,
        "latency_ms": latency_percentiles(df["latency_ms"].to_numpy()),
        "response_ms": latency_percentiles(df["response_ms"].to_numpy()),
        "by_name": {str(name): latency_percentiles(g["latency_ms"].to_numpy())
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
        table = step_figures(df, steps, step_time, load_started)
        out["steps"] = [{"users": int(r.users), "requests": int(r.requests),
                         "throughput_rps": round(float(r.throughput_rps), 3),
                         "p99_ms": None if r.p99_ms != r.p99_ms or r.p99_ms is None else float(r.p99_ms)}
                        for r in table.itertuples()]
    return out


def rate_figures(df, sc: StressScenario) -> dict | None:
    """An open loop's rate: asked against achieved, counted by actual send over the steady part of
    the run (after every user started, one period clear of either end)."""
    if sc.rate is None:
        return None
    out = {"target_rps": sc.rate, "users": sc.users, "pacing_s": round(sc.pacing_s, 6),
           "achieved_rps": None, "short_pct": None, "window_s": 0.0, "warning": None}
    if len(df):
        t0 = int(df["start_ns"].min())
        lo = t0 + (sc.ramp_s + sc.pacing_s) * 1e9
        hi = t0 + (sc.planned_s - sc.pacing_s) * 1e9
        if hi > lo:
            sent = int(((df["start_ns"] >= lo) & (df["start_ns"] < hi)).sum())
            window_s = (hi - lo) / 1e9
            achieved = sent / window_s
            short = max(0.0, 1 - achieved / sc.rate)
            out.update(achieved_rps=round(achieved, 3), short_pct=round(100 * short, 2), window_s=round(window_s, 3))
            if short > SHORTFALL_WARNING:
                # A user cannot send faster than its replies come back: when the typical reply takes
                # longer than a user's period, the users may be too few as well (or the system is
                # saturated, and more of them would only queue); the run cannot tell which.
                median_s = float(df["latency_ms"].median()) / 1000 if "latency_ms" in df else 0.0
                why = "the system or this load generator could not keep up"
                if median_s > sc.pacing_s:
                    why += (f", or, with replies taking {median_s:.3g} s (median) against each user's period of "
                            f"{sc.pacing_s:.3g} s, too few users: try --users {math.ceil(sc.rate * median_s)} or more")
                out["warning"] = (f"the load reached {achieved:.1f} of the {sc.rate:g} requests/s asked "
                                  f"({100 * short:.1f}% short): {why}; the response times from the intended "
                                  f"start include the wait.")
    if out["achieved_rps"] is None:
        out["warning"] = (f"the run was too short to measure its rate after its {sc.ramp_s:.3g} s ramp-up; "
                          f"expected a longer --run-time.")
    return out


def recorded(df) -> dict:
    """What the raw rows say happened to the books: checkouts and add funds, certain and unknown."""
    def count(name: str, outcome: str) -> int:
        return int(((df["name"] == NAMES[name]) & (df["outcome"] == outcome)).sum()) if len(df) else 0

    return {"checkouts_ok": count("checkout", OK), "checkouts_unknown": count("checkout", UNKNOWN),
            "add_funds_ok": count("add_funds", OK), "add_funds_unknown": count("add_funds", UNKNOWN)}


def read_locust_aggregated(stats_csv: str | Path) -> dict | None:
    """Locust's own row over every request of locust_stats.csv, None when the file is missing."""
    found = locust_csv.total_rows(stats_csv)
    if not found:
        return None
    r, n = found[-1], locust_csv.number
    return {"requests": n(r[locust_csv.REQUESTS]) or 0, "failures": n(r[locust_csv.FAILED]) or 0,
            "median_ms": n(r[locust_csv.MEDIAN]), "p95_ms": n(r[locust_csv.P95]),
            "p99_ms": n(r[locust_csv.P99]), "rps": n(r[locust_csv.RPS])}


def first_exception(exceptions_csv: str | Path) -> str | None:
    """The message of the most frequent error in Locust's locust_exceptions.csv."""
    found = sorted(locust_csv.rows(exceptions_csv) or [], key=lambda r: -(locust_csv.number(r.get("Count")) or 0))
    return found[0]["Message"].strip()[:300] if found else None


def summarize(run_id: str, sc: StressScenario, folder: str | Path, df=None) -> dict:
    """The figures of summary.json: exact ones from the raw rows (`df`, read from the folder when
    not given), Locust's own beside them. The run adds its verdicts (gates, workers, verify)."""
    folder = Path(folder)
    locust = read_locust_aggregated(folder / locust_csv.STATS)
    df = read_raw(folder) if df is None else df
    raw = summarize_raw(df, sc.steps, sc.step_time, load_started_ns(folder, df) if sc.steps else None)
    if not raw_files(folder) and locust is not None:
        # Raw latencies were off: the counts are Locust's, the percentiles unknown.
        raw["requests"], raw["failures"] = int(locust["requests"]), int(locust["failures"])
        raw["duration_s"] = sc.planned_s
        raw["throughput_rps"] = locust["rps"] or 0.0
    return {"run_id": run_id, "kind": "stress", **{k: raw[k] for k in (
        "requests", "failures", "duration_s", "throughput_rps", "latency_ms", "response_ms", "by_name",
        "outcomes")}, "locust": locust, "steps": raw["steps"], "rate": rate_figures(df, sc),
        "recorded": recorded(df)}


def fault_figures(history_csv: Path | None, df) -> list[dict]:
    """What each fault of the run's schedule cost the requests (the raw rows `df`); [] without one."""
    return [] if history_csv is None else measure_faults(read_ops(history_csv), requests_of_raw(df), None)


def report_summary(run) -> dict:
    """What a stress run's report shows: its summary.json, or for a run that ended without one (killed
    with -9, or stopped before Locust wrote a figure) what its raw rows, Locust's CSVs and its fault
    history recorded, as summarize() has it, with no verdict."""
    if summaries.has(run):
        return summaries.latest(run)[1]
    try:
        sc = StressScenario.from_dict(run.manifest.get("scenario") or {})
    except (TypeError, ValueError, WorkbenchError) as e:
        raise WorkbenchError(f"{run.file('manifest.json')}: its scenario is not one wdm writes ({e}).") from None
    df = read_raw(run.path)
    summary = summarize(run.id, sc, run.path, df)
    history = run.file("history.csv")
    summary["faults"] = fault_figures(history if history.is_file() else None, df)
    summary["verdict"] = f"{run.status}: no verdict"
    return summary


def report_frames(folder: str | Path) -> tuple:
    """(requests, history, locust) as the report charts them: the raw rows, Locust's samples over
    time and its end-of-run figures; history or locust is None when Locust never wrote that file (a
    run killed or stopped before it did)."""
    folder = Path(folder)
    has = (folder / locust_csv.HISTORY).is_file(), (folder / locust_csv.STATS).is_file()
    return (read_raw(folder), load_locust_history(folder) if has[0] else None,
            load_locust_stats(folder) if has[1] else None)
