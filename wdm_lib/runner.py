"""Make a consistency run: target -> workload -> history + state -> checkers -> Run folder.

Whatever happens — a verdict, a user's Ctrl-C, a target that breaks the API — the folder keeps
every operation recorded so far, and the manifest says how the run ended."""

from __future__ import annotations

import asyncio
from pathlib import Path

from wdm_lib import checkers, convergence, runs
from wdm_lib.errors import WorkbenchError
from wdm_lib.history import FAULT, HistoryWriter, Op, read_ops
from wdm_lib.summary import summarize
from wdm_lib.target import describe, open_target
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


def run_consistency(scenario: ConsistencyScenario, urls: str | Path | None = None, anomaly: str | None = None,
                    runs_dir: str | Path | None = None, progress: bool | None = None) -> tuple[runs.Run, dict]:
    with open_target(urls, anomaly) as target:
        run = runs.Run.create(runs_dir, "consistency", scenario.to_dict(), describe(target, anomaly))
        phases: dict[str, float] = {}
        history = HistoryWriter(run.file("history.csv"))
        watch = ConvergenceWatch(scenario, run.file("history.csv"))
        try:
            state = asyncio.run(execute(scenario, target, history, progress,
                                        on_phase=lambda name, s: phases.__setitem__(name, s),
                                        on_final_read=watch))
        except KeyboardInterrupt:
            history.record(FAULT, error="interrupted by the user (Ctrl-C)")
            run.finish(runs.INTERRUPTED, "interrupted by the user (Ctrl-C)")
            raise
        except WorkbenchError as e:
            history.record(FAULT, error=str(e))
            run.finish(runs.FAILED, str(e))
            raise
        except BaseException as e:
            history.record(FAULT, error=f"{e.__class__.__name__}: {e}")
            run.finish(runs.FAILED, f"{e.__class__.__name__}: {e}")
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
