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
from wdm_lib.faults.measures import Requests, fault_lines, measure_fault, measure_faults, requests_of
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


# --- the measures, on hand-made histories --------------------------------------------------------------

S = 1_000_000_000


def step(name, kind, at_s, took_s=0.0, status=0):
    return Op(0, FAULT, intended_ns=int(at_s * S), invoke_ns=int(at_s * S), complete_ns=int((at_s + took_s) * S),
              status=status, outcome="ok", fault={"name": name, "step": kind, "what": "kill shop"})


def requests_every(ms, until_s, answer, latency_ms=lambda t: 1.0):
    """A request due every `ms` ms, answered latency_ms(t) ms later by answer(t) -> status (None: no reply)."""
    due = [i * ms * 1_000_000 for i in range(int(until_s * 1000 / ms))]
    statuses = [answer(t / S) for t in due]
    outcomes = ["ok" if s and s < 300 else "fail" if s and s < 500 else "unknown" for s in statuses]
    return Requests.of(due, due, [t + int(latency_ms(t / S) * 1e6) for t in due], statuses, outcomes)


def test_a_dead_dependency_answered_as_400_out_of_stock_is_a_masked_outage():
    # The template: stock dies from 4 s to 8.5 s and the order service answers 400 to every checkout.
    reqs = requests_every(10, 14, lambda t: 400 if 4.0 <= t < 8.5 else 200)
    m = measure_fault("f", step("f", "inject", 4.0), step("f", "recover", 8.0, 0.2), reqs, 0, 14 * S)
    assert m["no_answer_gap_s"] < 0.05          # the shop answered all along ...
    assert m["outage_s"] == pytest.approx(4.5, abs=0.15)   # ... and no checkout succeeded for 4.5 s
    assert m["refusal_share"] == {"before": 0.0, "during": 1.0} and m["masked_outage"]
    assert m["recovered_s"] == pytest.approx(0.3, abs=0.11) and not m["tested_nothing"]
    lines = "\n".join(fault_lines([{**m, "acknowledged_writes_lost": []}]))
    assert "masked outage: fault 'f': errors turned into refusals" in lines


def test_checkouts_due_before_a_fault_that_a_busy_client_sent_after_it_are_not_its_before():
    # Due every 10 ms; those due in the 0.5 s before the fault at 4 s went out only at 4.0-4.5 s
    # (a starved client) and met the dead dependency's refusals like every checkout during it.
    due = [i * 10_000_000 for i in range(1200)]
    sent = [t + 500_000_000 if 3.5 * S <= t < 4 * S else t for t in due]
    statuses = [400 if 4 * S <= t < 8.5 * S else 200 for t in sent]
    reqs = Requests.of(due, sent, [t + 1_000_000 for t in sent], statuses,
                       ["ok" if s == 200 else "fail" for s in statuses])
    m = measure_fault("f", step("f", "inject", 4.0), step("f", "recover", 8.0, 0.2), reqs, 0, 12 * S)
    # The shop refused nothing before the fault: every refusal due before it was sent after it.
    assert m["refusal_share"]["before"] == 0.0 and m["masked_outage"], m["refusal_share"]


def test_a_frozen_service_whose_checkouts_all_complete_late_has_a_no_answer_gap_and_an_outage():
    # Payment frozen from 4.0 to 7.0 s: every checkout due then completes at 7.0 s with 200.
    reqs = requests_every(10, 12, lambda t: 200, lambda t: (7.0 - t) * 1000 if 4.0 <= t < 7.0 else 1.0)
    m = measure_fault("f", step("f", "inject", 4.0), step("f", "recover", 7.0), reqs, 0, 12 * S)
    assert m["no_answer_gap_s"] == pytest.approx(3.0, abs=0.02)
    assert m["outage_s"] == pytest.approx(3.0, abs=0.15)
    assert m["refusal_share"] == {"before": 0.0, "during": 0.0} and not m["masked_outage"]
    assert m["latency_ms"]["during"]["p99"] == pytest.approx(2970, abs=15)  # nearest rank of 0, 10, ..., 2990 ms
    assert m["latency_ms"]["before"]["p50"] == 1.0 and m["latency_ms"]["after"]["p50"] == 1.0
    assert m["requests"] == {"ok": 301, "fail": 0, "unknown": 0}
    # The second that holds the backlog, answered all at once, is not back at the old rate: the
    # first that leaves it out is.
    assert m["recovered_s"] == pytest.approx(0.1, abs=0.001)


