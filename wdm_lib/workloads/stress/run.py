"""`wdm stress init` and `wdm stress run`: the Run folder, the load, and the verdict.

A stress run ends in one of three ways. It could not be made (a WorkbenchError: exit 2); it was
made and its verdicts hold (`completed`, every gate passed, --verify's books balance: exit 0); or
it was made and something did not hold (a gate failed, the books are violated, or the run is
`degraded` because it lost part of its load: exit 1). Whatever happens, the folder keeps Locust's
files and the raw rows written so far, and its manifest says how the run ended.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Callable

from wdm_lib import runs
from wdm_lib.errors import WorkbenchError, interruption
from wdm_lib.faults.nemesis import Nemesis, NemesisThread
from wdm_lib.faults.schedule import load_schedule
from wdm_lib.history import HistoryWriter
from wdm_lib.progress import progress_wanted
from wdm_lib.workloads.stress import gates as gates_
from wdm_lib.workloads.stress.shop import batch_init, check_reachable, verify
from wdm_lib.workloads.stress.figures import (fault_figures, first_exception, raw_files, read_locust_aggregated,
                                              read_raw, summarize)
from wdm_lib.workloads.stress.live import LiveLine
from wdm_lib.workloads.stress.locust import (EXIT_GRACE_S, LOCUST_LOG, LOCUST_PREFIX, WORKERS_CSV, LocustProcess,
                                             locust_command, locust_failure)
from wdm_lib.workloads.stress.scenario import Distributed, StressScenario
from wdm_lib.workloads.stress.workers import degradation, read_user_counts, read_worker_events

PROGRESS_EVERY_S = 3.0
FAULT_CHECK_S = 0.5     # with a fault schedule: how soon a step that failed stops the load


def run_init(sc: StressScenario, urls: str | Path | None, runs_dir: str | Path | None = None) -> tuple[runs.Run, dict]:
    """`wdm stress init`: the three batch-init calls, timed, as a Run of kind stress-init."""
    from wdm_lib.config import load_urls
    from wdm_lib.target import describe

    target = load_urls(urls)
    run = runs.Run.create(runs_dir, "stress-init", sc.to_dict(), describe(target))
    try:
        timings = asyncio.run(batch_init(sc, target))
    except KeyboardInterrupt:
        run.finish(runs.INTERRUPTED, interruption())
        raise
    except WorkbenchError as e:
        run.finish(runs.FAILED, str(e))
        raise
    except BaseException as e:
        run.finish(runs.FAILED, f"{e.__class__.__name__}: {e}")
        raise
    run.write_json("init.json", timings)
    summary = {"run_id": run.id, "kind": "stress-init", "batch_init_s": timings,
               "sizes": {k: getattr(sc, k) for k in ("n_items", "item_stock", "item_price", "n_users",
                                                      "user_credit", "n_orders")}}
    run.write_json("summary.json", summary)
    run.finish(runs.COMPLETED)
    return run, summary


def run_stress(sc: StressScenario, urls: str | Path | None = None, anomaly: str | None = None,
               runs_dir: str | Path | None = None, *, init: bool = False, check: bool = False,
               ui: bool = False, web_port: int = 8089, dist: Distributed | None = None,
               progress: bool | None = None, say: Callable[[str], None] = lambda s: None,
               faults: str | Path | None = None) -> tuple[runs.Run, dict]:
    """`wdm stress run`. Without urls the embedded reference shop is started (and, being empty,
    batch-initialised) for the run. Returns the run and its summary; `summary["passed"]` is the
    verdict (gates, books, nothing lost). `faults`: a fault schedule (YAML) run during the load,
    its times counted from Locust's start; its steps are the rows of the run's history.csv."""
    from wdm_lib.target import actions_on, describe, open_target, schedule_names_a_service

    if check and not sc.raw_latencies:
        raise WorkbenchError("--verify compares the shop's books with the requests recorded; expected a run "
                             "without --no-raw-latencies.")
    progress = progress_wanted() if progress is None else progress
    dist = dist or Distributed()
    if faults is not None and ui:
        raise WorkbenchError("--faults runs on a schedule from the load's start, which the web UI leaves to "
                             "its user; expected either --faults or --ui, not both.")
    with open_target(urls, anomaly, services=schedule_names_a_service(faults, urls)) as target:
        init = init or urls is None
        schedule = None if faults is None else load_schedule(faults, actions_on(target), sc.planned_s)
        run = runs.Run.create(runs_dir, "stress", sc.to_dict(), describe(target, anomaly))
        history = nemesis = None
        if schedule is not None:
            run.update(faults={"file": str(faults), "schedule": [f.to_dict() for f in schedule]})
            history = HistoryWriter(run.file("history.csv"))
            nemesis = Nemesis(schedule, history, run.path, target.shop)
        mode = "master" if dist.master else "processes" if sc.processes != 1 else "local"
        run.update(init=init, verify=check, ui=ui, mode=mode, workers=dist.expect_workers if dist.master else None)
        locust = None
        try:
            if init:
                say("batch-initialising the shop ...")
                run.write_json("init.json", asyncio.run(batch_init(sc, target)))
            else:
                asyncio.run(check_reachable(target))
            cmd, env = locust_command(sc, target, run.path, ui=ui, web_port=web_port, dist=dist)
            run.update(locust_command=cmd[2:], locust_started_at=runs._now())
            started_s = time.time()
            locust = LocustProcess(cmd, env, run.file(LOCUST_LOG))
            if ui:
                say(f"Locust's web UI: http://127.0.0.1:{web_port}  (Ctrl-C here ends the run)")
            else:
                say(f"Locust running for {sc.planned_s:g} s (log: {run.file(LOCUST_LOG)}) ...")
            code = _load(sc, run, locust, ui, dist, progress, nemesis)
            run.update(locust_ended_at=runs._now(), locust_exit_code=code)
            _require_a_run(sc, run, locust, code, ui, dist)
            summary = _judge(sc, run, started_s, ui, history)
            run.write_json("summary.json", summary)  # kept if the read-back below cannot be made
            if check:
                say(f"verifying {sc.n_items:,} items and {sc.n_users:,} users ...")
                summary["verify"] = verify(sc, target, summary["recorded"], progress)
            summary.update(_verdict(summary))
            run.write_json("summary.json", summary)
        except KeyboardInterrupt:
            _end_early(run, sc, locust, runs.INTERRUPTED, interruption())
            raise
        except WorkbenchError as e:
            _end_early(run, sc, locust, runs.FAILED, str(e))
            raise
        except BaseException as e:
            _end_early(run, sc, locust, runs.FAILED, f"{e.__class__.__name__}: {e}")
            raise
        finally:
            if history is not None:
                history.close()
    if summary["degraded"]:
        run.finish(runs.DEGRADED, summary["degraded"][0]["sentence"])
    else:
        run.finish(runs.COMPLETED)
    return run, summary


def _load(sc: StressScenario, run: runs.Run, locust: LocustProcess, ui: bool, dist: Distributed,
          progress: bool, nemesis: Nemesis | None = None) -> int:
    """The load itself, from Locust's start to its exit: the one place where anything that must
    happen *during* the load belongs — the fault schedule's nemesis runs beside it, on a thread of
    its own, and a step that fails stops the load. Returns Locust's exit code."""
    live = LiveLine(run.path, f"{LOCUST_PREFIX}_stats_history.csv", None if ui else sc.planned_s, sc.raw_latencies,
                    progress)
    faults = None if nemesis is None else NemesisThread(nemesis)
    started = time.monotonic()
    bound = None if ui else sc.planned_s + EXIT_GRACE_S + (dist.workers_wait_s if dist.master else 0)

    shown = [0.0]

    def every_few_seconds() -> None:
        now = time.monotonic() - started
        if now - shown[0] >= PROGRESS_EVERY_S or faults is None:
            live.show(now)
            shown[0] = now
        if faults is not None:
            faults.check()

    try:
        if faults is not None:
            faults.start()
        locust.wait(bound, PROGRESS_EVERY_S if faults is None else FAULT_CHECK_S, every_few_seconds)
        code = locust.close()
        if faults is not None:
            faults.stop()  # recovers what is still injected before anything is read back
        return code
    except KeyboardInterrupt:
        code = locust.interrupt()  # Locust has a process group of its own: Ctrl-C reaches it here
        if not ui:
            raise
        return code  # in the web UI, Ctrl-C is how a run ends
    finally:
        if faults is not None:
            try:
                faults.stop()
            except BaseException:  # already said, or the run is ending for another reason
                pass
        live.done()


