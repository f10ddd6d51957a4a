"""Runs side by side: did my change make it faster, or break it? Verdicts and anomalies, latency
percentiles with each run's ratio to the first, throughput against p99 per step, and fault recovery,
for consistency and stress runs alike (what the compare notebook shows). Only each run's summary
and its latencies are read: five stress runs of a million requests each fit in a few hundred MB."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from wdm_lib import banner, runs, summaries
from wdm_lib.analysis import PERCENTILES, exact_percentile, percentile_label
from wdm_lib.errors import WorkbenchError
from wdm_lib.history import CHECKOUT

CDF_POINTS = 2000  # per run on the overlaid CDF: enough for the eye, few enough for a million rows


def open_runs(run_dirs: list[str | Path] | str) -> list[runs.Run]:
    """The runs to compare, in the order given (the first is the baseline). `run_dirs` may be a list
    or one comma-separated text (as papermill's -p passes it)."""
    from wdm_lib.notebook import open_run

    if isinstance(run_dirs, str):
        run_dirs = [d for d in (p.strip() for p in run_dirs.split(",")) if d]
    if len(run_dirs) < 2:
        raise WorkbenchError(f"compare needs at least two run folders, got {len(run_dirs)}; expected RUN_DIR RUN_DIR [...].")
    return one_kind([open_run(d) for d in run_dirs])


def one_kind(opened: list[runs.Run]) -> list[runs.Run]:
    """The runs, when all are of one kind: a consistency run's latencies are its checkouts', a stress
    run's every request's, and their verdicts answer different questions; side by side they would
    read as a change that was never made."""
    other = next((r for r in opened[1:] if r.kind != opened[0].kind), None)
    if other is not None:
        raise WorkbenchError(f"{other.path}: a {other.kind} run, and {opened[0].path} a {opened[0].kind} run; "
                             f"expected runs of one kind to compare (stress with stress, consistency with consistency).")
    return opened


def summary_of(run: runs.Run) -> dict:
    from wdm_lib.notebook import consistency_summary
    from wdm_lib.workloads.stress.figures import report_summary

    return consistency_summary(run)[0] if run.kind == "consistency" else report_summary(run)


def latencies_ms(run: runs.Run) -> np.ndarray:
    """Every measured latency of the run: its checkouts (consistency) or its raw requests (stress)."""
    import pandas as pd

    if run.kind == "consistency":
        frame = pd.read_csv(run.file("history.csv"), usecols=["kind", "invoke_ns", "complete_ns"],
                            on_bad_lines="skip")
        frame = frame[frame["kind"] == CHECKOUT]
        return ((frame["complete_ns"] - frame["invoke_ns"]) / 1e6).to_numpy(dtype="float64")
    parts = [pd.read_csv(f, usecols=["latency_us"], dtype={"latency_us": "float64"}, on_bad_lines="skip", engine="c")
             for f in sorted(run.path.glob("requests-*.csv"))]
    values = np.concatenate([p["latency_us"].to_numpy() for p in parts]) if parts else np.empty(0)
    return values[~np.isnan(values)] / 1000


def verdicts(opened: list[runs.Run], judged: list[dict]):
    """One row per run: what it was, how it ended, what went wrong; its verdict's colour class in
    attrs["classes"]."""
    import pandas as pd

    rows = []
    for run, s in zip(opened, judged):
        consistency = run.kind == "consistency"
        rows.append({"run": run.id, "kind": run.kind, "target": (run.manifest.get("target") or {}).get("source", ""),
                     "verdict": summaries.verdict(s) or run.status,
                     "anomalies": banner.anomaly_list(s["anomalies"]) if consistency else "",
                     "warnings": banner.anomaly_list(s["warnings"]) if consistency else ""})
    frame = pd.DataFrame(rows)
    frame.attrs["classes"] = [summaries.verdict_class(s) for s in judged]
    return frame


SAME = 0.05  # a p99 within 5% of the baseline's is no change: two runs of one system differ that much


def headline(opened: list[runs.Run], judged: list[dict], latencies: list[np.ndarray]) -> str:
    """The answer at the top of the page, as a report's banner: did a later run break (a worse verdict
    than the baseline's), else is it faster or slower at p99; each run's p99 beside the baseline's."""
    # Broken: a run that fails (inconsistent, a gate failed) or has no verdict where the baseline had
    # one that held; a warning either side is no change of verdict.
    held = [summaries.verdict_class(s) in ("pass", "warn") for s in judged]
    p99 = [float(exact_percentile(v, 99)) if len(v) else None for v in latencies]
    worse = [r.id for r, h in zip(opened[1:], held[1:]) if held[0] and not h]
    ratios = [p / p99[0] for p in p99[1:] if p is not None and p99[0]]
    if worse:
        title, cls = "worse verdict", "fail"
    elif ratios and all(r < 1 - SAME for r in ratios):
        title, cls = "faster", "pass"
    elif ratios and all(r > 1 + SAME for r in ratios):
        title, cls = "slower", "warn"
    elif ratios and all(abs(r - 1) <= SAME for r in ratios):
        title, cls = "as fast", "pass"
    else:
        title, cls = "mixed" if ratios else "no latencies to compare", "none"
    figures = [(f"p99 ms, {r.id}" + (" (baseline)" if i == 0 else f", {p / p99[0]:.2f}× baseline" if p and p99[0] else ""),
                "-" if p is None else f"{p:,.1f}") for i, (r, p) in enumerate(zip(opened, p99))]
    subtitle = (f"{len(opened)} {opened[0].kind} runs, the first the baseline; verdicts: "
                + " → ".join(summaries.verdict(s) or r.status for r, s in zip(opened, judged))
                + (f"; worse than the baseline's: {', '.join(worse)}" if worse else ""))
    return banner.banner(title.upper(), cls, figures, subtitle)


def percentiles(opened: list[runs.Run], latencies: list[np.ndarray]):
    """Exact (nearest-rank) latency percentiles per run, then each one's ratio to the first run's:
    above 1 is slower than the baseline."""
    import pandas as pd

    table = pd.DataFrame({
        percentile_label(p): [float(exact_percentile(v, p)) if len(v) else np.nan
                              for v in latencies] for p in PERCENTILES}, index=[r.id for r in opened])
    table.insert(0, "count", [len(v) for v in latencies])
    for p in PERCENTILES:
        col = percentile_label(p)
        table[f"{col} ×first"] = table[col] / table[col].iloc[0]
    table.index.name = "run"
    return table


def cdf(values: np.ndarray, points: int = CDF_POINTS):
    """The CDF of `values` at `points` evenly spaced fractions (nearest rank), max included."""
    import pandas as pd

    if not len(values):
        return pd.DataFrame({"value": [], "fraction": []})
    fractions = np.linspace(0, 1, min(points, len(values)) + 1)[1:]
    frame = pd.DataFrame({"value": exact_percentile(values, fractions * 100), "fraction": fractions})
    frame.attrs["count"] = len(values)
    return frame


def steps(opened: list[runs.Run], summaries: list[dict]):
    """Throughput and p99 per step of every stress run made with a step load."""
    import pandas as pd

    rows = [{"run": run.id, "users": st["users"], "throughput_rps": st["throughput_rps"], "p99_ms": st["p99_ms"]}
            for run, s in zip(opened, summaries) for st in (s.get("steps") or [])]
    return pd.DataFrame(rows, columns=["run", "users", "throughput_rps", "p99_ms"])


FAULT_COLUMNS = ["run", "fault", "what", "no answer for (s)", "outage (s)", "masked outage", "p50 ms before",
                 "p50 ms after", "recovered after", "tested nothing"]


def fault_recovery(opened: list[runs.Run], summaries: list[dict]):
    """Each run's faults side by side: what their users met and how soon each run was back."""
    import pandas as pd

    rows = [[run.id, f["name"], f["what"], f["no_answer_gap_s"], f["outage_s"], f["masked_outage"],
             f["latency_ms"]["before"]["p50"], f["latency_ms"]["after"]["p50"], f["recovery"], f["tested_nothing"]]
            for run, s in zip(opened, summaries) for f in (s.get("faults") or [])]
    return pd.DataFrame(rows, columns=FAULT_COLUMNS)


def fault_seconds(opened: list[runs.Run], summaries: list[dict]) -> dict:
    """{run id: (analysis.fault_seconds, faults)} of every run with a fault, for
    plots.recovery_compared."""
    from wdm_lib import analysis
    from wdm_lib.workloads.stress.figures import read_raw

    out = {}
    for run, s in zip(opened, summaries):
        if not s.get("faults"):
            continue
        rows = analysis.checkouts(analysis.load_history(run.path)) if run.kind == "consistency" else read_raw(run.path)
        out[run.id] = (analysis.fault_seconds(analysis.fault_requests(rows)), s["faults"])
    return out
