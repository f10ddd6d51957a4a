"""The stress workload's pure parts (durations, steps, the scenario, raw-row summaries, the books
check, Locust's command line), the CLI's answers to bad input, and the Kubernetes manifests."""

from __future__ import annotations

import csv
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from wdm_lib import cli
from wdm_lib.analysis import latency_percentiles
from wdm_lib.config import parse_urls
from wdm_lib.errors import WorkbenchError
from wdm_lib.runs import Run
from wdm_lib.workloads.shop_rows import RAW_COLUMNS
from wdm_lib.workloads.stress import figures, gates
from wdm_lib.workloads.stress import locust as stress_locust
from wdm_lib.workloads.stress.scenario import Distributed, StressScenario, parse_duration, parse_steps
from wdm_lib.workloads.stress.table import render_table

ROOT = Path(__file__).resolve().parent.parent
K8S = ROOT / "deploy" / "k8s"
TARGET = parse_urls({"ORDER_URL": "http://o:1", "PAYMENT_URL": "http://p:2", "STOCK_URL": "http://s:3"}, "test")


# --- durations and steps -----------------------------------------------------------------------

@pytest.mark.parametrize("text,seconds", [("30s", 30), ("1m", 60), ("1h30m", 5400), ("1m30s", 90),
                                          ("90", 90), ("2.5s", 2.5), (" 5m ", 300), (45, 45)])
def test_parse_duration(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["abc", "", "0", "-5s", "10x", "s", "1s1m", "nan"])
def test_parse_duration_refuses_with_the_option_named(text):
    with pytest.raises(WorkbenchError, match=r"^--step-time is .*; expected"):
        parse_duration(text, "--step-time")


def test_parse_steps():
    assert parse_steps("50,100,200,400") == [50, 100, 200, 400]
    assert parse_steps("5 10") == [5, 10]
    assert parse_steps(None) is None and parse_steps("") is None
    for bad in ("5,x", "0,5", "-1"):
        with pytest.raises(WorkbenchError, match="^--steps is"):
            parse_steps(bad)


# --- the scenario ------------------------------------------------------------------------------

def test_defaults_are_the_seed_benchmarks():
    sc = StressScenario()
    assert (sc.n_items, sc.item_stock, sc.item_price, sc.n_users, sc.user_credit, sc.n_orders) == \
        (100_000, 1_000_000, 1, 100_000, 1_000_000, 100_000)
    # The seed locustfile's constant(1), where the figures users know come from (not its README's 1-15 s).
    assert sc.wait == 1.0 and sc.wait_range == (1.0, 1.0)
    assert sc.users == 100 and sc.spawn_rate == 10 and sc.rate is None and sc.pacing_s is None
    assert sc.weights() == {"checkout": 1, "find_order": 0, "find_item": 0, "find_user": 0, "add_funds": 0}
    d = sc.to_dict()
    assert d["steps"] is None and d["step_time"] == 30.0 and d["run_time"] == 60.0
    assert "wait_between" not in d and d["wait"] == 1.0  # only the wait in effect is recorded


def test_wait_between_and_rate_record_only_the_wait_in_effect():
    sc = StressScenario(wait=[1, 15])
    assert sc.wait_range == (1.0, 15.0) and sc.to_dict()["wait"] == [1.0, 15.0]
    assert StressScenario.from_dict(sc.to_dict()) == sc
    paced = StressScenario(rate=2000)
    # enough users that each sends every PACED_PERIOD_S, all started within a second
    assert paced.users == 500 and paced.spawn_rate == 500 and paced.pacing_s == pytest.approx(0.25)
    d = paced.to_dict()
    assert d["wait"] is None and d["rate"] == 2000 and d["users"] == 500
    assert StressScenario.from_dict(d) == paced
    assert StressScenario(rate=10, users=40).pacing_s == 4.0


def test_scenario_dict_round_trip_with_steps():
    sc = StressScenario(steps="50,100", step_time="1m", run_time="2m", wait=0)
    d = sc.to_dict()
    assert d["steps"] == [50, 100] and d["step_time"] == 60.0 and d["run_time"] == 120.0
    assert StressScenario.from_dict(d) == sc
    assert sc.planned_s == 120 and sc.wait_range == (0, 0)


