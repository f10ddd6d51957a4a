"""Time and peak memory of the report paths, each measured in a fresh subprocess.

1. Stress: load a run folder with 1,000,000 raw request rows (synthesised, in the format
   `wdm stress run` writes) and draw every chart of wdm_lib/notebooks/stress.ipynb: load_requests,
   Locust's CSVs, the exact percentile table beside Locust's, step figures, and the four charts
   saved as PNG. Peak RSS is the child's resource.getrusage ru_maxrss.
2. Consistency: papermill executes wdm_lib/notebooks/consistency.ipynb with its default (original)
   scenario against the embedded reference shop, kernel start included.

    python bench/bench_analysis.py [--runs 5] [--rows 1000000]

Prints each run's figures and the medians.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))  # the synthetic run folder shared with the tests

STEPS = [50, 100, 200, 400, 800]

# Runs in the child: everything the stress notebook does with a run folder, minus the kernel.
STRESS_CHILD = """
import io, json, resource, sys, time
started = time.perf_counter()
from wdm_lib import analysis, plots
run = sys.argv[1]
scenario = json.load(open(run + "/manifest.json"))["scenario"]
requests = analysis.load_requests(run)
history = analysis.load_locust_history(run)
exact = analysis.stress_percentiles(requests, analysis.load_locust_stats(run))
total = exact.loc[analysis.LOCUST_TOTAL]
steps = analysis.step_figures(requests, scenario["steps"], scenario["step_time"])
for fig in (plots.throughput(history), plots.percentiles_over_time(history),
            plots.latency_histogram(requests["latency_ms"], {p: total[p] for p in ("p50", "p95", "p99")}),
            plots.steps_throughput_p99(steps)):
    fig.savefig(io.BytesIO(), format="png")
print(json.dumps({"rows": len(requests), "seconds": time.perf_counter() - started,
                  "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""

CONSISTENCY_CHILD = """
import json, sys, time
import papermill
started = time.perf_counter()
papermill.execute_notebook(sys.argv[1], sys.argv[2], parameters={"runs_dir": sys.argv[3]},
                           kernel_name="python3", progress_bar=False)
print(json.dumps({"seconds": time.perf_counter() - started}))
"""


def child(code: str, *args: str) -> dict:
    done = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, cwd=ROOT)
    if done.returncode:
        raise SystemExit(done.stderr)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args()
    from synthetic_stress import make_stress_run

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        started = time.perf_counter()
        run = make_stress_run(tmp / "stress", rows=args.rows, duration_s=300, steps=STEPS, processes=4)
        size = sum(f.stat().st_size for f in run.glob("requests-*.csv")) / 2**20
        print(f"synthesised {args.rows:,} rows ({size:.0f} MiB of requests-*.csv) in "
              f"{time.perf_counter() - started:.1f} s")

        stress = []
        for i in range(args.runs):
            stress.append(child(STRESS_CHILD, str(run)))
            print(f"stress run {i + 1}: {stress[-1]['seconds']:.2f} s, peak RSS {stress[-1]['peak_rss_mib']:.0f} MiB")
        consistency = []
        for i in range(args.runs):
            out = tmp / f"consistency-{i}"
            consistency.append(child(CONSISTENCY_CHILD, str(ROOT / "wdm_lib" / "notebooks" / "consistency.ipynb"),
                                     str(tmp / f"out-{i}.ipynb"), str(out)))
            print(f"consistency notebook run {i + 1}: {consistency[-1]['seconds']:.2f} s")

    print(f"median: stress load + charts of {args.rows:,} rows "
          f"{statistics.median(r['seconds'] for r in stress):.2f} s, "
          f"peak RSS {statistics.median(r['peak_rss_mib'] for r in stress):.0f} MiB; "
          f"consistency.ipynb end to end {statistics.median(r['seconds'] for r in consistency):.2f} s "
          f"({args.runs} runs each)")


if __name__ == "__main__":
    main()