def _require_a_run(sc: StressScenario, run: runs.Run, locust: LocustProcess, code: int, ui: bool,
                   dist: Distributed) -> None:
    """One sentence when Locust did not make a run at all (exit 2), rather than judging nothing."""
    failure = locust.stopped_because() or locust_failure(code, locust.log_tail(), dist)
    if failure:
        raise WorkbenchError(failure)
    stats = run.file(f"{LOCUST_PREFIX}_stats.csv")
    if not stats.is_file():
        raise WorkbenchError(f"Locust exited (code {code}) without writing its statistics; "
                             f"expected {stats} (see {run.file(LOCUST_LOG)}).")
    if not ui and (read_locust_aggregated(stats) or {}).get("requests") == 0:
        raise WorkbenchError(f"Locust made no request in {sc.planned_s:g} s: "
                             f"{first_exception(run.file(LOCUST_PREFIX + '_exceptions.csv')) or 'no error'}"
                             f" (see {run.file(LOCUST_LOG)}).")


def _judge(sc: StressScenario, run: runs.Run, started_s: float, ui: bool, history: HistoryWriter | None = None) -> dict:
    """The figures, the gates, whether the run lost load, and what each fault cost."""
    df = read_raw(run.path)
    summary = summarize(run.id, sc, run.path, df)
    summary["faults"] = fault_figures(None if history is None else history.path, df)
    have_rows = bool(raw_files(run.path))
    locust = summary["locust"] or {}
    summary["gates"] = gates_.judge(sc.gates, df if have_rows else None, summary["duration_s"],
                                    ok_without_rows=locust.get("requests", 0) - locust.get("failures", 0))
    # Load that was never planned cannot be lost: the web UI's users are whatever its user chose.
    start_s = float(df["start_ns"].min()) / 1e9 if len(df) else started_s
    summary["degraded"] = [] if ui else degradation(
        read_worker_events(run.file(WORKERS_CSV)), read_user_counts(run.file(f"{LOCUST_PREFIX}_stats_history.csv")),
        None if sc.steps else sc.users, start_s, sc.planned_s)
    summary["verify"] = None
    return summary


