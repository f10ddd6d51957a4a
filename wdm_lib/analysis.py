"""Runs -> figures: run folders loaded into DataFrames, percentiles, outcome counts, time series;
what the notebooks call. Apart from the load_* readers, pure functions. pandas is imported only by
the functions that return DataFrames, so the CLI starts fast."""

from __future__ import annotations

from typing import Iterable

from wdm_lib.history import CHECKOUT, OUTCOMES
from wdm_lib.workloads.shop_rows import LOAD_STARTED
from wdm_lib.workloads.stress import locust_csv

PERCENTILES = (50, 90, 95, 99, 99.9)


def percentile_label(p: float) -> str:
    return f"p{p:g}"


def exact_percentile(values, q):
    """The q-th percentile(s) by nearest rank (numpy's inverted_cdf): every figure is a value that
    was measured, never one interpolated between two. The one percentile of the workbench."""
    import numpy as np

    return np.percentile(values, q, method="inverted_cdf")


def latency_percentiles(latencies_ms: Iterable[float]) -> dict[str, float | int | None]:
    """Exact percentiles (nearest rank, numpy's inverted_cdf: every figure is a latency that was
    measured), plus count, mean and max."""
    import numpy as np

    values = np.fromiter(latencies_ms, dtype="float64") if not hasattr(latencies_ms, "__len__") \
        else np.asarray(latencies_ms, dtype="float64")
    n = len(values)
    out: dict[str, float | int | None] = {"count": n}
    figures = exact_percentile(values, PERCENTILES) if n else [None] * len(PERCENTILES)
    for p, v in zip(PERCENTILES, figures):
        out[percentile_label(p)] = None if v is None else float(v)
    out["max"] = float(values.max()) if n else None
    out["mean"] = float(values.mean()) if n else None
    return out


def run_overview(manifest: dict):
    """What a run was and how it ended, then its scenario's parameters: one row per figure."""
    import pandas as pd

    target = manifest.get("target") or {}
    rows = {"run": manifest["id"], "status": manifest.get("status"), "error": manifest.get("error"),
            "target": target.get("source"), "anomaly": target.get("anomaly"),
            "started": manifest.get("started_at"), "ended": manifest.get("ended_at")}
    rows.update(manifest.get("scenario") or {})
    return pd.DataFrame({"value": [("" if v is None else str(v)) for v in rows.values()]}, index=list(rows))


# --- consistency runs -------------------------------------------------------------------------------

def load_history(run_path):
    """A run's history.csv as a DataFrame (see wdm_lib.history.read_history)."""
    from pathlib import Path

    from wdm_lib.history import read_history

    return read_history(Path(run_path) / "history.csv")


def checkouts(history):
    return history[history["kind"] == CHECKOUT]


def outcome_counts(frame):
    """ok / fail / unknown counts of the rows' outcomes, zeros included."""
    return frame["outcome"].value_counts().reindex(list(OUTCOMES), fill_value=0).rename("count")


def operations_table(summary: dict):
    """The load's operations by kind (re-checkouts apart from first checkouts) and outcome, from the
    summary (one row: the original workload's checkouts; none: a summary of an older wdm)."""
    import pandas as pd

    rows = [{"operation": kind, **{outcome: n.get(outcome, 0) for outcome in OUTCOMES}, "all": sum(n.values())}
            for kind, n in (summary.get("operations") or {}).items()]
    return pd.DataFrame(rows, columns=["operation", *OUTCOMES, "all"])


def staleness_frame(judged, t0_ns: int):
    """One row per read made during the load (a wdm_lib.reads.Reads): when it was sent, in seconds
    since t0_ns, the record it read, its verdict (fine, stale, impossible) and how stale it was (s,
    NaN unless stale)."""
    import numpy as np
    import pandas as pd

    from wdm_lib.reads import OF, VERDICTS

    return pd.DataFrame({
        "sent_s": (judged.invoke_ns - t0_ns).astype("float64") / 1e9,
        "record": [f"{OF[of]} {id_}" for of, id_ in zip(judged.of.tolist(), judged.ids)],
        "verdict": pd.Categorical.from_codes(judged.status, VERDICTS),
        "staleness_s": np.where(judged.staleness_ns >= 0, judged.staleness_ns / 1e9, np.nan),
    })


