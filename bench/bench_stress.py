"""How much load one Locust process of the stress workload can make, and what the raw-latency hook
costs. Against the embedded reference shop on loopback, checkout only, no wait between requests.

    python bench/bench_stress.py [--seconds 10] [--repeats 3] [--users 8] [--sweep 1,2,4,8,16,32,64]
                                 [--rate 2000] [--parts locust,paced,intended]

What it measures, per Locust run (medians over --repeats):
  * requests per client CPU-second: requests / CPU time of the Locust process, both over the same
    steady window (from 2 s after the start to 1 s before the planned end, so neither Locust's
    start-up nor its shutdown is counted), FastHttpUser against HttpUser;
  * the raw-latency hook's overhead: the same with and without --wdm-raw-dir, as CPU microseconds
    per request and as throughput;
  * the highest checkout rate one generator process sustains: a sweep of user counts, with the
    generator's and the shop's CPU use beside each rate, so it shows which side ran out first;
  * the open loop: `--rate` requests/s from one paced process, the rate achieved over the steady
    window (as summary.json computes it) and how far short of the asked rate it fell;
  * what recording the intended start costs per request, in CPU microseconds: the pacing step and
    the per-request context in the user, and reading it in the hook, each timed alone.
Locust's request counts come from its own locust_stats_history.csv (once a second), the CPU times
from psutil samples four times a second, interpolated to the same instants.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import psutil

from wdm_lib.config import parse_urls
from wdm_lib.reference.process import ReferenceShopProcess
from wdm_lib.analysis import load_requests
from wdm_lib.workloads.stress.shop import batch_init
from wdm_lib.workloads.stress.figures import rate_figures
from wdm_lib.workloads.stress.locust import LOCUSTFILE, locust_command
from wdm_lib.workloads.stress.scenario import StressScenario

SIZES = dict(n_items=10_000, item_stock=1_000_000, item_price=1, n_users=10_000, user_credit=1_000_000,
             n_orders=10_000)
SAMPLE_S = 0.25


def _cpu(p: psutil.Process) -> float:
    t = p.cpu_times()
    return t.user + t.system


def _history(folder: Path) -> list[tuple[float, int]]:
    with open(folder / "locust_stats_history.csv", newline="") as f:
        return [(float(r["Timestamp"]), int(r["Total Request Count"]))
                for r in csv.DictReader(f) if r["Name"] == "Aggregated"]


def _run_sampling_cpu(cmd: list[str], env: dict[str, str], shop: psutil.Process,
                      bound_s: float) -> list[tuple[float, float, float]]:
    """Run Locust to its end (killed after `bound_s`), sampling (wall s, its CPU s, the shop's CPU s)
    every SAMPLE_S, from its start to its last moment alive."""
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    locust = psutil.Process(proc.pid)
    samples = [(time.time(), _cpu(locust), _cpu(shop))]
    try:
        deadline = samples[0][0] + bound_s
        while proc.poll() is None and time.time() < deadline:
            try:
                samples.append((time.time(), _cpu(locust), _cpu(shop)))
            except psutil.NoSuchProcess:
                break
            time.sleep(SAMPLE_S)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
    return samples


def one_run(target, shop_pid: int, users: int, seconds: int, client: str, hook: bool) -> dict:
    sc = StressScenario(**SIZES, users=users, spawn_rate=users, run_time=seconds, wait=0, raw_latencies=hook)
    shop = psutil.Process(shop_pid)
    with tempfile.TemporaryDirectory() as d:
        folder = Path(d)
        cmd, env = locust_command(sc, target, folder)
        env["WDM_HTTP_CLIENT"] = client
        samples = _run_sampling_cpu(cmd, env, shop, seconds + 60)
        history = _history(folder)
    start = history[0][0]
    window = [(t, n) for t, n in history if start + 2 <= t <= start + seconds - 1]
    (ta, na), (tb, nb) = window[0], window[-1]
    wall, gen, shp = (np.array(c) for c in zip(*samples))
    d_gen = float(np.interp(tb, wall, gen) - np.interp(ta, wall, gen))
    d_shop = float(np.interp(tb, wall, shp) - np.interp(ta, wall, shp))
    requests, dt = nb - na, tb - ta
    return {"rps": requests / dt, "client_cpu": d_gen / dt, "shop_cpu": d_shop / dt,
            "req_per_cpu_s": requests / d_gen, "cpu_us_per_req": 1e6 * d_gen / requests}


HOOK_ALONE = r"""
import importlib.util, os, sys, tempfile, time, types
from locust.event import Events
sys.path.insert(0, os.path.dirname(sys.argv[1]))  # as Locust does: shop_rows sits beside the locustfile
spec = importlib.util.spec_from_file_location("wdm_locustfile", sys.argv[1])
lf = importlib.util.module_from_spec(spec); spec.loader.exec_module(lf)
n = int(sys.argv[2])
with tempfile.TemporaryDirectory() as d:
    env = types.SimpleNamespace(events=Events(), runner=None, parsed_options=types.SimpleNamespace(wdm_raw_dir=d))
    hook = lf.RawLatencies(env)
    hook.on_test_start(env)
    response = types.SimpleNamespace(status_code=200)
    name = "/orders/checkout/[order_id]"
    t0 = time.process_time()
    for _ in range(n):
        hook.on_request("POST", name, 1.2345, response, start_time=time.time())
    hook.close()
    print((time.process_time() - t0) / n * 1e6)
"""

# The intended start's three costs, each against the same code without it: the pacing step in the
# user (paced one_operation vs unpaced), the context dict that carries the tick to the hook, and the
# hook reading it (context given vs None). CPU time per call, in a fresh interpreter.
INTENDED_COST = r"""
import importlib.util, os, sys, tempfile, time, types
from locust.event import Events
sys.path.insert(0, os.path.dirname(sys.argv[1]))  # as Locust does: shop_rows sits beside the locustfile
spec = importlib.util.spec_from_file_location("wdm_locustfile", sys.argv[1])
lf = importlib.util.module_from_spec(spec); spec.loader.exec_module(lf)
n = int(sys.argv[2])

def per_call(fn):
    t0 = time.process_time()
    for _ in range(n):
        fn()
    return (time.process_time() - t0) / n * 1e6

user = types.SimpleNamespace(ops=[lambda: None], weights=[1], next_tick_ns=0, intended_ns=0)
op = lf.ShopTasks.one_operation
user.pacing_ns = 250_000_000
paced = per_call(lambda: op(user))
user.pacing_ns = 0
unpaced = per_call(lambda: op(user))
context = per_call(lambda: {"intended_ns": user.intended_ns}) - per_call(lambda: None)
with tempfile.TemporaryDirectory() as d:
    env = types.SimpleNamespace(events=Events(), runner=None, parsed_options=types.SimpleNamespace(wdm_raw_dir=d))
    hook = lf.RawLatencies(env)
    hook.on_test_start(env)
    response = types.SimpleNamespace(status_code=200)
    name = "/orders/checkout/[order_id]"
    ctx = {"intended_ns": time.time_ns()}
    with_ = per_call(lambda: hook.on_request("POST", name, 1.2345, response, start_time=1.0, context=ctx))
    without = per_call(lambda: hook.on_request("POST", name, 1.2345, response, start_time=1.0, context=None))
    hook.close()
print(paced - unpaced, context, with_ - without, paced + context + with_)
"""


def hook_alone_us(n: int = 300_000, repeats: int = 5) -> float:
    """CPU microseconds per request of the hook by itself (row into the buffer, buffer into the
    file), in a fresh interpreter because importing Locust monkey-patches it."""
    return statistics.median(float(subprocess.run([sys.executable, "-c", HOOK_ALONE, str(LOCUSTFILE), str(n)],
                                                  capture_output=True, text=True, check=True).stdout)
                             for _ in range(repeats))


def intended_start_us(n: int = 300_000, repeats: int = 5) -> dict:
    """Medians of the intended start's three per-request costs, CPU microseconds."""
    parts = [[float(x) for x in subprocess.run([sys.executable, "-c", INTENDED_COST, str(LOCUSTFILE), str(n)],
                                               capture_output=True, text=True, check=True).stdout.split()]
             for _ in range(repeats)]
    pacing, context, hook, whole = (statistics.median(p[i] for p in parts) for i in range(4))
    # `whole` bounds it from above: the paced step, the context and the entire hook (the row too).
    return {"pacing_us": pacing, "context_us": context, "hook_us": hook, "total_us": pacing + context + hook,
            "bound_us": whole}


def paced_run(target, shop_pid: int, rate: float, seconds: int, users: int | None) -> dict:
    """One open-loop run at `rate` from one Locust process, judged as summary.json judges it, with
    the generator's and the shop's CPU use over the run (which side ran out first)."""
    sc = StressScenario(**SIZES, rate=rate, users=users, run_time=seconds)
    shop = psutil.Process(shop_pid)
    with tempfile.TemporaryDirectory() as d:
        folder = Path(d)
        cmd, env = locust_command(sc, target, folder)
        samples = _run_sampling_cpu(cmd, env, shop, seconds + 60)
        (t0, gen0, shop0), (t1, gen1, shop1) = samples[0], samples[-1]
        requests = load_requests(folder)
        r = rate_figures(requests, sc)
        late = (requests["response_ms"] - requests["latency_ms"]).to_numpy()
    return {"achieved_rps": r["achieved_rps"], "short_pct": r["short_pct"], "users": sc.users,
            "p99_ms": float(np.percentile(requests["latency_ms"], 99, method="inverted_cdf")),
            "response_p99_ms": float(np.percentile(requests["response_ms"], 99, method="inverted_cdf")),
            "late_p50_ms": float(np.percentile(late, 50, method="inverted_cdf")),
            "client_cpu": (gen1 - gen0) / (t1 - t0), "shop_cpu": (shop1 - shop0) / (t1 - t0),
            # CPU per request, and so the rate one process holds with a core to itself: a figure
            # the machine's other load does not move, unlike the rate it achieved beside that load
            "client_cpu_us_per_req": 1e6 * (gen1 - gen0) / max(len(requests), 1),
            "load_average": os.getloadavg()[0]}


def median_of(runs: list[dict]) -> dict:
    return {k: statistics.median(r[k] for r in runs) for k in runs[0]}


def row(label: str, m: dict) -> str:
    return (f"| {label} | {m['rps']:.0f} | {m['req_per_cpu_s']:.0f} | {m['cpu_us_per_req']:.0f} | "
            f"{100 * m['client_cpu']:.0f}% | {100 * m['shop_cpu']:.0f}% |")


HEAD = ("| run | checkouts/s | requests per client CPU-s | client CPU µs/request | generator CPU | shop CPU |\n"
        "|---|---|---|---|---|---|")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--users", type=int, default=8, help="users in the client and hook comparisons")
    ap.add_argument("--sweep", default="1,2,4,8,16,32,64")
    ap.add_argument("--rate", type=float, default=2000, help="the open loop's asked rate, requests/s")
    ap.add_argument("--paced-users", type=int, default=None,
                    help="users sharing the rate (default: wdm's, enough for replies up to 0.25 s)")
    ap.add_argument("--parts", default="locust,paced,intended",
                    help="which measurements to make: locust (clients, hook, sweep), paced, intended (default: all)")
    ap.add_argument("--json", default=None, help="also write every figure to this file")
    a = ap.parse_args()
    parts = set(a.parts.split(","))
    if a.seconds < 5:
        sys.exit("--seconds must be at least 5 (2 s of start-up and 1 s of shutdown are left out)")
    import asyncio

    results: dict = {"seconds": a.seconds, "repeats": a.repeats, "users": a.users, "cpus": psutil.cpu_count()}
    with ReferenceShopProcess() as shop:
        target = parse_urls(shop.urls(), "embedded reference shop")
        asyncio.run(batch_init(StressScenario(**SIZES), target))
        if "paced" in parts:
            paced = [paced_run(target, shop.pid, a.rate, a.seconds, a.paced_users) for _ in range(a.repeats)]
            results["paced"] = {"median": median_of(paced), "runs": paced}
            m = results["paced"]["median"]
            each = ", ".join(f"{r['achieved_rps']:.1f}" for r in paced)
            print(f"\nopen loop, one process, {a.rate:g} requests/s asked ({m['users']:.0f} users), {a.seconds} s runs: "
                  f"achieved {m['achieved_rps']:.1f}/s ({m['short_pct']:.2f}% short; runs: "
                  f"{each}), service p99 {m['p99_ms']:.1f} ms, "
                  f"from intended start p99 {m['response_p99_ms']:.1f} ms, sent late by {m['late_p50_ms']:.2f} ms (median); "
                  f"generator {100 * m['client_cpu']:.0f}% of a core, shop {100 * m['shop_cpu']:.0f}%, "
                  f"machine load average {m['load_average']:.1f} on {psutil.cpu_count()} cores; generator "
                  f"{m['client_cpu_us_per_req']:.0f} µs CPU per request, so a core of its own holds "
                  f"{1e6 / m['client_cpu_us_per_req']:,.0f}/s")
        if "intended" in parts:
            cost = intended_start_us()
            results["intended_start"] = cost
            print(f"\nrecording the intended start: {cost['total_us']:.2f} µs CPU per request (pacing step "
                  f"{cost['pacing_us']:.2f} + context {cost['context_us']:.2f} + hook {cost['hook_us']:.2f}; "
                  f"medians of 5 x 300k calls); at most {cost['bound_us']:.2f} µs (the paced step, the "
                  f"context and the whole raw-row hook together)")
        if "locust" not in parts:
            if a.json:
                Path(a.json).write_text(json.dumps(results, indent=2))
            return
        configs = {"FastHttpUser, hook on": ("fast", True), "FastHttpUser, hook off": ("fast", False),
                   "HttpUser, hook on": ("requests", True), "HttpUser, hook off": ("requests", False)}
        runs: dict[str, list] = {k: [] for k in configs}
        for _ in range(a.repeats):  # interleaved, so drift (the shop's cache, the machine) hits all alike
            for label, (client, hook) in configs.items():
                runs[label].append(one_run(target, shop.pid, a.users, a.seconds, client, hook))
        results["clients"] = {k: {"median": median_of(v), "runs": v} for k, v in runs.items()}
        print(f"\n{a.users} users, no wait, checkout only, {a.seconds} s runs, medians of {a.repeats}\n")
        print(HEAD)
        for label in configs:
            print(row(label, results["clients"][label]["median"]))
        for client in ("FastHttpUser", "HttpUser"):
            on, off = (results["clients"][f"{client}, hook {s}"]["median"] for s in ("on", "off"))
            print(f"\nhook overhead ({client}): {on['cpu_us_per_req'] - off['cpu_us_per_req']:+.1f} µs CPU per "
                  f"request ({100 * (on['cpu_us_per_req'] / off['cpu_us_per_req'] - 1):+.1f}%), "
                  f"throughput {100 * (on['rps'] / off['rps'] - 1):+.1f}%")

        alone = hook_alone_us()
        results["hook_alone_us_per_request"] = alone
        fast_off = results["clients"]["FastHttpUser, hook off"]["median"]["cpu_us_per_req"]
        print(f"\nhook by itself: {alone:.2f} µs CPU per request (median of 5 x 300k calls), "
              f"{100 * alone / fast_off:.1f}% of FastHttpUser's {fast_off:.0f} µs per request")

        sweep = []
        for users in [int(u) for u in a.sweep.split(",") if u]:
            m = median_of([one_run(target, shop.pid, users, a.seconds, "fast", True) for _ in range(a.repeats)])
            sweep.append({"users": users, **m})
        results["sweep"] = sweep
        print(f"\none FastHttpUser generator process (hook on), by users\n\n{HEAD}")
        for m in sweep:
            print(row(f"{m['users']} users", m))
        best = max(sweep, key=lambda m: m["rps"])
        print(f"\nhighest sustained checkout rate: {best['rps']:.0f}/s at {best['users']} users "
              f"(generator {100 * best['client_cpu']:.0f}% of a core, shop {100 * best['shop_cpu']:.0f}%)")
    if a.json:
        Path(a.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
