"""Make a consistency run: target -> workload -> history + state -> checkers -> Run folder.

Whatever happens — a verdict, a user's Ctrl-C, a target that breaks the API — the folder keeps
every operation recorded so far, and the manifest says how the run ended."""

from __future__ import annotations

import asyncio
from pathlib import Path

from wdm_lib import checkers, runs
from wdm_lib.errors import WorkbenchError
from wdm_lib.history import FAULT, UNKNOWN, HistoryWriter, read_ops
from wdm_lib.summary import summarize
from wdm_lib.target import describe, open_target
from wdm_lib.workloads.consistency import ConsistencyScenario, execute


def _leaves_no_doubt(scenario: ConsistencyScenario, run: runs.Run, state: dict) -> bool:
    """A first read can be taken as final when every checkout answered 2xx or 4xx (nothing of ours
    is still in flight) and it is consistent. Anything else is read again until the target is
    quiet, so a system whose reads lag is never judged on a stale read."""
    ops = read_ops(run.file("history.csv"))
    if any(op.kind == "checkout" and op.outcome == UNKNOWN for op in ops):
        return False
    return checkers.check_consistency(scenario, ops, state).valid


def run_consistency(scenario: ConsistencyScenario, urls: str | Path | None = None, anomaly: str | None = None,
                    runs_dir: str | Path | None = None, progress: bool | None = None) -> tuple[runs.Run, dict]:
    with open_target(urls, anomaly) as target:
        run = runs.Run.create(runs_dir, "consistency", scenario.to_dict(), describe(target, anomaly))
        phases: dict[str, float] = {}
        history = HistoryWriter(run.file("history.csv"))
        try:
            state = asyncio.run(execute(scenario, target, history, progress,
                                        on_phase=lambda name, s: phases.__setitem__(name, s),
                                        accept_final=lambda state: _leaves_no_doubt(scenario, run, state)))
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
    summary = summarize(run.id, scenario, ops, state, result, phases)
    run.write_json("summary.json", summary)
    run.finish(runs.COMPLETED)
    return run, summary