def worst_reads_table(summary: dict):
    """The records whose reads broke the rule most (summary.json's reads.by_id): reads, stale and
    impossible ones, their share, and staleness p50 / p99 / max in ms."""
    import pandas as pd

    rows = [{"record": f"{r['of']} {r['id']}", "reads": r["reads"], "stale": r["stale"], "impossible": r["impossible"],
             "share (%)": 100 * r["share"], **{f"{k} (ms)": v for k, v in r["staleness_ms"].items()}}
            for r in (summary.get("reads") or {}).get("by_id", [])]
    return pd.DataFrame(rows, columns=["record", "reads", "stale", "impossible", "share (%)", "p50 (ms)", "p99 (ms)",
                                       "max (ms)"])


def percentile_table(frame, by, value: str = "latency_ms"):
    """One row per group (by: a column name or list of them) with latency_percentiles of `value`:
    the same exact, nearest-rank figures summary.json holds. Groups sorted, empty ones left out."""
    import pandas as pd

    rows = {key: latency_percentiles(group[value].tolist())
            for key, group in frame.groupby(by, observed=True, sort=True) if len(group)}
    # The columns even without a row: a run that recorded no request (a web UI run stopped before
    # its user started a load) has a table with nothing in it, not one that breaks what joins it.
    table = pd.DataFrame.from_dict(rows, orient="index", columns=list(latency_percentiles([])))
    if isinstance(by, (list, tuple)):
        table.index = pd.MultiIndex.from_tuples(table.index, names=by) if len(table) else \
            pd.MultiIndex.from_arrays([[]] * len(by), names=by)
    else:
        table.index.name = by
    return table


def outcome_percentiles(checkout_frame):
    """Latency percentiles per outcome, in OUTCOMES order, outcomes that never occurred left out
    (as in summary.json)."""
    table = percentile_table(checkout_frame, "outcome")
    return table.reindex([o for o in OUTCOMES if o in table.index])


def cdf(values):
    """Sorted values against the fraction of values at or below each."""
    import numpy as np
    import pandas as pd

    x = np.sort(np.asarray(values, dtype="float64"))
    return pd.DataFrame({"value": x, "fraction": np.arange(1, len(x) + 1) / max(len(x), 1)})


def timeline(checkout_frame):
    """Each checkout's start and end in seconds from the first one's start, ordered by start."""
    import pandas as pd

    if checkout_frame.empty:
        return pd.DataFrame(columns=["start_s", "end_s", "outcome"])
    t0 = checkout_frame["invoke_ns"].min()
    out = pd.DataFrame({
        "start_s": (checkout_frame["invoke_ns"] - t0).astype("float64") / 1e9,
        "end_s": (checkout_frame["complete_ns"] - t0).astype("float64") / 1e9,
        "outcome": checkout_frame["outcome"],
    })
    return out.sort_values("start_s", kind="stable").reset_index(drop=True)


def in_flight(starts, ends):
    """Requests in flight over time: a step series that rises at each start and falls at each end.
    At equal times ends count first, so back-to-back requests do not show as overlapping."""
    import numpy as np
    import pandas as pd

    starts, ends = np.asarray(starts, dtype="float64"), np.asarray(ends, dtype="float64")
    t = np.concatenate([ends, starts])
    step = np.concatenate([-np.ones(len(ends), dtype="int64"), np.ones(len(starts), dtype="int64")])
    order = np.lexsort((step, t))  # by time, then -1 before +1
    return pd.DataFrame({"t_s": t[order], "in_flight": np.cumsum(step[order])})


def _signed(side: dict | None) -> str:
    """'3 ids, +7' for one side of a balance anomaly; blank where it has no such side."""
    if not side or not side["ids"]:
        return ""
    return f"{side['ids']} {'id' if side['ids'] == 1 else 'ids'}, {side['by']:+d}"


