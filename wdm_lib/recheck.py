"""`wdm check RUN_DIR`: judge a stored run again with today's checkers.

A run folder holds what the checkers need: a consistency run its history and the state it read
back, a stress run its raw rows (and the books --verify read). When the checkers improve, every old
run can be judged again; the new summary goes beside the old one (`summary-checked-<time>.json`),
the run's own `summary.json` stays as the run left it, and its report shows the newest judgement
and says who judged it. What cannot be judged again is kept from the run's own summary: the
convergence of its read-back (each pass's state was not stored, only the last) and --verify's books.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from wdm_lib import checkers, runs, summaries
from wdm_lib.errors import WorkbenchError


def recheck(run_dir: str | Path) -> tuple[runs.Run, dict, Path]:
    """(the run, its new summary, where that was written)."""
    run = runs.Run.open(run_dir)
    if run.kind == "consistency":
        summary = _consistency(run)
    elif run.kind == "stress":
        summary = _stress(run)
    else:
        raise WorkbenchError(f"{run.path}: a {run.kind} run, which has no verdict to judge again.")
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S-%f")
    return run, summary, summaries.write(run, summary, summaries.CHECKED.format(stamp=stamp))


def _needs(run: runs.Run, name: str) -> Path:
    path = run.file(name)
    if not path.is_file():
        raise WorkbenchError(f"{run.path}: no {name} there (the run ended {run.status} before it was "
                             f"written); expected a run that reached its verdict.")
    return run.inside(name)


def _scenario(run: runs.Run, make):
    try:
        return make(run.manifest.get("scenario") or {})
    except TypeError as e:
        raise WorkbenchError(f"{run.file('manifest.json')}: its scenario is not one this wdm knows ({e}).") from None


def _consistency(run: runs.Run) -> dict:
    from wdm_lib.history import read_ops
    from wdm_lib.summary import summarize
    from wdm_lib.workloads.consistency_scenario import ConsistencyScenario

    sc = _scenario(run, lambda d: ConsistencyScenario(**d))
    ops = read_ops(_needs(run, "history.csv"))
    _needs(run, "state.json")
    state = run.read_json("state.json")
    own = summaries.read(run) if summaries.has(run) else {}
    try:
        result = checkers.check_run(sc, ops, state)
        summary = summarize(run.id, sc, ops, state, result, own.get("phases_s") or {}, own.get("convergence"))
    except (KeyError, TypeError, AttributeError) as e:  # a state.json that is not what wdm writes
        raise WorkbenchError(f"{run.file('state.json')}: not the state wdm writes ({e.__class__.__name__}: {e}).") from None
    summary["judged_by"] = summaries.judged_by(result, rejudged=True)
    return summary


def _stress(run: runs.Run) -> dict:
    from wdm_lib.workloads.stress.figures import raw_files
    from wdm_lib.workloads.stress.run import judge, verdict
    from wdm_lib.workloads.stress.scenario import StressScenario

    sc = _scenario(run, StressScenario.from_dict)
    if not raw_files(run.path):
        raise WorkbenchError(f"{run.path}: no requests-*.csv there; expected a stress run that recorded its "
                             f"raw latencies (its gates are judged on them).")
    history = run.file("history.csv")
    own = summaries.read(run) if summaries.has(run) else {}
    summary = judge(sc, run, 0.0, bool(run.manifest.get("ui")), history if history.is_file() else None)
    summary["verify"] = own.get("verify")
    summary.update(verdict(summary))
    return summary
