"""Stress runs that did not finish. `wdm stress run --processes 2` (or `wdm stress worker`) killed
with -9 mid-load, as an OOM killer or a CI timeout does: no Locust process outlives it (the reaper
ends its group). Its run folder, with raw rows and Locust's CSVs but no summary.json, still renders
a report under a grey "did not finish" banner; so does one with nothing recorded at all."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from bs4 import BeautifulSoup

from processes import locust_of, proc_stat
from synthetic_stress import make_stress_run
from wdm_lib import cli
from wdm_lib.notebook import open_run
from wdm_lib.runs import Run
from wdm_lib.workloads.stress.figures import report_summary
from wdm_lib.workloads.stress.scenario import StressScenario

SMALL = ["--n-items", "100", "--n-users", "100", "--n-orders", "100"]
WDM = [sys.executable, "-m", "wdm_lib"]
# The reaper's SIGTERM, its 5 s grace before SIGKILL, and a busy machine.
GONE_WITHIN_S = 15.0


def _group(pgid: int) -> list[int]:
    """The live processes of a process group. A zombie counts as gone: where the machine's first
    process reaps none (this sandbox), an orphan's end leaves one."""
    return [int(pid) for pid in filter(str.isdigit, os.listdir("/proc"))
            if (fields := proc_stat(pid)) and fields[2] == str(pgid) and fields[0] != "Z"]


def _rows_recorded(runs_dir: Path) -> int:
    n = 0
    for path in runs_dir.glob("*/requests-*.csv"):
        with open(path, newline="") as f:
            n += max(0, sum(1 for _ in csv.reader(f)) - 1)
    return n


