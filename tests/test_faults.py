"""Faults during a run: the schedule file is checked before any load, the nemesis runs it beside a
paced load and records every step, the measures say what each fault cost, and the verdict is the
same checkers over the whole history. The embedded shop's kills land mid-run; an in-memory shop
proves the checkers catch what a restart loses."""

import json
import signal
import subprocess
import sys
import time

import pytest

from wdm_lib.errors import ConfigError, WorkbenchError
from wdm_lib.faults.measures import Requests, measure_fault
from wdm_lib.faults.schedule import parse_schedule
from wdm_lib.history import FAULT, Op, read_ops
from wdm_lib.runner import run_consistency
from wdm_lib.workloads.consistency import ConsistencyScenario
from processes import alive, wait_for

# 600 checkouts at 100/s: a load of 6 s to put faults in, long enough after a fault at 1 s for a
# shop slow to restart on a busy machine to serve again.
PACED = dict(n_items=3, item_stock=40, n_users=150, user_credit=2, n_orders=600, rate=100, quiet_s=1, seed=4)


def schedule(tmp_path, text, name="faults.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return path


# --- the schedule file ------------------------------------------------------------------------------

GOOD = """
faults:
  - name: stock dies
    at: 2s
    run: docker compose kill stock-service
    recover_after: 3s
    recover: docker compose start stock-service
  - name: shop paused
    at: 1.5
    action: pause shop
    recover_after: 500ms
"""


def test_a_schedule_is_read_in_time_order():
    with pytest.raises(ConfigError):  # 500ms is not Locust's notation: one sentence, not a guess
        parse_schedule(GOOD, "f.yaml", ("shop",), 10)
    faults = parse_schedule(GOOD.replace("500ms", "0.5s"), "f.yaml", ("shop",), 10)
    assert [(f.name, f.at_s) for f in faults] == [("shop paused", 1.5), ("stock dies", 2.0)]
    assert faults[0].action == ("pause", "shop") and faults[0].recover_after_s == 0.5 and faults[0].recovers
    assert faults[1].run.startswith("docker compose kill") and faults[1].recover.endswith("start stock-service")


@pytest.mark.parametrize("text, sentence", [
    ("faults: [{name: a, at: 2s, run: ls, recovr: 1s}]", "fault 1 ('a') has an unknown key 'recovr'"),
    ("faults: [{name: a, at: soon, run: ls}]", "fault 1 ('a'): at is 'soon'; expected a duration"),
    ("faults: [{name: a, at: 20s, run: ls}]", "fault 'a' is at 20 s, but the load lasts 10 s"),
    ("faults: [{name: a, at: 2s, action: kill stock}]", "names 'stock'; expected one of shop"),
    ("faults: [{name: a, at: 2s, action: explode shop}]", "expected one of kill, pause, restart"),
    ("faults: [{name: a, at: 2s}]", "has neither run and action"),
    ("faults: [{name: a, at: 2s, run: ls, action: kill shop}]", "has both run and action"),
    ("faults: [{at: 2s, run: ls}]", "has no 'name'"),
    ("faults: [{name: a, at: 2s, run: ls}, {name: a, at: 3s, run: ls}]", "two faults are named 'a'"),
    ("faults: [{name: a, at: 2s, run: ls, recover_after: 1s}]", "recover_after but nothing to recover with"),
    ("faults:\n  - name: a\n   at: 2s", "not valid YAML at line"),
    ("steps: []", "expected a YAML mapping with one key, faults"),
])
def test_a_bad_schedule_is_one_sentence_naming_the_file_and_fault(text, sentence):
    with pytest.raises(ConfigError) as e:
        parse_schedule(text, "f.yaml", ("shop",), 10)
    assert str(e.value).startswith("f.yaml") and sentence in str(e.value)


def test_built_in_actions_need_the_embedded_shop():
    with pytest.raises(ConfigError, match="acts on the embedded reference shop"):
        parse_schedule("faults: [{name: a, at: 2s, action: kill shop}]", "f.yaml", None, 10)


# --- the measures, on hand-made rows ---------------------------------------------------------------

S = 1_000_000_000


def step(name, kind, at_s, took_s=0.0, status=0):
    return Op(0, FAULT, intended_ns=int(at_s * S), invoke_ns=int(at_s * S), complete_ns=int((at_s + took_s) * S),
              status=status, outcome="ok", fault={"name": name, "step": kind, "what": "kill shop"})


def requests_every(ms, until_s, answer):
    """A request due every `ms` ms, answered 1 ms later by answer(t) -> status (None: no reply)."""
    due = [i * ms * 1_000_000 for i in range(int(until_s * 1000 / ms))]
    statuses = [answer(t / S) for t in due]
    outcomes = ["ok" if s and s < 300 else "fail" if s and s < 500 else "unknown" for s in statuses]
    return Requests.of(due, due, [t + 1_000_000 for t in due], statuses, outcomes)


def test_downtime_runs_from_the_first_failure_to_the_next_served_reply():
    # Down from 2.0 s to 3.5 s; the recovery step ends at 3.2 s, the first reply served at 3.5 s.
    reqs = requests_every(10, 8, lambda t: None if 2.0 <= t < 3.5 else 200)
    m = measure_fault("f", step("f", "inject", 2.0), step("f", "recover", 3.0, 0.2), reqs, 0, 8 * S)
    assert m["downtime_s"] == pytest.approx(1.5, abs=0.011)
    assert m["first_served_after_recover_s"] == pytest.approx(0.3, abs=0.011)
    assert m["rate_back_after_recover_s"] == pytest.approx(0.3, abs=0.11)
    assert m["requests"] == {"ok": 0, "fail": 0, "unknown": 121}  # due in [2.0, 3.2], all while down
    assert m["started_s"] == 2.0 and m["late_ms"] == 0.0


def test_a_fault_that_costs_nothing_has_no_downtime_and_4xx_counts_as_served():
    reqs = requests_every(10, 6, lambda t: 409 if t > 1 else 200)
    m = measure_fault("f", step("f", "inject", 2.0), step("f", "recover", 3.0), reqs, 0, 6 * S)
    assert m["downtime_s"] == 0.0 and m["first_served_after_recover_s"] == pytest.approx(0.001, abs=1e-3)


def test_a_shop_that_never_comes_back_has_no_recovery_figures():
    reqs = requests_every(10, 6, lambda t: None if t >= 2.0 else 200)
    m = measure_fault("f", step("f", "inject", 2.0), step("f", "recover", 3.0), reqs, 0, 6 * S)
    assert m["downtime_s"] is None and m["first_served_after_recover_s"] is None
    assert m["rate_back_after_recover_s"] is None


# --- end to end on the embedded shop -----------------------------------------------------------------

@pytest.mark.long
def test_the_embedded_shop_killed_and_restarted_mid_run_stays_consistent(tmp_path):
    faults = schedule(tmp_path, "faults:\n  - name: shop killed\n    at: 1s\n    action: kill shop\n"
                                "    recover_after: 1s\n")
    # A load of 10 s: a shop restarted at 2 s has 8 of them to serve again. Its start takes a quarter
    # of a second here, and grows with every process that wants the CPU: two seconds with seven on
    # one core, and once past the end of a load of 6 s (no reply served after the kill, no downtime).
    scenario = ConsistencyScenario(**{**PACED, "n_orders": 1000})
    run, summary = run_consistency(scenario, runs_dir=tmp_path / "runs", faults=faults)
    assert summary["verdict"] == "consistent", summary["anomalies"]
    [fault] = summary["faults"]
    assert fault["name"] == "shop killed" and fault["what"] == "kill shop" and fault["recover"] == "start shop"
    # Checkouts due while it was down were refused connections: a downtime from the kill to the first
    # reply served once it listened again, however long its start took.
    assert fault["requests"]["fail"] > 50 and fault["first_served_after_recover_s"] is not None
    down_s = fault["recovered_s"] - fault["started_s"]
    assert 0.5 < fault["downtime_s"] <= down_s + fault["first_served_after_recover_s"] + 0.002
    assert fault["acknowledged_writes_lost"] == []
    steps = [op for op in read_ops(run.file("history.csv")) if op.kind == FAULT]
    assert [(op.fault["step"], op.fault["what"], op.status) for op in steps] == [
        ("inject", "kill shop", 0), ("recover", "start shop", 0)]
    manifest = run.read_json("manifest.json")
    assert manifest["faults"]["schedule"][0]["action"] == "kill shop" and manifest["status"] == "completed"
    # Paced: checkout k was due k/rate after the first.
    checkouts = [op for op in read_ops(run.file("history.csv")) if op.kind == "checkout"]
    due = sorted(op.intended_ns for op in checkouts)
    assert (due[-1] - due[0]) / 1e9 == pytest.approx(999 / 100, abs=0.01)


@pytest.mark.long
def test_a_shop_that_keeps_its_state_in_memory_loses_it_to_a_restart_and_the_verdict_names_what(tmp_path):
    faults = schedule(tmp_path, "faults:\n  - name: restart\n    at: 1s\n    action: restart shop\n")
    run, summary = run_consistency(ConsistencyScenario(**PACED), anomaly="volatile", runs_dir=tmp_path / "runs",
                                   faults=faults)
    assert summary["verdict"] == "inconsistent"
    found = {a["name"]: a for a in summary["anomalies"]}
    assert {"lost-item", "lost-user"} <= set(found)
    assert found["lost-item"]["count"] == 3 and found["lost-user"]["count"] == 150
    # The credit the users should still hold went with them, and the verdict says how much.
    assert found["lost-user"]["under"]["by"] < 0 and found["lost-user"]["magnitude"] == -found["lost-user"]["under"]["by"]
    assert set(summary["faults"][0]["acknowledged_writes_lost"]) >= {"lost-item", "lost-user"}


@pytest.mark.long
def test_a_pause_longer_than_the_timeout_leaves_unknowns_that_are_resolved(tmp_path):
    faults = schedule(tmp_path, "faults:\n  - name: paused\n    at: 0.5s\n    action: pause shop\n"
                                "    recover_after: 4s\n")
    run, summary = run_consistency(ConsistencyScenario(**{**PACED, "timeout_s": 2}), runs_dir=tmp_path / "runs",
                                   faults=faults)
    timeouts = summary["unknown_by_cause"]["timeout"]
    assert sum(timeouts.values()) > 0 and timeouts["unresolved"] == 0
    assert summary["verdict"] == "consistent", summary["anomalies"]


def test_a_fault_command_that_fails_ends_the_run_with_exit_2_and_keeps_the_history(tmp_path, wdm):
    faults = schedule(tmp_path, "faults:\n  - name: breaks\n    at: 1s\n    run: echo no such container; exit 3\n")
    r = wdm("consistency", "--runs-dir", str(tmp_path / "runs"), *sum(([f"--{k.replace('_', '-')}", str(v)]
            for k, v in PACED.items() if k not in ("quiet_s", "rate")), []), "--rate", "100", "--quiet", "1",
            "--faults", str(faults))
    assert r.returncode == 2, r.stderr
    assert "fault 'breaks': inject step `echo no such container; exit 3` exited with status 3" in r.stderr
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1
    [run_dir] = (tmp_path / "runs").iterdir()
    ops = read_ops(run_dir / "history.csv")
    fault = next(op for op in ops if op.fault)
    assert fault.status == 3 and fault.outcome == "fail"
    # Every checkout sent is a row, those in flight when the run stopped as unknown.
    checkouts = [op for op in ops if op.kind == "checkout"]
    assert 50 < len(checkouts) < 600
    assert json.loads((run_dir / "manifest.json").read_text())["status"] == "failed"
    log = next((run_dir / "faults").iterdir()).read_text()
    assert "no such container" in log and "exit status 3" in log


def test_faults_need_a_paced_load():
    with pytest.raises(WorkbenchError, match="--faults needs --rate"):
        run_consistency(ConsistencyScenario(seed=1), faults="faults/embedded-shop.yaml")


def test_the_shipped_example_schedules_are_valid():
    from wdm_lib.faults.schedule import load_schedule
    from wdm_lib.shipped import FAULT_EXAMPLES

    examples = sorted(FAULT_EXAMPLES.glob("*.yaml"))
    assert {p.name for p in examples} >= {"embedded-shop.yaml", "embedded-services.yaml", "docker-compose.yaml",
                                          "kubernetes.yaml"}
    for path in examples:
        actions = {"embedded-shop.yaml": ("shop",), "embedded-services.yaml": ("shop", "gateway", "order", "stock",
                                                                              "payment")}.get(path.name)
        assert load_schedule(path, actions, 10.0)


def test_a_relative_schedule_is_the_working_folders_else_a_shipped_example(tmp_path, monkeypatch):
    from wdm_lib.faults.schedule import load_schedule

    monkeypatch.chdir(tmp_path)
    # From a folder that holds no faults/: the example the package ships, as the README names it.
    assert [f.name for f in load_schedule("faults/embedded-shop.yaml", ("shop",), 10.0)]
    with pytest.raises(ConfigError, match=r"^faults/nope.yaml: no such file; .*faults/embedded-shop.yaml"):
        load_schedule("faults/nope.yaml", ("shop",), 10.0)
    # The working folder's own file of that name comes first.
    (tmp_path / "faults").mkdir()
    (tmp_path / "faults" / "embedded-shop.yaml").write_text("faults:\n  - name: mine\n    at: 1s\n    run: 'true'\n")
    assert [f.name for f in load_schedule("faults/embedded-shop.yaml", ("shop",), 10.0)] == ["mine"]


def test_the_embedded_shop_dying_of_anything_else_stops_the_run_at_once(tmp_path, wdm):
    # A shell step kills the shop behind the nemesis's back: for the run, an unexpected death.
    faults = schedule(tmp_path, "faults:\n  - name: behind its back\n    at: 1s\n    run: kill -9 $WDM_PID_SHOP\n")
    r = wdm("consistency", "--runs-dir", str(tmp_path / "runs"), "--n-orders", "1000", "--rate", "100",
            "--faults", str(faults))
    assert r.returncode == 2, r.stderr
    assert "the embedded reference shop was killed by signal 9 during the run" in r.stderr
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1
    [run_dir] = (tmp_path / "runs").iterdir()
    ops = read_ops(run_dir / "history.csv")
    killed = next(op for op in ops if op.fault).complete_ns
    # Noticed at once: the last checkout it recorded ended soon after (at 100/s, not 9 s later).
    last = max(op.complete_ns for op in ops if op.kind == "checkout")
    assert (last - killed) / 1e9 < 3
    assert json.loads((run_dir / "manifest.json").read_text())["status"] == "failed"


# --- stress runs ---------------------------------------------------------------------------------------

STRESS = ["--n-items", "200", "--n-users", "200", "--n-orders", "200", "--rate", "100", "-t", "6s"]


@pytest.mark.long
def test_a_stress_run_with_the_shop_killed_measures_the_downtime_from_its_raw_rows(tmp_path, wdm):
    faults = schedule(tmp_path, "faults:\n  - name: shop killed\n    at: 2s\n    action: kill shop\n"
                                "    recover_after: 1s\n")
    r = wdm("stress", "run", "--runs-dir", str(tmp_path / "runs"), *STRESS, "--faults", str(faults))
    assert r.returncode == 0, r.stderr
    assert "shop killed" in r.stdout
    [run_dir] = (tmp_path / "runs").iterdir()
    summary = json.loads((run_dir / "summary.json").read_text())
    [fault] = summary["faults"]
    assert fault["what"] == "kill shop" and fault["recover"] == "start shop"
    assert fault["downtime_s"] is not None and fault["downtime_s"] > 0.5
    assert fault["requests"]["unknown"] > 20  # requests due while it was down got no reply
    assert fault["acknowledged_writes_lost"] is None  # a stress run's books do not say
    steps = [op for op in read_ops(run_dir / "history.csv") if op.kind == FAULT]
    assert [op.fault["step"] for op in steps] == ["inject", "recover"]
    assert json.loads((run_dir / "manifest.json").read_text())["faults"]["schedule"][0]["name"] == "shop killed"


@pytest.mark.long
def test_a_stress_run_whose_fault_command_fails_ends_with_exit_2_and_keeps_what_was_measured(tmp_path, wdm):
    faults = schedule(tmp_path, "faults:\n  - name: breaks\n    at: 2s\n    run: exit 4\n")
    r = wdm("stress", "run", "--runs-dir", str(tmp_path / "runs"), *STRESS, "--faults", str(faults))
    assert r.returncode == 2, r.stderr
    assert "fault 'breaks': inject step `exit 4` exited with status 4, printing nothing (see " in r.stderr
    assert "Traceback" not in r.stderr
    [run_dir] = (tmp_path / "runs").iterdir()
    assert json.loads((run_dir / "manifest.json").read_text())["status"] == "failed"
    assert list(run_dir.glob("requests-*.csv")) and (run_dir / "history.csv").is_file()


# --- the three-service shop under a schedule -------------------------------------------------------------

ORDER_DIES = """  - name: order dies
    at: 1.5s
    action: kill order
    recover_after: 1s
"""
# The order service dies while checkouts wait on a paused payment service: their stock is taken and
# their payment not yet, which is where a shop that does not resume its sagas loses stock.
ORDER_DIES_MID_SAGA = """faults:
  - name: payment stalls
    at: 1s
    action: pause payment
    recover_after: 2s
""" + ORDER_DIES
# The payment service stops answering for longer than the order service waits for a step, so the
# order service retries payments whose first try the payment service will still apply.
PAYMENT_STALLS_PAST_THE_STEP_TIMEOUT = """faults:
  - name: payment stalls
    at: 1s
    action: pause payment
    recover_after: 3s
"""
# Both at once, for the correct saga: it must come through either, so one run proves both.
BOTH = PAYMENT_STALLS_PAST_THE_STEP_TIMEOUT + ORDER_DIES
SERVICES_SCENARIO = dict(n_items=8, item_stock=60, n_users=100, user_credit=4, n_orders=400, rate=100,
                         timeout_s=30, quiet_s=1.5, seed=9)


@pytest.mark.long
@pytest.mark.parametrize("anomaly, schedule_text, caught", [
    (None, BOTH, set()),
    # The saga holds the stock it takes until the payment is confirmed (readers still see it), so the
    # checkouts forgotten mid-saga show as credit charged for orders never paid.
    ("no-recovery", ORDER_DIES_MID_SAGA, {"credit-mismatch", "conservation"}),
    ("retry-double-charge", PAYMENT_STALLS_PAST_THE_STEP_TIMEOUT, {"credit-mismatch", "conservation"}),
], ids=["saga-survives-both", "no-recovery", "retry-double-charge"])
def test_a_schedule_naming_a_service_runs_the_three_service_shop_and_catches_its_bugs(
        tmp_path, anomaly, schedule_text, caught):
    faults = schedule(tmp_path, schedule_text)
    run, summary = run_consistency(ConsistencyScenario(**SERVICES_SCENARIO), anomaly=anomaly,
                                   runs_dir=tmp_path / "runs", faults=faults)
    assert [f["name"] for f in summary["faults"]] == [f["name"] for f in run.manifest["faults"]["schedule"]]
    assert all(f["inject_status"] == 0 and f["recover_status"] == 0 for f in summary["faults"])
    names = {a["name"] for a in summary["anomalies"]}
    if caught:
        assert summary["verdict"] == "inconsistent" and caught <= names, summary["anomalies"]
    else:
        assert summary["valid"], summary["anomalies"]
        assert summary["outcomes"]["unknown"] > 0  # the faults hit checkouts in flight


# --- what a fault command leaves: its output, and what it started ------------------------------------

def run_nemesis(tmp_path, text, load_s=2.0):
    """The schedule `text` beside a load that only waits `load_s`, as a run's nemesis runs it."""
    import asyncio

    from wdm_lib.faults.nemesis import Nemesis
    from wdm_lib.history import HistoryWriter

    history = HistoryWriter(tmp_path / "history.csv")
    try:
        asyncio.run(Nemesis(parse_schedule(text, "f.yaml", None, load_s), history, tmp_path).alongside(
            asyncio.sleep(load_s)))
    finally:
        history.close()


def test_a_fault_commands_output_goes_to_its_log_as_it_comes_and_only_its_tail_stays_in_memory(tmp_path):
    import tracemalloc

    from wdm_lib.faults.nemesis import OUTPUT_CAP, FaultFailed

    # 40 MB printed, then the line that says why it failed.
    command = "yes xxxxxxxxx | head -c 40000000; echo the real reason; exit 3"
    tracemalloc.start()
    try:
        with pytest.raises(FaultFailed) as e:
            run_nemesis(tmp_path, f"faults:\n  - name: loud\n    at: 0.1s\n    run: \"{command}\"\n")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4 << 20, f"{peak:,} bytes held for a command that printed 40 MB"
    log_path = next((tmp_path / "faults").iterdir())
    assert f"exited with status 3: 'the real reason' (its output: {log_path})" in str(e.value)
    log = log_path.read_text()
    assert log.startswith(f"$ {command}\nxxxxxxxxx\n") and OUTPUT_CAP <= len(log) < OUTPUT_CAP + 1000
    assert f"[output cut at {OUTPUT_CAP:,} of 40,000,016 bytes]" in log and "[exit status 3," in log


def test_a_failing_fault_commands_sentence_quotes_its_error_and_names_its_log(tmp_path):
    # What docker without its compose plugin prints: the error, a blank line, a pointer to its help.
    from wdm_lib.faults.nemesis import FaultFailed

    script = tmp_path / "compose.sh"
    script.write_text("echo stopping stock-service\n"
                      "printf 'docker: unknown command: docker compose\\n\\nRun '\\''docker --help'\\'' for more "
                      "information\\n' >&2\nexit 125\n")
    with pytest.raises(FaultFailed) as e:
        run_nemesis(tmp_path, f"faults:\n  - name: stock dies\n    at: 0.1s\n    run: sh {script}\n")
    log = tmp_path / "faults" / "01-stock-dies-inject.log"
    assert str(e.value) == (f"fault 'stock dies': inject step `sh {script}` exited with status 125: 'docker: unknown "
                            f"command: docker compose' (its output: {log}); expected it to succeed. The run stopped; "
                            f"everything recorded up to it is kept.")
    assert "Run 'docker --help' for more information" in log.read_text()


def test_the_line_quoted_from_a_failed_command_is_its_last_that_says_why():
    from wdm_lib.faults.nemesis import error_line

    assert error_line("") == "" and error_line("\n  \n") == ""
    assert error_line("usage: kubectl [flags]\n") == "usage: kubectl [flags]"  # nothing else to quote
    assert error_line("Error from server (NotFound): pods \"stock-0\" not found\n") == \
        'Error from server (NotFound): pods "stock-0" not found'


def _pid_in(path, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = path.read_text().strip() if path.exists() else ""
        if text:
            return int(text)
        time.sleep(0.02)
    raise AssertionError(f"nothing wrote {path} within {timeout:g} s")


# A child in the background, its output elsewhere: the command itself ends at once.
BACKGROUND = ("faults:\n  - name: leaves a child\n    at: {at}\n"
              "    run: \"sleep 300 >/dev/null 2>&1 & echo $! > {pidfile}\"\n")


def test_a_child_a_fault_command_left_in_the_background_ends_with_the_run(tmp_path):
    pidfile = tmp_path / "child.pid"
    run_nemesis(tmp_path, BACKGROUND.format(at="0.1s", pidfile=pidfile), load_s=1.0)
    child = _pid_in(pidfile)
    assert wait_for(lambda: not alive(child), 2), "the fault command's background child outlived the run"


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT], ids=["kill-9", "ctrl-c"])
def test_a_child_a_fault_command_left_in_the_background_goes_when_wdm_is_stopped(tmp_path, sig):
    pidfile = tmp_path / "child.pid"
    faults = schedule(tmp_path, BACKGROUND.format(at="0.5s", pidfile=pidfile))
    # 400 checkouts at 100/s: four seconds of load, long past the fault at 0.5 s; few users, so the
    # seeding before it is short on a busy machine too.
    proc = subprocess.Popen([sys.executable, "-m", "wdm_lib", "consistency", "--runs-dir", str(tmp_path / "runs"),
                             "--n-users", "100", "--n-orders", "400", "--rate", "100", "--faults", str(faults)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        child = _pid_in(pidfile, timeout=60)
        proc.send_signal(sig)
        proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert wait_for(lambda: not alive(child), 10), "the fault command's background child outlived wdm"


def test_a_redirect_is_not_served_for_it_is_no_definite_answer():
    from wdm_lib.faults.measures import served
    from wdm_lib.workloads.shop_rows import outcome

    statuses = [200, 204, 302, 399, 400, 404, 499, 500, 503, 0, None]
    assert list(served(statuses)) == [outcome(s or 0) in ("ok", "fail") for s in statuses]
    assert list(served(statuses)) == [True, True, False, False, True, True, True, False, False, False, False]
