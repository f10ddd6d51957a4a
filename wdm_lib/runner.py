"""A consistency run: target -> workload -> history + state -> checkers -> run folder, its life
owned by skeleton.py: whatever happens (a verdict, Ctrl-C, a target that breaks the API, a checker
that fails) the folder keeps every operation recorded so far, and the manifest says how it ended."""

from __future__ import annotations

import asyncio
from pathlib import Path

from wdm_lib import checkers, convergence, runs, summaries
from wdm_lib.errors import WorkbenchError
from wdm_lib.faults.nemesis import Nemesis
from wdm_lib.history import CHECKOUT, HistoryWriter, Op, read_ops
from wdm_lib.skeleton import Life, make_run, require_every_checker
from wdm_lib.summary import summarize
from wdm_lib.target import watch_shop
from wdm_lib.workloads.consistency import ConsistencyScenario, execute

# state.json: state -> initial/final -> items/users/orders -> id: a record, one line each.
STATE_RECORD_DEPTH = 3


class ConvergenceWatch:
    """Judges every pass of the final read-back (the checkers are pure and fast) and keeps the
    timeline, so the summary can say when the state became consistent and whether it stayed so."""

    def __init__(self, scenario: ConsistencyScenario, history: HistoryWriter):
        self.scenario = scenario
        self.history = history
        self.points: list[dict] = []
        self._ops: list[Op] | None = None
        self._read_up_to = -1
        self._last_reply_ns = 0

    def ops(self, after_op: int) -> list[Op]:
        """The rows of the history the checkers read (checkers.rows_read): read once, when the
        read-back starts (every operation is on disk by then), and again only if a row was written
        since. The run's verdict shares this one copy: at 100,000 orders the history's rows are most
        of the run's memory."""
        if self._ops is None or self.history.last_op_id != self._read_up_to:
            self._ops, self._read_up_to = None, self.history.last_op_id
            self._ops = read_ops(self.history.path, keep=checkers.rows_read(self.scenario, after_op))
        return self._ops

    def __call__(self, state: dict, started_ns: int, changed: bool, reverted: bool = False) -> None:
        if self._ops is None:
            self.ops(state["initial"]["after_op"])
            self._last_reply_ns = max((op.complete_ns for op in self._ops if op.kind == CHECKOUT),
                                      default=started_ns)
        result = checkers.check_consistency(self.scenario, self.ops(state["initial"]["after_op"]), state)
        self.points.append(convergence.point((started_ns - self._last_reply_ns) / 1e9, changed, result.valid,
                                             {a.name: a.count for a in result.anomalies}, reverted))


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


class ConsistencyRun:
    """The consistency kind of run (skeleton.py owns its life): seed, fire the checkouts, read the
    state back until it is quiet, judge it."""

    kind = "consistency"
    records_history = True

    def __init__(self, scenario: ConsistencyScenario, progress: bool | None):
        self.scenario_ = scenario
        self.scenario = scenario.to_dict()
        self.load_s = scenario.load_s
        self.progress = progress

    def make(self, life: Life) -> dict:
        sc, run = self.scenario_, life.run
        phases: dict[str, float] = {}
        watch = ConvergenceWatch(sc, life.history)
        nemesis = life.nemesis
        state = asyncio.run(_watched(execute(sc, life.target, life.history, self.progress,
                                             on_phase=lambda name, s: phases.__setitem__(name, s),
                                             on_final_read=watch,
                                             around_load=None if nemesis is None else nemesis.alongside),
                                     life.target, nemesis))
        state["passes"] = watch.points  # each whole pass's verdict: the read-back checker judges the sequence
        run.write_json("state.json", state, one_line_from=STATE_RECORD_DEPTH)
        ops = watch.ops(state["initial"]["after_op"])
        result = checkers.check_run(sc, ops, state)
        summary = summarize(run.id, sc, ops, state, result, phases, watch.points)
        path = summaries.write(run, summary)
        require_every_checker(result, path)
        return summary

    def end_early(self, life: Life, status: str) -> None:
        pass  # every operation is in the history as it happened

    def ended(self, summary: dict) -> tuple[str, str | None]:
        return runs.COMPLETED, None


def run_consistency(scenario: ConsistencyScenario, urls: str | Path | None = None, anomaly: str | None = None,
                    runs_dir: str | Path | None = None, progress: bool | None = None,
                    faults: str | Path | None = None) -> tuple[runs.Run, dict]:
    """`faults`: a fault schedule (YAML) to run during the checkouts; it needs a paced load (`rate`)."""
    if faults is not None and scenario.rate is None:
        raise WorkbenchError("--faults needs --rate: a burst of checkouts is over in well under a second, so no "
                             "fault could land during it; expected e.g. --rate 100 (the default 1000 checkouts "
                             "then last 10 s).")
    if faults is not None:
        scenario.room_for_faults()
    return make_run(ConsistencyRun(scenario, progress), urls=urls, anomaly=anomaly, runs_dir=runs_dir, faults=faults)