@pytest.mark.parametrize("kwargs,option", [
    ({"users": 0}, "--users"), ({"spawn_rate": -1}, "--spawn-rate"), ({"spawn_rate": 0}, "--spawn-rate"),
    ({"run_time": "abc"}, "--run-time"), ({"processes": 0}, "--processes"), ({"n_orders": 0}, "--n-orders"),
    ({"item_stock": -1}, "--item-stock"), ({"wait": -1}, "--wait"), ({"wait": (5, 1)}, "--wait-between"),
    ({"wait": "soon"}, "--wait"), ({"rate": 0}, "--rate"), ({"rate": 10, "steps": "1,2"}, "--rate"),
    ({"thresholds": ["p99<"]}, "--threshold"), ({"thresholds": ["p99<1s"], "raw_latencies": False}, "--threshold"),
    ({"find_item_weight": -1}, "--find-item-weight"), ({"checkout_weight": 0}, "--checkout-weight"),
    ({"timeout_s": 0}, "--timeout")])
def test_invalid_values_name_the_option(kwargs, option):
    with pytest.raises(WorkbenchError) as e:
        StressScenario(**kwargs)
    assert option in str(e.value) and "expected" in str(e.value)


# --- raw rows -> summary -----------------------------------------------------------------------

def write_raw(path: Path, rows: list[list]) -> None:
    """rows: start_ns, name, method, status, latency_us, outcome (sent when intended, as in a closed
    loop), or with intended_ns second, as RAW_COLUMNS has it."""
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(RAW_COLUMNS)
        w.writerows(r if len(r) == len(RAW_COLUMNS) else [r[0], r[0], *r[1:]] for r in rows)


def test_summarize_raw_is_exact_and_streams_every_file(tmp_path):
    t0 = 1_700_000_000_000_000_000
    a = [[t0 + i * 10_000_000, "/orders/checkout/[order_id]", "POST", 200, 1000 + i, "ok"] for i in range(100)]
    b = [[t0 + 5_000_000, "/orders/checkout/[order_id]", "POST", 400, 7000, "fail"],
         [t0 + 6_000_000, "/stock/find/[item_id]", "GET", 0, 60_000_000, "unknown"],
         [t0 + 7_000_000, "/stock/find/[item_id]", "GET", 200, 2500, "ok"]]
    write_raw(tmp_path / "requests-a.csv", a)
    write_raw(tmp_path / "requests-b.csv", b)
    with open(tmp_path / "requests-b.csv", "a") as f:
        f.write(f"{t0},{t0},/stock/find/[item_id],GET,2")  # a torn last line, as a kill leaves it
    s = figures.summarize_raw(figures.read_raw(tmp_path))
    assert s["requests"] == 103 and s["failures"] == 2
    assert s["outcomes"] == {"ok": 101, "fail": 1, "unknown": 1}
    assert s["latency_ms"] == latency_percentiles([r[4] / 1000 for r in a + b])
    assert s["by_name"]["/stock/find/[item_id]"] == latency_percentiles([60_000.0, 2.5])
    assert s["duration_s"] == pytest.approx(60.006, abs=1e-3)  # first start to the 60 s request's end
    assert s["throughput_rps"] == pytest.approx(103 / s["duration_s"], rel=1e-3)


def test_steps_are_windows_from_the_first_request(tmp_path):
    t0 = 1_700_000_000_000_000_000
    rows = [[t0 + int(t * 1e9), "/orders/checkout/[order_id]", "POST", 200, lat, "ok"]
            for t, lat in [(0, 1000), (0.5, 2000), (1.2, 3000), (1.9, 4000), (2.5, 9000), (9.0, 1)]]
    write_raw(tmp_path / "requests-x.csv", rows)
    steps = figures.summarize_raw(figures.read_raw(tmp_path), [10, 20, 40], 1.0)["steps"]
    assert steps == [{"users": 10, "requests": 2, "throughput_rps": 2.0, "p99_ms": 2.0},
                     {"users": 20, "requests": 2, "throughput_rps": 2.0, "p99_ms": 4.0},
                     {"users": 40, "requests": 1, "throughput_rps": 1.0, "p99_ms": 9.0}]