@pytest.fixture(scope="module")
def killed(tmp_path_factory):
    """(the run folder, Locust's process group) of a run killed with -9 once raw rows and Locust's
    CSVs were on disk, four workers' worth of load going."""
    runs_dir = tmp_path_factory.mktemp("killed") / "runs"
    proc = subprocess.Popen([*WDM, "stress", "run", *SMALL, "-u", "4", "-r", "4", "-t", "60s", "--wait", "0.05",
                             "--processes", "2", "--runs-dir", str(runs_dir)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    group = None
    try:
        deadline = time.monotonic() + 60
        while not (_rows_recorded(runs_dir) and any(runs_dir.glob("*/locust_stats_history.csv"))):
            assert proc.poll() is None and time.monotonic() < deadline, "no raw rows within 60 s"
            group = group or locust_of(proc.pid)
            time.sleep(0.1)
        group = group or locust_of(proc.pid)
        assert group is not None and len(_group(group)) == 3, "Locust's master and its two workers"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    killed_at = time.monotonic()
    (run_dir,) = runs_dir.iterdir()
    yield run_dir, group, killed_at
    if group is not None and _group(group):  # a failed test must not leave the load going
        os.killpg(group, signal.SIGKILL)


@pytest.mark.long
def test_no_locust_process_outlives_a_wdm_killed_with_9(killed):
    _, group, killed_at = killed
    while _group(group) and time.monotonic() - killed_at < GONE_WITHIN_S:
        time.sleep(0.1)
    assert _group(group) == [], f"Locust's group {group} still runs {time.monotonic() - killed_at:.0f} s after the kill"


def _rendered(wdm, run_dir: Path, reports_dir: Path) -> tuple[dict, BeautifulSoup]:
    """`wdm report` of the run: its banner (colour classes, words, figures) and the page, which
    must hold no traceback and nothing written to stderr (a warning or an error in a cell)."""
    r = wdm("report", str(run_dir), "--reports-dir", str(reports_dir))
    assert r.returncode == cli.EXIT_OK, r.stdout + r.stderr
    page = BeautifulSoup((reports_dir / f"{run_dir.name}.html").read_text(), "html.parser")
    assert "Traceback" not in page.get_text()
    assert not page.select("[data-mime-type='application/vnd.jupyter.stderr']")
    found = page.find("div", class_="wdm-banner")
    verdict, subtitle, row = found.find_all("div", recursive=False)
    figures = {label.get_text(): value.get_text()
               for value, label in (cell.find_all("div") for cell in row.find_all("div", recursive=False))}
    return {"class": found["class"], "verdict": verdict.get_text(), "subtitle": subtitle.get_text(),
            "figures": figures}, page


@pytest.mark.long
def test_a_killed_run_reports_what_it_recorded_under_a_grey_banner(killed, wdm, tmp_path):
    run_dir, group, killed_at = killed
    while _group(group) and time.monotonic() - killed_at < GONE_WITHIN_S:  # Locust's last writes
        time.sleep(0.1)
    assert not (run_dir / "summary.json").exists()
    assert Run.open(run_dir).status == "crashed"
    banner, page = _rendered(wdm, run_dir, tmp_path)
    assert "wdm-none" in banner["class"]  # grey: no verdict
    assert banner["verdict"] == "CRASHED: NO VERDICT"
    assert banner["subtitle"].endswith("The run did not finish (crashed); the figures cover only what was recorded.")
    assert int(banner["figures"]["requests"].replace(",", "")) > 0, banner
    assert "No verdict: the run ended before its gates were judged." in page.get_text()
    assert len(page.find_all("img")) >= 3  # Locust's samples over time, and the raw rows' histogram


def test_a_failed_run_with_nothing_recorded_renders_a_page_saying_so(wdm, tmp_path):
    # Locust never started: no CSV, no raw row; the manifest says why.
    run = Run.create(tmp_path / "runs", "stress", StressScenario().to_dict(), {"source": "urls.json", "anomaly": None})
    run.finish("failed", "Locust exited with code 2 without finishing the run: <no output>")
    banner, page = _rendered(wdm, run.path, tmp_path / "reports")
    assert "wdm-none" in banner["class"] and banner["verdict"] == "FAILED: NO VERDICT"
    # why, under it: the manifest's error (a long one would be one line, the rest disclosed)
    assert banner["subtitle"].endswith("The run did not finish (failed); the figures cover only what was recorded."
                                       "Locust exited with code 2 without finishing the run: <no output>")
    assert banner["figures"]["requests"] == "0"
    assert "Nothing was recorded: the run ended before Locust wrote down a request." in page.get_text()


def test_a_stress_run_without_its_summary_is_summarized_from_what_it_recorded(tmp_path):
    folder = make_stress_run(tmp_path / "r1", rows=3000, duration_s=10)
    judged = json.loads((folder / "summary.json").read_text())
    (folder / "summary.json").unlink()
    recorded = report_summary(open_run(folder, "stress"))
    assert recorded["requests"] == judged["requests"] == 3000
    assert recorded["latency_ms"] == judged["latency_ms"] and recorded["outcomes"] == judged["outcomes"]
    assert "passed" not in recorded and "gates" not in recorded and recorded["faults"] == []


def test_a_worker_killed_with_9_takes_its_locust_processes_with_it(refused_port):
    # Still trying to reach a master that is not there, the worker would go on for five minutes.
    proc = subprocess.Popen([*WDM, "stress", "worker", "--master-host", "127.0.0.1", "--master-port",
                             str(refused_port), "--processes", "2"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    group = None
    try:
        deadline = time.monotonic() + 60
        while (group is None or len(_group(group)) < 3) and time.monotonic() < deadline:  # Locust and its two
            group = group or locust_of(proc.pid)
            time.sleep(0.1)
        assert group is not None and len(_group(group)) == 3
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    killed_at = time.monotonic()
    try:
        while _group(group) and time.monotonic() - killed_at < GONE_WITHIN_S:
            time.sleep(0.1)
        assert _group(group) == [], f"the worker's Locust group {group} outlived wdm"
    finally:
        if _group(group):
            os.killpg(group, signal.SIGKILL)
