"""Stress runs that grade, end to end with Locust against the reference shop (directly, or behind
the misbehaving proxy): each test makes a run that must NOT pass and checks it exits 1 and says why.
Kept short (a few seconds of load each): the machine is shared."""

from __future__ import annotations

import subprocess
import sys

import pytest
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import psutil
from shop_proxy import Misbehaviour, ShopProxy

from wdm_lib import cli
from wdm_lib.reference.process import ReferenceShopProcess
from wdm_lib.report import headline
from wdm_lib.runs import Run

SMALL = ["--n-items", "100", "--n-users", "100", "--n-orders", "100"]
WDM = [sys.executable, "-m", "wdm_lib"]


def only_run(runs_dir: Path) -> Run:
    (path,) = list(runs_dir.iterdir())
    return Run.open(path)


@pytest.mark.long
def test_a_target_that_refuses_everything_fails_the_run(tmp_path, write_urls, capsys):
    """A shop never batch-initialised refuses every checkout (4xx): nothing was measured."""
    with ReferenceShopProcess() as shop:
        code = cli.main(["stress", "run", "--urls", str(write_urls(shop.base_url)), *SMALL, "-u", "2", "-r", "2",
                         "-t", "2s", "--wait", "0.05", "--runs-dir", str(tmp_path / "runs"),
                         "--junit", str(tmp_path / "junit.xml")])
    out = capsys.readouterr().out
    assert code == cli.EXIT_INCONSISTENT, out
    run = only_run(tmp_path / "runs")
    summary = run.read_json("summary.json")
    assert summary["requests"] > 0 and summary["outcomes"]["ok"] == 0 and summary["outcomes"]["fail"] > 0
    (gate,) = summary["gates"]
    assert gate["gate"] == "ok>0" and not gate["passed"] and "never batch-initialised" in gate["why"]
    assert not summary["passed"] and summary["verdict"] == "1 of 1 gates failed"
    assert "verdict: 1 OF 1 GATES FAILED" in out and "gate FAIL  ok>0" in out
    assert headline(run)["verdict"] == "1 of 1 gates failed"  # the index of every run says it too
    failure = ET.parse(tmp_path / "junit.xml").getroot().find("testsuite/testcase/failure")
    assert "never batch-initialised" in failure.get("message")


def test_a_threshold_that_cannot_hold_fails_the_run_and_shows_what_was_measured(tmp_path, capsys):
    code = cli.main(["stress", "run", *SMALL, "-u", "2", "-r", "2", "-t", "2s", "--wait", "0.05",
                     "--threshold", "p99<0.001ms", "--threshold", "fail_rate<1%", "--threshold", "checkout:rps>1",
                     "--runs-dir", str(tmp_path / "runs"), "--junit", str(tmp_path / "junit.xml")])
    out = capsys.readouterr().out
    assert code == cli.EXIT_INCONSISTENT, out
    run = only_run(tmp_path / "runs")
    assert run.manifest["status"] == "completed"  # the run itself was made in full
    summary = run.read_json("summary.json")
    by = {g["gate"]: g for g in summary["gates"]}
    assert not by["p99<0.001ms"]["passed"] and by["p99<0.001ms"]["measured"] == summary["latency_ms"]["p99"]
    assert by["fail_rate<1%"]["passed"] and by["fail_rate<1%"]["measured"] == 0
    assert by["checkout:rps>1"]["passed"]
    assert by["ok>0"]["passed"] and by["ok>0"]["default"]  # some request succeeded, whatever was asked
    assert "gate FAIL  p99<0.001ms" in out and "gate PASS  fail_rate<1%" in out
    suite = ET.parse(tmp_path / "junit.xml").getroot().find("testsuite")
    assert suite.get("tests") == "5" and suite.get("failures") == "1"


def test_a_bad_threshold_is_refused_before_any_load(tmp_path, capsys):
    assert cli.main(["stress", "run", "--threshold", "p99 below 5", "--runs-dir", str(tmp_path)]) == cli.EXIT_ERROR
    err = capsys.readouterr().err.strip()
    assert err.startswith("wdm: --threshold 'p99 below 5' is not a gate; expected [NAME:]METRIC OP VALUE")
    assert len(err.splitlines()) == 1 and not list(tmp_path.iterdir())


def command_line(p: psutil.Process) -> str:
    """A process's command line; "" for one that ended meanwhile (the shop's helpers come and go)."""
    try:
        return " ".join(p.cmdline())
    except psutil.Error:
        return ""


