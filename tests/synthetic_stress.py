"""A stress run folder made up from random numbers, in the format `wdm stress run` writes (Locust's
CSVs, raw requests-*.csv, manifest.json, and summary.json by the stress workload's own judge),
for tests and bench/bench_analysis.py."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from wdm_lib import runs, summaries
from wdm_lib.workloads.shop_rows import LOAD_STARTED
from wdm_lib.workloads.stress.run import judge
from wdm_lib.workloads.stress.scenario import StressScenario

NAMES = (("POST", "/orders/checkout/[order_id]"), ("GET", "/stock/find/[item_id]"),
         ("POST", "/payment/pay/[user_id]/[amount]"))
LOCUST_PERCENTILES = ("50%", "66%", "75%", "80%", "90%", "95%", "98%", "99%", "99.9%", "99.99%", "100%")


def make_stress_run(path: Path, rows: int = 5000, duration_s: int = 20, steps: list[int] | None = None,
                    processes: int = 2, seed: int = 1, run_id: str = "20250101-000000-stress-abcd") -> Path:
    rng = np.random.default_rng(seed)
    path.mkdir(parents=True, exist_ok=True)
    t0_ns = 1_700_000_000 * 10**9
    start_ns = t0_ns + np.sort(rng.integers(0, duration_s * 10**9, rows))
    start_ns[0] = t0_ns  # the first request starts the clock, as in a real run
    which = rng.integers(0, len(NAMES), rows)
    latency_us = np.round(rng.lognormal(np.log(20_000), 0.6, rows)).astype("int64") + 1
    status = rng.choice([200, 400, 500], rows, p=[0.9, 0.08, 0.02])
    outcome = np.where(status < 400, "ok", np.where(status < 500, "fail", "unknown"))
    frame = pd.DataFrame({
        "start_ns": start_ns, "name": [NAMES[i][1] for i in which], "method": [NAMES[i][0] for i in which],
        "status": status, "latency_us": latency_us, "outcome": outcome})
    for p in range(processes):
        frame.iloc[p::processes].to_csv(path / f"requests-{p}.csv", index=False)

    ms = latency_us / 1000
    seconds = (start_ns - t0_ns) // 10**9
    step_time = duration_s / len(steps) if steps else None
    users = 50 if not steps else None
    history = []
    for s in range(duration_s):
        now = seconds <= s
        current = ms[seconds == s]
        pct = [int(np.percentile(current, float(p[:-1]))) if len(current) else "N/A" for p in LOCUST_PERCENTILES]
        count = users if users is not None else steps[min(int(s // step_time), len(steps) - 1)]
        failures = int(np.sum(status[now] >= 400))
        for type_, name in (("POST", NAMES[0][1]), ("", "Aggregated")):
            history.append([1_700_000_000 + s, count, type_, name, f"{len(current):2f}",
                            f"{np.sum(status[seconds == s] >= 400):2f}", *pct, int(now.sum()), failures,
                            pct[0], round(float(ms[now].mean()), 3), int(ms[now].min()), int(ms[now].max()), 0])
    pd.DataFrame(history, columns=["Timestamp", "User Count", "Type", "Name", "Requests/s", "Failures/s",
                                   *LOCUST_PERCENTILES, "Total Request Count", "Total Failure Count",
                                   "Total Median Response Time", "Total Average Response Time",
                                   "Total Min Response Time", "Total Max Response Time",
                                   "Total Average Content Size"]).to_csv(path / "locust_stats_history.csv", index=False)

    stats = []
    for type_, name, mask in [(m, n, which == i) for i, (m, n) in enumerate(NAMES)] + [("", "Aggregated", which >= 0)]:
        # Locust counts rounded response times, so its figures sit near the exact ones, not on them.
        pct = [int(round(np.percentile(ms[mask], float(p[:-1])), -1)) for p in LOCUST_PERCENTILES]
        stats.append([type_, name, int(mask.sum()), int(np.sum(status[mask] >= 400)), pct[0],
                      float(ms[mask].mean()), float(ms[mask].min()), float(ms[mask].max()), 0,
                      mask.sum() / duration_s, np.sum(status[mask] >= 400) / duration_s, *pct])
    pd.DataFrame(stats, columns=["Type", "Name", "Request Count", "Failure Count", "Median Response Time",
                                 "Average Response Time", "Min Response Time", "Max Response Time",
                                 "Average Content Size", "Requests/s", "Failures/s", *LOCUST_PERCENTILES]
                 ).to_csv(path / "locust_stats.csv", index=False)
    (path / "locust_failures.csv").write_text("Method,Name,Error,Occurrences\n")
    if steps:
        # The load's clock, as the locustfile writes it: the load started before the first request.
        (path / LOAD_STARTED).write_text(f"{t0_ns - 800_000_000}\n")

    # The summary is the stress workload's own, so the tests hold the notebooks to what it writes.
    scenario = StressScenario(users=50 if not steps else max(steps), run_time=duration_s, processes=processes,
                              steps=steps, step_time=step_time or 30.0)
    manifest = {"id": run_id, "kind": "stress", "status": "completed", "error": None,
                "scenario": scenario.to_dict(), "target": {"source": "embedded reference shop", "anomaly": None},
                "started_at": "2025-01-01T00:00:00.000+00:00", "ended_at": "2025-01-01T00:00:20.000+00:00"}
    (path / "manifest.json").write_text(json.dumps(manifest))
    run = runs.Run.open(path)
    summaries.write(run, judge(scenario, run, 0.0, ui=False))
    return path