def findings_table(summary: dict):
    """What went wrong, in the shop's words: each anomaly (a fact about balances: the verdict) and
    each warning (a fact about replies), with how many ids show it, how many are over and under
    what the history allows and by how much, and examples."""
    import pandas as pd

    rows = [{"finding": a["name"], "kind": kind, "count": a["count"], "over": _signed(a.get("over")),
             "under": _signed(a.get("under")), "examples": ", ".join(a["examples"][:3]), "meaning": a["description"]}
            for kind, found in (("anomaly", summary["anomalies"]), ("warning", summary.get("warnings", [])))
            for a in found]
    if not summary["anomalies"]:
        rows.insert(0, {"finding": "no anomaly", "kind": "anomaly", "count": 0, "over": "", "under": "",
                        "examples": "", "meaning": "every balance, flag and record agrees with what happened"})
    return pd.DataFrame(rows, columns=["finding", "kind", "count", "over", "under", "examples", "meaning"])


ORIGINAL_LABELS = {
    "stock_inconsistencies_in_logs": "stock inconsistencies in logs",
    "stock_inconsistencies_in_db": "stock inconsistencies in db",
    "payment_inconsistencies_in_logs": "payment inconsistencies in logs",
    "payment_inconsistencies_in_db": "payment inconsistencies in db",
}


def original_table(summary: dict):
    """The original benchmark's four figures, computed as it defines them (0 when consistent by its
    own arithmetic), for comparison with numbers users already know."""
    import pandas as pd

    return pd.DataFrame([{"figure": ORIGINAL_LABELS.get(k, k), "value": v} for k, v in summary["original"].items()],
                        columns=["figure", "value"])


def original_caveats(summary: dict) -> str:
    """Why the original's figures can mislead, with this run's unknowns named when it had any."""
    counted = summary.get("original_counts_unknowns", 0)
    extra = (f" In this run that means {counted} checkouts with an unknown outcome were counted as successes."
             if counted else "")
    return summary["original_caveats"] + extra


def convergence_frame(summary: dict):
    """The convergence timeline (one row per pass of the final read-back): t_s since the last
    checkout reply, changed, valid, and the anomalies found on that pass in all."""
    import pandas as pd

    points = summary.get("convergence", [])
    return pd.DataFrame({"t_s": [p["t_s"] for p in points], "changed": [p["changed"] for p in points],
                         "valid": [p["valid"] for p in points],
                         "anomalies": [sum(p["anomalies"].values()) for p in points]},
                        columns=["t_s", "changed", "valid", "anomalies"])


def deviations(summary: dict, state: dict):
    """Every per-id row the anomalies carry (expected, actual, diff), each marked as an item's, a
    user's or the whole shop's by where its id appears in the run's state."""
    import pandas as pd

    items, users = state["initial"]["items"], state["initial"]["users"]
    rows = []
    for a in summary["anomalies"]:
        for d in a.get("details", []):
            of = "item" if d["id"] in items else "user" if d["id"] in users else "total"
            rows.append({"anomaly": a["name"], "of": of, "id": d["id"], "expected": d["expected"],
                         "actual": d["actual"], "diff": d["diff"]})
    return pd.DataFrame(rows, columns=["anomaly", "of", "id", "expected", "actual", "diff"])


def fault_windows(summary: dict) -> list[tuple[str, float, float]]:
    """(name, start, end) of each fault, in seconds since the load started, for shading charts: from
    its injection to the end of its recovery (to the end of the load when it never recovered)."""
    windows = []
    for f in summary.get("faults", []):
        end = f["recover_step_s"] if f["recover_step_s"] is not None else float("inf")
        windows.append((f["name"], f["started_s"], end))
    return windows


def faults_table(summary: dict):
    """One row per fault: what it did, when, and what its users met (see wdm_lib.faults.measures)."""
    import pandas as pd

    from wdm_lib.faults.measures import recovered_words

    def share(v):
        return "-" if v is None else f"{v:.0%}"

    rows = []
    for f in summary.get("faults", []):
        r, lat, refused = f["requests"], f["latency_ms"], f["refusal_share"]
        rows.append({"fault": f["name"], "what": f["what"], "recover": f["recover"] or "",
                     "started (s)": f["started_s"], "late (ms)": f["late_ms"], "recover step (s)": f["recover_step_s"],
                     "ok / fail / unknown": f"{r['ok']} / {r['fail']} / {r['unknown']}",
                     "no answer for (s)": f["no_answer_gap_s"], "outage (s)": f["outage_s"],
                     "refused before → during": f"{share(refused['before'])} → {share(refused['during'])}"
                     + (" (masked outage)" if f["masked_outage"] else ""),
                     **{f"p{q} ms before / during / after": " / ".join(
                         "-" if lat[k][f"p{q}"] is None else f"{lat[k][f'p{q}']:,.1f}" for k in ("before", "during", "after"))
                        for q in (50, 99)},
                     "recovered after": recovered_words(f),
                     "tested": "nothing: " + f["tested_nothing_why"] if f["tested_nothing"] else "yes",
                     "acknowledged writes lost": "not judged" if f["acknowledged_writes_lost"] is None
                     else ", ".join(f["acknowledged_writes_lost"]) or "none"})
    return pd.DataFrame(rows)


