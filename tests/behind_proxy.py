"""Consistency runs behind misbehaving fronts, side by side, each run and its front in a process of
its own. In one process their event loops would share one interpreter lock: on a busy machine a
run's reads would wait for the other runs' turns, and a timing a front shows for 0.4 s (a flap)
could pass unseen by a reader that in a real deployment is a process of its own."""

import json
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from shop_proxy import Misbehaviour, ShopProxy


def run_behind(base_url: str, misbehaviour: Misbehaviour, folder: Path, name: str, scenario: dict) -> dict:
    """The summary of one consistency run against `base_url` behind `misbehaviour`."""
    from wdm_lib.runner import run_consistency
    from wdm_lib.workloads.consistency import ConsistencyScenario
    with ShopProxy(base_url, misbehaviour) as proxy:
        urls = folder / name
        urls.write_text(json.dumps(proxy.urls()))
        return run_consistency(ConsistencyScenario(**scenario), urls=urls, runs_dir=folder)[1]


def side_by_side(base_url: str, folder: Path, cases: list[tuple[Misbehaviour, dict]]) -> list[dict]:
    """The summaries of one run per (misbehaviour, scenario), run at the same time: the waits for
    quiet overlap instead of adding up. Spawned, not forked: the test process has threads."""
    with ProcessPoolExecutor(len(cases), mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = [pool.submit(run_behind, base_url, m, folder, f"urls{i}.json", scenario)
                   for i, (m, scenario) in enumerate(cases)]
        return [f.result() for f in futures]