def _verdict(summary: dict) -> dict:
    """passed, and the verdict in a few words: what failed, or "passed"."""
    failed = [g for g in summary["gates"] if not g["passed"]]
    reasons = []
    if failed:
        reasons.append(f"{len(failed)} of {len(summary['gates'])} gates failed")
    if summary["verify"] is not None and not summary["verify"]["valid"]:
        reasons.append("books violated")
    if summary["degraded"]:
        reasons.append(runs.DEGRADED)
    return {"passed": not reasons, "verdict": ", ".join(reasons) or "passed"}


def _end_early(run: runs.Run, sc: StressScenario, locust: LocustProcess | None, status: str, error: str) -> None:
    if locust is not None:
        locust.interrupt()
    _keep_what_was_measured(run, sc)
    run.finish(status, error)


def _keep_what_was_measured(run: runs.Run, sc: StressScenario) -> None:
    """A summary of whatever Locust and the hook wrote before the run ended early, unless the load
    was judged already; never raises."""
    try:
        if run.file("summary.json").is_file():
            return
        if run.file(f"{LOCUST_PREFIX}_stats.csv").is_file() or raw_files(run.path):
            run.write_json("summary.json", summarize(run.id, sc, run.path))
    except Exception:  # the run is already failing; its first error is the one to report
        pass