def fault_requests(rows):
    """The load's requests as the fault measures read them (measures.Requests), from the rows a
    notebook holds: a stress run's raw rows (load_requests) or a consistency run's checkouts."""
    import numpy as np

    from wdm_lib.faults import measures

    if "start_ns" in rows:
        return measures.requests_of_raw(rows)
    return measures.Requests.of(rows["intended_ns"].to_numpy(dtype="int64"), rows["invoke_ns"].to_numpy(dtype="int64"),
                                rows["complete_ns"].to_numpy(dtype="int64"),
                                rows["status"].astype("float64").to_numpy(na_value=np.nan), rows["outcome"].to_numpy())


def fault_seconds(requests, bin_s: float = 1.0):
    """Second by second, what the fault measures read (wdm_lib.faults.measures), with t_s counted
    from the load's first due time as the faults' own times are: 2xx replies per second by when they
    came, and, of the requests due in the second, the share refused (4xx) and the p50 and p99 from
    the due time to the reply (ms, nearest rank, those that got one)."""
    import numpy as np
    import pandas as pd

    r = requests
    columns = ["t_s", "success_per_s", "refusal_share", "p50_ms", "p99_ms"]
    if not len(r):
        return pd.DataFrame(columns=columns)
    t0 = int(r.intended_ns.min())
    done = np.floor((r.complete_ns - t0) / 1e9 / bin_s).astype("int64")
    due = np.floor((r.intended_ns - t0) / 1e9 / bin_s).astype("int64")
    last = int(max(done.max(), due.max()))
    index = pd.RangeIndex(0, last + 1)
    success = pd.Series(done[r.succeeded]).value_counts().reindex(index, fill_value=0) / bin_s
    by_due = pd.DataFrame({"bin": due, "refused": r.refused, "ms": np.where(r.replied, (r.complete_ns - r.intended_ns) / 1e6,
                                                                              np.nan)}).groupby("bin")
    ms = by_due["ms"]
    out = pd.DataFrame({"t_s": index * bin_s, "success_per_s": success.to_numpy(dtype="float64"),
                        "refusal_share": by_due["refused"].mean().reindex(index).to_numpy(),
                        "p50_ms": ms.apply(lambda v: float(exact_percentile(v.dropna(), 50)) if v.notna().any() else np.nan)
                        .reindex(index).to_numpy(),
                        "p99_ms": ms.apply(lambda v: float(exact_percentile(v.dropna(), 99)) if v.notna().any() else np.nan)
                        .reindex(index).to_numpy()})
    return out[columns]


def answered(requests):
    """A stress run's raw rows (load_requests) in the shape per_second reads: when each was sent and
    answered, its status (no reply, written 0, as missing) and its latency."""
    import pandas as pd

    status = requests["status"].astype("float64")
    return pd.DataFrame({"invoke_ns": requests["start_ns"],
                         "complete_ns": requests["start_ns"] + (requests["latency_ms"] * 1e6).round().astype("int64"),
                         "status": status.where(status > 0), "latency_ms": requests["latency_ms"]})


