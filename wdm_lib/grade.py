"""Grade a class: for each team's urls file, one after the other, a consistency run and a stress run
(batch init, then load) with the same options, each rendered to its report; then a league table of
every team side by side, as an HTML page linking every report and as a CSV of the same rows.

Each run is made by the library as `wdm consistency --report` and `wdm stress run --init --report`
make theirs, and returns its run: a team whose system is down, or breaks the API, or crashes a run,
gets a row with the one sentence saying so, and the class goes on. Teams run one after the other,
never side by side: systems under test must not share the machine's load."""

from __future__ import annotations

import csv
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Callable

from wdm_lib import banner, pages, runs, summaries
from wdm_lib.config import redact
from wdm_lib.errors import WorkbenchError
from wdm_lib.workloads.consistency_scenario import ConsistencyScenario
from wdm_lib.workloads.stress.scenario import StressScenario

# The league's columns, on the page and in the CSV; the CSV adds whether the stress run measured and
# each run's whole error, which the page keeps behind a disclosure.
COLUMNS = ("rank", "team", "consistency", "anomalies", "stress", "p50 ms", "p99 ms", "requests/s", "fault outage s",
           "problem")
CSV_COLUMNS = (*COLUMNS, "stress measured", "error")
NUMBER_COLUMNS = ("rank", "p50 ms", "p99 ms", "requests/s", "fault outage s")  # right-aligned, as figures are
FIGURES = ("p50 ms", "p99 ms", "requests/s")
# Consistent first (warnings after none), then inconsistent, then no verdict; the same order for stress.
ORDER = {summaries.PASS: 0, summaries.WARN: 1, summaries.FAIL: 2, summaries.NONE: 3}


@dataclass
class Outcome:
    """What one run of a team's grading left: the run (None when it could not be made), the one
    sentence that said why it could not be made or reported ("" when nothing went wrong) and the same
    in a few words (the error's phrase), its report."""
    run: runs.Run | None
    said: str = ""
    report: Path | None = None
    seconds: float = 0.0    # the run's wall time, its report included
    phrase: str = ""


@dataclass
class TeamRow:
    team: str
    urls: Path
    consistency: Outcome | None = None
    stress: Outcome | None = None
    cells: dict = field(default_factory=dict)


def _run(make: Callable[[], tuple[runs.Run, dict]], reports_dir: Path) -> Outcome:
    """One of a team's runs, then its report. Whatever stops either is that team's row, never the
    class's end: a WorkbenchError is its one sentence, anything else (a run the team's system
    crashed in a way wdm did not foresee) its type and message, as the run's manifest says it."""
    from wdm_lib.report import render

    started = time.perf_counter()
    run = report = None
    try:
        run, _ = make()
        report = render(run.path, reports_dir)
        said = phrase = ""
    except Exception as e:  # not BaseException: Ctrl-C (a KeyboardInterrupt) still ends the grading
        said = redact(str(e) if isinstance(e, WorkbenchError) else f"{e.__class__.__name__}: {e}")
        phrase = e.phrase if isinstance(e, WorkbenchError) else f"crashed ({e.__class__.__name__})"
    return Outcome(run, said, report, time.perf_counter() - started, phrase)


def _summary(outcome: Outcome | None) -> dict | None:
    if outcome is None or outcome.run is None or not summaries.has(outcome.run):
        return None
    try:
        return summaries.read(outcome.run)
    except WorkbenchError:
        return None


def measured(run: runs.Run | None, summary: dict | None) -> str:
    """"" when a stress run's figures measure the team's system: it finished, was judged, and some
    request succeeded; else why not, in a few words. Figures of a run that failed after 2 s, or of
    replies that were all errors, are no speed of the system, and a league must not rank them."""
    if summary is None:
        return "no figures"
    if run is not None and run.status not in (runs.COMPLETED, runs.DEGRADED) or summaries.verdict_class(summary) == summaries.NONE:
        status = run.status if run is not None else "ended"
        duration = summary.get("duration_s")
        return f"{status} after {duration:.1f} s" if duration else status
    if not summary["outcomes"]["ok"]:
        return "no request succeeded"
    return ""


def league_cells(row: TeamRow) -> dict:
    """The league table's cells for one team, from what its two runs left."""
    cells = {"team": row.team}
    c, s = _summary(row.consistency), _summary(row.stress)
    problems, errors = [], []
    for kind, outcome, summary in (("consistency", row.consistency, c), ("stress", row.stress, s)):
        if outcome is None:
            continue
        if summary is not None:
            cells[kind] = summaries.verdict(summary) or outcome.run.status
        else:
            cells[kind] = "could not be run"
            problems.append(f"{kind}: {outcome.phrase or 'could not be run'}")
        if outcome.said:
            errors.append(f"{kind}: {outcome.said}")
            if summary is not None:  # made, and judged, but its report could not be rendered
                problems.append(f"{kind}: no report ({outcome.phrase})")
    if c is not None:
        cells["anomalies"] = banner.anomaly_list(c["anomalies"])
    if s is not None:
        lat = s.get("latency_ms") or {}
        cells.update({"p50 ms": lat.get("p50"), "p99 ms": lat.get("p99"), "requests/s": s.get("throughput_rps")})
        why_not = measured(row.stress.run, s)
        if why_not:
            problems.append(f"stress: {why_not}")
        cells["stress measured"] = "no" if why_not else "yes"
    # The worst outage the figures show (a fault without a baseline has none to show).
    outages = [f["outage_s"] for summary in (c, s) if summary for f in summary.get("faults") or []
               if f["outage_s"] is not None]
    if outages:
        cells["fault outage s"] = max(outages)
    # Both runs down for one reason: said once.
    phrases = {p.split(": ", 1)[1] for p in problems}
    cells["problem"] = phrases.pop() if len(problems) == 2 and len(phrases) == 1 else "; ".join(problems)
    cells["error"] = " ".join(errors)
    # Each verdict coloured as its report's banner is; a run that could not be made as no verdict, and
    # so a stress run that measured nothing: its gates may have passed on replies that were all errors.
    cells["classes"] = {kind: summaries.verdict_class(summary)
                        for kind, summary, outcome in (("consistency", c, row.consistency), ("stress", s, row.stress))
                        if outcome is not None}
    if cells.get("stress measured") == "no":
        cells["classes"]["stress"] = summaries.NONE
    return cells


