"""`wdm`: a thin shell over wdm_lib. Parses options, calls the library, turns user errors into one
sentence and an exit code (0 consistent / done, 1 inconsistent, 2 the run could not be made)."""

from __future__ import annotations

import argparse
import sys

from wdm_lib.errors import WorkbenchError

EXIT_OK, EXIT_INCONSISTENT, EXIT_ERROR, EXIT_INTERRUPTED = 0, 1, 2, 130


def _add_serve(sub: argparse._SubParsersAction) -> None:
    from wdm_lib.reference.anomalies import ANOMALIES

    p = sub.add_parser("serve", help="run the embedded reference shop")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000, help="0 picks a free port (default 8000)")
    p.add_argument("--data", default=None, metavar="DIR",
                   help="folder for the SQLite store (default: a temporary folder, removed on exit)")
    p.add_argument("--anomaly", choices=sorted(ANOMALIES), default=None,
                   help="turn on one named bug (default: none, the shop is consistent)")
    p.set_defaults(handler=_serve)


def _serve(args: argparse.Namespace) -> int:
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
    p.add_argument("--anomaly", default=None, metavar="NAME",
                   help="with the embedded shop only: turn on one of its named bugs")
    p.add_argument("--runs-dir", default=None, metavar="DIR", help="where run folders go (default reports/runs)")


def _add_consistency(sub: argparse._SubParsersAction) -> None:
    from wdm_lib.workloads.consistency import ConsistencyScenario

    d = ConsistencyScenario(seed=0)
    p = sub.add_parser("consistency", help="seed, fire concurrent checkouts, check the final state",
                       description="Exit 0 when consistent, 1 when not, 2 when the run could not be made.")
    _add_target_options(p)
    _add_scenario_options(p, d)
    p.add_argument("--items-per-order", type=int, default=d.items_per_order, metavar="N",
                   help=f"distinct items in each order (default {d.items_per_order})")
    p.add_argument("--quantity", type=int, default=d.quantity, metavar="N",
                   help=f"quantity of each item in an order (default {d.quantity})")
    p.add_argument("--concurrency", type=int, default=d.concurrency, metavar="N",
                   help=f"requests in flight at most (default {d.concurrency}: every checkout at once)")
    p.add_argument("--timeout", dest="timeout_s", type=float, default=d.timeout_s, metavar="SECONDS",
                   help=f"per-request timeout (default {d.timeout_s:g})")
    p.add_argument("--settle", dest="settle_s", type=float, default=d.settle_s, metavar="SECONDS",
                   help=f"how long the final read-back may wait for the target to go quiet (default {d.settle_s:g})")
    p.add_argument("--seed", type=int, default=None, help="random seed, to reproduce a run (default: random)")
    p.add_argument("--report", action="store_true", help="render the HTML report at the end")
    p.set_defaults(handler=_consistency)


def _consistency(args: argparse.Namespace) -> int:
    from dataclasses import fields

    from wdm_lib.reference.anomalies import ANOMALIES
    from wdm_lib.runner import run_consistency
    from wdm_lib.summary import render_table
    from wdm_lib.workloads.consistency import ConsistencyScenario

    if args.anomaly is not None and args.anomaly not in ANOMALIES:
        raise WorkbenchError(f"--anomaly {args.anomaly!r} is not known; expected one of {', '.join(sorted(ANOMALIES))}.")
    scenario = ConsistencyScenario(**{f.name: getattr(args, f.name) for f in fields(ConsistencyScenario)})
    run, summary = run_consistency(scenario, urls=args.urls, anomaly=args.anomaly, runs_dir=args.runs_dir)
    print(render_table(summary))
    print(f"run folder: {run.path}")
    if args.report:
        _render_report(run.path)
    return EXIT_OK if summary["valid"] else EXIT_INCONSISTENT


def _render_report(run_path) -> None:
    from wdm_lib.report import render

    html = render(run_path)
    print(f"report: {html}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="wdm", description="Test an order/stock/payment shop for consistency and speed.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_serve(sub)
    _add_consistency(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.handler(args)
    except WorkbenchError as e:
        print(f"wdm: {e}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("wdm: interrupted (Ctrl-C); what was recorded so far is kept.", file=sys.stderr)
        return EXIT_INTERRUPTED
