"""`wdm`: a thin shell over wdm_lib. Parses options, calls the library, turns user errors into one
sentence and an exit code (0 consistent / done and every gate passed, 1 inconsistent / a gate failed
/ a degraded run, 2 the run could not be made, 130 Ctrl-C)."""

from __future__ import annotations

import argparse
import sys

from wdm_lib.config import redact
from wdm_lib.errors import WorkbenchError, stop_came_from, stopped_by
from wdm_lib.stopping import stop_signals_as_ctrl_c

EXIT_OK, EXIT_INCONSISTENT, EXIT_ERROR, EXIT_INTERRUPTED = 0, 1, 2, 130


def _add_serve(sub: argparse._SubParsersAction) -> None:
    from wdm_lib.reference.anomalies import ANOMALIES, SERVICES_ANOMALIES

    p = sub.add_parser("serve", help="run the embedded reference shop")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000, help="0 picks a free port (default 8000)")
    p.add_argument("--data", default=None, metavar="DIR",
                   help="folder for the SQLite store (default: a temporary folder, removed on exit)")
    p.add_argument("--services", action="store_true",
                   help="three services (order, stock, payment), each its own process and SQLite file, "
                        "behind a gateway on --port, with checkout as a durable saga")
    p.add_argument("--anomaly", default=None, metavar="NAME",
                   help=f"turn on one named bug (default: none, the shop is consistent): "
                        f"{', '.join(sorted(ANOMALIES))}; with --services: {', '.join(sorted(SERVICES_ANOMALIES))}")
    p.set_defaults(handler=_serve)


def _serve(args: argparse.Namespace) -> int:
    from wdm_lib.reference.anomalies import check_anomaly

    check_anomaly(args.anomaly, services=args.services)
    if args.services:
        from wdm_lib.reference.services import serve_services

        serve_services(host=args.host, port=args.port, data_dir=args.data, anomaly=args.anomaly)
    else:
        from wdm_lib.reference.server import serve

        serve(host=args.host, port=args.port, data_dir=args.data, anomaly=args.anomaly)
    return EXIT_OK


def _add_scenario_options(p: argparse.ArgumentParser, defaults) -> None:
    """The shop's sizes, named alike in every scenario; defaults from the scenario's dataclass."""
    for name, help_ in (("n_items", "items to create"), ("item_stock", "stock of each item"),
                        ("item_price", "price of each item"), ("n_users", "users to create"),
                        ("user_credit", "credit of each user"), ("n_orders", "orders to create")):
        p.add_argument("--" + name.replace("_", "-"), dest=name, type=int, default=getattr(defaults, name),
                       metavar="N", help=f"{help_} (default {getattr(defaults, name)})")


def _add_target_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--urls", default=None, metavar="FILE",
                   help="urls.json of the system to test (default: start the embedded reference shop)")
    from wdm_lib.reference.anomalies import ANOMALIES

    p.add_argument("--anomaly", default=None, metavar="NAME",
                   help=f"with the embedded shop only: turn on one of its named bugs ({', '.join(sorted(ANOMALIES))})")
    p.add_argument("--runs-dir", default=None, metavar="DIR", help="where run folders go (default reports/runs)")


# The consistency test's sizes and weights, whose defaults depend on --workload: (option's field,
# type, what it is). A price or a quantity may be a range LO-HI.
_CONSISTENCY_SIZES = (
    ("n_items", int, "items to create"), ("item_stock", int, "stock of each item"),
    ("item_price", str, "price of each item, or a range LO-HI (mixed only)"), ("n_users", int, "users to create"),
    ("user_credit", int, "credit of each user"), ("n_orders", int, "orders to create"),
    ("items_per_order", int, "lines of each order (original: distinct items; mixed: at most, an item may repeat)"),
    ("quantity", str, "quantity of each line, or a range LO-HI (mixed only)"),
    ("recheckout_weight", float, "re-checkouts of orders already checked out, per first checkout"),
    ("add_funds_weight", float, "add funds to users of waiting orders, per first checkout"),
    ("add_stock_weight", float, "add stock to items of waiting orders, per first checkout"),
    ("read_weight", float, "reads (find item, user or order) per first checkout"),
)


