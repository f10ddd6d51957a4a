"""`wdm compare` of five stress runs of 1,000,000 raw request rows each: wall time and peak memory
(the largest of the command and the notebook kernel it starts: getrusage of the children), median
of --runs. The run folders are synthesised in the format `wdm stress run` writes.

    python bench/bench_compare.py [--runs 3] [--rows 1000000] [--count 5]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))  # the synthetic run folder shared with the tests

CHILD = """
import resource, subprocess, sys, time
started = time.perf_counter()
subprocess.run([sys.executable, "-m", "wdm_lib", "compare", *sys.argv[1:]], check=True, stdout=subprocess.DEVNULL)
print(time.perf_counter() - started, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024)
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--count", type=int, default=5)
    args = ap.parse_args()
    from synthetic_stress import make_stress_run

    with tempfile.TemporaryDirectory() as tmp:
        runs_dir = Path(tmp) / "reports" / "runs"
        made = [make_stress_run(runs_dir / f"run{i}", rows=args.rows, duration_s=300, steps=[50, 100, 200, 400],
                                processes=4, seed=i, run_id=f"run{i}") for i in range(args.count)]
        print(f"synthesised {args.count} runs of {args.rows:,} rows")
        results = []
        for i in range(args.runs):
            done = subprocess.run([sys.executable, "-c", CHILD, *map(str, made)], capture_output=True, text=True,
                                  check=True)
            seconds, peak = map(float, done.stdout.split())
            results.append((seconds, peak))
            print(f"run {i + 1}: {seconds:.1f} s, peak RSS {peak:.0f} MiB")
    print(f"median: wdm compare of {args.count} runs x {args.rows:,} rows {statistics.median(r[0] for r in results):.1f} s, "
          f"peak RSS {statistics.median(r[1] for r in results):.0f} MiB ({args.runs} runs)")


if __name__ == "__main__":
    main()