def test_summary_of_an_empty_run(tmp_path):
    s = figures.summarize("r", StressScenario(), tmp_path)
    assert s["requests"] == 0 and s["latency_ms"]["count"] == 0 and s["locust"] is None
    assert s["outcomes"] == {"ok": 0, "fail": 0, "unknown": 0}


def test_read_locust_aggregated(tmp_path):
    p = tmp_path / "locust_stats.csv"
    p.write_text("Type,Name,Request Count,Failure Count,Median Response Time,Average Response Time,"
                 "Min Response Time,Max Response Time,Average Content Size,Requests/s,Failures/s,50%,66%,75%,"
                 "80%,90%,95%,98%,99%,99.9%,99.99%,100%\n"
                 "POST,/orders/checkout/[order_id],10,1,3,3.5,1,9,20,5.5,0.5,3,4,4,5,6,7,8,9,9,9,9\n"
                 ",Aggregated,10,1,3,3.5,1,9,20,5.5,0.5,3,4,4,5,6,7,8,N/A,9,9,9\n")
    assert figures.read_locust_aggregated(p) == {"requests": 10, "failures": 1, "median_ms": 3, "p95_ms": 7,
                                                "p99_ms": None, "rps": 5.5}
    assert figures.read_locust_aggregated(tmp_path / "missing.csv") is None


# --- Locust's command line -----------------------------------------------------------------------

def test_locust_command_headless(tmp_path):
    cmd, env = stress_locust.locust_command(StressScenario(users=7, spawn_rate=2, run_time="1m30s"), TARGET, tmp_path)
    line = " ".join(cmd)
    assert cmd[:3] == [sys.executable, "-m", "locust"] and str(stress_locust.LOCUSTFILE) in cmd
    for part in ("--headless", "-u 7", "-r 2", "-t 90s", f"--csv {tmp_path / 'locust'}", "--csv-full-history",
                 f"--html {tmp_path / 'locust_report.html'}", "--host http://o:1", "--wdm-stock-url http://s:3",
                 "--wdm-payment-url http://p:2", "--wdm-n-orders 100000", "--wdm-wait-min 1",
                 "--wdm-wait-max 1", f"--wdm-raw-dir {tmp_path}"):
        assert part in line
    assert "--processes" not in cmd and "--master" not in cmd and "WDM_STEPS" not in env
    assert "--wdm-pacing" not in cmd and "--wdm-workers-file" not in cmd  # closed loop, one process


def test_locust_command_paced_and_over_processes(tmp_path):
    cmd, _ = stress_locust.locust_command(StressScenario(rate=400, users=100, processes=2), TARGET, tmp_path)
    line = " ".join(cmd)
    assert "--wdm-pacing 0.25" in line and "-u 100" in line and "-r 100" in line
    assert "--wdm-wait-min 0 --wdm-wait-max 0" in line
    assert f"--wdm-workers-file {tmp_path / 'workers.csv'}" in line  # a master watches its workers


def test_locust_command_steps_processes_master_ui(tmp_path):
    cmd, env = stress_locust.locust_command(StressScenario(steps="5,10", processes=2, raw_latencies=False), TARGET, tmp_path)
    assert env["WDM_STEPS"] == "5,10" and "-t" not in cmd and "--processes" in cmd
    assert "--wdm-raw-dir" not in cmd
    dist = Distributed(master=True, expect_workers=3, bind_host="127.0.0.1", bind_port=6000,
                              workers_wait_s="30s")
    cmd, _ = stress_locust.locust_command(StressScenario(), TARGET, tmp_path, dist=dist)
    line = " ".join(cmd)
    assert "--master --expect-workers 3 --expect-workers-max-wait 30 --master-bind-host 127.0.0.1 " \
           "--master-bind-port 6000" in line
    cmd, _ = stress_locust.locust_command(StressScenario(), TARGET, tmp_path, ui=True, web_port=9999)
    assert "--headless" not in cmd and "--web-host 127.0.0.1 --web-port 9999" in " ".join(cmd)


