"""`wdm consistency` at scale, and against the original benchmark (figures for the README).

1. Scale: `wdm consistency --n-orders N --n-users N --quiet Q` against the embedded reference shop,
   each run a fresh process: wall time end to end, the workbench process's own peak RSS (the shop
   is a child process and is not counted: getrusage(RUSAGE_SELF) of the process that ran `wdm`),
   the run's phases and how many whole passes the final read-back took, from summary.json.
   Targets at 100,000: under 60 s and under 300 MB.

       python bench/bench_scale.py scale [--sizes 10000,100000] [--quiet 1] [--repeat 3]

2. Against the original: the original benchmark's consistency test (github.com/delftdata/
   wdm-project-benchmark, `consistency-test/`: populate 1 item and 1000 users, create 1000 orders,
   1000 concurrent checkouts, verify by reading every user and item once) and `wdm consistency
   --quiet 0` (the default scenario, one read, judged at once), alternating, each against an
   embedded reference shop started for it, wall time of the whole command. The original is not
   shipped with the workbench; clone it and pass its folder:

       git clone https://github.com/delftdata/wdm-project-benchmark /tmp/wdm-project-benchmark
       python bench/bench_scale.py original --original /tmp/wdm-project-benchmark [--repeat 5]

   The original reads `../urls.json` from its `consistency-test/` folder, so the bench copies that
   folder into a temporary one beside a urls.json naming the shop, and runs
   `python run_consistency_test.py` there with this interpreter (it needs aiohttp, which the
   workbench installs). The time to start the shop is outside both figures.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from wdm_lib.reference.process import ReferenceShopProcess

# Runs `wdm` in this process so that RUSAGE_SELF is the workbench alone, then prints its peak.
MEASURED = """
import resource, runpy, sys
sys.argv = ["wdm"] + sys.argv[1:]
try:
    runpy.run_module("wdm_lib", run_name="__main__")
finally:
    sys.stderr.write("PEAK_KB %d\\n" % resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def one_scale_run(n: int, quiet: float, runs: str) -> dict:
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", MEASURED, "consistency", "--n-orders", str(n), "--n-users", str(n),
                           "--quiet", str(quiet), "--runs-dir", runs], capture_output=True, text=True)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"wdm consistency at {n} exited {done.returncode}:\n{done.stdout}\n{done.stderr}")
    peak_mb = next(int(line.split()[1]) for line in done.stderr.splitlines() if line.startswith("PEAK_KB")) / 1024
    folder = next(line.split(": ", 1)[1] for line in done.stdout.splitlines() if line.startswith("run folder: "))
    summary = json.loads((Path(folder) / "summary.json").read_text())
    return {"wall_s": wall, "peak_mb": peak_mb, "phases_s": summary["phases_s"],
            "passes": summary["read_back"]["reads"],
            "pass_s": summary["read_back"].get("pass_s"), "verdict": summary["verdict"],
            "settled": summary["settled"]}


def scale(sizes: list[int], quiet: float, repeat: int) -> None:
    with tempfile.TemporaryDirectory() as runs:
        for n in sizes:
            results = []
            for _ in range(repeat):
                r = one_scale_run(n, quiet, runs)
                print(f"  {n}: {r['wall_s']:.1f} s, {r['peak_mb']:.0f} MB, {r['passes']} passes, longest "
                      f"{r['pass_s']} s, "
                      f"{r['verdict']}, phases {r['phases_s']}, load {os.getloadavg()[0]:.1f}", flush=True)
                results.append(r)
            med = {k: statistics.median(r["phases_s"][k] for r in results) for k in results[0]["phases_s"]}
            print(f"{n} orders and users, --quiet {quiet:g}: median {statistics.median(r['wall_s'] for r in results):.1f} s "
                  f"(runs {', '.join(format(r['wall_s'], '.1f') for r in results)}), peak "
                  f"{statistics.median(r['peak_mb'] for r in results):.0f} MB, passes "
                  f"{sorted(r['passes'] for r in results)}, phases (median) "
                  + ", ".join(f"{k} {v:.1f}" for k, v in med.items()), flush=True)


def _original_folder(original: Path, urls: dict, into: Path) -> Path:
    tests = original / "consistency-test"
    if not (tests / "run_consistency_test.py").is_file():
        raise SystemExit(f"--original {original}: no consistency-test/run_consistency_test.py there; expected a clone "
                         f"of https://github.com/delftdata/wdm-project-benchmark")
    shutil.copytree(tests, into / "consistency-test")
    (into / "urls.json").write_text(json.dumps(urls))
    return into / "consistency-test"


def against_original(original: Path, repeat: int) -> None:
    times: dict[str, list[float]] = {"original": [], "wdm": []}
    with tempfile.TemporaryDirectory() as tmp:
        for k in range(repeat):
            for tool in (("original", "wdm") if k % 2 == 0 else ("wdm", "original")):
                with ReferenceShopProcess() as shop, tempfile.TemporaryDirectory(dir=tmp) as work:
                    if tool == "original":
                        folder = _original_folder(original, shop.urls(), Path(work))
                        command, cwd = [sys.executable, "run_consistency_test.py"], folder
                    else:
                        (Path(work) / "urls.json").write_text(json.dumps(shop.urls()))
                        command, cwd = [sys.executable, "-m", "wdm_lib", "consistency", "--urls", "urls.json",
                                        "--quiet", "0", "--runs-dir", "runs"], work
                    start = time.perf_counter()
                    subprocess.run(command, cwd=cwd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                    times[tool].append(time.perf_counter() - start)
            print(f"  round {k + 1}: original {times['original'][-1]:.2f} s, wdm --quiet 0 {times['wdm'][-1]:.2f} s, "
                  f"load {os.getloadavg()[0]:.1f}", flush=True)
    o, w = statistics.median(times["original"]), statistics.median(times["wdm"])
    ratios = sorted(b / a for a, b in zip(times["original"], times["wdm"]))
    print(f"original {o:.2f} s ({min(times['original']):.2f}-{max(times['original']):.2f}), wdm --quiet 0 {w:.2f} s "
          f"({min(times['wdm']):.2f}-{max(times['wdm']):.2f}): ratio of medians {w / o:.2f}, "
          f"per round {ratios[0]:.2f}-{ratios[-1]:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parts = parser.add_subparsers(dest="part", required=True)
    s = parts.add_parser("scale")
    s.add_argument("--sizes", default="10000,100000")
    s.add_argument("--quiet", type=float, default=1.0)
    s.add_argument("--repeat", type=int, default=3)
    o = parts.add_parser("original")
    o.add_argument("--original", type=Path, required=True, help="a clone of delftdata/wdm-project-benchmark")
    o.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    if args.part == "scale":
        scale([int(n) for n in args.sizes.split(",")], args.quiet, args.repeat)
    else:
        against_original(args.original, args.repeat)


if __name__ == "__main__":
    main()
