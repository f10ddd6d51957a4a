"""Consistency workload benchmarks (figures for the README).

1. End to end: `wdm consistency` with the default scenario against the embedded reference shop
   (start, seed, checkouts, read-back until quiet, checks, files written), wall time, median of
   --repeat runs; interleaved with the same run under `--quiet 0` (judge the first read), so the
   price of the quiet window is measured side by side and everything else must stay under 3 s.
2. Client cost: CPU microseconds per request (resource.getrusage) of the workbench's ShopClient
   against Locust's FastHttpUser, both issuing GET /stock/find/{id} against the same reference
   shop, side by side in one run, median of --repeat rounds each.

    python bench/bench_consistency.py [--repeat 5] [--requests 20000]
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
import urllib.request
from pathlib import Path

from wdm_lib.client import ShopClient
from wdm_lib.config import parse_urls
from wdm_lib.reference.process import ReferenceShopProcess

LOCUSTFILE = textwrap.dedent("""
    from locust import task, constant
    from locust.contrib.fasthttp import FastHttpUser

    class Reader(FastHttpUser):
        wait_time = constant(0)

        @task
        def find(self):
            self.client.get("/stock/find/0", name="/stock/find/[item_id]")
""")


def end_to_end(repeat: int) -> dict[str, list[float]]:
    """Wall seconds per run, by quiet window: the default, and 0 (one read, no waiting)."""
    times: dict[str, list[float]] = {"default": [], "0": []}
    with tempfile.TemporaryDirectory() as runs:
        for _ in range(repeat):
            for quiet, extra in (("default", []), ("0", ["--quiet", "0"])):
                start = time.perf_counter()
                subprocess.run([sys.executable, "-m", "wdm_lib", "consistency", "--runs-dir", runs, *extra],
                               check=True, stdout=subprocess.DEVNULL)
                times[quiet].append(time.perf_counter() - start)
    return times


def cpu_now() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def workbench_client(base_url: str, requests: int, concurrency: int) -> float:
    """CPU µs per request of ShopClient, the bounded fan-out the consistency workload uses."""
    target = parse_urls({k: base_url for k in ("ORDER_URL", "PAYMENT_URL", "STOCK_URL")}, "bench")

    async def go() -> float:
        async with ShopClient(target, timeout_s=30, connections=concurrency) as client:
            await client.find_item("0")  # connection set-up outside the measurement
            before = cpu_now()
            replies = await asyncio.gather(*(client.find_item("0") for _ in range(requests)))
            spent = cpu_now() - before
        assert all(r.outcome == "ok" for r in replies)
        return spent / requests * 1e6
    return asyncio.run(go())


def _locust_once(base_url: str, concurrency: int, seconds: int, workdir: Path) -> tuple[float, int]:
    locustfile = workdir / "reader.py"
    locustfile.write_text(LOCUSTFILE)
    prefix = workdir / f"bench{seconds}"
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run([sys.executable, "-m", "locust", "-f", str(locustfile), "--headless", "--host", base_url,
                    "-u", str(concurrency), "-r", str(concurrency), "-t", f"{seconds}s", "--csv", str(prefix),
                    "--only-summary", "--loglevel", "ERROR"],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    with open(f"{prefix}_stats.csv", newline="") as f:
        total = next(row for row in csv.DictReader(f) if row["Name"] == "Aggregated")
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), int(total["Request Count"])


def locust_fasthttp(base_url: str, concurrency: int, workdir: Path) -> float:
    """CPU µs per request of one Locust process running FastHttpUser: the marginal cost between a
    2 s and an 8 s run, so Locust's start-up (imports, gevent) is not charged to its requests."""
    short_cpu, short_n = _locust_once(base_url, concurrency, 2, workdir)
    long_cpu, long_n = _locust_once(base_url, concurrency, 8, workdir)
    return (long_cpu - short_cpu) / (long_n - short_n) * 1e6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--requests", type=int, default=20000)
    ap.add_argument("--concurrency", type=int, default=50)
    args = ap.parse_args()

    from wdm_lib.workloads.consistency import ConsistencyScenario

    e2e = end_to_end(args.repeat)
    quiet_s = ConsistencyScenario(seed=0).quiet_s
    for quiet, times in e2e.items():
        label = f"default --quiet {quiet_s:g}" if quiet == "default" else "--quiet 0"
        print(f"end to end, default scenario, {label}: median {statistics.median(times):.2f} s "
              f"(runs: {', '.join(f'{t:.2f}' for t in times)})")
    print(f"  beyond the quiet window: median {statistics.median(e2e['default']) - quiet_s:.2f} s")

    with ReferenceShopProcess() as shop, tempfile.TemporaryDirectory() as tmp:
        with urllib.request.urlopen(urllib.request.Request(shop.base_url + "/stock/batch_init/1/1/1",
                                                           method="POST")):
            pass
        ours, theirs = [], []
        for _ in range(args.repeat):  # interleaved, so both see the same machine load
            ours.append(workbench_client(shop.base_url, args.requests, args.concurrency))
            theirs.append(locust_fasthttp(shop.base_url, args.concurrency, Path(tmp)))
    print(f"client CPU per request (GET, {args.concurrency} in flight): workbench ShopClient median "
          f"{statistics.median(ours):.0f} us, Locust FastHttpUser median {statistics.median(theirs):.0f} us "
          f"(ratio {statistics.median(ours) / statistics.median(theirs):.2f})")
    print(f"  ShopClient rounds: {', '.join(f'{v:.0f}' for v in ours)}; "
          f"FastHttpUser rounds: {', '.join(f'{v:.0f}' for v in theirs)}")
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