def ranked(rows: list[TeamRow]) -> list[TeamRow]:
    """The league's order: consistent first, then by the stress run (its verdict, then p99, then
    requests/s), teams whose runs did not measure after those that did, down teams last; each row's
    rank in its cells."""
    def key(row: TeamRow):
        classes, cells = row.cells.get("classes", {}), row.cells
        shown = cells.get("stress measured") == "yes"
        return (ORDER[classes.get("consistency", summaries.NONE)], ORDER[classes.get("stress", summaries.NONE)], not shown,
                cells.get("p99 ms") if shown and cells.get("p99 ms") is not None else float("inf"),
                -(cells.get("requests/s") or 0) if shown else 0, row.team)

    order = sorted(rows, key=key)
    for i, row in enumerate(order, 1):
        row.cells["rank"] = i
    return order


def _fmt(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:,.1f}"
    return str(value)


def write_league(rows: list[TeamRow], reports_dir: Path, stamp: str) -> tuple[Path, Path]:
    """league-<stamp>.html and league-<stamp>.csv in reports_dir, the teams ranked."""
    rows = ranked(rows)
    csv_path = reports_dir / f"league-{stamp}.csv"
    with open(csv_path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(CSV_COLUMNS)
        for row in rows:
            writer.writerow(["" if row.cells.get(c) is None else row.cells.get(c) for c in CSV_COLUMNS])
    body = []
    for row in rows:
        cells = []
        hidden = row.cells.get("stress measured") != "yes"
        for col in COLUMNS:
            verdict = row.cells.get("classes", {}).get(col)
            text = "" if hidden and col in FIGURES else _fmt(row.cells.get(col))
            cells.append(pages.Cell(text, f"verdict {verdict}" if verdict else "number" if col in NUMBER_COLUMNS else
                                    "id" if col == "team" else ""))
            outcome = {"consistency": row.consistency, "stress": row.stress}.get(col)
            if outcome is not None and outcome.report is not None and outcome.report.is_file():
                cells[-1].href = outcome.report.name
        cells[COLUMNS.index("problem")].detail = row.cells.get("error", "")
        body.append(cells)
    page = pages.render("league.html.j2", columns=COLUMNS, number_columns=NUMBER_COLUMNS, rows=body, count=len(rows),
                        stamp=stamp, csv=csv_path.name)
    html_path = reports_dir / f"league-{stamp}.html"
    runs.write_atomic(html_path, page)
    return html_path, csv_path


def grade(urls_files: list[str | Path], consistency: dict, stress: StressScenario, runs_dir: Path,
          reports_dir: Path, *, faults: str | Path | None = None, stress_options: dict | None = None,
          say=print) -> tuple[list[TeamRow], Path, Path]:
    """Grade every team in turn; returns the rows and the league's HTML and CSV paths.

    consistency: the fields of ConsistencyScenario that differ from its defaults, the same for every
    team (without a seed, each team's run draws its own); stress: the stress run's scenario;
    stress_options: run_stress's other arguments (check, dist, ...); faults: a schedule for both runs."""
    from wdm_lib.runner import run_consistency
    from wdm_lib.workloads.stress.run import run_stress

    ConsistencyScenario(**consistency)  # a wrong number is one sentence before any team runs
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    rows = []
    for i, urls in enumerate(urls_files, 1):
        path = Path(urls)
        row = TeamRow(path.stem, path)
        say(f"[{i}/{len(urls_files)}] {row.team}: consistency ...")
        row.consistency = _run(lambda: run_consistency(ConsistencyScenario(**consistency), urls=path, runs_dir=runs_dir,
                                                       progress=False, faults=faults), reports_dir)
        say(f"[{i}/{len(urls_files)}] {row.team}: stress ...")
        row.stress = _run(lambda: run_stress(stress, urls=path, runs_dir=runs_dir, init=True, progress=False,
                                             faults=faults, **(stress_options or {})), reports_dir)
        row.cells = league_cells(row)
        say(f"[{i}/{len(urls_files)}] {row.team}: {row.cells.get('consistency', '')}; stress {row.cells.get('stress', '')}"
            + (f" ({row.cells['problem']})" if row.cells.get("problem") else ""))
        rows.append(row)
    html_path, csv_path = write_league(rows, reports_dir, stamp)
    return ranked(rows), html_path, csv_path
