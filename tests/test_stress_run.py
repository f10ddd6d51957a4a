"""Real Locust runs, seconds long, against the reference shop on loopback: headless against the
embedded shop, a master with two workers, a step load over two processes, a shop that dies
mid-run, and Ctrl-C."""

from __future__ import annotations

import csv
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from wdm_lib import cli
from wdm_lib.errors import WorkbenchError
from wdm_lib.ports import free_port
from wdm_lib.reference.process import ReferenceShopProcess
from wdm_lib.runs import Run
from wdm_lib.workloads.shop_rows import RAW_COLUMNS
from wdm_lib.workloads.stress import locust as stress_locust
from wdm_lib.workloads.stress.figures import raw_files

SMALL = ["--n-items", "100", "--n-users", "100", "--n-orders", "100"]
WDM = [sys.executable, "-m", "wdm_lib"]

# Locust's documented CSV columns (docs.locust.io, "Retrieve test statistics in CSV format").
PCT = ["50%", "66%", "75%", "80%", "90%", "95%", "98%", "99%", "99.9%", "99.99%", "100%"]
STATS_COLUMNS = ["Type", "Name", "Request Count", "Failure Count", "Median Response Time", "Average Response Time",
                 "Min Response Time", "Max Response Time", "Average Content Size", "Requests/s", "Failures/s", *PCT]
HISTORY_COLUMNS = ["Timestamp", "User Count", "Type", "Name", "Requests/s", "Failures/s", *PCT,
                   "Total Request Count", "Total Failure Count", "Total Median Response Time",
                   "Total Average Response Time", "Total Min Response Time", "Total Max Response Time",
                   "Total Average Content Size"]
FAILURES_COLUMNS = ["Method", "Name", "Error", "Occurrences"]
EXCEPTIONS_COLUMNS = ["Count", "Message", "Traceback", "Nodes"]


def header(path: Path) -> list[str]:
    with open(path, newline="") as f:
        return next(csv.reader(f))


def raw_rows(folder: Path) -> dict[str, list[dict]]:
    out = {}
    for path in raw_files(folder):
        assert header(path) == list(RAW_COLUMNS)
        with open(path, newline="") as f:
            out[path.name] = list(csv.DictReader(f))
    return out


def aggregated(folder: Path) -> dict:
    with open(folder / "locust_stats.csv", newline="") as f:
        return next(r for r in csv.DictReader(f) if r["Name"] == "Aggregated")


def only_run(runs_dir: Path) -> Run:
    (path,) = list(runs_dir.iterdir())
    return Run.open(path)


@pytest.mark.long
def test_headless_run_against_the_embedded_shop(tmp_path, capsys):
    code = cli.main(["stress", "run", *SMALL, "-u", "3", "-r", "3", "-t", "3s", "--wait", "0.05",
                     "--find-item-weight", "1", "--verify", "--runs-dir", str(tmp_path)])
    out = capsys.readouterr().out
    assert code == cli.EXIT_OK, out
    run = only_run(tmp_path)
    f = run.path
    assert run.manifest["status"] == "completed" and run.manifest["kind"] == "stress"
    assert run.manifest["target"]["source"] == "embedded reference shop" and run.manifest["init"] is True
    assert run.manifest["scenario"]["n_orders"] == 100 and run.manifest["versions"]["locust"]
    assert run.manifest["started_at"] and run.manifest["ended_at"]
    assert header(f / "locust_stats.csv") == STATS_COLUMNS
    assert header(f / "locust_stats_history.csv") == HISTORY_COLUMNS
    assert header(f / "locust_failures.csv")[:4] == FAILURES_COLUMNS  # 2.4x adds First/Last Seen
    assert header(f / "locust_exceptions.csv") == EXCEPTIONS_COLUMNS
    assert (f / "locust_report.html").stat().st_size > 1000
    assert set(json.loads((f / "init.json").read_text())) == {"stock_s", "payment_s", "orders_s", "total_s"}

    total = aggregated(f)
    rows = [r for rows in raw_rows(f).values() for r in rows]
    assert int(total["Request Count"]) > 0
    assert len(rows) == int(total["Request Count"])  # the hook saw every request Locust counted
    assert {r["name"] for r in rows} == {"/orders/checkout/[order_id]", "/stock/find/[item_id]"}
    assert all(r["outcome"] == "ok" and r["status"] == "200" and int(r["latency_us"]) > 0 for r in rows)
    assert abs(int(rows[0]["start_ns"]) / 1e9 - time.time()) < 120  # wall clock, epoch ns

    summary = run.read_json("summary.json")
    assert summary["kind"] == "stress" and summary["run_id"] == run.id
    assert summary["requests"] == len(rows) == summary["locust"]["requests"]
    assert summary["failures"] == 0 and summary["outcomes"] == {"ok": len(rows), "fail": 0, "unknown": 0}
    assert summary["latency_ms"]["count"] == len(rows)
    # The run's span is its first request's start to its last one's end. How much of the 3 s the
    # users fill depends on how busy the machine is, so the bound from below is the rows themselves.
    first = min(int(r["start_ns"]) for r in rows)
    last = max(int(r["start_ns"]) + int(r["latency_us"]) * 1000 for r in rows)
    assert summary["duration_s"] == pytest.approx((last - first) / 1e9, abs=0.002)
    assert 0 < summary["duration_s"] <= 5
    assert set(summary["by_name"]) == {"/orders/checkout/[order_id]", "/stock/find/[item_id]"}
    v = summary["verify"]
    checkouts = sum(r["name"] == "/orders/checkout/[order_id]" for r in rows)
    # Every checkout of a batch-init order sells two items for 2 * price: the books balance.
    assert v["valid"] and v["anomalies"] == [] and v["read_s"] > 0 and v["reads"] == 200
    assert v["credit_spent"] == v["stock_value_sold"] == 2 * checkouts
    assert v["checkouts_in_shop"] == v["checkouts_ok"] == checkouts
    assert summary["passed"] and summary["verdict"] == "passed" and summary["degraded"] == []
    assert [g["gate"] for g in summary["gates"]] == ["ok>0"] and summary["gates"][0]["passed"]
    assert summary["steps"] is None
    assert "verify: VALID" in out


