"""The pure verdicts of a stress run: gates, lost load, the books, the JUnit XML, the live line,
and the one definition of the raw rows' columns and outcome names."""

from __future__ import annotations

import ast
import io
import re
import subprocess
import sys
import xml.etree.ElementTree as ET

import numpy as np
import pandas as pd
import pytest

from wdm_lib import analysis, checkers, client, history, junit
from wdm_lib.errors import WorkbenchError
from wdm_lib.workloads import shop_rows
from wdm_lib.workloads.stress import gates
from wdm_lib.workloads.stress.figures import rate_figures
from wdm_lib.workloads.stress.live import HistoryTail, LiveLine, progress_line
from wdm_lib.workloads.stress.locust import LOCUSTFILE
from wdm_lib.workloads.stress.scenario import NAMES, StressScenario
from wdm_lib.workloads.stress.workers import degradation, read_worker_events

CHECKOUT, FIND = NAMES["checkout"], NAMES["find_item"]


def frame(rows: list[tuple[str, str, float]], response_ms: list[float] | None = None) -> pd.DataFrame:
    """(name, outcome, latency_ms) rows, as load_requests returns them."""
    df = pd.DataFrame(rows, columns=["name", "outcome", "latency_ms"])
    df["response_ms"] = response_ms if response_ms is not None else df["latency_ms"]
    return df


# --- gates ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("text,label,op,limit", [
    ("p99<500ms", "p99", "<", 500), ("p(99.9) <= 2s", "p99.9", "<=", 2000), ("p95<1500us", "p95", "<", 1.5),
    ("p50<20", "p50", "<", 20), ("response_p99<1s", "response_p99", "<", 1000),
    ("fail_rate<1%", "fail_rate", "<", 0.01), ("fail_rate<0.05", "fail_rate", "<", 0.05),
    ("rps>100", "rps", ">", 100), ("checkout:p95<200ms", f"{CHECKOUT}:p95", "<", 200),
    (f"{FIND}:max<=.5s", f"{FIND}:max", "<=", 500), ("requests>=10", "requests", ">=", 10),
    ("ok>0", "ok", ">", 0), ("unknown_rate==0", "unknown_rate", "==", 0)])
def test_gates_read_k6_style_expressions(text, label, op, limit):
    g = gates.parse(text, NAMES)
    assert (g.label, g.op) == (label, op) and g.limit == pytest.approx(limit)


@pytest.mark.parametrize("text,needle", [
    ("p99<abc", "is not a gate"), ("p99", "is not a gate"), ("latency<5", "names no metric 'latency'"),
    ("p0<5", "percentile 0"), ("p101<5", "percentile 101"), ("fail_rate<5ms", "expected '%'"),
    ("rps>5%", "a plain number"), ("p99<5%", "expected 'ms'"),
    ("chekout:p99<5", "names no request 'chekout'; expected one of checkout, find_order")])
def test_a_bad_gate_is_one_sentence_naming_threshold(text, needle):
    with pytest.raises(WorkbenchError) as e:
        gates.parse(text, NAMES)
    message = str(e.value)
    assert message.startswith(f"--threshold {text!r}") and needle in message and "\n" not in message


def test_gates_measure_exact_nearest_rank_percentiles_per_name():
    rows = [(CHECKOUT, "ok", float(i)) for i in range(1, 101)] + [(FIND, "fail", 1000.0)] * 3 \
        + [(FIND, "unknown", 5.0)]
    df = frame(rows)
    results = gates.judge(gates.parse_all(["p99<1000", "checkout:p99<=99", "checkout:p(99.5)<100",
                                           "fail_rate<1%", "find_item:unknown_rate>=0.25", "rps>50",
                                           "requests==104", "find_order:p50<1"], NAMES), df, duration_s=2.0)
    by = {r["gate"]: r for r in results}
    assert by["p99<1000"]["measured"] == 1000.0 and not by["p99<1000"]["passed"]  # the 99th of 104 is a find
    assert by["checkout:p99<=99"]["measured"] == 99.0 and by["checkout:p99<=99"]["passed"]
    assert by["checkout:p(99.5)<100"]["measured"] == 100.0 and not by["checkout:p(99.5)<100"]["passed"]
    assert by["fail_rate<1%"]["measured"] == pytest.approx(4 / 104) and "3.85%" in by["fail_rate<1%"]["why"]
    assert by["find_item:unknown_rate>=0.25"]["passed"]
    assert by["rps>50"]["measured"] == 52.0 and by["rps>50"]["passed"]
    assert by["requests==104"]["passed"]
    # A name that made no request measured nothing, and nothing measured is no limit met.
    assert by["find_order:p50<1"]["measured"] is None and not by["find_order:p50<1"]["passed"]
    np.testing.assert_equal(by["p99<1000"]["measured"],
                            np.percentile(df["latency_ms"], 99, method="inverted_cdf"))