def test_a_shop_that_comes_back_slow_is_not_recovered():
    reqs = requests_every(10, 12, lambda t: None if 3.0 <= t < 4.0 else 200,
                          lambda t: 20.0 if t >= 4.0 else 1.0)
    m = measure_fault("f", step("f", "inject", 3.0), step("f", "recover", 4.0), reqs, 0, 12 * S)
    assert m["recovered_s"] is None and m["latency_ms"]["after"]["p50"] == 20.0
    assert m["no_answer_gap_s"] == pytest.approx(1.02, abs=0.01) and m["outage_s"] == pytest.approx(1.0, abs=0.15)
    assert "not within the run" in fault_lines([{**m, "acknowledged_writes_lost": None}])[1]


def test_a_rate_that_never_comes_back_is_not_recovered_and_the_outage_lasts_to_the_end_of_the_load():
    reqs = requests_every(10, 6, lambda t: None if t >= 2.0 else 200)
    m = measure_fault("f", step("f", "inject", 2.0), step("f", "recover", 3.0), reqs, 0, 6 * S)
    assert m["recovered_s"] is None and m["outage_s"] == pytest.approx(4.0, abs=0.15)
    assert m["no_answer_gap_s"] == pytest.approx(4.0, abs=0.02)


def test_a_fault_that_costs_nothing_has_no_gap_no_outage_and_recovers_at_once():
    reqs = requests_every(10, 8, lambda t: 200)
    m = measure_fault("f", step("f", "inject", 2.0), step("f", "recover", 3.0), reqs, 0, 8 * S)
    assert m["no_answer_gap_s"] <= 0.011 and m["outage_s"] == 0.0 and m["recovered_s"] == 0.0
    # The baseline: the whole seconds before the fault but the load's first (its warm-up).
    assert not m["masked_outage"] and not m["tested_nothing"] and m["baseline_s"] == [1.0, 2.0]


def test_a_fault_at_the_very_start_has_no_baseline_but_still_a_gap():
    reqs = requests_every(10, 6, lambda t: None if t < 1.0 else 200)
    m = measure_fault("f", step("f", "inject", 0.0), step("f", "recover", 1.0), reqs, 0, 6 * S)
    assert m["baseline_s"] is None and m["success_per_s_before"] is None
    assert m["outage_s"] is None and m["recovered_s"] is None and m["refusal_share"]["before"] is None
    assert not m["masked_outage"] and not m["tested_nothing"]
    assert m["no_answer_gap_s"] == pytest.approx(1.0, abs=0.02)
    assert "no baseline" in fault_lines([{**m, "acknowledged_writes_lost": None}])[1]


def test_overlapping_faults_share_the_baseline_before_the_first():
    # A from 3 s to 6 s, B from 4 s to 5 s: B's seconds before it are A's, so its baseline is A's.
    reqs = requests_every(10, 12, lambda t: 400 if 3.0 <= t < 6.0 else 200)
    ops = [step("A", "inject", 3.0), step("B", "inject", 4.0), step("B", "recover", 5.0), step("A", "recover", 6.0)]
    a, b = measure_faults(ops, reqs, [])
    assert (a["name"], b["name"]) == ("A", "B")
    assert a["baseline_s"] == b["baseline_s"] == [1.0, 3.0] and a["success_per_s_before"] == b["success_per_s_before"] == 100
    assert a["masked_outage"] and b["masked_outage"]
    assert a["outage_s"] == pytest.approx(3.0, abs=0.15)
    assert b["outage_s"] == pytest.approx(2.0, abs=0.15)  # the stretch that began in its window
    assert b["recovered_s"] == pytest.approx(1.0, abs=0.11)  # from its own recover step, once A's was over too


