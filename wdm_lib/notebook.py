"""What the notebooks call, so that each reads as a short story: their run (the folder their
`run_dir` parameter names, or a new one made by the library from their other parameters), the
verdict banner, each chart as one call on what the notebook holds, and text from a target made safe
for Markdown."""

from __future__ import annotations

import html
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import fields
from pathlib import Path

from matplotlib.figure import Figure

from wdm_lib import analysis, banner, plots, runs, styles, summaries
from wdm_lib.errors import WorkbenchError
from wdm_lib.workloads.stress.scenario import Distributed, StressScenario

# The characters that start markup in the middle of a line (emphasis, code, links, tables,
# strikethrough), and the backslash that would escape them; HTML's are replaced by entities.
_MARKDOWN_PUNCTUATION = re.compile(r"([\\`*_\[\]|~])")


def markdown_text(value: object) -> str:
    """A string from a target or a file name (a urls file's name, an id, an error text), to be put
    into a Markdown cell: it shows as written. A name holding an HTML tag renders as text, never as
    live HTML in the report; one holding `*` or `_` is not turned into emphasis."""
    return html.escape(_MARKDOWN_PUNCTUATION.sub(r"\\\1", str(value)), quote=False)


def open_run(run_dir: str | Path, kind: str | None = None) -> runs.Run:
    """A run (of that kind, if given); a relative path is from the working folder. A run may have
    ended without a verdict, however it ended (see consistency_summary and stress's report_summary):
    its report shows what it recorded."""
    path = Path(run_dir).expanduser()
    if not path.is_dir():
        raise WorkbenchError(f"{run_dir}: no such folder; expected a run folder made by wdm (under reports/runs/).")
    run = runs.Run.open(path)
    if kind is not None and run.kind != kind:
        raise WorkbenchError(f"{path}: a {run.kind} run; expected a {kind} run.")
    return run


def _on_a_thread(make, *args, **kwargs):
    """A run made on a thread without an event loop: a Jupyter kernel runs one of its own, and
    asyncio.run (which both kinds of run use) refuses to start inside it."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(make, *args, **kwargs).result()


def consistency_run(run_dir=None, urls=None, anomaly=None, runs_dir=None, faults=None, **scenario) -> runs.Run:
    """The run at run_dir, or a new one of ConsistencyScenario(**scenario) against urls, with the
    fault schedule `faults` (a YAML file) during its checkouts."""
    if run_dir is not None:
        return open_run(run_dir, "consistency")
    from wdm_lib.runner import run_consistency
    from wdm_lib.workloads.consistency_scenario import ConsistencyScenario

    run, _ = _on_a_thread(run_consistency, ConsistencyScenario(**scenario), urls=urls, anomaly=anomaly,
                          runs_dir=runs_dir, progress=False, faults=faults)
    return run


def consistency_summary(run: runs.Run) -> tuple[dict, dict | None]:
    """(summary, state) of a consistency run; for one that ended without a verdict (interrupted,
    crashed, failed), what its history recorded and no state."""
    if summaries.has(run):  # the newest judgement: `wdm check`'s, else the run's own
        return summaries.latest(run)[1], run.read_json("state.json")
    from wdm_lib.history import read_ops
    from wdm_lib.summary import summarize_recorded

    ops = read_ops(run.file("history.csv")) if run.file("history.csv").is_file() else []
    return summarize_recorded(run.id, run.status, run.manifest.get("error"), ops), None


# `wdm stress run`'s options as the stress notebook's parameters: each option's long name with `_`
# for `-` (tests/test_notebooks.py holds this list to the command's --help). Most are the stress
# scenario's fields of the same name; these are named otherwise there, or say how the run is made.
_RENAMED = {"timeout": "timeout_s", "threshold": "thresholds", "wait_between": "wait"}
_DISTRIBUTED = {"master": "master", "expect_workers": "expect_workers", "master_bind_host": "bind_host",
                "master_bind_port": "bind_port", "workers_wait": "workers_wait_s"}
_RUN = ("urls", "anomaly", "runs_dir", "init", "verify", "junit", "faults", "ui", "web_port")
_SCENARIO = tuple(f.name for f in fields(StressScenario) if f.name not in ("timeout_s", "thresholds", "raw_latencies"))
STRESS_OPTIONS = (*_RUN, *_SCENARIO, *_RENAMED, "no_raw_latencies", *_DISTRIBUTED)


def stress_call(**options) -> tuple[StressScenario, dict]:
    """The scenario and the other arguments of `run_stress` for `wdm stress run`'s options named as
    STRESS_OPTIONS (`threshold=["p99<500ms"]`, `wait_between=[1, 15]`, `verify=True`); None, or an
    option left out, is the command's default."""
    unknown = [name for name in options if name not in STRESS_OPTIONS]
    if unknown:
        raise WorkbenchError(f"{unknown[0]!r} is not an option of `wdm stress run`; expected one of "
                             f"{', '.join(sorted(STRESS_OPTIONS))}.")
    given = {name: value for name, value in options.items() if value is not None and value is not False}
    pacing = [name for name in ("wait", "wait_between", "rate") if name in given]
    if len(pacing) > 1:
        raise WorkbenchError(f"{' and '.join(pacing)} each say how users pace their requests; expected only one "
                             f"of wait, wait_between and rate.")
    scenario = StressScenario(raw_latencies="no_raw_latencies" not in given,
                              **{_RENAMED.get(name, name): value for name, value in given.items()
                                 if name in _SCENARIO or name in _RENAMED})
    how = {"init": bool(given.get("init")), "check": bool(given.get("verify")), "ui": bool(given.get("ui")),
           "dist": Distributed(**{_DISTRIBUTED[name]: value for name, value in given.items() if name in _DISTRIBUTED}),
           **{name: given[name] for name in ("urls", "anomaly", "runs_dir", "faults", "web_port") if name in given}}
    return scenario, how


