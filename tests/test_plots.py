"""wdm_lib.plots: each chart draws what it is given, from small hand-made frames."""

import io

import numpy as np
import pytest
import pandas as pd
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure

from wdm_lib import analysis, plots


def png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def legend_labels(ax) -> list[str]:
    """The labels of the axes' legend, or of the figure's when the chart keeps it beside the figure."""
    legend = ax.get_legend() or ax.figure.legends[0]
    return [t.get_text() for t in legend.get_texts()]


def covered(fig: Figure) -> list[str]:
    """The legends of a drawn figure that overlap the plotting area of any of its axes: a legend
    there can hide the data it names."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    renderer = FigureCanvasAgg(fig).get_renderer()
    fig.draw(renderer)  # constrained layout places every legend as it draws
    legends = [*fig.legends, *(ax.get_legend() for ax in fig.axes if ax.get_legend())]
    return [legend.get_texts()[0].get_text() for legend in legends for ax in fig.axes
            if legend.get_window_extent(renderer).overlaps(ax.get_window_extent(renderer))]


def test_latency_cdf_draws_one_curve_per_outcome_from_zero_to_one():
    fig = plots.latency_cdf({"ok": analysis.cdf([1.0, 2.0, 4.0]), "fail": analysis.cdf([3.0]),
                             "unknown": analysis.cdf([])})
    ax = fig.axes[0]
    assert legend_labels(ax) == ["ok (3)", "fail (1)"]
    ok = ax.lines[0]
    assert list(ok.get_xdata()) == [1.0, 2.0, 4.0] and ok.get_ydata()[-1] == 1.0
    assert ax.get_xscale() == "log"
    assert png(fig).startswith(b"\x89PNG")


def test_latencies_within_a_decade_are_labelled_in_plain_numbers():
    # Within a decade matplotlib labels the minor ticks too, by default as 6×10⁰, 2×10¹...
    fig = plots.latency_cdf({"ok": analysis.cdf([5.5, 12.0, 45.0])})
    png(fig)  # the labels are made when the figure is drawn
    axis = fig.axes[0].xaxis
    labels = [t.get_text() for t in axis.get_majorticklabels() + axis.get_minorticklabels() if t.get_text()]
    assert {"10", "20", "30", "40"} <= set(labels), labels
    assert not any("times" in label or "^" in label for label in labels), labels


def test_checkout_timeline_draws_every_checkout_and_the_in_flight_steps():
    tl = pd.DataFrame({"start_s": [0.0, 0.1, 0.2], "end_s": [0.5, 0.3, 0.4], "outcome": ["ok", "fail", "ok"]})
    flight = analysis.in_flight(tl["start_s"], tl["end_s"])
    fig = plots.checkout_timeline(tl, flight)
    top, bottom = fig.axes
    segments = [seg for c in top.collections if isinstance(c, LineCollection) for seg in c.get_segments()]
    assert sorted((s[0][0], s[1][0]) for s in segments) == [(0.0, 0.5), (0.1, 0.3), (0.2, 0.4)]
    assert sorted(legend_labels(top)) == ["fail (1)", "ok (2)"]
    assert max(bottom.lines[0].get_ydata()) == 3
    png(fig)


def locust_history():
    return pd.DataFrame({"t_s": [0, 1, 2], "users": [0, 5, 10], "rps": [0.0, 40.0, 80.0],
                         "failures_per_s": [0.0, 1.0, 2.0], "p50": [np.nan, 10, 12], "p95": [np.nan, 20, 25],
                         "p99": [np.nan, 30, 40]})


def test_throughput_shows_requests_failures_and_users_on_a_second_axis():
    fig = plots.throughput(locust_history())
    ax, users = fig.axes
    assert legend_labels(ax) == ["requests/s", "failures/s", "users"]
    assert covered(fig) == []  # nor the users' axis, right of the plot
    assert list(ax.lines[0].get_ydata()) == [0.0, 40.0, 80.0]
    assert list(users.lines[0].get_ydata()) == [0, 5, 10]
    png(fig)


def test_percentiles_over_time_draws_p50_p95_p99():
    fig = plots.percentiles_over_time(locust_history())
    ax = fig.axes[0]
    assert legend_labels(ax) == ["p50", "p95", "p99"]
    assert list(ax.lines[2].get_ydata())[1:] == [30, 40]
    png(fig)


def test_latency_histogram_counts_every_request_and_marks_percentiles():
    values = np.array([0.0, 1.0, 2.0, 2.0, 5.0, 100.0])
    fig = plots.latency_histogram(values, {"p50": 2.0, "p99": 100.0})
    ax = fig.axes[0]
    counts = ax.patches[0].get_data().values  # the StepPatch of ax.stairs
    assert counts.sum() == len(values)  # the 0 ms request is clipped into the first bin, not lost
    assert [line.get_xdata()[0] for line in ax.lines] == [2.0, 100.0]
    assert legend_labels(ax) == ["p50 2.0 ms", "p99 100.0 ms"]
    png(fig)


def test_latency_histogram_of_nothing_is_an_empty_chart():
    fig = plots.latency_histogram(np.array([]))
    assert len(fig.axes[0].patches) == 0 and "0 requests" in fig.axes[0].get_title()
    png(fig)


def test_steps_chart_puts_throughput_against_p99_labelled_with_users():
    steps = pd.DataFrame({"step": [1, 2], "users": [10, 20], "requests": [100, 180],
                          "throughput_rps": [100.0, 180.0], "p99_ms": [12.0, 30.0]})
    fig = plots.steps_throughput_p99(steps)
    ax = fig.axes[0]
    assert list(ax.lines[0].get_xdata()) == [100.0, 180.0] and list(ax.lines[0].get_ydata()) == [12.0, 30.0]
    assert [t.get_text() for t in ax.texts] == ["10 users", "20 users"]
    png(fig)


def answered(rows):
    """rows: (invoke_s, complete_s, status or None)"""
    return pd.DataFrame({"invoke_ns": [int(r[0] * 1e9) for r in rows], "complete_ns": [int(r[1] * 1e9) for r in rows],
                         "status": pd.array([r[2] for r in rows], dtype="Int64"),
                         "latency_ms": [(r[1] - r[0]) * 1000 for r in rows]})


def test_per_second_counts_served_and_not_by_when_answered_and_leaves_quiet_seconds_at_zero():
    frame = answered([(0.0, 0.1, 200), (0.2, 0.5, 409), (0.3, 0.9, None), (1.0, 1.2, 503), (3.0, 3.4, 200)])
    bins = analysis.per_second(frame)
    assert bins["t_s"].tolist() == [0.0, 1.0, 2.0, 3.0]
    assert bins["served_per_s"].tolist() == [2, 0, 0, 1] and bins["not_served_per_s"].tolist() == [1, 1, 0, 0]
    # nearest rank of 100, 300 and 600 ms
    assert bins["p99_ms"].iloc[0] == pytest.approx(600) and bins["p50_ms"].iloc[0] == pytest.approx(300)
    assert np.isnan(bins["p50_ms"].iloc[2])


def test_fault_windows_are_shaded_and_named_on_the_load_chart():
    bins = analysis.per_second(answered([(t / 10, t / 10 + 0.01, 200) for t in range(50)]))
    windows = analysis.fault_windows({"faults": [{"name": "stock dies", "started_s": 1.0, "recover_step_s": 2.5},
                                                 {"name": "never back", "started_s": 4.0, "recover_step_s": None}]})
    assert windows == [("stock dies", 1.0, 2.5), ("never back", 4.0, float("inf"))]
    fig = plots.load_over_time(bins, windows)
    top, bottom = fig.axes
    spans = [p for p in top.patches if p.get_facecolor()[:3] != (1.0, 1.0, 1.0)]
    assert len(spans) == 2 and len([p for p in bottom.patches]) == 2
    assert [t.get_text() for t in top.texts] == ["stock dies", "never back"]
    assert png(fig).startswith(b"\x89PNG")


# Mathtext would read `$\foo$` as maths and fail on the unknown command, taking the chart with it.
AS_WRITTEN = r"$\foo$ cost 10% of it"


def test_a_fault_name_or_run_id_is_drawn_as_written_never_as_maths():
    bins = analysis.per_second(answered([(t / 10, t / 10 + 0.01, 200) for t in range(50)]))
    load = plots.load_over_time(bins, [(AS_WRITTEN, 1.0, 2.5)])
    cdf = plots.latency_cdf({AS_WRITTEN: analysis.cdf([1.0, 2.0])})
    steps = plots.steps_throughput_p99(pd.DataFrame({"run": [AS_WRITTEN], "users": [10], "throughput_rps": [100.0],
                                                     "p99_ms": [20.0]}))
    for fig in (load, cdf, steps):
        assert png(fig).startswith(b"\x89PNG")
    texts = load.axes[0].texts + cdf.axes[0].get_legend().get_texts() + steps.axes[0].get_legend().get_texts()
    assert [t.get_text() for t in texts] == [AS_WRITTEN, f"{AS_WRITTEN} (2)", AS_WRITTEN]
    assert not any(t.get_parse_math() or t.get_usetex() for t in texts)


def test_no_legend_covers_the_data_it_names():
    # Data in every corner: a legend inside the axes, wherever placed, would sit on some of it.
    t = pd.DataFrame({"t_s": [0.0, 1.0, 2.0], "served_per_s": [100.0, 0.0, 100.0], "not_served_per_s": [0.0, 100.0, 0.0],
                      "p50_ms": [1.0, 50.0, 1.0], "p99_ms": [50.0, 1.0, 50.0]})
    figures = [plots.latency_cdf({"ok": analysis.cdf([1.0, 2.0, 4.0]), "fail": analysis.cdf([3.0])}),
               plots.load_over_time(t, [("kill", 0.5, 1.5)]), plots.percentiles_over_time(locust_history()),
               plots.latency_histogram(np.array([1.0, 2.0, 5.0, 100.0]), {"p50": 2.0, "p99": 100.0})]
    assert [covered(fig) for fig in figures] == [[], [], [], []]
    # and the page's width: 1,250 px at matplotlib's 100 dpi
    assert all(fig.get_size_inches()[0] == plots.WIDTH for fig in figures)


def _masked(down_until_s):
    """Checkouts every 10 ms for 10 s, refused (400) from 3 s to down_until_s, each answered in 2 ms;
    and the fault that did it, measured."""
    from wdm_lib.faults.measures import Requests, measure_faults
    from wdm_lib.history import FAULT, Op

    due = np.arange(0, 10_000_000_000, 10_000_000)
    status = np.where((due >= 3e9) & (due < down_until_s * 1e9), 400, 200)
    reqs = Requests.of(due, due, due + 2_000_000, status, np.where(status == 200, "ok", "fail"))
    steps = [Op(0, FAULT, intended_ns=int(at * 1e9), invoke_ns=int(at * 1e9), complete_ns=int(at * 1e9), status=0,
                outcome="ok", fault={"name": AS_WRITTEN, "step": step, "what": "x"})
             for step, at in (("inject", 3.0), ("recover", down_until_s))]
    return reqs, measure_faults(steps, reqs, [])


def test_the_fault_chart_shows_successes_refusals_and_latency_second_by_second_with_the_recovery_marked():
    reqs, faults = _masked(5.0)
    seconds = analysis.fault_seconds(reqs)
    assert seconds["success_per_s"].tolist()[:6] == [100, 100, 100, 0, 0, 100]
    assert seconds["refusal_share"].tolist()[:6] == [0, 0, 0, 1, 1, 0]
    assert seconds["p50_ms"].iloc[0] == pytest.approx(2.0)
    [f] = faults
    assert f["masked_outage"] and f["recovered_s"] == 0.0
    fig = plots.fault_effects(seconds, faults)
    rate, refused, latency = fig.axes
    back = [line for line in rate.lines if line.get_linestyle() == "--" and len(line.get_xdata()) == 2]
    assert [line.get_xdata()[0] for line in back] == [5.0]  # the recover step, and back at once
    assert [t.get_text() for t in rate.texts] == [AS_WRITTEN, "back"]
    assert not any(t.get_parse_math() for t in rate.texts)
    assert png(fig).startswith(b"\x89PNG")


def test_compare_overlays_each_runs_recovery_from_its_fault_start():
    runs = {}
    for run_id, until in (("quick", 4.0), ("slow", 6.0)):
        reqs, faults = _masked(until)
        runs[run_id] = (analysis.fault_seconds(reqs), faults)
    fig = plots.recovery_compared(runs)
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.texts] == ["back after 0.0 s", "back after 0.0 s"]
    # Back 1 s and 3 s after the fault started, each in its run's colour.
    assert sorted(line.get_xdata()[0] for line in ax.lines if line.get_linestyle() == "--"
                  and len(line.get_xdata()) == 2 and line.get_xdata()[0] == line.get_xdata()[1]) == [1.0, 3.0]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == [f"quick: {AS_WRITTEN}", f"slow: {AS_WRITTEN}"]
    assert png(fig).startswith(b"\x89PNG")
