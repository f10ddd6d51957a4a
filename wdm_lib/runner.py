"""Make a consistency run: target -> workload -> history + state -> checkers -> Run folder.

Whatever happens — a verdict, a user's Ctrl-C, a target that breaks the API — the folder keeps
every operation recorded so far, and the manifest says how the run ended."""

from __future__ import annotations

import asyncio
from pathlib import Path

from wdm_lib import checkers, convergence, runs
from wdm_lib.errors import RecordingFailed, WorkbenchError, interruption
from wdm_lib.history import FAULT, HistoryWriter, Op, read_ops
from wdm_lib.summary import summarize
from wdm_lib.faults.nemesis import Nemesis
from wdm_lib.faults.schedule import load_schedule
from wdm_lib.target import actions_on, describe, open_target, schedule_names_a_service, watch_shop
from wdm_lib.workloads.consistency import ConsistencyScenario, execute


class ConvergenceWatch:
    """Judges every pass of the final read-back (the checkers are pure and fast) and keeps the
    timeline, so the summary can say when the state became consistent and whether it stayed so."""

    def __init__(self, scenario: ConsistencyScenario, history_path: Path):
        self.scenario = scenario
        self.history_path = history_path
        self.points: list[dict] = []
        self._ops: list[Op] | None = None
        self._last_reply_ns = 0

    def __call__(self, state: dict, started_ns: int, changed: bool) -> None:
        if self._ops is None:  # every operation is on disk once the read-back starts
            self._ops = read_ops(self.history_path)
            self._last_reply_ns = max((op.complete_ns for op in self._ops if op.kind == checkers.CHECKOUT),
                                      default=started_ns)
        result = checkers.check_consistency(self.scenario, self._ops, state)
        self.points.append(convergence.point((started_ns - self._last_reply_ns) / 1e9, changed, result.valid,
                                             {a.name: a.count for a in result.anomalies}))


async def _watched(work, target, nemesis: Nemesis | None):
    """The run, stopped the moment the embedded shop dies of something the schedule did not do."""
    work_task = asyncio.ensure_future(work)
    watch_task = asyncio.ensure_future(watch_shop(target, nemesis.down_on_purpose if nemesis else lambda s: False))
    try:
        await asyncio.wait({work_task, watch_task}, return_when=asyncio.FIRST_COMPLETED)
        if watch_task.done():
            work_task.cancel()
            await asyncio.gather(work_task, return_exceptions=True)
            watch_task.result()
        return work_task.result()
    finally:
        for task in (work_task, watch_task):
            task.cancel()
        await asyncio.gather(work_task, watch_task, return_exceptions=True)


def _end_early(run: runs.Run, history: HistoryWriter, status: str, note: str) -> None:
    """The run's end, in its history and its manifest, as far as they can still be written: when
    the history cannot (a full disk), the error that stopped the run is the one to report."""
    try:
        history.record(FAULT, error=note)
    except RecordingFailed:
        pass
    run.finish(status, note)


def run_consistency(scenario: ConsistencyScenario, urls: str | Path | None = None, anomaly: str | None = None,
                    runs_dir: str | Path | None = None, progress: bool | None = None,
                    faults: str | Path | None = None) -> tuple[runs.Run, dict]:
    """`faults`: a fault schedule (YAML) to run during the checkouts; it needs a paced load (`rate`)."""
    if faults is not None and scenario.rate is None:
        raise WorkbenchError("--faults needs --rate: a burst of checkouts is over in well under a second, so no "
                             "fault could land during it; expected e.g. --rate 100 (the default 1000 checkouts "
                             "then last 10 s).")
    with open_target(urls, anomaly, services=schedule_names_a_service(faults, urls)) as target:
        schedule = None if faults is None else load_schedule(faults, actions_on(target), scenario.load_s)
        run = runs.Run.create(runs_dir, "consistency", scenario.to_dict(), describe(target, anomaly))
        phases: dict[str, float] = {}
        history = HistoryWriter(run.file("history.csv"))
        watch = ConvergenceWatch(scenario, run.file("history.csv"))
        nemesis = None
        if schedule is not None:
            run.update(faults={"file": str(faults), "schedule": [f.to_dict() for f in schedule]})
            nemesis = Nemesis(schedule, history, run.path, target.shop)
        try:
            state = asyncio.run(_watched(execute(scenario, target, history, progress,
                                                 on_phase=lambda name, s: phases.__setitem__(name, s),
                                                 on_final_read=watch,
                                                 around_load=None if nemesis is None else nemesis.alongside),
                                         target, nemesis))
        except KeyboardInterrupt:
            _end_early(run, history, runs.INTERRUPTED, interruption())
            raise
        except WorkbenchError as e:
            _end_early(run, history, runs.FAILED, str(e))
            raise
        except BaseException as e:
            _end_early(run, history, runs.FAILED, f"{e.__class__.__name__}: {e}")
            raise
        finally:
            history.close()
    run.write_json("state.json", state)
    ops = read_ops(run.file("history.csv"))
    result = checkers.check_consistency(scenario, ops, state)
    summary = summarize(run.id, scenario, ops, state, result, phases, watch.points)
    run.write_json("summary.json", summary)
    run.finish(runs.COMPLETED)
    return run, summary