def test_locustfile_imports_standalone_and_lists_its_user():
    """By path, in a fresh interpreter, with no wdm_lib on the path: as a worker pod would. (-B: the
    bare environment would otherwise let it write bytecode beside the sources.)"""
    out = subprocess.run([sys.executable, "-B", "-m", "locust", "-f", str(stress_locust.LOCUSTFILE), "--list"],
                         capture_output=True, text=True, timeout=60, cwd="/", env={"PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr
    assert "ShopUser" in out.stdout and "ShopHttpUser" not in out.stdout
    text = stress_locust.LOCUSTFILE.read_text()
    assert not re.search(r"^\s*(from|import) wdm_lib", text, re.M)


# --- the CLI's answers to bad input --------------------------------------------------------------

@pytest.mark.parametrize("argv,needle", [
    (["stress", "run", "--users", "0"], "--users is 0"),
    (["stress", "run", "--run-time", "abc"], "--run-time is 'abc'"),
    (["stress", "run", "--spawn-rate", "-1"], "--spawn-rate is -1"),
    (["stress", "run", "--steps", "10,x"], "--steps is '10,x'"),
    (["stress", "run", "--wait-between", "3", "1"], "--wait-between is 3 1"),
    (["stress", "run", "--master", "--processes", "2"], "--processes"),
    (["stress", "run", "--master", "--expect-workers", "0"], "--expect-workers is 0"),
    (["stress", "run", "--workers-wait", "soon"], "--workers-wait is 'soon'"),
    (["stress", "run", "--anomaly", "nonsense"], "--anomaly 'nonsense'"),
    (["stress", "run", "--rate", "-5"], "--rate is -5"),
    (["stress", "run", "--rate", "50", "--steps", "5,10"], "--rate or --steps"),
    (["stress", "run", "--threshold", "p99<1s", "--no-raw-latencies"], "--threshold is judged on the raw rows"),
    (["stress", "run", "--verify", "--no-raw-latencies"], "--verify compares the shop's books"),
    (["stress", "run", "--threshold", "nonsense"], "--threshold 'nonsense'"),
    (["stress", "run", "--junit", "/nonexistent/dir/x.xml"], "--junit /nonexistent/dir/x.xml: no such folder"),
    (["stress", "worker", "--master-port", "70000"], "--master-port is 70000"),
])
def test_invalid_options_end_in_one_sentence(argv, needle, capsys, tmp_path):
    assert cli.main(argv + ["--runs-dir", str(tmp_path)] if argv[1] == "run" else argv) == cli.EXIT_ERROR
    err = capsys.readouterr().err.strip()
    assert err.startswith("wdm: ") and needle in err and len(err.splitlines()) == 1, err
    assert "Traceback" not in err
    assert not list(tmp_path.iterdir())  # refused before anything started


def test_bad_urls_file_is_one_sentence(tmp_path, capsys):
    bad = tmp_path / "urls.json"
    bad.write_text('{"ORDER_URL": ')
    assert cli.main(["stress", "run", "--urls", str(bad), "--runs-dir", str(tmp_path / "runs")]) == cli.EXIT_ERROR
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"wdm: {bad}: not valid JSON") and len(err.splitlines()) == 1
    assert cli.main(["stress", "init", "--urls", str(tmp_path / "nope.json")]) == cli.EXIT_ERROR
    assert "nope.json: no such file" in capsys.readouterr().err


def test_unreachable_target_is_one_sentence_and_the_run_says_failed(tmp_path, capsys, write_urls, refused_port):
    port = refused_port
    urls = write_urls(f"http://127.0.0.1:{port}")
    for argv in (["stress", "run", "--urls", str(urls), "-t", "2s"],
                 ["stress", "run", "--urls", str(urls), "--init", "-t", "2s"],
                 ["stress", "init", "--urls", str(urls)]):
        assert cli.main(argv + ["--runs-dir", str(tmp_path / "runs")]) == cli.EXIT_ERROR
        err = capsys.readouterr().err.strip().splitlines()
        assert err[-1].startswith(f"wdm: http://127.0.0.1:{port}/") and "cannot connect" in err[-1]
    manifests = [Run.open(p) for p in sorted((tmp_path / "runs").iterdir())]
    assert [m.manifest["status"] for m in manifests] == ["failed"] * 3
    assert all("cannot connect" in m.manifest["error"] for m in manifests)


# --- Kubernetes ----------------------------------------------------------------------------------

def k8s_docs() -> dict[tuple[str, str], dict]:
    docs = {}
    for path in sorted(K8S.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            docs[(doc["kind"], doc["metadata"]["name"])] = doc
    return docs


def test_k8s_manifests_parse_and_fit_together():
    docs = k8s_docs()
    scenario = docs[("ConfigMap", "wdm-stress-scenario")]["data"]
    master = docs[("Job", "wdm-locust-master")]["spec"]["template"]["spec"]
    service = docs[("Service", "wdm-locust-master")]["spec"]
    worker = docs[("Deployment", "wdm-locust-worker")]
    assert all(isinstance(v, str) for v in scenario.values())  # ConfigMap values must be strings

    # Every WDM_* key is an option of the locustfile, and every option of the locustfile is set.
    options = set(re.findall(r'"(WDM_[A-Z_]+)"', stress_locust.LOCUSTFILE.read_text())) - {"WDM_HTTP_CLIENT", "WDM_RAW_DIR",
                                                                                         "WDM_WORKERS_FILE"}
    assert {k for k in scenario if k.startswith("WDM_")} == options
    assert int(scenario["LOCUST_EXPECT_WORKERS"]) == worker["spec"]["replicas"]

    # One pinned Locust release on both sides (master and workers must speak the same protocol);
    # not tied to the locally installed release, which moves with every fresh install.
    m, w = master["containers"][0], worker["spec"]["template"]["spec"]["containers"][0]
    assert re.fullmatch(r"locustio/locust:\d+\.\d+\.\d+", m["image"]) and w["image"] == m["image"]

    run = " ".join(m["args"])
    for part in ("--master", "--headless", "--csv /results/locust", "--csv-full-history",
                 "--html /results/locust_report.html", "--wdm-raw-dir /results", "-f /locust/locustfile.py",
                 "--wdm-workers-file /results/workers.csv"):
        assert part in run
    assert {"configMapRef": {"name": "wdm-stress-scenario"}} in m["envFrom"]
    assert master["restartPolicy"] == "Never"
    assert docs[("Job", "wdm-locust-master")]["spec"]["activeDeadlineSeconds"] > 0

    assert w["args"][w["args"].index("--master-host") + 1] == "wdm-locust-master"
    assert "--worker" in w["args"]
    assert service["selector"] == docs[("Job", "wdm-locust-master")]["spec"]["template"]["metadata"]["labels"]
    assert 5557 in [p["port"] for p in service["ports"]]
    assert worker["spec"]["selector"]["matchLabels"] == worker["spec"]["template"]["metadata"]["labels"]
    for spec in (master, worker["spec"]["template"]["spec"]):
        assert spec["volumes"][0]["configMap"]["name"] == "wdm-locustfile"


def test_the_locustfile_configmap_ships_every_module_it_imports_from_its_folder():
    """A pod has only what the ConfigMap holds: the locustfile and what it imports from beside it."""
    folder = stress_locust.LOCUSTFILE.parent
    beside = {m for m in re.findall(r"^from (\w+) import", stress_locust.LOCUSTFILE.read_text(), re.M)
              if (folder / f"{m}.py").is_file()}
    assert beside == {"shop_rows"}
    for doc in (K8S / "README.md", K8S / "master.yaml"):
        command = re.search(r"kubectl create configmap wdm-locustfile[^\n\\]*(?:\\\n[^\n\\]*)*", doc.read_text())[0]
        shipped = set(re.findall(r"--from-file=(?:[\w.]+=)?wdm_lib/workloads/(\w+)\.py", command))
        assert shipped == beside | {"locustfile"}, (doc, command)


def test_render_table_shows_the_default_gate_failing_a_target_that_was_not_initialised(tmp_path):
    t0 = 1_700_000_000_000_000_000
    write_raw(tmp_path / "requests-a.csv", [[t0 + i, "/orders/checkout/[order_id]", "POST", 400, 900, "fail"]
                                            for i in range(9)] + [[t0, "/orders/checkout/[order_id]", "POST", 0, 5, "unknown"]])
    summary = figures.summarize("r1", StressScenario(), tmp_path)
    summary["gates"] = gates.judge([], figures.read_raw(tmp_path), summary["duration_s"])
    text = render_table(summary)
    assert "requests: 10  ok 0  refused 9  unknown 1" in text
    assert "gate FAIL  ok>0" in text and "never batch-initialised" in text and "wdm stress init, or --init" in text
    assert "1 requests got no verdict" in text