def stress_run(run_dir=None, **options) -> runs.Run:
    """The run at run_dir, or a new one made by `run_stress` as `wdm stress run` makes it, from the
    command's options named as STRESS_OPTIONS (see stress_call). Locust runs in a process of its
    own, so its gevent never patches the kernel this runs in."""
    if run_dir is not None:
        return open_run(run_dir, "stress")
    from wdm_lib.workloads.stress.run import run_stress

    scenario, how = stress_call(**options)
    run, summary = _on_a_thread(run_stress, scenario, progress=False, **how)
    if options.get("junit"):
        from wdm_lib import junit

        junit.write(options["junit"], "stress", junit.stress_cases(summary))
    return run


# --- the report's first lines, and its charts: each one call on what the notebook holds ------------

def verdict_banner(run: runs.Run, summary: dict) -> str:
    """The verdict in its colour, the headline figures, and which run against what (HTML)."""
    target = run.manifest["target"]
    subtitle = f"run {run.id} against {target['source']}" + (f" (anomaly {target['anomaly']})"
                                                              if target.get("anomaly") else "")
    if run.kind == "consistency":
        return banner.banner(summary["verdict"].upper(), summaries.verdict_class(summary),
                             banner.consistency_figures(summary), subtitle)
    unfinished = banner.unfinished(run.status)
    return banner.banner((summary.get("verdict") or run.status).upper(), summaries.verdict_class(summary),
                         banner.stress_figures(summary), subtitle + (f". {unfinished}" if unfinished else ""),
                         detail=(run.manifest.get("error") or "") if unfinished else "")


def gates_table(summary: dict):
    """Each gate of a judged stress run as k6 shows it: ✓ or ✗ with what was measured, in its colour,
    and why it failed."""
    import pandas as pd

    gates = summary["gates"]
    table = pd.DataFrame({"gate": [g["gate"] for g in gates], "result": [styles.gate(g["passed"], g["shown"]) for g in gates],
                          "why": [g.get("why") or "" for g in gates]})
    return styles.table(table if table["why"].any() else table.drop(columns="why"), html_columns=["result"])


def findings(summary: dict):
    """analysis.findings_table coloured: an anomaly red, a warning amber, no anomaly green."""
    table = analysis.findings_table(summary)
    classes = [styles.PASS if not n else styles.FAIL if kind == "anomaly" else styles.WARN
               for kind, n in zip(table["kind"], table["count"])]
    return styles.table(table, verdicts={"finding": classes, "kind": classes})


