"""Throughput of the reference shop, measured from outside with wrk.

Starts the shop as a subprocess (`--shop services`: the three-service shop, measured through its
gateway; `--shop both`: the two side by side, their runs interleaved), batch-inits 100,000 items, users and orders (stock and credit
1,000,000 so every checkout succeeds), then runs wrk against 127.0.0.1 for checkouts of random
order ids (the original stress test's pattern) and for item look-ups, several times each, and
prints the median.

    python bench/bench_reference_shop.py [--shop single|services|both] [--runs 3] [--duration 10]
                                         [--connections 64]

Needs wrk (`apt-get install -y wrk`). The shop and wrk share the machine, so the figures are
a lower bound for the shop on a machine of its own.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
import urllib.request

from contextlib import ExitStack

from wdm_lib.reference.process import ReferenceShopProcess
from wdm_lib.reference.services import ReferenceServices

SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "random_id.lua")


def post(url: str) -> dict:
    with urllib.request.urlopen(urllib.request.Request(url, method="POST"), timeout=60) as r:
        return json.loads(r.read())


def batch_init(base: str, n: int) -> float:
    started = time.perf_counter()
    post(f"{base}/stock/batch_init/{n}/1000000/1")
    post(f"{base}/payment/batch_init/{n}/1000000")
    post(f"{base}/orders/batch_init/{n}/{n}/{n}/1")
    return time.perf_counter() - started


def _ms(text: str) -> float:
    value, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", text).groups()
    return float(value) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[unit]


def cpu_s(pid: int) -> float:
    """User + system CPU seconds a process has used so far (Linux /proc)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wrk(base: str, method: str, prefix: str, n: int, args: argparse.Namespace) -> dict:
    cmd = ["wrk", "-t", str(args.threads), "-c", str(args.connections), "-d", f"{args.duration}s",
           "--latency", "-s", SCRIPT, base, "--", method, prefix, str(n)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errors = re.search(r"Socket errors: (.*)", out)
    return {"rps": rps, "requests": int(re.search(r"(\d+) requests in", out).group(1)),
            "non_2xx": int(non_2xx.group(1)) if non_2xx else 0,
            "socket_errors": errors.group(1) if errors else "none",
            "p50_ms": _ms(re.search(r"50%\s+(\S+)", out).group(1)),
            "p99_ms": _ms(re.search(r"99%\s+(\S+)", out).group(1))}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1, help="wrk threads")
    parser.add_argument("--n", type=int, default=100_000, help="items, users and orders")
    parser.add_argument("--shop", choices=("single", "services", "both"), default="single",
                        help="the single-process shop, the three services behind their gateway, or both")
    parser.add_argument("--data", default=None, help="the shops' data folder (default: temporary)")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        print("bench: wrk is not installed (apt-get install -y wrk)", file=sys.stderr)
        return 2

    kinds = ("single", "services") if args.shop == "both" else (args.shop,)
    with ExitStack() as stack:
        data = {kind: args.data and os.path.join(args.data, kind) for kind in kinds}
        shops = {kind: stack.enter_context(ReferenceShopProcess(data[kind]) if kind == "single"
                                           else ReferenceServices(data[kind]))
                 for kind in kinds}
        init_s = {}
        for kind, shop in shops.items():
            init_s[kind] = batch_init(shop.base_url, args.n)
            print(f"{kind}: batch init of {args.n:,} items + users + orders: {init_s[kind]:.2f} s", flush=True)
        results: dict[tuple[str, str], list[dict]] = {}
        for run in range(1, args.runs + 1):
            for kind, shop in shops.items():
                for name, method, prefix in (("checkout", "POST", "/orders/checkout/"),
                                             ("find item", "GET", "/stock/find/")):
                    pids = {"shop": shop.pid} if kind == "single" else shop.pids
                    before = {name_: cpu_s(pid) for name_, pid in pids.items()}
                    r = wrk(shop.base_url, method, prefix, args.n, args)
                    # CPU per request says where the time goes even when the machine is busy.
                    r["cpu_us"] = {name_: (cpu_s(pid) - before[name_]) / r["requests"] * 1e6
                                   for name_, pid in pids.items()}
                    results.setdefault((kind, name), []).append(r)
                    cpu = ", ".join(f"{k} {v:.0f}" for k, v in r["cpu_us"].items())
                    print(f"run {run} {kind:8s} {name:9s}: {r['rps']:8.0f} req/s  p50 {r['p50_ms']:.2f} ms  "
                          f"p99 {r['p99_ms']:.2f} ms  non-2xx {r['non_2xx']}  socket errors: "
                          f"{r['socket_errors']}  CPU us/request: {cpu}", flush=True)

    print(f"\nmedian of {args.runs} runs of {args.duration} s, wrk -t{args.threads} "
          f"-c{args.connections}, {os.cpu_count()} CPUs shared by the shop and wrk:")
    for kind in kinds:
        checkouts = [r["rps"] for r in results[(kind, "checkout")]]
        print(f"  {kind}: checkouts/s {statistics.median(checkouts):.0f} ({min(checkouts):.0f}-{max(checkouts):.0f}), "
              f"item look-ups/s {statistics.median(r['rps'] for r in results[(kind, 'find item')]):.0f}, "
              f"batch init {init_s[kind]:.2f} s")
        runs = results[(kind, "checkout")]
        cpu = ", ".join(f"{p} {statistics.median(r['cpu_us'][p] for r in runs):.0f}" for p in runs[0]["cpu_us"])
        print(f"    CPU per checkout, us (median): {cpu}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
