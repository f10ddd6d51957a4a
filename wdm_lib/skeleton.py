"""One owner of a run's life, whatever its kind (as Jepsen's `run!` owns a test's).

The skeleton opens the target (a urls file's system, or the embedded shop started for the run),
loads the fault schedule, creates the run folder and its manifest, opens the history, builds the
nemesis, turns a kill into Ctrl-C, and is the one place where a run ends: `completed` (or what
its kind says, e.g. `degraded`), `failed` with the sentence that stopped it, or `interrupted`.
Whatever ends it, the folder keeps everything recorded so far.

A kind of run is a small class (consistency: runner.py; stress: workloads/stress/run.py):

    class MyRun:
        kind = "my-kind"             # one of runs.KINDS
        records_history = True       # a history.csv even without a fault schedule
        scenario: dict               # the manifest's scenario
        load_s: float | None         # how long its load is planned to last (a schedule must fit)
        def make(self, life) -> dict          # prepare, load and judge; returns the summary (written)
        def end_early(self, life, status) -> None   # keep what was measured when it ends before its verdict
        def ended(self, summary) -> tuple[str, str | None]   # the final status and its note
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from wdm_lib import runs
from wdm_lib.checkers import CheckResult
from wdm_lib.config import Target
from wdm_lib.errors import RecordingFailed, WorkbenchError, interruption
from wdm_lib.faults.nemesis import Nemesis
from wdm_lib.faults.schedule import Fault, load_schedule
from wdm_lib.history import FAULT, HistoryWriter
from wdm_lib.stopping import stop_signals_as_ctrl_c
from wdm_lib.target import actions_on, describe, open_target, schedule_names_a_service


class CheckerFailed(WorkbenchError):
    """A checker raised: the run has no verdict. Its summary keeps what the other checkers found."""

    phrase = "a checker failed"

    @classmethod
    def of(cls, result: CheckResult, summary_path: Path) -> "CheckerFailed":
        failed = "; ".join(f"checker {p.checker!r} failed ({p.error})" for p in result.errors)
        return cls(f"{failed}; the run has no verdict, and what the other checkers found is in {summary_path}.")


def require_every_checker(result: CheckResult, summary_path: Path) -> None:
    if result.errors:
        raise CheckerFailed.of(result, summary_path)


@dataclass
class Life:
    """What the skeleton opened for a run, handed to its kind."""
    run: runs.Run
    target: Target
    schedule: list[Fault] | None
    history: HistoryWriter | None
    nemesis: Nemesis | None


class RunKind(Protocol):
    kind: str
    records_history: bool
    scenario: dict
    load_s: float | None

    def make(self, life: Life) -> dict: ...

    def end_early(self, life: Life, status: str) -> None: ...

    def ended(self, summary: dict) -> tuple[str, str | None]: ...


def make_run(how: RunKind, *, urls: str | Path | None = None, anomaly: str | None = None,
             runs_dir: str | Path | None = None, faults: str | Path | None = None,
             embedded: bool = True) -> tuple[runs.Run, dict]:
    """The run of one kind, from the target's start to the manifest's last word. `embedded`: the
    embedded shop is started when no urls file is given (a kind that needs a target of the user's
    says False, and no urls is then an error of the kind's own)."""
    with stop_signals_as_ctrl_c(), open_target(urls, anomaly, services=schedule_names_a_service(faults, urls)) as target:
        schedule = None if faults is None else load_schedule(faults, actions_on(target), how.load_s)
        run = runs.Run.create(runs_dir, how.kind, how.scenario, describe(target, anomaly))
        history = None
        life = Life(run, target, schedule, None, None)
        try:
            if how.records_history or schedule is not None:
                life.history = history = HistoryWriter(run.file("history.csv"))
            if schedule is not None:
                run.update(faults={"file": str(faults), "schedule": [f.to_dict() for f in schedule]})
                life.nemesis = Nemesis(schedule, history, run.path, target.shop)
            summary = how.make(life)
        except KeyboardInterrupt:
            _end_early(how, life, runs.INTERRUPTED, interruption())
            raise
        except WorkbenchError as e:
            _end_early(how, life, runs.FAILED, str(e))
            raise
        except BaseException as e:
            _end_early(how, life, runs.FAILED, f"{e.__class__.__name__}: {e}")
            raise
        finally:
            if history is not None:
                history.close()
    run.finish(*how.ended(summary))
    return run, summary


def _end_early(how: RunKind, life: Life, status: str, note: str) -> None:
    """The run's end before its verdict: what its kind keeps, a row in the history, the manifest,
    as far as each can still be written; the error that stopped the run is the one to report."""
    try:
        how.end_early(life, status)
    except Exception:  # the run is failing already; its first error is the one to say
        pass
    if life.history is not None:
        try:
            life.history.record(FAULT, error=note)
        except RecordingFailed:
            pass
    life.run.finish(status, note)
