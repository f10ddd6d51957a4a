"""What `wdm grade` adds per team beyond the runs themselves: its wall time minus the wall time of
the consistency and stress runs it made and reported, per team, median of --repeat gradings of
--teams teams (each a urls file pointing at one embedded reference shop).

    python bench/bench_grade.py [--teams 3] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

from wdm_lib.grade import grade
from wdm_lib.reference.process import ReferenceShopProcess
from wdm_lib.workloads.stress.scenario import StressScenario

STRESS = StressScenario(users=4, spawn_rate=4, run_time=3, wait=0, n_items=100, n_users=100, n_orders=100)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--teams", type=int, default=3)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    overheads = []
    with ReferenceShopProcess() as shop, tempfile.TemporaryDirectory() as tmp:
        files = []
        for i in range(args.teams):
            path = Path(tmp) / f"team{i:02d}.json"
            path.write_text(json.dumps(shop.urls()))
            files.append(path)
        for r in range(args.repeat):
            runs_dir = Path(tmp) / f"g{r}" / "runs"
            started = time.perf_counter()
            rows, _, _ = grade(files, {"quiet_s": 1}, STRESS, runs_dir, runs_dir.parent, say=lambda s: None)
            total = time.perf_counter() - started
            commands = sum(row.consistency.seconds + row.stress.seconds for row in rows)
            overheads.append((total - commands) / args.teams)
            print(f"grading {r + 1}: {total:.1f} s in all, {commands:.1f} s in the runs and their reports, "
                  f"{overheads[-1] * 1000:.0f} ms per team beyond them")
    print(f"median: wdm grade adds {statistics.median(overheads) * 1000:.0f} ms per team beyond the runs "
          f"({args.teams} teams, {args.repeat} gradings)")


if __name__ == "__main__":
    main()
