"""Charts of a run, each a matplotlib Figure built without pyplot: no global figure list to leak
memory when a notebook or a benchmark draws many, and no GUI backend needed to save one."""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogFormatter, MaxNLocator

OUTCOME_COLORS = {"ok": "tab:green", "fail": "tab:orange", "unknown": "tab:red"}
# Text from a run, its fault schedule or its target (a fault's name, a run's id, an outcome as a
# history says it) is drawn as written: read as mathtext, a fault named "$\foo$" broke the chart
# and with it the whole report; read as LaTeX (usetex in someone's matplotlibrc), most would.
LITERAL = {"parse_math": False, "usetex": False}


def _plain_log(axis) -> None:
    """Log-scale tick labels as plain numbers (0.5, 1, 10, 100 ms), not powers of ten. When the
    values span about a decade, matplotlib labels minor ticks too (2, 3, 4, 6, 20 ms): plain as well,
    not 6×10⁰ beside a major tick that reads 10."""
    axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.10g}"))
    axis.set_minor_formatter(LogFormatter(labelOnlyBase=False))


def _legend(ax, **kw) -> None:
    """ax.legend beside the axes, right of them, where it can cover no data (constrained layout
    makes room for it), its labels drawn as written (LITERAL)."""
    for text in ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), borderaxespad=0, **kw).get_texts():
        text.set(**LITERAL)


# Inches at matplotlib's 100 dpi: 1,250 px, a report's width at 1,400 px (narrower screens shrink it).
WIDTH = 12.5


def _figure(height: float = 4.0, rows: int = 1, **kw) -> tuple[Figure, object]:
    fig = Figure(figsize=(WIDTH, height), layout="constrained")
    return fig, fig.subplots(rows, 1, **kw)


def latency_cdf(frames: dict, title: str = "Latency CDF") -> Figure:
    """One curve per entry of frames {label: DataFrame from analysis.cdf}, log latency axis."""
    fig, ax = _figure()
    for label, frame in frames.items():
        if len(frame):
            # A sampled CDF says in attrs how many values it stands for.
            ax.step(frame["value"], frame["fraction"], where="post", label=f"{label} ({frame.attrs.get('count', len(frame))})",
                    color=OUTCOME_COLORS.get(label))
    ax.set_xscale("log")
    _plain_log(ax.xaxis)
    ax.set_xlabel("latency (ms)")
    ax.set_ylabel("fraction of requests at or below")
    ax.set_ylim(0, 1.02)
    ax.grid(True, which="both", alpha=0.3)
    _legend(ax)
    ax.set_title(title)
    return fig


FAULT_COLOR = "tab:purple"


def shade_faults(axes, windows: list[tuple[str, float, float]] | None, label_on=None) -> None:
    """Each fault's window (name, start_s, end_s) shaded on every axis, named on `label_on` (default
    the first). An end of inf means it lasted to the end of the chart."""
    if not windows:
        return
    label_on = label_on if label_on is not None else axes[0]
    for ax in axes:
        right = ax.get_xlim()[1]
        for name, start, end in windows:
            ax.axvspan(start, min(end, right), color=FAULT_COLOR, alpha=0.12, linewidth=0)
    for name, start, end in windows:
        label_on.annotate(name, xy=(start, 1), xycoords=("data", "axes fraction"), xytext=(3, -3),
                          textcoords="offset points", va="top", fontsize="small", color=FAULT_COLOR, **LITERAL)


