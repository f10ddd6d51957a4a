"""Faults and paced load benchmarks (figures for the README).

1. Paced rate: `wdm consistency --rate R` on the embedded reference shop; the achieved send rate
   (checkouts sent over the time from the first send to the last) against R, and how far behind
   its due time a checkout was sent (invoke_ns - intended_ns), for each R.
2. Fault step lateness under that load: a schedule of shell steps (`true`) spread over the run;
   how late each step started against its scheduled time (the fault rows' invoke_ns - intended_ns).

Each rate is run --repeat times; medians are quoted (the machine is shared and noisy).

    python bench/bench_faults.py [--rates 500,1000,2000] [--seconds 10] [--repeat 3]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

import numpy as np

from wdm_lib.history import FAULT, read_ops
from wdm_lib.runner import run_consistency
from wdm_lib.workloads.consistency import ConsistencyScenario


def one_run(rate: int, seconds: float, folder: Path) -> dict:
    n = int(rate * seconds)
    steps = 8
    schedule = folder / "faults.yaml"
    schedule.write_text("faults:\n" + "".join(
        f"  - name: step {i}\n    at: {seconds * (i + 0.5) / steps:.3f}s\n    run: 'true'\n" for i in range(steps)))
    sc = ConsistencyScenario(n_items=100, item_stock=n, n_users=1000, user_credit=n, n_orders=n, rate=rate,
                             concurrency=100, quiet_s=0.5, seed=1)
    run, summary = run_consistency(sc, runs_dir=folder / "runs", faults=schedule, progress=False)
    ops = read_ops(run.file("history.csv"))
    checkouts = [op for op in ops if op.kind == "checkout"]
    sent = sorted(op.invoke_ns for op in checkouts)
    behind_ms = np.array([(op.invoke_ns - op.intended_ns) / 1e6 for op in checkouts])
    late_ms = [(op.invoke_ns - op.intended_ns) / 1e6 for op in ops if op.kind == FAULT and op.fault]
    return {"achieved": (len(sent) - 1) / ((sent[-1] - sent[0]) / 1e9), "valid": summary["valid"],
            "behind_p50": float(np.percentile(behind_ms, 50, method="inverted_cdf")),
            "behind_p99": float(np.percentile(behind_ms, 99, method="inverted_cdf")),
            "late_max": max(late_ms), "late_median": statistics.median(late_ms)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rates", default="500,1000,2000")
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    for rate in (int(r) for r in args.rates.split(",")):
        results = []
        for _ in range(args.repeat):
            with tempfile.TemporaryDirectory() as tmp:
                results.append(one_run(rate, args.seconds, Path(tmp)))
        med = {k: statistics.median(r[k] for r in results) for k in results[0] if k != "valid"}
        each = ", ".join(f"{r['achieved']:.1f}" for r in results)
        print(f"rate {rate}/s: achieved median {med['achieved']:.1f}/s ({(med['achieved'] / rate - 1) * 100:+.2f}%; "
              f"runs {each}); sent behind due p50 "
              f"{med['behind_p50']:.2f} ms, p99 {med['behind_p99']:.2f} ms; fault steps late median "
              f"{med['late_median']:.2f} ms, worst of a run (median over runs) {med['late_max']:.2f} ms, "
              f"worst overall {max(r['late_max'] for r in results):.2f} ms; verdicts "
              f"{'all consistent' if all(r['valid'] for r in results) else 'NOT all consistent'}")


if __name__ == "__main__":
    main()