def test_a_fault_soon_after_another_is_held_to_the_calm_before_the_first_and_cuts_its_recovery_short():
    # A kills the shop from 2 s to 3.5 s; B freezes it from 4 s to 5 s: no whole calm second between.
    def latency(t):
        return (5.0 - t) * 1000 if 4.0 <= t < 5.0 else 1.0
    reqs = requests_every(10, 12, lambda t: None if 2.0 <= t < 3.5 else 200, latency)
    ops = [step("A", "inject", 2.0), step("A", "recover", 3.5), step("B", "inject", 4.0), step("B", "recover", 5.0)]
    a, b = measure_faults(ops, reqs, [])
    assert b["baseline_s"] == a["baseline_s"] == [1.0, 2.0] and b["success_per_s_before"] == 100
    assert b["no_answer_gap_s"] == pytest.approx(1.0, abs=0.02) and b["recovered_s"] is not None
    # A was back at 3.5 s, but not for 3 s before B began: that is what the run can say of it.
    assert a["recovered_s"] is None and a["recovery"] == "not before the next fault"


def _order(op_id, kind, **kw):
    return Op(op_id, kind, **kw)


def sold_out_history(sell_out_s, fault_s, end_s=8):
    """One item with stock 100, checkouts of one unit each every 10 ms: every checkout succeeds until
    the stock is gone at sell_out_s, then every one is refused."""
    ops = [_order(0, "create_item", items=[["i", 0]], amount=1, outcome="ok", status=200),
           _order(1, "add_stock", items=[["i", 100]], amount=100, outcome="ok", status=200)]
    users = [_order(2 + u, "add_funds", user_id=f"u{u}", amount=1, outcome="ok", status=200) for u in range(1000)]
    ops += users
    for k in range(int(end_s * 100)):
        t = k * S // 100
        status = 200 if t < sell_out_s * S else 400
        ops.append(_order(2000 + k, "checkout", order_id=f"o{k}", user_id=f"u{k % 1000}", items=[["i", 1]], amount=1,
                          intended_ns=t, invoke_ns=t, complete_ns=t + 1_000_000, status=status,
                          outcome="ok" if status == 200 else "fail"))
    ops += [step("f", "inject", fault_s), step("f", "recover", fault_s + 1)]
    return ops


def test_a_fault_after_the_sell_out_tested_nothing_and_its_refusals_are_no_masked_outage():
    ops = sold_out_history(sell_out_s=1.0, fault_s=3.0)
    [m] = measure_faults(ops, requests_of(ops), [])
    assert m["tested_nothing"] and "stock sold out or credit spent" in m["tested_nothing_why"]
    assert not m["masked_outage"]
    assert "warning: fault 'f' tested nothing" in "\n".join(fault_lines([m]))


def test_a_sell_out_within_the_window_is_no_masked_outage_but_a_fault_before_it_tested_something():
    ops = sold_out_history(sell_out_s=1.0, fault_s=1.0 - 0.5)
    [m] = measure_faults(ops, requests_of(ops), [])
    assert not m["tested_nothing"] and not m["masked_outage"]