def books(verify: dict) -> str:
    """--verify's books after the load, their verdict in its colour (HTML: a Markdown cell would drop
    the colour)."""
    word = styles.colored("VALID", styles.PASS) if verify["valid"] else styles.colored("VIOLATED", styles.FAIL)
    return (f"<p>Books after the load: {word}: credit spent {verify['credit_spent']:,} against price × stock sold "
            f"{verify['stock_value_sold']:,}; checkouts in the shop {verify['checkouts_in_shop']:g}, recorded "
            f"{verify['checkouts_ok']:,} ok + {verify['checkouts_unknown']:,} unknown ({verify['reads']:,} reads in "
            f"{verify['read_s']:.1f} s).</p>")


def flagged(label: str, cls: str, sentence: str) -> str:
    """A sentence from a run (a warning, lost load) after its label in the colour of cls (HTML, escaped)."""
    return f"<p>{styles.colored(label, cls)} {html.escape(sentence)}</p>"


def latency_cdf_chart(rows, title: str = "Checkout latency CDF") -> Figure:
    """The latency CDF of each outcome among rows (a run's checkouts)."""
    return plots.latency_cdf({outcome: analysis.cdf(of_outcome["latency_ms"])
                              for outcome, of_outcome in rows.groupby("outcome", sort=False)}, title)


def timeline_chart(checkouts, summary: dict) -> Figure:
    """Each checkout from its send to its reply, the checkouts in flight, the faults shaded."""
    timeline = analysis.timeline(checkouts)
    return plots.checkout_timeline(timeline, analysis.in_flight(timeline["start_s"], timeline["end_s"]),
                                   analysis.fault_windows(summary))


def load_chart(rows, summary: dict, what: str = "checkouts") -> Figure:
    """What was sent and served each second, the faults shaded."""
    return plots.load_over_time(analysis.per_second(rows), analysis.fault_windows(summary), what=what)


def convergence_chart(summary: dict) -> Figure:
    """Each pass of the final read-back, judged, against the quiet window the verdict waited for."""
    return plots.convergence(analysis.convergence_frame(summary), summary["read_back"]["quiet_s"], summary["settled"])


def latency_histogram_chart(requests, percentiles) -> Figure:
    """Every request's latency, with the p50, p95 and p99 of all (from analysis.stress_percentiles)."""
    total = percentiles.loc[analysis.LOCUST_TOTAL]
    return plots.latency_histogram(requests["latency_ms"], {p: total[p] for p in ("p50", "p95", "p99")})


def staleness_chart(run: runs.Run, summary: dict) -> Figure:
    """Each read made during the load, judged again from the run's history: how stale it was when
    it was sent, the faults shaded (time from the first checkout's sending, as the fault windows)."""
    from wdm_lib.history import CHECKOUT, read_ops
    from wdm_lib.reads import judge_reads

    ops = read_ops(run.file("history.csv"))
    t0_ns = min((op.invoke_ns for op in ops if op.kind == CHECKOUT), default=0)
    return plots.staleness(analysis.staleness_frame(judge_reads(ops), t0_ns), analysis.fault_windows(summary))


def fault_chart(rows, summary: dict) -> Figure:
    """What each fault's users met, second by second, from the rows the notebook holds (a
    consistency run's checkouts, a stress run's raw requests): successes against the baseline,
    refusals, p50 / p99; the faults' windows shaded and their recovery points marked."""
    return plots.fault_effects(analysis.fault_seconds(analysis.fault_requests(rows)), summary["faults"])


def fault_section(rows, summary: dict) -> None:
    """The fault measures explained, every masked outage and fault that tested nothing said in
    words, and the chart: what a report shows under its faults table."""
    from IPython.display import Markdown, display

    from wdm_lib.faults.measures import EXPLAINED, fault_lines

    display(Markdown(EXPLAINED))
    for line in fault_lines(summary["faults"]):
        if line.startswith(("masked outage:", "warning:")):
            head, _, rest = line.partition(": ")
            display(Markdown(f"**{head}:** {markdown_text(rest)}"))
    display(fault_chart(rows, summary))