def _add_consistency(sub: argparse._SubParsersAction) -> None:
    from wdm_lib.workloads.consistency_scenario import MIXED, ORIGINAL, WORKLOAD_DEFAULTS, WORKLOADS, ConsistencyScenario

    d = ConsistencyScenario(seed=0)
    p = sub.add_parser("consistency", help="seed, fire concurrent checkouts, check the final state",
                       description="Exit 0 when consistent (with or without warnings), 1 when not (or with "
                                   "warnings under --strict), 2 when the run could not be made.")
    _add_target_options(p)
    p.add_argument("--workload", default=d.workload, metavar="NAME",
                   help=f"{' or '.join(WORKLOADS)} (default {d.workload}): the seed benchmark's burst of first "
                        f"checkouts, or a seeded mix of first checkouts, re-checkouts, additions and reads")
    for name, type_, help_ in _CONSISTENCY_SIZES:
        original, mixed = WORKLOAD_DEFAULTS[ORIGINAL][name], WORKLOAD_DEFAULTS[MIXED][name]
        p.add_argument("--" + name.replace("_", "-"), dest=name, type=type_, default=None,
                       metavar={float: "W", str: "N|LO-HI"}.get(type_, "N"),
                       help=f"{help_} (default {original:g}; {MIXED}: {mixed:g})" if type_ is float
                       else f"{help_} (default {original}; {MIXED}: {mixed})")
    p.add_argument("--concurrency", type=int, default=d.concurrency, metavar="N",
                   help=f"checkouts in flight at most (default {d.concurrency}, what the original achieves; "
                        f"1000 fires every checkout at once, the harsher test)")
    p.add_argument("--rate", type=float, default=None, metavar="N",
                   help="operations (checkouts, under original) per second, open loop (default: all at once, at "
                        "most --concurrency in flight)")
    p.add_argument("--faults", default=None, metavar="FILE",
                   help="a fault schedule (YAML) to run during the checkouts; needs --rate (shipped examples: "
                        "faults/embedded-shop.yaml and others, see `wdm notebooks`)")
    p.add_argument("--timeout", dest="timeout_s", type=float, default=d.timeout_s, metavar="SECONDS",
                   help=f"per-request timeout (default {d.timeout_s:g})")
    p.add_argument("--quiet", dest="quiet_s", type=float, default=d.quiet_s, metavar="SECONDS",
                   help=f"judge the final state only once it stayed unchanged this long (default {d.quiet_s:g})")
    p.add_argument("--settle", dest="settle_s", type=float, default=d.settle_s, metavar="SECONDS",
                   help=f"the most the final read-back may take waiting for quiet (default {d.settle_s:g})")
    p.add_argument("--seed", type=int, default=None, help="random seed, to reproduce a run (default: random)")
    p.add_argument("--strict", action="store_true",
                   help="exit 1 on warnings too (a checkout that answered 5xx yet happened, nothing succeeded)")
    p.add_argument("--linearizable", action="store_true",
                   help="a stale read during the load is an anomaly, not a warning (for a system that promises "
                        "linearizable reads; an impossible read is an anomaly either way)")
    p.add_argument("--report", action="store_true", help="render the HTML report at the end")
    _add_junit(p, "one test case per checker")
    p.set_defaults(handler=_consistency)