def test_credit_spent_before_a_fault_is_tested_nothing_too():
    ops = sold_out_history(sell_out_s=100, fault_s=5.0)
    for op in ops:  # plenty of stock, but every user's one unit of credit goes on its first checkout
        if op.kind == "add_stock":
            op.items, op.amount = [["i", 10**6]], 10**6
        if op.kind == "checkout":
            op.user_id = f"u{int(op.order_id[1:]) % 200}"
            paid = int(op.order_id[1:]) < 200
            op.status, op.outcome = (200, "ok") if paid else (400, "fail")
    [m] = measure_faults(ops, requests_of(ops), [])
    assert m["tested_nothing"]
    # A history without books (a stress run's holds only its faults) judges by replies alone.
    [m] = measure_faults([op for op in ops if op.kind == FAULT], requests_of(ops), None)
    assert m["tested_nothing"] and m["tested_nothing_why"] == "no request had succeeded in the 4 s before it"


# --- end to end on the embedded shop -----------------------------------------------------------------

@pytest.mark.long
@pytest.mark.timing
def test_the_embedded_shop_killed_and_restarted_mid_run_stays_consistent(tmp_path):
    faults = schedule(tmp_path, "faults:\n  - name: shop killed\n    at: 1s\n    action: kill shop\n"
                                "    recover_after: 1s\n")
    # A load of 10 s: a shop restarted at 2 s has 8 of them to serve again. Its start takes a quarter
    # of a second here, and grows with every process that wants the CPU: two seconds with seven on
    # one core, and once past the end of a load of 6 s (no reply after the kill at all).
    scenario = ConsistencyScenario(**{**PACED, "n_orders": 1000})
    run, summary = run_consistency(scenario, runs_dir=tmp_path / "runs", faults=faults)
    assert summary["verdict"] == "consistent", summary["anomalies"]
    [fault] = summary["faults"]
    assert fault["name"] == "shop killed" and fault["what"] == "kill shop" and fault["recover"] == "start shop"
    # Checkouts due while it was down were refused connections, no reply at all: a gap from the kill
    # to the first reply once it listened again, however long its start took, and no checkout
    # succeeded meanwhile.
    assert fault["requests"]["fail"] > 50
    assert 0.5 < fault["no_answer_gap_s"] < 9 and fault["outage_s"] >= fault["no_answer_gap_s"] - 0.2
    assert not fault["masked_outage"] and not fault["tested_nothing"]
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
@pytest.mark.timing
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
@pytest.mark.timing
def test_a_pause_longer_than_the_timeout_leaves_unknowns_that_are_resolved(tmp_path):
    # The client gives up after 3 s (seeding, before the pause, must fit in that on a busy machine),
    # the pause lasts 5 s: the checkouts sent into it time out.
    faults = schedule(tmp_path, "faults:\n  - name: paused\n    at: 0.5s\n    action: pause shop\n"
                                "    recover_after: 5s\n")
    run, summary = run_consistency(ConsistencyScenario(**{**PACED, "timeout_s": 3}), runs_dir=tmp_path / "runs",
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

STRESS = ["--n-items", "200", "--n-users", "200", "--n-orders", "200", "--rate", "100", "-t", "7s"]


@pytest.mark.long
@pytest.mark.timing
def test_a_stress_run_with_the_shop_killed_measures_the_outage_from_its_raw_rows(tmp_path, wdm):
    faults = schedule(tmp_path, "faults:\n  - name: shop killed\n    at: 3s\n    action: kill shop\n"
                                "    recover_after: 1s\n")
    r = wdm("stress", "run", "--runs-dir", str(tmp_path / "runs"), *STRESS, "--faults", str(faults))
    assert r.returncode == 0, r.stderr
    assert "shop killed" in r.stdout
    [run_dir] = (tmp_path / "runs").iterdir()
    summary = json.loads((run_dir / "summary.json").read_text())
    [fault] = summary["faults"]
    assert fault["what"] == "kill shop" and fault["recover"] == "start shop"
    assert fault["no_answer_gap_s"] > 0.5 and fault["outage_s"] is not None and fault["outage_s"] > 0.5, fault
    assert fault["requests"]["unknown"] > 20  # requests due while it was down got no reply
    assert fault["acknowledged_writes_lost"] is None  # a stress run's books do not say
    steps = [op for op in read_ops(run_dir / "history.csv") if op.kind == FAULT]
    assert [op.fault["step"] for op in steps] == ["inject", "recover"]
    assert json.loads((run_dir / "manifest.json").read_text())["faults"]["schedule"][0]["name"] == "shop killed"


@pytest.mark.long
@pytest.mark.timing
def test_a_stress_runs_schedule_counts_from_the_loads_start_not_from_locusts_launch(tmp_path, wdm):
    # Locust takes a second to start on a quiet machine and several on a busy one: a fault "at 1s"
    # must come a second after the load began, whenever that was.
    stamp = tmp_path / "stamp"
    faults = schedule(tmp_path, f"faults:\n  - name: stamp\n    at: 1s\n    run: date +%s%N > {stamp}\n")
    r = wdm("stress", "run", "--runs-dir", str(tmp_path / "runs"), *STRESS[:-1], "3s", "--faults", str(faults))
    assert r.returncode == 0, r.stderr
    [run_dir] = (tmp_path / "runs").iterdir()
    load_started = int((run_dir / "load-started.txt").read_text())
    [inject] = [op for op in read_ops(run_dir / "history.csv") if op.kind == FAULT]
    assert inject.intended_ns == load_started + 10**9
    # It ran then, give or take the 0.1 s in which the run notices the load began.
    assert 0.95 <= (int(stamp.read_text()) - load_started) / 1e9 <= 1.5


def test_a_stress_schedule_needs_the_raw_rows(tmp_path, wdm):
    faults = schedule(tmp_path, "faults:\n  - name: f\n    at: 1s\n    run: 'true'\n")
    r = wdm("stress", "run", "--runs-dir", str(tmp_path / "runs"), *STRESS, "--no-raw-latencies", "--faults",
            str(faults))
    assert r.returncode == 2 and "--faults measures each fault from the raw rows" in r.stderr, r.stderr


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
# their payment sent, not yet answered, which is where a shop that does not resume its sagas
# charges users for orders it never marks paid. A whole second of checkouts piles up at the paused
# payment service before the kill (half a second was not always enough beside another suite: the
# checkouts of a starved client had not got that far, and the run was consistent).
ORDER_DIES_MID_SAGA = """faults:
  - name: payment stalls
    at: 1s
    action: pause payment
    recover_after: 3s
  - name: order dies
    at: 2s
    action: kill order
    recover_after: 1s
"""
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
@pytest.mark.timing
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
    if anomaly == "no-recovery":
        # What the bug needs: checkouts still waiting on the paused payment service when the order
        # service died, which their client never heard the end of.
        ops = read_ops(run.path / "history.csv")
        killed = next(op for op in ops
                      if op.kind == FAULT and op.fault.get("name") == "order dies" and op.fault["step"] == "inject")
        waiting = [op for op in ops if op.kind == "checkout" and op.outcome == "unknown"
                   and op.invoke_ns < killed.invoke_ns]
        assert waiting, "no checkout was in flight when the order service died"
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


# --- test shops that behave as the course template did under its faults ----------------------------

# At 100 checkouts/s with stock and credit that last the whole run: 3 s before the fault (the first
# left out of its baseline), and after the fault's window the 3 s in a row that recovery needs.
TEMPLATE_LIKE = ["--n-items", "3", "--item-stock", "1000", "--n-users", "100", "--user-credit", "100",
                 "--rate", "100", "--quiet", "0.5", "--seed", "3"]


def _flag_schedule(tmp_path, flag, down_s, at_s=3):
    return schedule(tmp_path, f"faults:\n  - name: dependency down\n    at: {at_s}s\n    run: touch {flag}\n"
                              f"    recover_after: {down_s}s\n    recover: rm -f {flag}\n")


@pytest.mark.long
@pytest.mark.timing
def test_a_shop_that_answers_out_of_stock_while_its_stock_service_is_dead_shows_a_masked_outage(
        tmp_path, shop, write_urls):
    from shop_proxy import Misbehaviour, ShopProxy

    flag = tmp_path / "stock-down"
    # Checkouts that take 1 s: a p50 that the machine's own load moves by less than the 10% that
    # recovery allows (beside another suite, at load 15, it added 60-170 ms to a 0.2 s one). The
    # first replies come a second into the load, so the fault comes at 4 s, after three whole
    # seconds of them. 50 checkouts a second, 50 in flight, and `wdm` in a process of its own, apart
    # from the front in this one: with both in one process at 100/s, beside another suite, the
    # client lagged (86/s before the fault, replies 180 ms late), and seconds that its lag made
    # 10% short or over never looked "back as it was".
    with ShopProxy(shop.base_url, Misbehaviour(down_flag=str(flag), while_down="out-of-stock",
                                               latency_s=1.0)) as proxy:
        r = subprocess.run([sys.executable, "-m", "wdm_lib", "consistency", "--urls", str(write_urls(proxy.base_url)),
                            "--runs-dir", str(tmp_path / "runs"), *TEMPLATE_LIKE, "--rate", "50", "--n-orders", "600",
                            "--faults", str(_flag_schedule(tmp_path, flag, 2, at_s=4))],
                           capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    [run_dir] = (tmp_path / "runs").iterdir()
    [fault] = json.loads((run_dir / "summary.json").read_text())["faults"]
    # It answered all along, every answer a refusal: what "downtime 0.00 s" hid. (The one silence is
    # after the recover step: the checkouts it takes again answer a second later.)
    assert fault["no_answer_gap_s"] < 1.0 + 0.5 and fault["masked_outage"] and not fault["tested_nothing"]
    # (Before: a checkout due just before the fault that a busy client sends after it meets it.
    # During: the window lasts to the end of the recover step, which a busy machine ends up to 0.4 s
    # after `rm` removed the flag, so some checkouts due in it succeed.)
    assert fault["refusal_share"]["before"] < 0.05 and fault["refusal_share"]["during"] > 0.8, fault
    assert 1.6 < fault["outage_s"] < 2.6, fault
    # Back at once, as it was: the clean recovery, counted from the first replies that could come
    # back after the recover step (the shop's own second later).
    assert fault["recovered_s"] is not None and fault["recovered_s"] <= 1.0 + 1.0, json.dumps(fault)
    assert "masked outage: fault 'dependency down': errors turned into refusals" in r.stdout


@pytest.mark.long
@pytest.mark.timing
def test_a_shop_frozen_for_3_s_that_comes_back_20_times_slower_has_a_gap_an_outage_and_no_recovery(
        tmp_path, shop, write_urls):
    from shop_proxy import Misbehaviour, ShopProxy

    flag = tmp_path / "payment-frozen"
    # `wdm` in a process of its own, apart from the front in this one: sharing one process beside
    # another suite, the front's threads let checkouts through half a second after the freeze began.
    with ShopProxy(shop.base_url, Misbehaviour(down_flag=str(flag), while_down="freeze", slow_after_s=0.1)) as proxy:
        r = subprocess.run([sys.executable, "-m", "wdm_lib", "consistency", "--urls", str(write_urls(proxy.base_url)),
                            "--runs-dir", str(tmp_path / "runs"), *TEMPLATE_LIKE, "--n-orders", "900",
                            "--faults", str(_flag_schedule(tmp_path, flag, 3))],
                           capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    [run_dir] = (tmp_path / "runs").iterdir()
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["verdict"] == "consistent", summary["anomalies"]
    [fault] = summary["faults"]
    # Every checkout due while it was frozen completed late with 200: no refusal, yet nothing for 3 s.
    assert fault["requests"]["ok"] > 250 and fault["requests"]["fail"] == 0
    # As long as it was frozen (from the inject step to the end of the recover step: 3 s as written,
    # more when a busy machine starts `rm` late), and no longer than it took the shop to answer the
    # first checkout it let go (0.05 s on a quiet machine, 0.7 s beside another suite).
    # It begins with the last reply to a checkout the front let through before the freeze: those in
    # flight then take as long as checkouts took just before it (0.57 s, once, beside another suite).
    frozen_s = fault["recover_step_s"] - fault["started_s"]
    ops = read_ops(run_dir / "history.csv")
    [inject] = [op for op in ops if op.kind == FAULT and op.fault["step"] == "inject"]
    in_flight_s = max([(op.complete_ns - op.invoke_ns) / 1e9 for op in ops if op.kind == "checkout"
                       and inject.invoke_ns - 10**9 <= op.invoke_ns < inject.invoke_ns] + [0.35])
    assert 3.0 <= frozen_s and frozen_s - in_flight_s <= fault["no_answer_gap_s"] <= frozen_s + 1.0, (in_flight_s, fault)
    assert frozen_s - in_flight_s - 0.1 <= fault["outage_s"] <= frozen_s + 1.0, (in_flight_s, fault)
    assert not fault["masked_outage"] and fault["latency_ms"]["during"]["p99"] > 2000
    # Its rate came back, its latency did not: every checkout 100 ms slower (20 times the few ms of a
    # quiet machine; on a busy one its p50 before is tens of ms already), not recovered within the run.
    before, after = fault["latency_ms"]["before"]["p50"], fault["latency_ms"]["after"]["p50"]
    assert after > 100 and after >= before + 80, fault["latency_ms"]
    assert fault["recovered_s"] is None, fault


def test_faults_give_the_original_workload_stock_and_credit_that_last_the_run_unless_sizes_are_given():
    from wdm_lib.workloads.consistency_scenario import ConsistencyScenario as Scenario

    # The default 100 units sell out in a second at 100/s: every fault after that would test nothing.
    sc = Scenario(rate=100, n_orders=600)
    assert "item stock 600 and user credit 600" in sc.room_for_faults() and sc.sized_for_faults
    assert (sc.item_stock, sc.user_credit) == (600, 600) and sc.to_dict()["item_stock"] == 600
    sc = Scenario(rate=100, items_per_order=2, quantity=3, item_price=4, user_credit=7)
    assert sc.room_for_faults().startswith("--faults: item stock 6000 (not the original's 100)")
    assert (sc.item_stock, sc.user_credit) == (6000, 7)
    # Sizes given are the user's; mixed restocks itself during the load.
    assert Scenario(rate=100, item_stock=5, user_credit=1).room_for_faults() is None
    assert Scenario(workload="mixed", rate=100).room_for_faults() is None


def test_a_fault_entry_has_exactly_the_keys_summaries_read_and_an_older_one_is_one_sentence(tmp_path):
    from wdm_lib import runs, summaries

    reqs = requests_every(10, 6, lambda t: 200)
    [entry] = measure_faults([step("f", "inject", 2.0), step("f", "recover", 3.0)], reqs, [])
    assert tuple(entry) == summaries.FAULT_KEYS
    # A summary an older wdm wrote, whose faults had a downtime: one sentence, not a KeyError in a report.
    run = runs.Run.create(tmp_path, "stress", {}, {"source": "t"})
    run.finish(runs.COMPLETED)
    older = {k: v for k, v in entry.items() if k != "outage_s"} | {"downtime_s": 0.0}
    summaries.write(run, {"run_id": run.id, "kind": "stress", "verdict": "passed", "requests": 1, "failures": 0,
                          "duration_s": 1.0, "throughput_rps": 1.0, "latency_ms": {}, "response_ms": {}, "by_name": {},
                          "outcomes": {}, "locust": None, "steps": None, "rate": None, "recorded": {},
                          "faults": [older]})
    with pytest.raises(WorkbenchError, match=r"summary.json: faults\[0\] has no outage_s; .*wdm check"):
        summaries.read(run)