@pytest.mark.long
def test_a_killed_worker_is_reported_and_fails_the_run(tmp_path):
    """One of two Locust worker processes killed mid-run: Locust carries on with half the users and
    exits 0; the run says degraded, which worker, when, and exits 1."""
    # 15 s: Locust calls a worker missing ~4 s after its last heartbeat, and only while the test runs;
    # a busy machine may take several seconds to get the load going.
    proc = subprocess.Popen([*WDM, "stress", "run", *SMALL, "-u", "4", "-r", "4", "-t", "15s", "--wait", "0.05",
                             "--processes", "2", "--verify", "--runs-dir", str(tmp_path)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        workers: list[psutil.Process] = []
        while time.monotonic() < deadline and len(workers) < 2:
            masters = [p for p in psutil.Process(proc.pid).children() if "locust" in command_line(p)]
            workers = masters[0].children() if masters else []
            time.sleep(0.2)
        assert len(workers) == 2
        while time.monotonic() < deadline and not list(tmp_path.glob("*/requests-*.csv")):
            time.sleep(0.2)  # the load is on
        # A second of it, well before the worker's first report (every 3 s): about forty requests
        # made that its master will never hear of.
        time.sleep(1.0)
        workers[0].kill()
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == cli.EXIT_INCONSISTENT, out + err
    run = only_run(tmp_path)
    assert run.manifest["status"] == "degraded" and "stopped sending heartbeats" in run.manifest["error"]
    summary = run.read_json("summary.json")
    lost = [d for d in summary["degraded"] if d["what"] == "worker missing"]
    assert len(lost) == 1 and lost[0]["users"] == 2 and 0 < lost[0]["share_of_run"] < 1
    assert "DEGRADED: Locust worker" in out
    # The shop checked out what the lost worker never reported: --verify says so.
    verify = summary["verify"]
    assert verify["checkouts_in_shop"] > verify["checkouts_ok"] + verify["checkouts_unknown"]
    assert [a["name"] for a in verify["anomalies"]] == ["checkouts-unaccounted"]


@pytest.mark.long
def test_a_paced_run_charges_a_stalling_target_from_the_intended_start(tmp_path, write_urls, capsys):
    """Checkouts served one at a time, 40 ms each (25/s), asked for 50/s: each user falls behind
    its schedule, so the time from the intended start grows past the service time, and the run
    warns that the rate was not held."""
    with ReferenceShopProcess() as shop, ShopProxy(shop.base_url, Misbehaviour(checkout_delay_s=0.04)) as proxy:
        code = cli.main(["stress", "run", "--urls", str(write_urls(proxy.base_url)), "--init", *SMALL,
                         "--rate", "50", "-u", "5", "-t", "4s", "--threshold", "response_p99<5s",
                         "--runs-dir", str(tmp_path / "runs")])
    out = capsys.readouterr().out
    assert code == cli.EXIT_OK, out
    run = only_run(tmp_path / "runs")
    summary = run.read_json("summary.json")
    service, corrected = summary["latency_ms"], summary["response_ms"]
    assert corrected["p50"] > service["p50"] and corrected["p99"] > 1.5 * service["p99"], (service, corrected)
    rate = summary["rate"]
    assert rate["target_rps"] == 50 and rate["achieved_rps"] < 40 and "could not keep up" in rate["warning"]
    assert "from intended start ms:" in out and "warning: the load reached" in out
    assert run.manifest["scenario"]["rate"] == 50 and run.manifest["scenario"]["wait"] is None


@pytest.mark.long
def test_consistency_writes_one_junit_case_per_checker(tmp_path, capsys):
    # The reference shop is synchronous: a short quiet window judges it as the default's would.
    code = cli.main(["consistency", "--anomaly", "lost-update", "--seed", "3", "--quiet", "0.5",
                     "--n-users", "400", "--n-orders", "400", "--runs-dir", str(tmp_path / "runs"),
                     "--junit", str(tmp_path / "junit.xml")])
    assert code == cli.EXIT_INCONSISTENT
    from wdm_lib.checkers import run_checkers

    suite = ET.parse(tmp_path / "junit.xml").getroot().find("testsuite")
    cases = {c.get("name"): c.find("failure") for c in suite.findall("testcase")}
    assert list(cases) == list(run_checkers())
    failed = {name for name, failure in cases.items() if failure is not None}
    summary = only_run(tmp_path / "runs").read_json("summary.json")
    assert failed and int(suite.get("failures")) == len(failed)
    # every anomaly of the summary is in the message of a failed case
    messages = " ".join(cases[name].get("message") for name in failed)
    assert all(a["name"] in messages for a in summary["anomalies"])