def _add_junit(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument("--junit", default=None, metavar="FILE", help=f"also write the verdict as JUnit XML ({what})")


def _check_junit(path: str | None) -> None:
    """Before the run: a report with nowhere to go is found out now, not after the load."""
    from pathlib import Path

    if path is not None and not Path(path).expanduser().parent.is_dir():
        raise WorkbenchError(f"--junit {path}: no such folder {Path(path).parent}; expected a file in an existing folder.")


def _consistency(args: argparse.Namespace) -> int:
    from dataclasses import fields

    from wdm_lib.runner import run_consistency
    from wdm_lib.summary import render_table
    from wdm_lib.workloads.consistency_scenario import ConsistencyScenario

    scenario = ConsistencyScenario(**{f.name: getattr(args, f.name) for f in fields(ConsistencyScenario)})
    _check_junit(args.junit)
    run, summary = run_consistency(scenario, urls=args.urls, anomaly=args.anomaly, runs_dir=args.runs_dir,
                                   faults=args.faults)
    print(render_table(summary))
    print(f"run folder: {run.path}")
    if args.junit:
        from wdm_lib import junit

        print(f"junit: {junit.write(args.junit, 'consistency', junit.consistency_cases(summary))}")
    if args.report:
        _render_report(run.path)
    if not summary["valid"] or (args.strict and summary["warnings"]):
        return EXIT_INCONSISTENT
    return EXIT_OK


def _render_report(run_path) -> None:
    from wdm_lib.report import render

    html = render(run_path)
    print(f"report: {html}")


def _add_report(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help="render a run's HTML report (and the index of every run)",
                       description="Executes the notebook of the run's kind on RUN_DIR and writes "
                                   "<reports-dir>/<run id>.html and <reports-dir>/index.html.")
    p.add_argument("run_dir", nargs="?", metavar="RUN_DIR", help="a run folder (under reports/runs/)")
    p.add_argument("--index", action="store_true",
                   help="rewrite index.html, listing every run, and render the reports missing from it")
    p.add_argument("--reports-dir", default=None, metavar="DIR",
                   help="where reports go (default: the folder above the run's runs folder, so "
                        "reports/ for reports/runs/<id>; with --index alone, reports/)")
    p.set_defaults(handler=_report)


def _report(args: argparse.Namespace) -> int:
    from wdm_lib.report import render, write_index

    if args.run_dir is None and not args.index:
        raise WorkbenchError("wdm report needs a RUN_DIR, or --index to rewrite the index (rendering the reports "
                             "it lacks).")
    if args.run_dir is not None:
        print(f"report: {render(args.run_dir, args.reports_dir)}")
    else:
        print(f"index: {write_index(args.reports_dir, render_missing=True, say=lambda m: print(m, file=sys.stderr))}")
    return EXIT_OK


def _add_check(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("check", help="judge stored runs again with today's checkers",
                       description="Judges each run folder again from its history and state (consistency) or its "
                                   "raw rows (stress), prints the verdict and writes summary-checked-<time>.json "
                                   "beside the run's own summary. Exit 0 when every run is consistent (or passed), "
                                   "1 when one is not, 2 when one could not be judged.")
    p.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="run folders (under reports/runs/)")
    p.set_defaults(handler=_check)


def _check(args: argparse.Namespace) -> int:
    from wdm_lib.recheck import recheck
    from wdm_lib.summary import render_table
    from wdm_lib.workloads.stress.table import render_table as render_stress

    code = EXIT_OK
    for run_dir in args.run_dirs:
        try:
            run, summary, path = recheck(run_dir)
        except WorkbenchError as e:  # one run that cannot be judged does not stop the others
            print(f"wdm: {redact(str(e))}", file=sys.stderr)
            code = EXIT_ERROR
            continue
        print((render_table if run.kind == "consistency" else render_stress)(summary))
        print(f"judged again: {path}")
        failed = not summary["valid"] if run.kind == "consistency" else not summary["passed"]
        if failed and code == EXIT_OK:
            code = EXIT_INCONSISTENT
    return code


def _add_compare(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("compare", help="runs side by side, in one HTML page",
                       description="Verdicts and anomalies, latency percentiles with each run's ratio to the "
                                   "first, overlaid latency CDFs, throughput against p99 per step and fault "
                                   "recovery, for two or more runs; the first is the baseline.")
    p.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="run folders (under reports/runs/), baseline first")
    p.add_argument("--reports-dir", default=None, metavar="DIR",
                   help="where the page goes (default: the folder above the first run's runs folder)")
    p.set_defaults(handler=_compare)


def _compare(args: argparse.Namespace) -> int:
    from wdm_lib.report import render_compare

    print(f"comparison: {render_compare(args.run_dirs, args.reports_dir)}")
    return EXIT_OK


def _add_grade(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("grade", help="grade a class: a consistency and a stress run per urls file, a league table",
                       description="For each urls file in turn, a consistency run and a stress run (batch init, "
                                   "then load), each with its report; then a league table (HTML and CSV) of every "
                                   "team. Options after the files that grade does not know go to `wdm stress run` "
                                   "(e.g. -u 100 -r 20 -t 60s --threshold 'p99<500ms').")
    p.add_argument("urls_files", nargs="+", metavar="URLS_FILE", help="one urls.json per team (the team is its file's name)")
    p.add_argument("--rate", type=float, default=None, metavar="N",
                   help="both runs open loop at N checkouts (requests) per second (needed with --faults)")
    p.add_argument("--faults", default=None, metavar="FILE", help="a fault schedule for both runs of every team")
    p.add_argument("--seed", type=int, default=None, help="the consistency run's seed, the same for every team")
    p.add_argument("--quiet", type=float, default=None, metavar="SECONDS",
                   help="the consistency run's quiet window (default 5)")
    p.add_argument("--runs-dir", default=None, metavar="DIR", help="where run folders go (default reports/runs)")
    p.add_argument("--reports-dir", default=None, metavar="DIR",
                   help="where reports and the league go (default: the folder above the runs folder)")
    p.set_defaults(handler=_grade, takes_extra=True)


def _grade(args: argparse.Namespace) -> int:
    from pathlib import Path

    from wdm_lib.config import find_urls_file
    from wdm_lib.grade import grade
    from wdm_lib.runs import default_runs_dir

    files = [find_urls_file(f) for f in args.urls_files]  # a missing file is one sentence before any run
    runs_dir = Path(args.runs_dir) if args.runs_dir is not None else default_runs_dir()
    reports_dir = Path(args.reports_dir) if args.reports_dir is not None else runs_dir.parent
    consistency = {name: getattr(args, flag) for flag, name in (("rate", "rate"), ("seed", "seed"), ("quiet", "quiet_s"))
                   if getattr(args, flag) is not None}
    # The options grade does not know are `wdm stress run`'s: a wrong one stops grading before any run.
    stress = build_parser().parse_args(["stress", "run", *args.extra,
                                        *(["--rate", str(args.rate)] if args.rate is not None else [])])
    _, html_path, csv_path = grade(files, consistency, _stress_scenario(stress), runs_dir, reports_dir,
                                   faults=args.faults, stress_options=_stress_options(stress),
                                   say=lambda s: print(s, file=sys.stderr))
    print(f"league: {html_path}")
    print(f"league table: {csv_path}")
    return EXIT_OK


def _add_notebooks(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("notebooks", help="copy the notebooks and the example fault schedules out, to edit",
                       description="Copy consistency.ipynb, stress.ipynb and compare.ipynb into DIR and the "
                                   "example fault schedules into DIR/faults/, for JupyterLab or papermill. "
                                   "Overwrites nothing: a file already there stops it before anything is copied. "
                                   "`wdm report` keeps using the notebooks the package ships.")
    p.add_argument("folder", metavar="DIR", help="where the copies go (made if missing)")
    p.set_defaults(handler=_notebooks)


def _notebooks(args: argparse.Namespace) -> int:
    from wdm_lib.shipped import copy_out

    for copy in copy_out(args.folder):
        print(copy)
    return EXIT_OK


def _add_stress(sub: argparse._SubParsersAction) -> None:
    from wdm_lib.workloads.stress.scenario import CLOSED_LOOP_SPAWN_RATE, CLOSED_LOOP_USERS, StressScenario

    d = StressScenario()
    stress = sub.add_parser("stress", help="load the shop with Locust: init, run, worker")
    ssub = stress.add_subparsers(dest="stress_command", required=True, metavar="SUBCOMMAND")

    p = ssub.add_parser("init", help="batch-initialise a target with the stress scenario's sizes",
                        description="The three batch-init calls, timed, recorded as a run of kind stress-init.")
    p.add_argument("--urls", required=True, metavar="FILE", help="urls.json of the system to initialise")
    p.add_argument("--runs-dir", default=None, metavar="DIR", help="where run folders go (default reports/runs)")
    _add_scenario_options(p, d)
    p.add_argument("--timeout", dest="timeout_s", type=float, default=d.timeout_s, metavar="SECONDS",
                   help=f"per batch-init call (default {d.timeout_s:g})")
    p.set_defaults(handler=_stress_init)

    p = ssub.add_parser("run", help="a Locust run against the target (headless, or --ui)",
                        description="Exit 0 when done and every gate passed (and --verify found the books "
                                    "balanced), 1 when a gate failed, --verify found a violation or the run "
                                    "lost part of its load (degraded), 2 when the run could not be made.")
    _add_target_options(p)
    _add_scenario_options(p, d)
    g = p.add_argument_group("Locust")
    g.add_argument("-u", "--users", type=int, default=None, metavar="N",
                   help=f"concurrent Locust users (default {CLOSED_LOOP_USERS}; with --rate, enough to hold it)")
    g.add_argument("-r", "--spawn-rate", type=float, default=None, metavar="R",
                   help=f"users started per second (default {CLOSED_LOOP_SPAWN_RATE:g}; with --rate, all in 1 s)")
    g.add_argument("-t", "--run-time", default=f"{d.run_time:g}s", metavar="TIME",
                   help=f"how long the load lasts: 30s, 5m, 1h30m (default {d.run_time:g}s)")
    g.add_argument("--processes", type=int, default=d.processes, metavar="P",
                   help="Locust processes on this machine (default 1; -1: one per core)")
    w = g.add_mutually_exclusive_group()
    w.add_argument("--wait", type=float, default=None, metavar="S",
                   help=f"constant wait between a user's requests, in seconds (default {d.wait:g}, the seed "
                        f"locustfile's constant(1); 0 for the most load)")
    w.add_argument("--wait-between", type=float, nargs=2, default=None, metavar=("A", "B"),
                   help="random wait between A and B seconds (1 15: the seed README's)")
    w.add_argument("--rate", type=float, default=None, metavar="N",
                   help="open loop: N requests/s across all users, each on a fixed schedule; latency is "
                        "also measured from each request's intended start (coordinated omission corrected)")
    for name in ("checkout", "find_order", "find_item", "find_user", "add_funds"):
        g.add_argument(f"--{name.replace('_', '-')}-weight", dest=f"{name}_weight", type=int,
                       default=getattr(d, f"{name}_weight"), metavar="W",
                       help=f"weight of the {name.replace('_', ' ')} task (default {getattr(d, f'{name}_weight')})")
    g.add_argument("--funds-amount", type=int, default=d.funds_amount, metavar="N",
                   help=f"credit each add funds adds (default {d.funds_amount})")
    g.add_argument("--steps", default=None, metavar="LIST",
                   help="step load: user counts such as 50,100,200,400 (replaces --users and --run-time)")
    g.add_argument("--step-time", default=f"{d.step_time:g}s", metavar="TIME",
                   help=f"how long each step lasts (default {d.step_time:g}s)")
    g.add_argument("--no-raw-latencies", dest="raw_latencies", action="store_false",
                   help="do not write one row per request (requests-*.csv)")
    g.add_argument("--ui", action="store_true", help="open Locust's web UI on 127.0.0.1 instead of running headless")
    g.add_argument("--web-port", type=int, default=8089, metavar="PORT", help="port of the web UI (default 8089)")
    m = p.add_argument_group("distributed (workers on other machines: wdm stress worker)")
    m.add_argument("--master", action="store_true", help="be Locust's master; workers make the requests")
    m.add_argument("--expect-workers", type=int, default=1, metavar="N", help="workers to wait for (default 1)")
    m.add_argument("--master-bind-host", default="*", metavar="IP",
                   help="interface the master listens on (default * : all)")
    m.add_argument("--master-bind-port", type=int, default=5557, metavar="PORT", help="(default 5557)")
    m.add_argument("--workers-wait", default="60s", metavar="TIME",
                   help="how long to wait for the workers to connect (default 60s)")
    v = p.add_argument_group("verdict")
    v.add_argument("--threshold", dest="thresholds", action="append", default=None, metavar="GATE",
                   help="a gate the run must pass, k6-style: 'p99<500ms', 'fail_rate<1%%', 'rps>100', "
                        "'checkout:p95<200ms', 'response_p99<1s' (repeatable; default: some request succeeded)")
    v.add_argument("--verify", action="store_true",
                   help="after the run, read back all stock and credit and check the books balance")
    _add_junit(v, "one test case per gate")
    p.add_argument("--init", action="store_true",
                   help="batch-initialise the target first (always done for the embedded shop)")
    p.add_argument("--faults", default=None, metavar="FILE",
                   help="a fault schedule (YAML) to run during the load, timed from the load's start (shipped "
                        "examples: faults/embedded-shop.yaml and others, see `wdm notebooks`)")
    p.add_argument("--timeout", dest="timeout_s", type=float, default=d.timeout_s, metavar="SECONDS",
                   help=f"per batch-init call and --verify read (default {d.timeout_s:g})")
    p.add_argument("--report", action="store_true", help="render the HTML report at the end")
    p.set_defaults(handler=_stress_run)

    p = ssub.add_parser("worker", help="a Locust worker of a `wdm stress run --master` elsewhere")
    p.add_argument("--master-host", default="127.0.0.1", metavar="HOST", help="(default 127.0.0.1)")
    p.add_argument("--master-port", type=int, default=5557, metavar="PORT", help="(default 5557)")
    p.add_argument("--processes", type=int, default=1, metavar="P",
                   help="worker processes on this machine (default 1; -1: one per core)")
    p.set_defaults(handler=_stress_worker)


def _stress_scenario(args: argparse.Namespace):
    from dataclasses import fields

    from wdm_lib.workloads.stress.scenario import StressScenario

    given = {f.name: getattr(args, f.name) for f in fields(StressScenario) if getattr(args, f.name, None) is not None}
    if getattr(args, "wait_between", None) is not None:
        given["wait"] = args.wait_between
    return StressScenario(**given)


def _stress_options(args: argparse.Namespace) -> dict:
    """run_stress's arguments that say how the run is made, from `wdm stress run`'s options."""
    from wdm_lib.workloads.stress.scenario import Distributed

    dist = Distributed(master=args.master, expect_workers=args.expect_workers, bind_host=args.master_bind_host,
                       bind_port=args.master_bind_port, workers_wait_s=args.workers_wait)
    return {"check": args.verify, "ui": args.ui, "web_port": args.web_port, "dist": dist}


def _stress_init(args: argparse.Namespace) -> int:
    from wdm_lib.workloads.stress.run import run_init

    run, summary = run_init(_stress_scenario(args), args.urls, args.runs_dir)
    t = summary["batch_init_s"]
    print(f"batch init: stock {t['stock_s']:.2f} s, payment {t['payment_s']:.2f} s, orders {t['orders_s']:.2f} s "
          f"(total {t['total_s']:.2f} s)")
    print(f"run folder: {run.path}")
    return EXIT_OK


def _stress_run(args: argparse.Namespace) -> int:
    from wdm_lib.runs import INTERRUPTED
    from wdm_lib.workloads.stress.run import run_stress
    from wdm_lib.workloads.stress.table import render_table

    scenario = _stress_scenario(args)
    _check_junit(args.junit)
    if args.junit and args.ui:
        raise WorkbenchError(f"--junit {args.junit} writes the gates of a load planned from its start to its end, "
                             f"and a web UI run ends by Ctrl-C with no verdict; expected --junit on a headless "
                             f"run (-t TIME), not with --ui.")
    run, summary = run_stress(scenario, urls=args.urls, anomaly=args.anomaly, runs_dir=args.runs_dir,
                              init=args.init, say=lambda s: print(s, file=sys.stderr), faults=args.faults,
                              **_stress_options(args))
    print(render_table(summary))
    print(f"run folder: {run.path}")
    if args.junit:
        from wdm_lib import junit

        print(f"junit: {junit.write(args.junit, 'stress', junit.stress_cases(summary))}")
    if args.report:
        _render_report(run.path)
    if run.status == INTERRUPTED:  # a web UI run, which Ctrl-C (or a kill) ends
        return _interrupted()
    return EXIT_OK if summary["passed"] else EXIT_INCONSISTENT


def _stress_worker(args: argparse.Namespace) -> int:
    from wdm_lib.workloads.stress.locust import run_worker

    code = run_worker(args.master_host, args.master_port, args.processes)
    return EXIT_OK if code in (0, 1) else EXIT_ERROR


class WdmParser(argparse.ArgumentParser):
    """argparse's parser (each subcommand's too), which names the nearest option to one it does not
    know: Python 3.11's says only `unrecognized arguments`."""

    def parse_known_args(self, args=None, namespace=None):
        parsed, extra = super().parse_known_args(args, namespace)
        if not hasattr(parsed, "_parser"):  # the innermost subcommand parses first: its options are the ones
            parsed._parser = self
        return parsed, extra

    def parse_args(self, args=None, namespace=None):
        """The options; `extra` holds those a command passes on (grade's to `wdm stress run`), and any
        other unknown one stops here, naming the nearest option of its subcommand (exit 2)."""
        parsed, extra = self.parse_known_args(args, namespace)
        innermost = parsed.__dict__.pop("_parser", self)
        if extra and not getattr(parsed, "takes_extra", False):
            innermost.error(f"unrecognized arguments: {' '.join(extra)}{nearest_options(innermost, extra)}")
        parsed.extra = extra
        return parsed


def nearest_options(parser: argparse.ArgumentParser, unknown: list[str]) -> str:
    """`(did you mean --concurrency?)` for each unknown option that is close to one the parser has."""
    import difflib

    known = [o for action in parser._actions for o in action.option_strings]
    hints = {}
    for word in unknown:
        name = word.split("=", 1)[0]
        if name.startswith("-") and (close := difflib.get_close_matches(name, known, n=1)):
            hints[name] = f"did you mean {close[0]}?"
    if len(hints) == 1:
        return f" ({next(iter(hints.values()))})"
    return f" ({'; '.join(f'{name}: {hint}' for name, hint in hints.items())})" if hints else ""


def build_parser() -> argparse.ArgumentParser:
    parser = WdmParser(prog="wdm", description="Test an order/stock/payment shop for consistency and speed.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_serve(sub)
    _add_consistency(sub)
    _add_stress(sub)
    _add_report(sub)
    _add_check(sub)
    _add_compare(sub)
    _add_grade(sub)
    _add_notebooks(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    stop_came_from("Ctrl-C")
    try:
        with stop_signals_as_ctrl_c():
            return args.handler(args)
    except WorkbenchError as e:
        print(f"wdm: {redact(str(e))}", file=sys.stderr)
        return EXIT_ERROR
    except OSError as e:  # a file wdm had to write or read (a full disk, a folder it may not write)
        print(f"wdm: {redact(os_error_sentence(e))}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        return _interrupted()


def _interrupted() -> int:
    print(f"wdm: interrupted ({stopped_by()}); what was recorded so far is kept.", file=sys.stderr)
    return EXIT_INTERRUPTED


def os_error_sentence(e: OSError) -> str:
    where = e.filename if e.filename is not None else "a file wdm needed"
    return (f"{where}: {e.strerror or e.__class__.__name__}; the command stopped there, and what was "
            f"written before is kept.")