def per_second(frame, t0_ns: int | None = None, bin_s: float = 1.0):
    """Requests per time bin by when they were answered: served (2xx or 4xx) and not served per
    second, and the p50 and p99 latency (ms, nearest rank) of those answered in the bin. `frame`
    has invoke_ns, complete_ns, status, latency_ms; t_s counts from t0_ns (default: the first send)."""
    import numpy as np
    import pandas as pd

    from wdm_lib.faults import measures

    if frame.empty:
        return pd.DataFrame(columns=["t_s", "served_per_s", "not_served_per_s", "p50_ms", "p99_ms"])
    t0 = frame["invoke_ns"].min() if t0_ns is None else t0_ns
    t = (frame["complete_ns"].astype("float64") - t0) / 1e9
    served = pd.Series(measures.served(frame["status"].astype("float64").to_numpy()), index=frame.index)
    bins = np.floor(t / bin_s).astype("int64")
    grouped = pd.DataFrame({"bin": bins, "served": served, "not_served": ~served,
                            "latency_ms": frame["latency_ms"]}).groupby("bin")

    def pct(q):
        return grouped["latency_ms"].apply(lambda v: float(exact_percentile(v, q)))

    out = pd.DataFrame({"served_per_s": grouped["served"].sum() / bin_s,
                        "not_served_per_s": grouped["not_served"].sum() / bin_s,
                        "p50_ms": pct(50), "p99_ms": pct(99)})
    # Bins in which nothing was answered are rates of zero, and no latency.
    out = out.reindex(range(int(bins.min()), int(bins.max()) + 1)).rename_axis("bin").reset_index()
    out[["served_per_s", "not_served_per_s"]] = out[["served_per_s", "not_served_per_s"]].fillna(0)
    out["t_s"] = out["bin"] * bin_s
    return out[["t_s", "served_per_s", "not_served_per_s", "p50_ms", "p99_ms"]]


# --- stress runs -------------------------------------------------------------------------------------

REQUEST_COLUMNS = {"start_ns": "int64", "intended_ns": "Int64", "name": "category", "method": "category",
                   "status": "Int16", "latency_us": "float64", "outcome": "category"}
LOCUST_HISTORY_COLUMNS = {locust_csv.TIMESTAMP: "t", locust_csv.USERS: "users", locust_csv.RPS: "rps",
                          "Failures/s": "failures_per_s", locust_csv.P50: "p50", locust_csv.P95: "p95",
                          locust_csv.P99: "p99", locust_csv.TOTAL_REQUESTS: "requests",
                          locust_csv.TOTAL_FAILED: "failures"}
LOCUST_TOTAL = locust_csv.TOTAL


def load_requests(run_path):
    """Every raw request row (requests-*.csv, one file per Locust process) in one DataFrame with
    latency_ms (the service time, from the actual send), response_ms (from the intended start: the
    same in a closed loop, corrected for coordinated omission in an open one) and t_s (seconds
    since the first request started). Columns are typed as they are read, so a million rows take
    tens of megabytes; a torn last line from a crash is dropped."""
    from pathlib import Path

    import pandas as pd

    files = sorted(Path(run_path).glob("requests-*.csv"))
    parts = [pd.read_csv(f, usecols=lambda c: c in REQUEST_COLUMNS, dtype=REQUEST_COLUMNS, on_bad_lines="skip",
                         engine="c") for f in files]
    if parts:
        frame = pd.concat(parts, ignore_index=True)
        # concat of categoricals with different categories falls back to object: type them again.
        for col in ("name", "method", "outcome"):
            frame[col] = frame[col].astype("category")
    else:
        frame = pd.DataFrame({c: pd.Series(dtype=t) for c, t in REQUEST_COLUMNS.items()})
    frame = frame.dropna(subset=["latency_us"])
    # Rows written before the intended start was recorded were sent when they were meant to be.
    intended = frame["intended_ns"] if "intended_ns" in frame else frame["start_ns"]
    intended = intended.fillna(frame["start_ns"]).astype("int64")
    frame["latency_ms"] = frame.pop("latency_us") / 1000
    frame["response_ms"] = (frame["start_ns"] - intended) / 1e6 + frame["latency_ms"]
    frame = frame.drop(columns=["intended_ns"], errors="ignore")
    t0 = frame["start_ns"].min() if len(frame) else 0
    frame["t_s"] = (frame["start_ns"] - t0) / 1e9
    return frame