def test_response_gates_read_the_time_from_the_intended_start():
    df = frame([(CHECKOUT, "ok", 10.0)] * 10, response_ms=[10.0] * 9 + [900.0])
    service, corrected, _default = gates.judge(gates.parse_all(["p99<100", "response_p99<100"]), df, 1.0)
    assert service["passed"] and not corrected["passed"] and corrected["measured"] == 900.0


def test_without_gates_a_run_where_nothing_succeeded_fails_with_the_usual_reason():
    refused = frame([(CHECKOUT, "fail", 1.0)] * 50)
    (default,) = gates.judge([], refused, 1.0)
    assert default["default"] and not default["passed"] and default["measured"] == 0
    assert "never batch-initialised" in default["why"] and "urls.json" in default["why"]
    # Mostly refused but something succeeded: API.md lets a shop refuse a repeated checkout.
    assert gates.judge([], frame([(CHECKOUT, "fail", 1.0)] * 99 + [(CHECKOUT, "ok", 1.0)]), 1.0)[0]["passed"]
    # Without raw rows the default gate reads Locust's count.
    assert not gates.judge([], None, 1.0, ok_without_rows=0)[0]["passed"]
    assert gates.judge([], None, 1.0, ok_without_rows=3)[0]["passed"]


def test_thresholds_do_not_pass_a_run_where_nothing_succeeded():
    # Refusals answer fast: a p99 limit alone would pass a run that measured nothing of the shop.
    refused = frame([(CHECKOUT, "fail", 1.0)] * 50)
    p99, default = gates.judge(gates.parse_all(["p99<100"]), refused, 1.0)
    assert p99["passed"] and not p99["default"]
    assert default["default"] and not default["passed"] and "never batch-initialised" in default["why"]
    # Without raw rows a user's gate measured nothing; the default still reads Locust's count.
    p99, default = gates.judge(gates.parse_all(["p99<100"]), None, 1.0, ok_without_rows=3)
    assert p99["measured"] is None and not p99["passed"] and default["passed"]


# --- lost load -----------------------------------------------------------------------------------

def test_a_worker_gone_missing_degrades_the_run_with_when_and_how_much(tmp_path):
    (tmp_path / "workers.csv").write_text("t_ns,worker,event,users\n"
                                          f"{int(105e9)},host_abc,missing,2\n{int(107e9)},host_abc,back,0\n")
    events = read_worker_events(tmp_path / "workers.csv")
    found = degradation(events, [], 4, start_s=100.0, planned_s=20.0)
    assert len(found) == 1
    d = found[0]
    assert (d["worker"], d["at_s"], d["users"], d["share_of_run"]) == ("host_abc", 5.0, 2, 0.75)
    assert "host_abc stopped sending heartbeats 5.0 s into the run" in d["sentence"]
    assert "2 of 4 users" in d["sentence"] and "75%" in d["sentence"]
    assert read_worker_events(tmp_path / "none.csv") == []


def test_users_below_target_after_the_ramp_degrade_but_the_ramp_and_the_end_do_not():
    ramp_and_end = [(100, 1), (101, 3), (102, 4), (103, 4), (118, 4), (119, 0), (120, 0)]
    assert degradation([], ramp_and_end, 4, start_s=100.0, planned_s=20.0) == []
    dropped = [(100, 2), (101, 4), (102, 4), (110, 2), (111, 1), (112, 4)]
    (d,) = degradation([], dropped, 4, start_s=100.0, planned_s=20.0)
    assert d["what"] == "users below target" and d["at_s"] == 10.0 and d["users"] == 1
    assert d["share_of_run"] == 0.5
    assert degradation([], dropped, None, start_s=100.0, planned_s=20.0) == []  # a step load has no one target


# --- the books (the stress checkers) ---------------------------------------------------------------

SMALL = StressScenario(n_items=2, item_stock=10, item_price=3, n_users=2, user_credit=100, n_orders=2,
                       funds_amount=5)
NOTHING = {"checkouts_ok": 0, "checkouts_unknown": 0, "add_funds_ok": 0, "add_funds_unknown": 0}


