"""The mixed consistency workload's cost (figures for the README).

1. End to end: `wdm consistency --workload mixed` at its default sizes against the embedded
   reference shop, without the quiet window (`--quiet 0`: one read, judged at once), against the
   default `original` workload the same way, the two interleaved, median of --repeat runs each.
   Target: mixed within 2x original.
2. The checkers over a mixed history of --ops operations (default 100,000): the plan of a mixed
   scenario sized to make that many, played against an in-memory shop that is correct (with one
   operation in a hundred of unknown outcome, half of those applied), then every consistency
   checker timed over the history and the state. Target: under 5 s.
3. What the reads cost the run (`--parts reads`): `wdm consistency --workload mixed --quiet 0` with
   --reads-orders orders and `--read-weight 1` against the same with `--read-weight 0`,
   interleaved, a seed per repeat: the load phase's time (summary.json's phases_s.checkouts) and,
   from the history, the reads made and their round trips. Target: the reads add to the load no
   more than their own round trips take of its in-flight slots (their summed latency / concurrency).

    python bench/bench_mixed.py [--repeat 5] [--ops 100000] [--parts e2e,checkers,reads]
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time

from wdm_lib.checkers import check_consistency
from wdm_lib.history import ADD_FUNDS, ADD_STOCK, CHECKOUT, FAIL, FIND_ITEM, FIND_USER, OK, UNKNOWN, Op
from wdm_lib.workloads.consistency_scenario import ConsistencyScenario
from wdm_lib.workloads.mixed import plan


def end_to_end(repeat: int) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {"original": [], "mixed": []}
    with tempfile.TemporaryDirectory() as runs:
        for _ in range(repeat):
            for workload in times:
                start = time.perf_counter()
                subprocess.run([sys.executable, "-m", "wdm_lib", "consistency", "--workload", workload, "--quiet", "0",
                                "--runs-dir", runs], check=True, stdout=subprocess.DEVNULL)
                times[workload].append(time.perf_counter() - start)
    return times


def read_cost(repeat: int, n_orders: int) -> tuple[dict[float, list[tuple]], int]:
    """Per read weight (0, 1): per run, (load phase s, operations of the load, reads, the reads'
    summed latency s); and the operations in flight at most."""
    import csv
    import glob
    import json

    from wdm_lib.history import READS

    sc = ConsistencyScenario(workload="mixed")
    found: dict[float, list[tuple]] = {0.0: [], 1.0: []}
    with tempfile.TemporaryDirectory() as runs:
        for rep in range(repeat):
            for weight in found:
                folder = os.path.join(runs, f"{weight}-{rep}")
                subprocess.run([sys.executable, "-m", "wdm_lib", "consistency", "--workload", "mixed", "--quiet", "0",
                                "--n-orders", str(n_orders), "--seed", str(11 + rep), "--read-weight", str(weight),
                                "--runs-dir", folder], check=True, stdout=subprocess.DEVNULL)
                run = glob.glob(os.path.join(folder, "*", ""))[0]
                with open(os.path.join(run, "summary.json"), encoding="utf-8") as f:
                    load_s = json.load(f)["phases_s"]["checkouts"]
                with open(os.path.join(run, "history.csv"), newline="", encoding="utf-8") as f:
                    rows = [r for r in csv.DictReader(f) if r["kind"] in (CHECKOUT, ADD_FUNDS, ADD_STOCK) + READS]
                reads = [r for r in rows if r["kind"] in READS]
                found[weight].append((load_s, len(rows), len(reads),
                                      sum(int(r["complete_ns"]) - int(r["invoke_ns"]) for r in reads) / 1e9))
    return found, sc.concurrency


def played(sc: ConsistencyScenario, unknown_share: float = 0.01) -> tuple[list[Op], dict]:
    """The plan's load played, one operation at a time, against a correct in-memory shop: its
    history (ids are indices as strings) and the state the checkers take."""
    rng = random.Random(sc.seed)
    p = plan(sc)
    items = [f"i{i}" for i in range(sc.n_items)]
    users = [f"u{u}" for u in range(sc.n_users)]
    orders = [(users[u], [[items[i], q] for i, q in lines], sum(p.prices[i] * q for i, q in lines))
              for u, lines in p.orders]
    stock = {i: sc.item_stock for i in items}
    credit = {u: sc.user_credit for u in users}
    paid = [False] * len(orders)
    history: list[Op] = []
    clock = 0

    def row(kind: str, applied: bool, **fields) -> None:
        nonlocal clock
        outcome = OK if applied else FAIL
        if rng.random() < unknown_share:
            outcome = UNKNOWN
        history.append(Op(len(history), kind, intended_ns=clock, invoke_ns=clock, complete_ns=clock + 500,
                          status={OK: 200, FAIL: 409, UNKNOWN: 503}[outcome], outcome=outcome, **fields))
        clock += 1000

    for step in p.steps:
        if step.kind == CHECKOUT:
            user, lines, cost = orders[step.index]
            need: dict[str, int] = {}
            for item, q in lines:
                need[item] = need.get(item, 0) + q
            can = credit[user] >= cost and all(stock[i] >= q for i, q in need.items())
            # An unknown outcome either way: applied or not, as a shop that failed to answer would.
            if can:
                for i, q in need.items():
                    stock[i] -= q
                credit[user] -= cost
                paid[step.index] = True
            row(CHECKOUT, can, order_id=f"o{step.index}", user_id=user, items=lines, amount=cost)
        elif step.kind == ADD_FUNDS:
            credit[users[step.index]] += step.amount
            row(ADD_FUNDS, True, user_id=users[step.index], amount=step.amount)
        elif step.kind == ADD_STOCK:
            stock[items[step.index]] += step.amount
            row(ADD_STOCK, True, items=[[items[step.index], step.amount]], amount=step.amount)
        elif step.kind == FIND_ITEM:
            row(FIND_ITEM, True, items=[[items[step.index], 0]], amount=stock[items[step.index]])
        elif step.kind == FIND_USER:
            row(FIND_USER, True, user_id=users[step.index], amount=credit[users[step.index]])
        else:
            user, lines, _ = orders[step.index]
            row(step.kind, True, order_id=f"o{step.index}", user_id=user, items=lines, amount=int(paid[step.index]))
    state = {
        "initial": {"items": {i: {"stock": sc.item_stock, "price": p.prices[k]} for k, i in enumerate(items)},
                    "users": {u: {"credit": sc.user_credit} for u in users}, "after_op": -1},
        "final": {"items": {i: {"stock": stock[i], "price": p.prices[k]} for k, i in enumerate(items)},
                  "users": {u: {"credit": credit[u]} for u in users},
                  "orders": {f"o{k}": {"paid": paid[k], "items": lines, "user_id": user, "total_cost": cost}
                             for k, (user, lines, cost) in enumerate(orders)}},
    }
    return history, state


def checkers(ops: int, repeat: int) -> tuple[int, list[float], bool]:
    # The default weights make about 2 operations per order; contention as the defaults have it.
    sc = ConsistencyScenario(workload="mixed", n_orders=ops // 2, n_items=200, item_stock=300, n_users=5000,
                             user_credit=25, seed=1)
    history, state = played(sc)
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        result = check_consistency(sc, history, state)
        times.append(time.perf_counter() - start)
    return len(history), times, result.valid


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--ops", type=int, default=100_000)
    ap.add_argument("--parts", default="e2e,checkers")
    ap.add_argument("--reads-orders", type=int, default=2000, help="orders of the runs that --parts reads makes")
    args = ap.parse_args()
    parts = args.parts.split(",")
    if "e2e" in parts:
        e2e = end_to_end(args.repeat)
        for workload, times in e2e.items():
            print(f"end to end, --workload {workload} --quiet 0: median {statistics.median(times):.2f} s "
                  f"(runs: {', '.join(f'{t:.2f}' for t in times)})")
        print(f"  mixed / original: {statistics.median(e2e['mixed']) / statistics.median(e2e['original']):.2f}")
    if "checkers" in parts:
        n, times, valid = checkers(args.ops, args.repeat)
        print(f"checkers over a mixed history of {n:,} operations: median {statistics.median(times):.2f} s "
              f"(runs: {', '.join(f'{t:.2f}' for t in times)}), verdict valid={valid}")
    if "reads" in parts:
        found, concurrency = read_cost(args.repeat, args.reads_orders)
        med = {w: [statistics.median(run[k] for run in runs) for k in range(4)] for w, runs in found.items()}
        for w, (load_s, ops, reads, latency_s) in med.items():
            print(f"--read-weight {w:g}: load phase median {load_s:.2f} s for {ops:,.0f} operations, {reads:,.0f} of "
                  f"them reads, whose round trips sum to {latency_s:.1f} s (runs: "
                  f"{', '.join(f'{run[0]:.2f}' for run in found[w])})")
        added, share = med[1.0][0] - med[0.0][0], med[1.0][3] / concurrency
        print(f"  the reads add {added:.2f} s to the load; their round trips take {share:.2f} s of its {concurrency} "
              f"in-flight slots")
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
