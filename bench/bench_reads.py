"""The read checker (wdm_lib.reads: every read judged, then summary.json's figures) over a
synthesised history of 1,000,000 reads and 1,000,000 writes: wall and CPU time, and peak memory,
median of --runs, each run in a fresh process that reads the history as `wdm check` does
(history.read_ops of a history.csv, timed apart), so its peak RSS is the history's own plus the
checker's: the whole process, which is what the 1 GiB target holds.

The history is a mixed load on a lagging shop: checkouts of 1 to 3 lines, additions of stock and
funds, 2xx, refused and unknown (an unknown one lands late, or never), reads of items, users and
orders over --seconds; most reads see the state as it was at a random moment of their own window,
--stale of them as it was 0.1 to 2 s before (a replica that lags), --impossible of them a value
no moment allowed.

    python bench/bench_reads.py [--runs 3] [--reads 1000000] [--writes 1000000]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

CHILD = """
import resource, sys, time
from wdm_lib import reads
from wdm_lib.history import read_ops
loading = time.perf_counter()
history = read_ops(sys.argv[1])
loading = time.perf_counter() - loading
before = int(open("/proc/self/statm").read().split()[1]) * resource.getpagesize() / 2**20
started, cpu = time.perf_counter(), time.process_time()
judged = reads.judge_reads(history)
found = reads.figures(judged)
seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
# This process's own high-water mark (ru_maxrss would keep the parent's, which forked it holding
# the synthesised history, across the exec).
peak = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM:")) / 1024
print(seconds, cpu, before, peak, loading, found["checked"], found["stale"], found["impossible"], found["non_monotonic"]["count"])
"""


def write_history(ops: list, path: Path) -> None:
    """The ops as history.csv rows, in the columns HistoryWriter writes."""
    import csv
    import json

    from wdm_lib.history import COLUMNS

    with open(path, "w", newline="", encoding="utf-8") as f:
        out = csv.writer(f)
        out.writerow(COLUMNS)
        for op in ops:
            out.writerow([op.op_id, op.kind, op.order_id, op.user_id, json.dumps(op.items),
                          "" if op.amount is None else op.amount, op.invoke_ns, op.invoke_ns, op.complete_ns,
                          op.status, op.outcome, "", ""])


def synthesise(n_reads: float, n_writes: float, seconds: float, stale: float, impossible: float,
               seed: float = 1) -> list:
    """A history of Op rows as read_ops returns them (see the module's docstring)."""
    import numpy as np

    from wdm_lib.history import (ADD_FUNDS, ADD_STOCK, CHECKOUT, CREATE_ITEM, CREATE_USER, FAIL, FIND_ITEM,
                                 FIND_ORDER, FIND_USER, OK, UNKNOWN, Op)

    rng = np.random.default_rng(int(seed))
    n_reads, n_writes = int(n_reads), int(n_writes)
    n_items, n_users, n_orders = 1_000, 10_000, 200_000
    t0, span = 1_700_000_000 * 10**9, int(seconds * 1e9)
    # Writes: kind 0 checkout, 1 add stock, 2 add funds; outcome 0 ok, 1 refused, 2 unknown.
    kind = rng.choice(3, n_writes, p=[0.6, 0.2, 0.2])
    outcome = rng.choice(3, n_writes, p=[0.85, 0.1, 0.05])
    w_inv = t0 + np.sort(rng.integers(0, span, n_writes))
    w_cmp = w_inv + rng.integers(1_000_000, 50_000_000, n_writes)
    applied = (outcome == 0) | ((outcome == 2) & (rng.random(n_writes) < 0.5))
    effect = w_inv + ((w_cmp - w_inv) * rng.random(n_writes)).astype(np.int64)
    late = outcome == 2
    effect[late] = w_inv[late] + rng.integers(0, 5 * 10**9, int(late.sum()))
    order = rng.integers(0, n_orders, n_writes)
    lines = rng.integers(1, 4, n_writes)
    items = rng.integers(0, n_items, (n_writes, 3))
    quantity = rng.integers(1, 4, (n_writes, 3))
    amount = rng.integers(1, 20, n_writes)
    user = rng.integers(0, n_users, n_writes)
    # The truth: every (balance, effect, delta) applied; a balance b < n_items is an item's.
    ent_b, ent_t, ent_d = [], [], []
    for slot in range(3):
        take = applied & (kind == 0) & (lines > slot)
        ent_b.append(items[take, slot]); ent_t.append(effect[take]); ent_d.append(-quantity[take, slot])
    for k, bal, d in ((0, n_items + user, -amount), (1, items[:, 0], quantity[:, 0]), (2, n_items + user, amount)):
        take = applied & (kind == k)
        ent_b.append(bal[take]); ent_t.append(effect[take]); ent_d.append(d[take])
    ent_b, ent_t, ent_d = map(np.concatenate, (ent_b, ent_t, ent_d))
    by = np.lexsort((ent_t, ent_b))
    ent_b, ent_t, ent_d = ent_b[by], ent_t[by], ent_d[by]
    running = np.cumsum(ent_d)
    starts = np.searchsorted(ent_b, np.arange(n_items + n_users))
    before_start = np.where(starts > 0, running[np.maximum(starts - 1, 0)], 0)
    paid_at = np.full(n_orders, np.iinfo(np.int64).max)
    np.minimum.at(paid_at, order[applied & (kind == 0)], effect[applied & (kind == 0)])
    # Reads: 40% items, 40% users, 20% orders, each seeing one moment (lagging for some).
    r_kind = rng.choice(3, n_reads, p=[0.4, 0.4, 0.2])
    r_inv = t0 + np.sort(rng.integers(0, span, n_reads))
    r_cmp = r_inv + rng.integers(500_000, 20_000_000, n_reads)
    seen = r_inv + ((r_cmp - r_inv) * rng.random(n_reads)).astype(np.int64)
    lagging = rng.random(n_reads) < stale
    seen[lagging] -= rng.integers(100_000_000, 2_000_000_000, int(lagging.sum()))
    r_bal = np.where(r_kind == 0, rng.integers(0, n_items, n_reads), n_items + rng.integers(0, n_users, n_reads))
    upto = np.searchsorted(ent_b * (4 * span) + (ent_t - t0 + span), r_bal * (4 * span) + (seen - t0 + span), "right")
    value = np.where(r_bal < n_items, 1_000, 500) + np.where(
        upto > starts[r_bal], running[np.maximum(upto - 1, 0)] - before_start[r_bal], 0)
    value[rng.random(n_reads) < impossible] += 100_000
    r_order = rng.integers(0, n_orders, n_reads)
    paid = (paid_at[r_order] <= seen).astype(int)

    ops: list = []
    add = ops.append
    for i in range(n_items):
        add(Op(len(ops), CREATE_ITEM, items=[[str(i), 0]], amount=1, invoke_ns=t0 - 10**9, complete_ns=t0 - 10**9, status=200, outcome=OK))
        add(Op(len(ops), ADD_STOCK, items=[[str(i), 1_000]], amount=1_000, invoke_ns=t0 - 10**9, complete_ns=t0 - 10**9, status=200, outcome=OK))
    for u in range(n_users):
        add(Op(len(ops), CREATE_USER, user_id=str(u), invoke_ns=t0 - 10**9, complete_ns=t0 - 10**9, status=200, outcome=OK))
        add(Op(len(ops), ADD_FUNDS, user_id=str(u), amount=500, invoke_ns=t0 - 10**9, complete_ns=t0 - 10**9, status=200, outcome=OK))
    names, statuses = (OK, FAIL, UNKNOWN), (200, 400, 503)
    w = zip(kind.tolist(), outcome.tolist(), w_inv.tolist(), w_cmp.tolist(), order.tolist(), lines.tolist(),
            items.tolist(), quantity.tolist(), amount.tolist(), user.tolist())
    r = zip(r_kind.tolist(), r_inv.tolist(), r_cmp.tolist(), r_bal.tolist(), value.tolist(), r_order.tolist(), paid.tolist())
    writes, reads = next(w, None), next(r, None)
    while writes is not None or reads is not None:   # one history, in the order replies came
        if reads is None or (writes is not None and writes[3] <= reads[2]):
            k, o, inv, cmp, order_, n, its, qs, cost, u = writes
            if k == 0:
                add(Op(len(ops), CHECKOUT, order_id=str(order_), user_id=str(u), items=[[str(its[j]), qs[j]] for j in range(n)],
                       amount=cost, invoke_ns=inv, complete_ns=cmp, status=statuses[o], outcome=names[o]))
            elif k == 1:
                add(Op(len(ops), ADD_STOCK, items=[[str(its[0]), qs[0]]], amount=qs[0], invoke_ns=inv, complete_ns=cmp,
                       status=statuses[o], outcome=names[o]))
            else:
                add(Op(len(ops), ADD_FUNDS, user_id=str(u), amount=cost, invoke_ns=inv, complete_ns=cmp,
                       status=statuses[o], outcome=names[o]))
            writes = next(w, None)
        else:
            k, inv, cmp, bal, v, order_, p = reads
            if k == 2:
                add(Op(len(ops), FIND_ORDER, order_id=str(order_), amount=p, invoke_ns=inv, complete_ns=cmp, status=200, outcome=OK))
            elif bal < n_items:
                add(Op(len(ops), FIND_ITEM, items=[[str(bal), 0]], amount=v, invoke_ns=inv, complete_ns=cmp, status=200, outcome=OK))
            else:
                add(Op(len(ops), FIND_USER, user_id=str(bal - n_items), amount=v, invoke_ns=inv, complete_ns=cmp, status=200,
                       outcome=OK))
            reads = next(r, None)
    return ops


def main() -> None:
    import os
    import tempfile

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--reads", type=int, default=1_000_000)
    ap.add_argument("--writes", type=int, default=1_000_000)
    ap.add_argument("--seconds", type=float, default=100.0, help="how long the synthesised load lasted")
    ap.add_argument("--stale", type=float, default=0.2, help="share of reads served by a lagging replica")
    ap.add_argument("--impossible", type=float, default=0.001, help="share of reads of a value never possible")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "history.csv"
        write_history(synthesise(args.reads, args.writes, args.seconds, args.stale, args.impossible), path)
        print(f"synthesised {args.reads:,} reads and {args.writes:,} writes")
        results = []
        for i in range(args.runs):
            done = subprocess.run([sys.executable, "-c", CHILD, str(path)], capture_output=True, text=True, check=True,
                                  cwd=ROOT)
            seconds, cpu, before, peak, loading, checked, stale, impossible, monotonic = map(float, done.stdout.split())
            results.append((seconds, cpu, peak, before, loading))
            print(f"run {i + 1}: {seconds:.2f} s ({cpu:.2f} CPU-s), peak RSS {peak:.0f} MiB, {before:.0f} MiB of it the "
                  f"history as read_ops gives it, read in {loading:.1f} s (load average {os.getloadavg()[0]:.1f}); "
                  f"{checked:,.0f} reads checked, {stale:,.0f} stale, {impossible:,.0f} impossible, "
                  f"{monotonic:,.0f} non-monotonic")
    med = [statistics.median(r[k] for r in results) for k in range(5)]
    print(f"median: read checker over {args.reads:,} reads and {args.writes:,} writes {med[0]:.2f} s ({med[1]:.2f} CPU-s), "
          f"peak RSS {med[2]:.0f} MiB of which the history {med[3]:.0f} MiB (read in {med[4]:.1f} s): the checker's own "
          f"{med[2] - med[3]:.0f} MiB ({args.runs} runs)")


if __name__ == "__main__":
    main()