def books(stocks, credits) -> dict:
    return {"items": {str(i): None if s is None else {"stock": s} for i, s in enumerate(stocks)},
            "users": {str(u): None if c is None else {"credit": c} for u, c in enumerate(credits)}}


def names(result) -> list[str]:
    return [a.name for a in result.anomalies]


def test_books_balance_when_credit_spent_is_price_times_stock_sold_and_checkouts_agree():
    state = books([8, 10], [94, 100])  # one checkout of two items at 3: 6 credit
    r = checkers.check_money(SMALL, {**NOTHING, "checkouts_ok": 1}, state)
    assert r.valid, r
    b = checkers.stress_books(SMALL, {**NOTHING, "checkouts_ok": 1}, state)
    assert (b["stock_sold"], b["credit_spent"], b["stock_value_sold"], b["checkouts_in_shop"]) == (2, 6, 6, 1)
    # One checkout of unknown outcome may or may not have happened: both balance.
    assert checkers.check_money(SMALL, {**NOTHING, "checkouts_unknown": 1}, state).valid
    assert checkers.check_money(SMALL, {**NOTHING, "checkouts_unknown": 1}, books([10, 10], [100, 100])).valid


def test_books_catch_negative_values_lost_money_and_missing_records():
    r = checkers.check_money(SMALL, {**NOTHING, "checkouts_ok": 1}, books([-1, 10], [100, 89]))
    assert {"negative-stock", "money-not-conserved"} <= set(names(r)) and not r.valid
    neg = next(a for a in r.anomalies if a.name == "negative-stock")
    assert neg.examples == ["0"] and neg.magnitude == 1
    r = checkers.check_money(SMALL, {**NOTHING, "checkouts_ok": 1}, books([8, 10], [100, 100]))
    assert names(r) == ["money-not-conserved"] and "differs from price times stock sold" in r.notes[0]
    r = checkers.check_money(SMALL, NOTHING, books([None, 10], [100, 100]))
    assert names(r) == ["missing-item"] and "wdm stress init, or --init" in r.notes[0]


def test_checkouts_the_shop_shows_must_match_those_recorded():
    state = books([6, 10], [88, 100])  # two checkouts happened
    r = checkers.check_money(SMALL, {**NOTHING, "checkouts_ok": 1}, state)  # rows of one were lost
    assert names(r) == ["checkouts-unaccounted"] and r.anomalies[0].magnitude == 1
    assert "shows 2 checkouts happened" in r.notes[0] and "1 that answered 2xx" in r.notes[0]
    # fewer than answered 2xx: a 2xx checkout took nothing
    assert names(checkers.check_money(SMALL, {**NOTHING, "checkouts_ok": 3}, state)) == ["checkouts-unaccounted"]


def test_add_funds_count_and_unknown_ones_may_explain_the_gap():
    state = books([8, 10], [99, 100])  # 6 spent, 5 added
    assert checkers.check_money(SMALL, {**NOTHING, "checkouts_ok": 1, "add_funds_ok": 1}, state).valid
    more = books([8, 10], [104, 100])  # one more add funds happened than answered 2xx
    assert not checkers.check_money(SMALL, {**NOTHING, "checkouts_ok": 1, "add_funds_ok": 1}, more).valid
    assert checkers.check_money(SMALL, {**NOTHING, "checkouts_ok": 1, "add_funds_ok": 1,
                                        "add_funds_unknown": 1}, more).valid


# --- the open loop's rate ----------------------------------------------------------------------------

def test_rate_counts_sends_in_the_steady_window_and_warns_when_short():
    sc = StressScenario(rate=100, users=10, spawn_rate=10, run_time=10)  # pacing 0.1 s, ramp 1 s
    t0 = 1_700_000_000 * 10**9
    full = pd.DataFrame({"start_ns": t0 + np.arange(0, 10, 0.01) * 1e9})
    r = rate_figures(full.astype("int64"), sc)
    assert r["window_s"] == pytest.approx(8.8) and r["achieved_rps"] == pytest.approx(100, rel=0.02)
    assert r["warning"] is None
    half = full[(full.index % 2 == 0)].astype("int64").assign(latency_ms=50.0)
    r = rate_figures(half, sc)
    assert r["short_pct"] == pytest.approx(50, abs=2) and "of the 100 requests/s asked" in r["warning"]
    assert "the system or this load generator could not keep up" in r["warning"]
    # replies slower than a user's period: the users may be too few
    r = rate_figures(half.assign(latency_ms=300.0), sc)
    assert "against each user's period of 0.1 s, too few users: try --users 30 or more" in r["warning"]
    assert rate_figures(full, StressScenario()) is None


