"""`wdm report` of one synthesised stress run: wall time and CPU (the command and the notebook
kernel it starts), medians of --runs, side by side with the same command made to import
rfc3987-syntax first, as it did before report.py kept that package out (jsonschema under nbformat
imports it when JupyterLab has installed it, and it builds an Earley parser as it is imported).
The two variants alternate, so a busy moment of the machine costs both alike.

    python bench/bench_report.py [--runs 5] [--rows 20000]
"""

from __future__ import annotations

import argparse
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))  # the synthetic run folder shared with the tests

VARIANTS = {
    "as shipped": "from wdm_lib.cli import main; raise SystemExit(main(sys.argv[1:]))",
    "rfc3987-syntax imported": "import jsonschema; from wdm_lib.cli import main; raise SystemExit(main(sys.argv[1:]))",
}


def timed(code: str, args: list[str]) -> tuple[float, float]:
    """(wall seconds, CPU seconds of the command and its children) of one report."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import sys; " + code, *args], check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--rows", type=int, default=20_000)
    args = ap.parse_args()
    from synthetic_stress import make_stress_run

    results: dict[str, list[tuple[float, float]]] = {name: [] for name in VARIANTS}
    with tempfile.TemporaryDirectory() as tmp:
        run = make_stress_run(Path(tmp) / "reports" / "runs" / "run0", rows=args.rows, duration_s=60)
        command = ["report", str(run), "--reports-dir", str(Path(tmp) / "out")]
        for i in range(args.runs):
            for name, code in VARIANTS.items():
                results[name].append(timed(code, command))
                wall, cpu = results[name][-1]
                print(f"run {i + 1}, {name}: {wall:.2f} s, {cpu:.2f} CPU-s")
    for name, got in results.items():
        print(f"median, {name}: {statistics.median(w for w, _ in got):.2f} s, "
              f"{statistics.median(c for _, c in got):.2f} CPU-s ({args.runs} runs)")


if __name__ == "__main__":
    main()