@pytest.mark.long
def test_master_and_two_workers_count_every_request(tmp_path, write_urls):
    port = free_port()
    with ReferenceShopProcess() as shop:
        urls = write_urls(shop.base_url)
        master = subprocess.Popen(
            [*WDM, "stress", "run", "--urls", str(urls), "--init", *SMALL, "-u", "4", "-r", "4", "-t", "3s",
             "--wait", "0.05", "--master", "--expect-workers", "2", "--master-bind-host", "127.0.0.1",
             "--master-bind-port", str(port), "--workers-wait", "30s", "--runs-dir", str(tmp_path / "runs")],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        workers = [subprocess.Popen([*WDM, "stress", "worker", "--master-host", "127.0.0.1", "--master-port",
                                     str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                   for _ in range(2)]
        try:
            out, _ = master.communicate(timeout=60)
            assert master.returncode == 0, out
            assert [w.wait(30) for w in workers] == [0, 0]  # the master's quit ends them
        finally:
            for p in (master, *workers):
                if p.poll() is None:
                    p.kill()
                    p.wait()
    run = only_run(tmp_path / "runs")
    assert run.manifest["mode"] == "master" and run.manifest["status"] == "completed"
    per_worker = raw_rows(run.path)
    assert len(per_worker) == 2 and all(len(rows) > 0 for rows in per_worker.values())
    made = sum(len(rows) for rows in per_worker.values())
    assert int(aggregated(run.path)["Request Count"]) == made
    assert run.read_json("summary.json")["requests"] == made


def _wait_for_file(folder: Path, pattern: str, proc: subprocess.Popen, bound_s: float = 60.0) -> None:
    deadline = time.monotonic() + bound_s
    while not any(folder.glob(pattern)):
        assert proc.poll() is None and time.monotonic() < deadline, f"no {pattern} in {folder}"
        time.sleep(0.1)


def _hold_port(port: int) -> socket.socket | None:
    """A listener on `port`, or None when something else already has it (which is the same test)."""
    s = socket.socket()
    try:
        s.bind(("0.0.0.0", port))
        s.listen()
        return s
    except OSError:
        s.close()
        return None


@pytest.fixture
def taken_port():
    """A port something else listens on, for the whole test."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield s.getsockname()[1]


def _one_failed_run(runs_dir: Path, r) -> Run:
    assert r.returncode == cli.EXIT_ERROR, r.stdout + r.stderr
    assert "Traceback" not in r.stderr and r.stderr.strip().splitlines()[-1].startswith("wdm: ")
    run = only_run(runs_dir)
    assert run.manifest["status"] == "failed" and run.manifest["error"] in r.stderr
    return run


def test_a_master_port_in_use_is_one_sentence_naming_the_option(tmp_path, wdm, taken_port, shop, write_urls):
    r = wdm("stress", "run", "--urls", str(write_urls(shop.base_url)), "-t", "2s", "--master",
            "--master-bind-host", "127.0.0.1", "--master-bind-port", str(taken_port), "--workers-wait", "5s",
            "--runs-dir", str(tmp_path / "runs"))
    _one_failed_run(tmp_path / "runs", r)
    assert (f"Locust's master could not listen on 127.0.0.1:{taken_port} (Address already in use); "
            f"expected a --master-bind-port that nothing else listens on.") in r.stderr


def _processes_naming(text: str) -> list[str]:
    """The pids of the processes whose command line holds `text`."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if text.encode() in Path(f"/proc/{pid}/cmdline").read_bytes():
                found.append(pid)
        except OSError:  # gone meanwhile
            pass
    return found


@pytest.mark.long
def test_a_processes_port_taken_before_locust_bound_it_says_run_again_and_leaves_no_worker(
        tmp_path, wdm, taken_port, monkeypatch, shop, write_urls):
    # The race wdm cannot close: the port it picked for --processes is taken before Locust binds it.
    # Locust's master dies; the workers it forked would go on trying to reach it for five minutes.
    monkeypatch.setattr(stress_locust, "free_port", lambda *_: taken_port)
    r = wdm("stress", "run", "--urls", str(write_urls(shop.base_url)), "-t", "2s", "--processes", "2",
            "--runs-dir", str(tmp_path / "runs"))
    _one_failed_run(tmp_path / "runs", r)
    assert (f"Locust's master for --processes could not listen on 127.0.0.1:{taken_port} (Address already in "
            f"use): the port wdm picked for it was taken before Locust started; run again.") in r.stderr
    assert _processes_naming(str(tmp_path)) == []


def test_a_worker_whose_master_host_cannot_be_resolved_is_one_sentence(wdm):
    r = wdm("stress", "worker", "--master-host", "no.such.host.invalid")
    assert r.returncode == cli.EXIT_ERROR and "Traceback" not in r.stderr
    assert r.stderr.strip() == ("wdm: --master-host no.such.host.invalid: cannot resolve it (Name or service not "
                                "known); expected the name or address of the machine running "
                                "`wdm stress run --master`.")


def test_a_worker_killed_takes_its_locust_processes_with_it(refused_port):
    # Locust runs in a session of its own: a `kill` reaches only wdm, and the worker (still trying to
    # reach a master that is not there) would go on for five minutes.
    proc = subprocess.Popen([*WDM, "stress", "worker", "--master-host", "127.0.0.1", "--master-port",
                             str(refused_port), "--processes", "2"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    mine = f"--master-port\0{refused_port}"
    deadline = time.monotonic() + 60
    while len(_processes_naming(mine)) < 4 and time.monotonic() < deadline:  # wdm, Locust and its two
        time.sleep(0.1)
    assert len(_processes_naming(mine)) == 4
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == cli.EXIT_INTERRUPTED, err
    assert err.strip().splitlines()[-1].startswith("wdm: interrupted (SIGTERM)") and "Traceback" not in err
    assert _processes_naming(mine) == []


def test_workers_that_never_connect_are_one_sentence_naming_the_options(tmp_path, wdm, shop, write_urls):
    port = free_port()
    r = wdm("stress", "run", "--urls", str(write_urls(shop.base_url)), "-t", "2s", "--master", "--expect-workers",
            "2", "--master-bind-host", "127.0.0.1", "--master-bind-port", str(port), "--workers-wait", "1s",
            "--runs-dir", str(tmp_path / "runs"))
    _one_failed_run(tmp_path / "runs", r)
    assert ("not all --expect-workers 2 workers connected within --workers-wait 1 s; expected them to be "
            f"started with `wdm stress worker --master-host <this machine> --master-port {port}`.") in r.stderr


@pytest.mark.long
@pytest.mark.timing
def test_step_load_over_two_processes(tmp_path, capsys):
    # Locust's default master port is taken, as by another run on this machine: each run has its own.
    held = _hold_port(5557)
    try:
        code = cli.main(["stress", "run", *SMALL, "--steps", "1,3", "--step-time", "2s", "-r", "20", "--wait",
                         "0.05", "--processes", "2", "--runs-dir", str(tmp_path)])
    finally:
        if held is not None:
            held.close()
    out, err = capsys.readouterr()
    assert code == cli.EXIT_OK, out + err
    run = only_run(tmp_path)
    assert run.manifest["scenario"]["steps"] == [1, 3] and run.manifest["scenario"]["step_time"] == 2.0
    assert run.manifest["mode"] == "processes"
    summary = run.read_json("summary.json")
    steps = summary["steps"]
    assert [s["users"] for s in steps] == [1, 3]
    # The steps are counted by the load's own clock, which the master wrote as it started.
    assert (run.path / "load-started.txt").is_file()
    assert all(s["requests"] > 0 and s["p99_ms"] > 0 for s in steps), steps
    # more users, more throughput, at this tiny scale
    assert steps[1]["throughput_rps"] > steps[0]["throughput_rps"], steps
    assert len(raw_files(run.path)) == 2  # one file per worker process
    # Every request Locust counted has its raw row: the workers' last rows reach the master before it
    # quits (a step load is stopped before it quits, and its last seconds of rows were lost).
    assert summary["requests"] == summary["locust"]["requests"], (summary["requests"], summary["locust"])
    history = [(r["Timestamp"], r["User Count"], r["Total Request Count"])
               for r in csv.DictReader(open(run.path / "locust_stats_history.csv")) if r["Name"] == "Aggregated"]
    assert {"1", "3"} <= {users for _, users, _ in history}, history
    assert summary["requests"] == int(aggregated(run.path)["Request Count"]), history


@pytest.mark.long
def test_a_shop_that_dies_mid_run_keeps_what_was_measured(tmp_path, write_urls):
    with ReferenceShopProcess() as shop:
        urls = write_urls(shop.base_url)
        proc = subprocess.Popen([*WDM, "stress", "run", "--urls", str(urls), "--init", *SMALL, "-u", "2", "-t", "4s",
                                 "--wait", "0.05", "--verify", "--runs-dir", str(tmp_path / "runs")],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        _wait_for_file(tmp_path / "runs", "*/requests-*.csv", proc)  # Locust is making requests
        time.sleep(1.0)
        shop.kill()
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == cli.EXIT_ERROR, out + err
    last = err.strip().splitlines()[-1]
    assert last.startswith("wdm: ") and "while reading" in last  # --verify could not read the state back
    run = only_run(tmp_path / "runs")
    assert run.manifest["status"] == "failed" and run.manifest["error"] in last
    summary = run.read_json("summary.json")
    assert summary["outcomes"]["ok"] > 0 and summary["outcomes"]["fail"] + summary["outcomes"]["unknown"] > 0
    assert summary["gates"][0]["passed"] and summary["verify"] is None  # judged; the books could not be read
    assert (run.path / "locust_stats.csv").is_file() and (run.path / "locust_report.html").is_file()


@pytest.mark.long
@pytest.mark.parametrize("sig, said", [(signal.SIGINT, "Ctrl-C"), (signal.SIGTERM, "SIGTERM")])
def test_ctrl_c_or_a_kill_keeps_the_csvs_says_interrupted_and_stops_locust(tmp_path, sig, said):
    # Locust runs in a session of its own: wdm must pass the stop on, or its load goes on without it.
    proc = subprocess.Popen([*WDM, "stress", "run", *SMALL, "-u", "2", "-t", "60s", "--wait", "0.05",
                             "--runs-dir", str(tmp_path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _wait_for_file(tmp_path, "*/requests-*.csv", proc)
    time.sleep(1.5)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == cli.EXIT_INTERRUPTED, out + err
    assert err.strip().splitlines()[-1] == f"wdm: interrupted ({said}); what was recorded so far is kept."
    assert _processes_naming(str(tmp_path)) == []
    run = only_run(tmp_path)
    assert run.manifest["status"] == "interrupted" and run.manifest["error"] == f"interrupted by the user ({said})"
    summary = run.read_json("summary.json")
    assert summary["requests"] > 0 and summary["requests"] == int(aggregated(run.path)["Request Count"])
    assert (run.path / "locust_report.html").is_file()


@pytest.mark.long
@pytest.mark.parametrize("sig, said, ctrl_c", [(signal.SIGINT, "Ctrl-C", signal.SIG_DFL),
                                              (signal.SIGTERM, "SIGTERM", signal.SIG_IGN)],
                         ids=["ctrl-c", "kill-of-a-background-job"])
def test_a_web_ui_run_stops_at_once_on_ctrl_c_or_a_kill_says_interrupted_and_renders(tmp_path, sig, said, ctrl_c):
    # Started with `&` from a shell script, wdm inherits Ctrl-C ignored, and Locust with it: the
    # SIGINT wdm passed on went unheard, Locust was killed after 30 s, its files unwritten, and the
    # run said `failed`. How a web UI run always ends, a Ctrl-C or a kill ends it as interrupted.
    import urllib.parse
    import urllib.request

    from bs4 import BeautifulSoup

    port = free_port()
    proc = subprocess.Popen([*WDM, "stress", "run", "--ui", "--web-port", str(port), *SMALL, "--wait", "0.05",
                             "--runs-dir", str(tmp_path / "runs"), "--report"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, ctrl_c))
    try:
        deadline = time.monotonic() + 60
        while True:  # the UI's user starts a load, as its form does
            assert proc.poll() is None and time.monotonic() < deadline, "the web UI never answered"
            try:
                host = only_run(tmp_path / "runs").manifest["target"]["ORDER_URL"]
                form = urllib.parse.urlencode({"user_count": 2, "spawn_rate": 2, "host": host}).encode()
                urllib.request.urlopen(f"http://127.0.0.1:{port}/swarm", form, timeout=5).read()
                break
            except (OSError, ValueError, KeyError, WorkbenchError):  # no run folder, or no manifest in it, yet
                time.sleep(0.2)
        _wait_for_file(tmp_path / "runs", "*/requests-*.csv", proc)
        time.sleep(1.0)
        proc.send_signal(sig)
        sent = time.monotonic()
        run = only_run(tmp_path / "runs")
        while Run.open(run.path).manifest["status"] == "running" and time.monotonic() - sent < 60:
            time.sleep(0.05)
        stopped_s = time.monotonic() - sent
        out, err = proc.communicate(timeout=120)  # the report is rendered after
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    # About 2 s (Locust's last CSV tick included); the bound is loose for a busy machine, and far
    # below the 30 s after which an unheard Locust is killed.
    assert stopped_s < 10, f"the run took {stopped_s:.1f} s to stop"
    assert proc.returncode == cli.EXIT_INTERRUPTED, out + err
    assert err.strip().splitlines()[-1] == f"wdm: interrupted ({said}); what was recorded so far is kept."
    assert _processes_naming(str(tmp_path)) == []
    run = Run.open(run.path)
    assert run.manifest["status"] == "interrupted" and run.manifest["error"] == f"interrupted by the user ({said})"
    summary = run.read_json("summary.json")
    assert summary["verdict"] == "interrupted: no verdict" and "INTERRUPTED: NO VERDICT" in out
    assert summary["requests"] > 0 and summary["requests"] == int(aggregated(run.path)["Request Count"])
    assert (run.path / "locust_report.html").is_file()
    page = BeautifulSoup((tmp_path / f"{run.id}.html").read_text(), "html.parser")
    assert "Traceback" not in page.get_text()
    assert not page.select("[data-mime-type='application/vnd.jupyter.stderr']")
    assert page.find("div", class_="wdm-banner").find("div").get_text() == "INTERRUPTED: NO VERDICT"


def test_a_web_ui_run_refuses_the_options_that_need_a_verdict(wdm, tmp_path):
    r = wdm("stress", "run", "--ui", "--threshold", "p99<1s", "--runs-dir", str(tmp_path))
    assert r.returncode == cli.EXIT_ERROR and len(r.stderr.strip().splitlines()) == 1
    assert r.stderr.startswith("wdm: --threshold: a web UI run's load is whatever its user makes it") \
        and "not with --ui" in r.stderr
    r = wdm("stress", "run", "--ui", "--junit", str(tmp_path / "x.xml"), "--runs-dir", str(tmp_path))
    assert r.returncode == cli.EXIT_ERROR and f"--junit {tmp_path / 'x.xml'} writes the gates" in r.stderr
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("client", ["requests"])
def test_the_httpuser_variant_runs_the_same_scenario(tmp_path, monkeypatch, client):
    """The benchmark's comparison point: WDM_HTTP_CLIENT=requests swaps FastHttpUser for HttpUser."""
    monkeypatch.setenv("WDM_HTTP_CLIENT", client)
    assert cli.main(["stress", "run", *SMALL, "-u", "2", "-t", "2s", "--wait", "0.05",
                     "--runs-dir", str(tmp_path)]) == cli.EXIT_OK
    run = only_run(tmp_path)
    summary = run.read_json("summary.json")
    assert summary["requests"] > 0 and summary["requests"] == summary["locust"]["requests"]
    assert "ShopHttpUser" in (run.path / "locust.log").read_text()