# --- JUnit ---------------------------------------------------------------------------------------

def test_junit_has_one_case_per_gate_and_failures_carry_the_reason(tmp_path):
    summary = {"gates": gates.judge(gates.parse_all(["p99<5", "rps>1"]), frame([(CHECKOUT, "ok", 9.0)] * 4), 1.0),
               "degraded": [], "verify": None}
    path = junit.write(tmp_path / "j.xml", "stress", junit.stress_cases(summary))
    suite = ET.parse(path).getroot().find("testsuite")
    cases = {c.get("name"): c for c in suite.findall("testcase")}
    assert suite.get("tests") == "4" and suite.get("failures") == "1"
    assert set(cases) == {"gate p99<5", "gate rps>1", "gate ok>0", "no load lost"}
    assert "p99 was 9.0 ms, expected < 5.0 ms" in cases["gate p99<5"].find("failure").get("message")
    assert cases["gate rps>1"].find("failure") is None
    with pytest.raises(WorkbenchError, match=r"^--junit .*: cannot write it"):
        junit.write(tmp_path / "no" / "such" / "j.xml", "stress", [])


# --- the live line ---------------------------------------------------------------------------------

HISTORY_HEADER = ("Timestamp,User Count,Type,Name,Requests/s,Failures/s,50%,66%,75%,80%,90%,95%,98%,99%,99.9%,"
                  "99.99%,100%,Total Request Count,Total Failure Count,Total Median Response Time,"
                  "Total Average Response Time,Total Min Response Time,Total Max Response Time,"
                  "Total Average Content Size\n")


def test_the_live_line_reads_only_complete_new_samples(tmp_path):
    path = tmp_path / "locust_stats_history.csv"
    tail = HistoryTail(path)
    assert tail.poll() is None  # Locust has not written it yet
    path.write_text(HISTORY_HEADER + "1,10,,Aggregated,50.5,1.0,12,13,14,15,16,17,18,40,50,60,70,200,4,12,12,1,70,10\n"
                    "2,20,,Aggregated,")  # a sample half-written
    first = tail.poll()
    assert first["User Count"] == "10"
    # without raw rows, Locust's recent figures stand in, and say so
    assert progress_line(first, 3.0, 60.0).startswith(
        "    3 of 60 s  10 users  50.5 req/s  fail 2.0%  p50 12 ms  p99 40 ms (recent)  200 requests")
    with open(path, "a") as f:
        f.write("99.0,0.0,11,13,14,15,16,17,18,30,50,60,70,400,4,12,12,1,70,10\n")
    assert tail.poll()["User Count"] == "20"
    assert progress_line(None, 2.0, 60.0) == "    2 of 60 s  starting Locust ..."
    assert progress_line(None, 61.0, 60.0).startswith("   61 of 60 s  stopping")


def test_the_live_line_shows_exact_percentiles_of_every_raw_row_so_far(tmp_path):
    (tmp_path / "locust_stats_history.csv").write_text(
        HISTORY_HEADER + "1,20,,Aggregated,99.0,0.0,11,13,14,15,16,17,18,30,50,60,70,400,4,12,12,1,70,10\n")
    header = ",".join(shop_rows.RAW_COLUMNS) + "\n"
    a, b = tmp_path / "requests-a.csv", tmp_path / "requests-b.csv"
    a.write_text(header + "".join(f"1,1,/x,GET,200,{ms * 1000},ok\n" for ms in range(1, 51)))
    b.write_text(header + "1,1,/x,GET,200,")  # a row half-written
    out = io.StringIO()
    live = LiveLine(tmp_path, "locust_stats_history.csv", 60.0, raw_rows=True, enabled=True, out=out)
    live.show(5.0)
    assert out.getvalue() == "\r    5 of 60 s  20 users  99.0 req/s  fail 1.0%  p50 25 ms  p99 50 ms  400 requests"
    with open(b, "a") as f:
        f.write("".join(f"{ms * 1000},ok\n1,1,/x,GET,200," for ms in range(51, 101)) + "0,ok\n")
    live.show(8.0)
    live.done()
    # 1..100 ms and a 0: exact, nearest rank, over both files
    assert out.getvalue().split("\r")[-1] == "    8 of 60 s  20 users  99.0 req/s  fail 1.0%  p50 50 ms  p99 99 ms  400 requests\n"
    quiet = io.StringIO()
    LiveLine(tmp_path, "locust_stats_history.csv", 60.0, raw_rows=True, enabled=False, out=quiet).show(5.0)
    assert quiet.getvalue() == ""


