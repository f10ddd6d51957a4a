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

from wdm_lib import runs, summaries
from wdm_lib.analysis import read_load_started_ns
from wdm_lib.workloads.shop_rows import LOAD_STARTED
from wdm_lib.errors import WorkbenchError, interruption
from wdm_lib.faults.nemesis import Nemesis, NemesisThread
from wdm_lib.skeleton import Life, make_run
from wdm_lib.progress import progress_wanted
from wdm_lib.workloads.stress import gates as gates_
from wdm_lib.workloads.stress.shop import batch_init, check_reachable, verify
from wdm_lib.workloads.stress.figures import (fault_figures, first_exception, raw_files, read_locust_aggregated,
                                              read_raw, summarize)
from wdm_lib.workloads.stress import locust_csv
from wdm_lib.workloads.stress.live import LiveLine
from wdm_lib.workloads.stress.locust import (EXIT_GRACE_S, LOCUST_LOG, WORKERS_CSV, LocustProcess,
                                             locust_command, locust_failure)
from wdm_lib.workloads.stress.scenario import Distributed, StressScenario
from wdm_lib.workloads.stress.workers import degradation, read_user_counts, read_worker_events

PROGRESS_EVERY_S = 3.0
FAULT_CHECK_S = 0.1     # with a fault schedule: how soon it starts with the load, and a step that failed stops it


class StressInitRun:
    """`wdm stress init` as a kind of run: the three batch-init calls, timed."""

    kind = "stress-init"
    records_history = False
    load_s = None

    def __init__(self, sc: StressScenario):
        self.sc = sc
        self.scenario = sc.to_dict()

    def make(self, life: Life) -> dict:
        timings = asyncio.run(batch_init(self.sc, life.target))
        life.run.write_json("init.json", timings)
        summary = {"run_id": life.run.id, "kind": self.kind, "verdict": "initialised", "batch_init_s": timings,
                   "sizes": {k: getattr(self.sc, k) for k in ("n_items", "item_stock", "item_price", "n_users",
                                                               "user_credit", "n_orders")}}
        summaries.write(life.run, summary)
        return summary

    def end_early(self, life: Life, status: str) -> None:
        pass

    def ended(self, summary: dict) -> tuple[str, str | None]:
        return runs.COMPLETED, None


def run_init(sc: StressScenario, urls: str | Path | None, runs_dir: str | Path | None = None) -> tuple[runs.Run, dict]:
    """`wdm stress init`: the three batch-init calls, timed, as a Run of kind stress-init."""
    if urls is None:
        raise WorkbenchError("wdm stress init initialises a system of yours; expected --urls FILE naming it.")
    return make_run(StressInitRun(sc), urls=urls, runs_dir=runs_dir)