def checkout_timeline(timeline, in_flight, faults: list[tuple[str, float, float]] | None = None) -> Figure:
    """Top: each checkout as a line from its start to its end, coloured by outcome. Bottom: how many
    were in flight at each moment. Fault windows shaded and named."""
    fig, (top, bottom) = _figure(6.5, rows=2, sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    for outcome, rows in timeline.groupby("outcome", sort=False):
        top.hlines(rows.index, rows["start_s"], rows["end_s"], colors=OUTCOME_COLORS.get(outcome, "tab:gray"),
                   linewidth=0.8, label=f"{outcome} ({len(rows)})")
    top.set_ylabel("checkout (by start)")
    top.invert_yaxis()
    _legend(top)
    top.set_title("Checkouts from start to end")
    bottom.step(in_flight["t_s"], in_flight["in_flight"], where="post", color="tab:blue")
    bottom.set_ylabel("in flight")
    bottom.set_xlabel("seconds since the first checkout started")
    bottom.grid(True, alpha=0.3)
    shade_faults([top, bottom], faults)
    return fig


def load_over_time(bins, faults: list[tuple[str, float, float]] | None = None, what: str = "checkouts") -> Figure:
    """Top: requests answered per second, served (2xx or 4xx) and not (5xx, timeout, reset, refused
    connection). Bottom: p50 and p99 latency of those answered in each second. Fault windows shaded
    and named, so what a fault cost is seen where it happened."""
    fig, (top, bottom) = _figure(5.5, rows=2, sharex=True)
    top.step(bins["t_s"], bins["served_per_s"], where="post", color="tab:green", label="served (2xx, 4xx)")
    top.step(bins["t_s"], bins["not_served_per_s"], where="post", color="tab:red", label="not served")
    top.set_ylabel(f"{what} per second")
    top.set_ylim(bottom=0)
    _legend(top)
    top.grid(True, alpha=0.3)
    top.set_title(f"{what.capitalize()} answered per second, and their latency")
    bottom.step(bins["t_s"], bins["p50_ms"], where="post", label="p50")
    bottom.step(bins["t_s"], bins["p99_ms"], where="post", label="p99")
    bottom.set_ylabel("latency (ms)")
    bottom.set_xlabel("seconds since the load started")
    bottom.set_ylim(bottom=0)
    _legend(bottom)
    bottom.grid(True, alpha=0.3)
    shade_faults([top, bottom], faults)
    return fig


def throughput(history) -> Figure:
    """Locust's requests/s and failures/s over time, with the number of users on a second axis."""
    fig, ax = _figure()
    ax.plot(history["t_s"], history["rps"], label="requests/s", color="tab:blue")
    ax.plot(history["t_s"], history["failures_per_s"], label="failures/s", color="tab:red")
    ax.set_xlabel("seconds since the first sample")
    ax.set_ylabel("per second")
    ax.grid(True, alpha=0.3)
    users = ax.twinx()
    users.plot(history["t_s"], history["users"], label="users", color="tab:gray", linestyle="--")
    users.set_ylabel("users")
    users.set_ylim(bottom=0)
    lines = ax.get_legend_handles_labels()
    more = users.get_legend_handles_labels()
    # Beside the figure, not the axes: the users' axis and its labels are right of the axes.
    for text in fig.legend(lines[0] + more[0], lines[1] + more[1], loc="outside right upper").get_texts():
        text.set(**LITERAL)
    ax.set_title("Throughput and users")
    return fig


def percentiles_over_time(history) -> Figure:
    """Locust's current p50, p95 and p99 at each sample (its bucketed approximations)."""
    fig, ax = _figure()
    for col in ("p50", "p95", "p99"):
        ax.plot(history["t_s"], history[col], label=col)
    ax.set_xlabel("seconds since the first sample")
    ax.set_ylabel("response time (ms)")
    ax.grid(True, alpha=0.3)
    _legend(ax)
    ax.set_title("Response time percentiles over time (Locust)")
    return fig


def latency_histogram(latencies_ms, marks: dict | None = None, bins: int = 80) -> Figure:
    """Histogram of latencies on log-spaced bins (latencies span decades), with vertical lines at
    `marks` {label: ms}, e.g. the exact percentiles."""
    values = np.asarray(latencies_ms, dtype="float64")
    fig, ax = _figure()
    positive = values[values > 0]
    if len(positive):
        lo, hi = positive.min(), positive.max()
        edges = np.geomspace(lo, hi if hi > lo else lo * 1.01, bins + 1)
        counts, _ = np.histogram(np.clip(values, lo, None), bins=edges)
        ax.stairs(counts, edges, fill=True, alpha=0.6)
        ax.set_xscale("log")
        _plain_log(ax.xaxis)
    for i, (label, ms) in enumerate((marks or {}).items()):
        if ms:
            ax.axvline(ms, color=f"C{i + 1}", linestyle="--", label=f"{label} {ms:.1f} ms")
    ax.set_xlabel("latency (ms)")
    ax.set_ylabel("requests")
    if marks:
        _legend(ax)
    ax.set_title(f"Latency of {len(values):,} requests")
    return fig


def steps_throughput_p99(steps) -> Figure:
    """Each step of a step load as a point: throughput against p99, labelled with its users. With a
    `run` column (compare.steps), one line per run."""
    fig, ax = _figure()
    runs = steps.groupby("run", sort=False) if "run" in steps else [(None, steps)]
    for run_id, rows in runs:
        ax.plot(rows["throughput_rps"], rows["p99_ms"], marker="o", label=run_id)
        for users, x, y in zip(rows["users"], rows["throughput_rps"], rows["p99_ms"]):
            ax.annotate(f"{users} users", (x, y), textcoords="offset points", xytext=(5, 5), fontsize="small",
                        **LITERAL)
    ax.set_xlabel("throughput (requests/s)")
    ax.set_ylabel("p99 (ms)")
    ax.grid(True, alpha=0.3)
    if "run" in steps:
        _legend(ax)
    ax.set_title("Throughput against p99, per step")
    return fig


def convergence(frame, quiet_s: float, settled: bool = True) -> Figure:
    """The final read-back pass by pass (analysis.convergence_frame): ids in anomaly on each pass,
    each pass green when the checkers found it consistent and red when not, filled when the state
    differed from the pass before. The verdict is taken on the last pass, after quiet_s unchanged."""
    fig, ax = _figure(3.2)
    if len(frame):
        ax.step(frame["t_s"], frame["anomalies"], where="post", color="tab:gray", linewidth=1)
        colors = np.where(frame["valid"], "tab:green", "tab:red")
        changed = frame["changed"].to_numpy(dtype=bool)
        ax.scatter(frame["t_s"][changed], frame["anomalies"][changed], c=colors[changed], zorder=3,
                   label="state changed")
        ax.scatter(frame["t_s"][~changed], frame["anomalies"][~changed], facecolors="none",
                   edgecolors=colors[~changed], zorder=3, label="unchanged")
        since = frame["t_s"][changed].iloc[-1] if changed.any() else frame["t_s"].iloc[0]
        if settled and frame["t_s"].iloc[-1] > since:
            ax.axvspan(since, frame["t_s"].iloc[-1], color="tab:blue", alpha=0.08,
                       label=f"unchanged (quiet window {quiet_s:g} s)")
        _legend(ax)
    ax.set_xlabel("seconds after the last checkout reply")
    ax.set_ylabel("ids in anomaly")
    ax.set_ylim(0, max(1, frame["anomalies"].max() if len(frame) else 0) * 1.15)
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(True, alpha=0.3)
    ax.set_title("How the final state converged (green: consistent, red: not)"
                 + ("" if settled else ": it never went quiet"))
    return fig


VERDICT_COLORS = {"fine": "tab:gray", "stale": "tab:orange", "impossible": "tab:red"}


def staleness(frame, faults: list[tuple[str, float, float]] | None = None) -> Figure:
    """Each read made during the load (analysis.staleness_frame) at the moment it was sent: a stale
    one as high as it was stale, a fine one on the axis, an impossible one along the top. Fault
    windows shaded and named, so a replica falling behind during a fault shows where it did."""
    fig, ax = _figure(3.8)
    top = max(float(frame["staleness_s"].max()) if frame["staleness_s"].notna().any() else 0.0, 0.1) * 1.15
    for verdict, rows in frame.groupby("verdict", observed=True, sort=False):
        y = rows["staleness_s"] if verdict == "stale" else (0.0 if verdict == "fine" else top)
        ax.scatter(rows["sent_s"], np.broadcast_to(y, len(rows)), s=6 if verdict == "fine" else 12,
                   marker="x" if verdict == "impossible" else "o", color=VERDICT_COLORS.get(verdict, "tab:blue"),
                   alpha=0.5 if verdict == "fine" else 0.8, label=f"{verdict} ({len(rows)})", zorder=3)
    ax.set_ylim(-0.03 * top, top * 1.08)
    ax.set_xlabel("seconds since the load started")
    ax.set_ylabel("staleness (s)")
    ax.grid(True, alpha=0.3)
    if len(frame):
        _legend(ax)
    ax.set_title("How stale each read during the load was (impossible ones along the top)")
    shade_faults([ax], faults)
    return fig


BACK_COLOR = "tab:green"


def _mark_recovery(axes, faults: list[dict]) -> None:
    """Each fault's recovery point (measures.recovered_s after its recover step) as a line on every
    axis; "not back" at the recover step when the run never showed it."""
    for f in faults:
        step = f["recover_step_s"] if f["recover_step_s"] is not None else f["started_s"]
        if f["recovered_s"] is not None:
            for ax in axes:
                ax.axvline(step + f["recovered_s"], color=BACK_COLOR, linestyle="--", linewidth=1.2)
            axes[0].annotate("back", xy=(step + f["recovered_s"], 0.5), xycoords=("data", "axes fraction"),
                             xytext=(3, 0), textcoords="offset points", fontsize="small", color=BACK_COLOR, **LITERAL)
        elif f["success_per_s_before"]:
            axes[0].annotate("not back", xy=(step, 0.5), xycoords=("data", "axes fraction"), xytext=(3, 0),
                             textcoords="offset points", fontsize="small", color="tab:red", **LITERAL)


def fault_effects(seconds, faults: list[dict]) -> Figure:
    """What each fault's users met (analysis.fault_seconds; summary.json's faults): successes per
    second against each fault's baseline and its half (below it: outage), the share of requests
    refused (a jump is a masked outage), and p50 / p99 from the due time; every fault's window
    shaded and named, its recovery point marked."""
    fig, (rate, refused, latency) = _figure(7.5, rows=3, sharex=True, gridspec_kw={"height_ratios": [3, 2, 3]})
    rate.step(seconds["t_s"], seconds["success_per_s"], where="post", color="tab:green", label="2xx per second")
    for f in faults:
        base = f["success_per_s_before"]
        if base:  # from its baseline's seconds to where it was back (or its window's end)
            end = f["recover_step_s"] if f["recover_step_s"] is not None else seconds["t_s"].max()
            end += f["recovered_s"] or 0
            rate.hlines(base, f["baseline_s"][0], end, colors="tab:gray", linestyles=":", linewidth=1.2)
            rate.hlines(base / 2, f["started_s"], end, colors="tab:red", linestyles="--", linewidth=1)
    rate.plot([], [], color="tab:gray", linestyle=":", label="baseline (median of\nthe seconds before)")
    rate.plot([], [], color="tab:red", linestyle="--", label="half of it: below\nis outage")
    rate.plot([], [], color=BACK_COLOR, linestyle="--", label="back (recovered)")
    rate.set_ylabel("2xx per second\n(by reply)")
    rate.set_ylim(bottom=0)
    rate.grid(True, alpha=0.3)
    _legend(rate, fontsize="small")
    rate.set_title("What the faults' users met: successes, refusals, latency")
    refused.step(seconds["t_s"], seconds["refusal_share"] * 100, where="post", color="tab:orange")
    refused.set_ylabel("refused (4xx) %\n(by due time)")
    refused.set_ylim(-3, 103)
    refused.grid(True, alpha=0.3)
    latency.step(seconds["t_s"], seconds["p50_ms"], where="post", label="p50")
    latency.step(seconds["t_s"], seconds["p99_ms"], where="post", label="p99")
    if seconds["p99_ms"].notna().any() and seconds["p99_ms"].max() > 20 * max(seconds["p50_ms"].min(), 1e-3):
        # Spans decades (a freeze's seconds-long replies beside milliseconds): log, or the ms vanish.
        latency.set_yscale("log")
        _plain_log(latency.yaxis)
    latency.set_ylabel("ms from due time\n(by due time)")
    latency.set_xlabel("seconds since the load's first request was due")
    latency.grid(True, which="both", alpha=0.3)
    _legend(latency, fontsize="small")
    refused.plot([], [], color="tab:orange", label="refused (a jump:\nmasked outage)")
    _legend(refused, fontsize="small")
    if len(seconds):
        latency.set_xlim(seconds["t_s"].min(), seconds["t_s"].max() + 1)
    shade_faults([rate, refused, latency],
                 [(f["name"], f["started_s"], f["recover_step_s"] if f["recover_step_s"] is not None else float("inf"))
                  for f in faults])
    _mark_recovery([rate, refused, latency], faults)
    return fig


def recovery_compared(runs: dict) -> Figure:
    """Runs side by side (compare.fault_seconds: {run id: (seconds, faults)}): each run's successes
    per second as a share of its first fault's baseline, from that fault's start, its window
    shaded and its recovery point marked in the run's colour."""
    fig, ax = _figure(4.2)
    for i, (run_id, (seconds, faults)) in enumerate(runs.items()):
        f = faults[0]
        base = f["success_per_s_before"] or np.nan
        color = f"C{i}"
        ax.step(seconds["t_s"] - f["started_s"], seconds["success_per_s"] / base * 100, where="post", color=color,
                label=f"{run_id}: {f['name']}")
        end = (f["recover_step_s"] if f["recover_step_s"] is not None else seconds["t_s"].max()) - f["started_s"]
        ax.axvspan(0, end, color=color, alpha=0.08, linewidth=0)
        if f["recovered_s"] is not None:
            back = end + f["recovered_s"]
            ax.axvline(back, color=color, linestyle="--", linewidth=1.2)
            ax.annotate(f"back after {f['recovered_s']:.1f} s", xy=(back, 0.95 - 0.08 * i),
                        xycoords=("data", "axes fraction"), xytext=(3, 0), textcoords="offset points",
                        fontsize="small", color=color, **LITERAL)
    ax.axhline(50, color="tab:red", linestyle="--", linewidth=1)
    ax.set_xlabel("seconds since the fault started")
    ax.set_ylabel("2xx per second, % of the baseline")
    ax.set_ylim(bottom=0)
    ax.grid(True, alpha=0.3)
    _legend(ax, fontsize="small")
    ax.set_title("Recovery, run by run (first fault of each; dashed: back)")
    return fig