# --- one definition of the rows ----------------------------------------------------------------------

def test_outcome_names_and_row_columns_have_one_definition():
    assert history.OUTCOMES is shop_rows.OUTCOMES and analysis.OUTCOMES is shop_rows.OUTCOMES
    assert (history.OK, history.FAIL, history.UNKNOWN) == ("ok", "fail", "unknown")
    assert set(shop_rows.RAW_COLUMNS) == set(analysis.REQUEST_COLUMNS)
    assert [shop_rows.outcome(s) for s in (200, 204, 400, 409, 500, 0, 302)] == \
        ["ok", "ok", "fail", "fail", "unknown", "unknown", "unknown"]
    text = LOCUSTFILE.read_text()
    # the locustfile takes both (and the body cap, and the load's clock file) from shop_rows and
    # spells none out itself
    assert re.search(r"^from shop_rows import LOAD_STARTED, MAX_BODY, RAW_COLUMNS, STOPPED, outcome$", text, re.M)
    assert not re.search(r"""["']unknown["']|["']latency_us["']|1 << 20|load-started""", text)
    assert client.MAX_BODY is shop_rows.MAX_BODY  # both clients cap bodies at the one figure


def test_the_locustfile_puts_every_id_into_its_url_as_one_percent_encoded_segment():
    """Ids are opaque strings (API.md): one holding `/`, `?`, `%` or a space stays one segment."""
    code = ("import sys; sys.path.insert(0, sys.argv[1]); import locustfile as lf; "
            "print(lf.segment('a/b?c%d e#f')); print(lf.segment(7))")
    out = subprocess.run([sys.executable, "-c", code, str(LOCUSTFILE.parent)], capture_output=True, text=True,
                         timeout=60, cwd="/")
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["a%2Fb%3Fc%25d%20e%23f", "7"]
    text = LOCUSTFILE.read_text()
    urls = re.findall(r'f"\{self\.\w+_url\}(/[^"]*)"', text)
    assert len(urls) == 5
    for url in urls:  # every {...} in a path is an id passed through segment(), or the funds amount
        for part in re.findall(r"\{([^}]*)\}", url):
            assert part.startswith("segment(") or part == "self.funds_amount", url


WATCH = r"""
import csv, sys, types
sys.path.insert(0, sys.argv[1])
import locustfile as lf
from locust.event import Events
from locust.runners import STATE_MISSING, STATE_RUNNING, STATE_STOPPED

def node(wid, users, state=STATE_RUNNING):
    return types.SimpleNamespace(id=wid, user_count=users, state=state)

runner = types.SimpleNamespace(state=STATE_RUNNING, clients={})
env = types.SimpleNamespace(runner=runner, events=Events())
watch = lf.WorkerWatch(env, sys.argv[2])
runner.clients = {"a": node("a", 2), "b": node("b", 2), "c": node("c", 1), "d": node("d", 3)}
watch.look()
runner.clients["a"].state = STATE_MISSING; runner.clients["a"].user_count = 0  # Locust clears its users
del runner.clients["b"]                                                        # b quits mid-run
watch.look()
watch.look()                                                                   # said once
runner.clients["a"].state = STATE_RUNNING                                      # a comes back
watch.look()
runner.clients["a"].state = STATE_MISSING
watch.look()
del runner.clients["a"]                                                        # dropped a minute later
watch.look()
runner.state = STATE_STOPPED                                                   # the end: everyone leaves
runner.clients = {}
watch.look()
watch.close()
print([(r["worker"], r["event"], r["users"]) for r in csv.DictReader(open(sys.argv[2]))])
"""


def test_a_master_records_workers_missing_back_and_leaving_while_the_test_runs(tmp_path):
    out = subprocess.run([sys.executable, "-c", WATCH, str(LOCUSTFILE.parent), str(tmp_path / "workers.csv")],
                         capture_output=True, text=True, timeout=60, cwd="/")
    assert out.returncode == 0, out.stderr
    assert ast.literal_eval(out.stdout) == [("a", "missing", "2"), ("b", "left", "2"), ("a", "back", "0"),
                                ("a", "missing", "0")]