class StressRun:
    """`wdm stress run` as a kind of run (skeleton.py owns its life): batch init, Locust's load with
    the nemesis beside it, the figures and the gates, and --verify's books."""

    kind = "stress"
    records_history = False  # only a fault schedule's steps are rows of a stress run's history

    def __init__(self, sc: StressScenario, *, init: bool, check: bool, ui: bool, web_port: int,
                 dist: Distributed, progress: bool, say: Callable[[str], None]):
        self.sc, self.init, self.check, self.ui, self.web_port = sc, init, check, ui, web_port
        self.dist, self.progress, self.say = dist, progress, say
        self.scenario = sc.to_dict()
        self.load_s = sc.planned_s
        self.locust: LocustProcess | None = None
        self.stopped_in_ui = False  # the web UI's run ended by Ctrl-C (or a kill), as it always ends

    def make(self, life: Life) -> dict:
        sc, run, target, say, dist = self.sc, life.run, life.target, self.say, self.dist
        mode = "master" if dist.master else "processes" if sc.processes != 1 else "local"
        run.update(init=self.init, verify=self.check, ui=self.ui, mode=mode,
                   workers=dist.expect_workers if dist.master else None)
        if self.init:
            say("batch-initialising the shop ...")
            run.write_json("init.json", asyncio.run(batch_init(sc, target)))
        else:
            asyncio.run(check_reachable(target))
        cmd, env = locust_command(sc, target, run.path, ui=self.ui, web_port=self.web_port, dist=dist)
        run.update(locust_command=cmd[2:], locust_started_at=runs._now())
        started_s = time.time()
        self.locust = LocustProcess(cmd, env, run.file(LOCUST_LOG))
        if self.ui:
            say(f"Locust's web UI: http://127.0.0.1:{self.web_port}  (Ctrl-C here ends the run; its folder: "
                f"{run.path})")
        else:
            say(f"Locust running for {sc.planned_s:g} s (log: {run.file(LOCUST_LOG)}) ...")
        code = _load(sc, run, self.locust, self.ui, dist, self.progress, life.nemesis)
        if code is None:
            # The web UI's user ended it: an interrupted run, with its figures and no verdict (its load
            # was whatever the user made it), summarized and reported as such.
            summary = self._keep_what_was_measured(life, runs.INTERRUPTED)
            if summary is None:
                raise KeyboardInterrupt
            self.stopped_in_ui = True
            return summary
        run.update(locust_ended_at=runs._now(), locust_exit_code=code)
        _require_a_run(sc, run, self.locust, code, self.ui, dist)
        summary = judge(sc, run, started_s, self.ui, life.history and life.history.path)
        if self.check:
            summaries.write(run, summary)  # kept if the read-back below cannot be made
            say(f"verifying {sc.n_items:,} items and {sc.n_users:,} users ...")
            summary["verify"] = verify(sc, target, summary["recorded"], self.progress)
        summary.update(verdict(summary))
        summaries.write(run, summary)
        return summary

    def end_early(self, life: Life, status: str) -> None:
        """Locust stopped (it writes its files as it goes), and the figures of what it measured
        kept as the summary of a run with no verdict, unless the load was judged already."""
        if self.locust is not None:
            self.locust.interrupt()
        self._keep_what_was_measured(life, status)

    def _keep_what_was_measured(self, life: Life, status: str) -> dict | None:
        run = life.run
        if summaries.has(run) or not (run.file(locust_csv.STATS).is_file() or raw_files(run.path)):
            return None
        summary = summarize(run.id, self.sc, run.path)
        summary["faults"] = fault_figures(life.history and life.history.path, read_raw(run.path))
        summary = {**summary, "verdict": f"{status}: no verdict"}
        summaries.write(run, summary)
        return summary

    def ended(self, summary: dict) -> tuple[str, str | None]:
        if self.stopped_in_ui:
            return runs.INTERRUPTED, interruption()
        if summary["degraded"]:
            return runs.DEGRADED, summary["degraded"][0]["sentence"]
        return runs.COMPLETED, None


def run_stress(sc: StressScenario, urls: str | Path | None = None, anomaly: str | None = None,
               runs_dir: str | Path | None = None, *, init: bool = False, check: bool = False,
               ui: bool = False, web_port: int = 8089, dist: Distributed | None = None,
               progress: bool | None = None, say: Callable[[str], None] = lambda s: None,
               faults: str | Path | None = None) -> tuple[runs.Run, dict]:
    """`wdm stress run`. Without urls the embedded reference shop is started (and, being empty,
    batch-initialised) for the run. Returns the run and its summary; `summary["passed"]` is the
    verdict (gates, books, nothing lost). `faults`: a fault schedule (YAML) run during the load,
    its times counted from the load's start (Locust's test start, not its launch); its steps are the
    rows of the run's history.csv."""
    if check and not sc.raw_latencies:
        raise WorkbenchError("--verify compares the shop's books with the requests recorded; expected a run "
                             "without --no-raw-latencies.")
    if faults is not None and not sc.raw_latencies:
        raise WorkbenchError("--faults measures each fault from the raw rows, and counts its times from the load's "
                             "start that Locust writes beside them; expected a run without --no-raw-latencies.")
    if faults is not None and ui:
        raise WorkbenchError("--faults runs on a schedule from the load's start, which the web UI leaves to "
                             "its user; expected either --faults or --ui, not both.")
    if ui and (sc.thresholds or check):
        given = " and ".join(o for o, on in (("--threshold", sc.thresholds), ("--verify", check)) if on)
        raise WorkbenchError(f"{given}: a web UI run's load is whatever its user makes it, and Ctrl-C ends it with "
                             f"no verdict, so nothing would judge it; expected {given} on a headless run (-t TIME), "
                             f"not with --ui.")
    if dist is not None and dist.master and sc.processes != 1:
        raise WorkbenchError("--processes applies to a run on this machine alone; expected either --master "
                             "(with workers started elsewhere) or --processes, not both.")
    how = StressRun(sc, init=init or urls is None, check=check, ui=ui, web_port=web_port, dist=dist or Distributed(),
                    progress=progress_wanted() if progress is None else progress, say=say)
    return make_run(how, urls=urls, anomaly=anomaly, runs_dir=runs_dir, faults=faults)