def load_locust_history(run_path):
    """Locust's locust_stats_history.csv, the row over all requests at each sample, with short
    column names (t_s: seconds since the first sample) and N/A (no request yet) as NaN."""
    from pathlib import Path

    raw = locust_csv.frame(Path(run_path) / locust_csv.HISTORY)
    frame = raw[raw[locust_csv.NAME] == LOCUST_TOTAL][list(LOCUST_HISTORY_COLUMNS)].rename(columns=LOCUST_HISTORY_COLUMNS)
    frame = frame.reset_index(drop=True)
    frame["t_s"] = frame["t"] - frame["t"].min()
    return frame


def load_locust_stats(run_path):
    """Locust's own end-of-run figures (locust_stats.csv), indexed like percentile_table's rows:
    (method, name), the total as ("", "Aggregated"). Its percentiles are approximations: Locust
    rounds response times into buckets before it counts them."""
    from pathlib import Path

    import pandas as pd

    c = locust_csv
    raw = c.frame(Path(run_path) / c.STATS)
    frame = pd.DataFrame({"method": raw[c.TYPE], "name": raw[c.NAME], "count": raw[c.REQUESTS],
                          "failures": raw[c.FAILED], "p50": raw[c.P50], "p95": raw[c.P95],
                          "p99": raw[c.P99], "max": raw[c.MAX], "rps": raw[c.RPS]})
    return frame.set_index(["method", "name"])


def stress_percentiles(requests, locust_stats):
    """Exact percentiles from the raw rows, per request ("METHOD name") and over all (Locust's
    "Aggregated"), beside Locust's own approximations of the same figures (columns 'locust ...')."""
    import pandas as pd

    exact = percentile_table(requests, ["method", "name"])
    total = pd.DataFrame([latency_percentiles(requests["latency_ms"].tolist())],
                         index=pd.MultiIndex.from_tuples([("", LOCUST_TOTAL)], names=["method", "name"]))
    exact = pd.concat([exact, total])
    theirs = locust_stats[["count", "p50", "p95", "p99", "max"]].add_prefix("locust ")
    table = exact.join(theirs, how="left")
    table.index = pd.Index([f"{method} {name}".strip() for method, name in table.index], name="request")
    return table


# How long before its first request a load may have started (workers connecting, users spawning on
# a busy machine); a clock further off is no clock of this run.
LOAD_STARTED_MAX_LEAD_S = 3600


def read_load_started_ns(run_path) -> int | None:
    """When the load started, as the locustfile wrote it (shop_rows.LOAD_STARTED); None when the run
    folder has no such file or it holds no whole number (a run folder is anyone's input)."""
    from pathlib import Path

    try:
        with open(Path(run_path) / LOAD_STARTED, "rb") as f:
            text = f.read(40).decode("ascii").strip()
    except (OSError, UnicodeDecodeError):
        return None
    return int(text) if text.isdigit() else None


def load_started_ns(run_path, requests) -> int | None:
    """When the load started, as the origin of a step load's steps: read_load_started_ns, kept only
    when it is a time of this run (at most LOAD_STARTED_MAX_LEAD_S before its first request), and
    never after the first request (a clock a little off would leave that request before step 1)."""
    started = read_load_started_ns(run_path)
    if started is None or not len(requests):
        return None
    first = int(requests["start_ns"].min())
    if started < first - LOAD_STARTED_MAX_LEAD_S * 10**9:
        return None
    return min(started, first)


def step_figures(requests, steps: list[int], step_time_s: float, started_ns: int | None = None):
    """Throughput and exact p99 in each step of a step load: step i holds the requests that started
    in [i * step_time, (i + 1) * step_time) after `started_ns` (when the load started, see
    load_started_ns), or after the first request when that is not known; later ones are left out."""
    import numpy as np
    import pandas as pd

    t_s = requests["t_s"].to_numpy() if started_ns is None else \
        (requests["start_ns"].to_numpy(dtype="int64") - started_ns) / 1e9
    index = np.floor(t_s / step_time_s).astype("int64")
    rows = []
    for i, users in enumerate(steps):
        latencies = requests["latency_ms"].to_numpy()[index == i]
        rows.append({"step": i + 1, "users": users, "requests": len(latencies),
                     "throughput_rps": len(latencies) / step_time_s,
                     "p99_ms": latency_percentiles(latencies.tolist())["p99"]})
    return pd.DataFrame(rows, columns=["step", "users", "requests", "throughput_rps", "p99_ms"])