def _load(sc: StressScenario, run: runs.Run, locust: LocustProcess, ui: bool, dist: Distributed,
          progress: bool, nemesis: Nemesis | None = None) -> int | None:
    """The load itself, from Locust's start to its exit: the one place where anything that must
    happen *during* the load belongs — the fault schedule's nemesis runs beside it, on a thread of
    its own, and a step that fails stops the load. Returns Locust's exit code, or None when Ctrl-C
    (or a kill) ended a web UI run, which is how such a run ends; a headless run raises it."""
    live = LiveLine(run.path, locust_csv.HISTORY, None if ui else sc.planned_s, sc.raw_latencies,
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
        if faults is not None and not faults.started:
            # The schedule counts from the load's start, which Locust writes as it begins: not
            # from its launch, which a busy machine takes seconds to get from to a first request.
            load_started = read_load_started_ns(run.path)
            if load_started is not None:
                faults.start(load_started)
        if faults is not None:
            faults.check()

    try:
        locust.wait(bound, PROGRESS_EVERY_S if faults is None else FAULT_CHECK_S, every_few_seconds)
        code = locust.close()
        if faults is not None:
            faults.stop()  # recovers what is still injected before anything is read back
            if not faults.started and (read_locust_aggregated(run.file(locust_csv.STATS)) or {}).get("requests"):
                raise WorkbenchError(f"Locust made requests but never wrote when the load started "
                                     f"({run.file(LOAD_STARTED)}), so no fault of the schedule ran; expected "
                                     f"the run folder to be writable (see {run.file(LOCUST_LOG)}).")
        return code
    except KeyboardInterrupt:
        locust.interrupt()  # Locust has a process group of its own: Ctrl-C reaches it here
        if not ui:
            raise
        return None
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
    stats = run.file(locust_csv.STATS)
    if not stats.is_file():
        raise WorkbenchError(f"Locust exited (code {code}) without writing its statistics; "
                             f"expected {stats} (see {run.file(LOCUST_LOG)}).")
    if not ui and (read_locust_aggregated(stats) or {}).get("requests") == 0:
        raise WorkbenchError(f"Locust made no request in {sc.planned_s:g} s: "
                             f"{first_exception(run.file(locust_csv.EXCEPTIONS)) or 'no error'}"
                             f" (see {run.file(LOCUST_LOG)}).")


def judge(sc: StressScenario, run: runs.Run, started_s: float, ui: bool, history: Path | None = None) -> dict:
    """The figures, the gates, whether the run lost load, what each fault cost, and the verdict
    (--verify's books, read later, are None here)."""
    df = read_raw(run.path)
    summary = summarize(run.id, sc, run.path, df)
    summary["faults"] = fault_figures(history, df)
    have_rows = bool(raw_files(run.path))
    locust = summary["locust"] or {}
    summary["gates"] = gates_.judge(sc.gates, df if have_rows else None, summary["duration_s"],
                                    ok_without_rows=locust.get("requests", 0) - locust.get("failures", 0))
    # Load that was never planned cannot be lost: the web UI's users are whatever its user chose.
    start_s = float(df["start_ns"].min()) / 1e9 if len(df) else started_s
    summary["degraded"] = [] if ui else degradation(
        read_worker_events(run.file(WORKERS_CSV)), read_user_counts(run.file(locust_csv.HISTORY)),
        None if sc.steps else sc.users, start_s, sc.planned_s)
    summary["verify"] = None
    summary.update(verdict(summary))
    return summary


def verdict(summary: dict) -> dict:
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
