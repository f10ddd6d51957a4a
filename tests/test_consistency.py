"""The consistency scenario end to end over real HTTP: the reference shop in every mode, and
fronts that make it slow, erroring, lagging or broken, as the systems the workbench is judged on."""

import json
import signal
import socket
import subprocess
import sys
import time

import pytest

from shop_proxy import Misbehaviour, ShopProxy, shop_id
from wdm_lib.client import FIRST_REPLY_S
from wdm_lib.history import CREATE_USER, read_ops
from wdm_lib.runner import run_consistency
from wdm_lib.workloads.consistency import ConsistencyScenario


# The reference shop is synchronous: its state is final when its replies are in, so a short quiet
# window gives the same verdict as the default's five seconds (test_quiet_state.py covers shops
# whose state changes later).
QUICK = dict(quiet_s=0.5)


def files(run):
    return {p.name for p in run.path.iterdir()}


@pytest.mark.long
def test_the_default_scenario_on_the_consistent_shop(tmp_path):
    run, summary = run_consistency(ConsistencyScenario(seed=7, **QUICK), runs_dir=tmp_path)
    assert summary["valid"] is True and summary["anomalies"] == [] and summary["warnings"] == []
    assert summary["verdict"] == "consistent" and summary["settled"] is True
    assert summary["outcomes"] == {"ok": 100, "fail": 900, "unknown": 0}
    # Judged on a quiet state: at least two reads that agree, every one of them consistent.
    assert len(summary["convergence"]) >= 2 and all(p["valid"] for p in summary["convergence"])
    assert summary["time_to_consistency_s"] is not None and summary["regressed"] is False
    assert summary["stock_sold"] == 100 and summary["credit_spent"] == 100
    state = run.read_json("state.json")
    assert [v["stock"] for v in state["final"]["items"].values()] == [0]
    assert sum(v["credit"] for v in state["final"]["users"].values()) == 900
    assert sum(o["paid"] for o in state["final"]["orders"].values()) == 100
    assert {"manifest.json", "history.csv", "state.json", "summary.json"} <= files(run)
    manifest = run.read_json("manifest.json")
    assert manifest["status"] == "completed" and manifest["scenario"]["seed"] == 7
    assert manifest["target"]["source"] == "embedded reference shop"
    checkouts = [op for op in read_ops(run.file("history.csv")) if op.kind == "checkout"]
    assert len(checkouts) == 1000 and all(op.complete_ns >= op.invoke_ns >= op.intended_ns for op in checkouts)
    assert summary["original"] == {"stock_inconsistencies_in_logs": 0, "stock_inconsistencies_in_db": 0,
                                   "payment_inconsistencies_in_logs": 0, "payment_inconsistencies_in_db": 0}


def test_the_same_seed_builds_the_same_orders(tmp_path):
    sc = dict(n_items=3, item_stock=5, n_users=20, n_orders=30, items_per_order=2, seed=11, **QUICK)
    runs = [run_consistency(ConsistencyScenario(**sc), runs_dir=tmp_path)[0] for _ in range(2)]
    plans = []
    for run in runs:
        state = run.read_json("state.json")
        items = list(state["initial"]["items"])
        users = list(state["initial"]["users"])
        # Ids differ between runs; positions in creation order do not.
        plans.append(sorted((users.index(o["user_id"]), sorted(items.index(i) for i, _ in o["items"]))
                            for o in state["final"]["orders"].values()))
    assert plans[0] == plans[1]


# Each anomaly under a load that makes it show, and the anomaly the verdict must name. The default
# 100 in flight is enough for the races to show; 400 orders for the 100 in stock are plenty.
ANOMALY_CASES = {
    "lost-update": ({"n_users": 400, "n_orders": 400}, {"oversold", "stock-mismatch"}),
    "no-rollback": ({"n_users": 100, "n_orders": 400}, {"stock-mismatch", "conservation"}),
    "phantom-success": ({"n_users": 400, "n_orders": 400}, {"paid-flag", "stock-mismatch", "credit-mismatch"}),
}


@pytest.mark.parametrize("anomaly", sorted(ANOMALY_CASES))
def test_each_anomaly_turns_the_verdict_and_is_named(tmp_path, anomaly):
    overrides, expected = ANOMALY_CASES[anomaly]
    run, summary = run_consistency(ConsistencyScenario(seed=3, **QUICK, **overrides), anomaly=anomaly,
                                   runs_dir=tmp_path)
    assert summary["valid"] is False and summary["verdict"] == "inconsistent"
    found = {a["name"] for a in summary["anomalies"]}
    assert expected <= found, found
    for a in summary["anomalies"]:
        assert a["count"] > 0 and len(a["examples"]) <= 10
    assert run.read_json("manifest.json")["target"]["anomaly"] == anomaly


def test_a_lost_ack_warns_without_turning_the_verdict(tmp_path):
    # Every 3rd successful checkout commits and answers 500: API.md allows an unknown to have
    # happened, so the balances are right; the replies were wrong, and that is a warning.
    run, summary = run_consistency(ConsistencyScenario(n_users=300, n_orders=300, seed=3, **QUICK), anomaly="lost-ack",
                                   runs_dir=tmp_path)
    assert summary["valid"] is True and summary["verdict"] == "consistent with warnings"
    [warning] = summary["warnings"]
    assert warning["name"] == "lost-ack" and warning["count"] == 33
    assert summary["unknown_by_cause"] == {"5xx": {"happened": 33, "not_happened": 0, "unresolved": 0}}


SMALL = dict(n_items=2, item_stock=30, n_users=100, user_credit=2, n_orders=100, seed=5, **QUICK)


@pytest.mark.long
def test_a_slow_system_with_too_short_a_timeout_still_gets_a_right_verdict(tmp_path, write_urls, shop):
    # Checkouts one at a time, 60 ms each: 100 of them take 6 s, and the timeout gives up after 3 s.
    # (Seconds, not fractions: the timeout bounds seeding too, which must not time out on a busy
    # machine.)
    with ShopProxy(shop.base_url, Misbehaviour(checkout_delay_s=0.06)) as proxy:
        run, summary = run_consistency(ConsistencyScenario(timeout_s=3, **SMALL),
                                       urls=write_urls(proxy.urls()), runs_dir=tmp_path)
    assert summary["outcomes"]["unknown"] > 0
    assert summary["valid"] is True, summary["anomalies"]
    assert any("(timeout)" in n and "raise --timeout" in n for n in summary["notes"])
    assert summary["checkouts_happened"] == 60  # all the stock sold, timeouts or not


def test_a_system_that_answers_503_is_judged_on_what_happened(tmp_path, write_urls, shop):
    with ShopProxy(shop.base_url, Misbehaviour(checkout_503_every=4)) as proxy:
        run, summary = run_consistency(ConsistencyScenario(**SMALL), urls=write_urls(proxy.urls()),
                                       runs_dir=tmp_path)
    assert summary["outcomes"]["unknown"] == 25
    assert summary["valid"] is True, summary["anomalies"]
    assert summary["unknown_resolved"] == {"happened": 0, "not_happened": 25, "unresolved": 0}


def test_ids_full_of_url_syntax_get_the_same_verdict(tmp_path, write_urls, shop):
    # Every id this target hands out holds / # % ? .., spaces and non-ASCII; it answers 404 unless
    # each id comes back percent-encoded as one path segment, exactly as it was handed out.
    with ShopProxy(shop.base_url, Misbehaviour(hostile_ids=True)) as proxy:
        run, summary = run_consistency(ConsistencyScenario(**SMALL), urls=write_urls(proxy.urls()),
                                       runs_dir=tmp_path)
    assert summary["valid"] is True, summary["anomalies"]
    assert summary["outcomes"] == {"ok": 60, "fail": 40, "unknown": 0}  # 2 items x 30 in stock
    final = run.read_json("state.json")["final"]
    assert all(shop_id(i) is not None for i in [*final["items"], *final["users"], *final["orders"]])
    assert sum(o["paid"] for o in final["orders"].values()) == 60
    ops = read_ops(run.file("history.csv"))
    assert {op.order_id for op in ops if op.kind == "checkout"} == set(final["orders"])


def test_a_5xx_on_every_try_while_seeding_ends_the_run_with_advice_after_settle(tmp_path, write_urls, shop):
    # A 5xx may have happened: each user whose funds met one is left and another made in its place,
    # with a growing pause, until no user could be made for --settle.
    from wdm_lib.errors import TargetUnreachable

    started = time.monotonic()
    with ShopProxy(shop.base_url, Misbehaviour(error_path="/payment/add_funds")) as proxy:
        with pytest.raises(TargetUnreachable) as e:
            run_consistency(ConsistencyScenario(**{**SMALL, "quiet_s": 0.5, "settle_s": 2}),
                            urls=write_urls(proxy.urls()), runs_dir=tmp_path)
    assert "/payment/add_funds/" in str(e.value) and "HTTP 500" in str(e.value)
    assert "no record for 2 s (--settle)" in str(e.value) and "a --concurrency below 64" in str(e.value)
    assert 2 <= time.monotonic() - started < 30
    # Asked less and less often: a few users a worker, not thousands.
    history = next(tmp_path.glob("*/history.csv"))
    assert sum(1 for op in read_ops(history) if op.kind == CREATE_USER) < 64 * 12


@pytest.mark.long
def test_cli_exit_codes_and_verdict_table(tmp_path, wdm):
    small = ("--runs-dir", str(tmp_path), "--seed", "1", "--n-users", "100", "--n-orders", "100", "--quiet", "0.5")
    ok = wdm("consistency", *small)
    assert ok.returncode == 0, ok.stderr
    assert "verdict: CONSISTENT" in ok.stdout
    bad = wdm("consistency", *small, "--anomaly", "phantom-success")
    assert bad.returncode == 1, bad.stderr
    assert "verdict: INCONSISTENT" in bad.stdout and "paid-flag" in bad.stdout
    warned = wdm("consistency", *small, "--anomaly", "lost-ack")
    assert warned.returncode == 0, warned.stderr
    assert "verdict: CONSISTENT with warnings" in warned.stdout and "warning: lost-ack" in warned.stdout
    strict = wdm("consistency", *small, "--anomaly", "lost-ack", "--strict")
    assert strict.returncode == 1, strict.stderr


def test_an_unreachable_target_ends_quickly_in_one_sentence_naming_the_url(tmp_path, write_urls, wdm, refused_port):
    port = refused_port
    started = time.monotonic()
    runs_dir = tmp_path / "runs"
    r = wdm("consistency", "--urls", str(write_urls(f"http://127.0.0.1:{port}")), "--runs-dir", str(runs_dir),
            "--timeout", "5")
    assert r.returncode == 2
    assert time.monotonic() - started < 5 + 5
    assert f"http://127.0.0.1:{port}/stock/item/create/1" in r.stderr
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1
    [run_dir] = runs_dir.iterdir()
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["status"] == "failed" and "cannot connect" in manifest["error"]


@pytest.mark.long
def test_a_port_that_accepts_and_never_answers_ends_in_seconds_not_after_the_timeout(tmp_path, write_urls, wdm):
    with socket.socket() as hole:  # the kernel accepts connections to it; nothing ever answers
        hole.bind(("127.0.0.1", 0))
        hole.listen(16)
        port = hole.getsockname()[1]
        started = time.monotonic()
        r = wdm("consistency", "--urls", str(write_urls(f"http://127.0.0.1:{port}")),
                "--runs-dir", str(tmp_path / "runs"), "--timeout", "60")
        took = time.monotonic() - started
    assert r.returncode == 2, r.stderr
    assert took < 40, took  # about 10 s: the first-reply deadline, never the 60 s timeout
    assert (f"http://127.0.0.1:{port}/stock/item/create/1: the target accepted the connection but sent "
            f"nothing within {FIRST_REPLY_S:g} s") in r.stderr
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1
    [run_dir] = (tmp_path / "runs").iterdir()
    assert json.loads((run_dir / "manifest.json").read_text())["status"] == "failed"


def test_a_target_that_breaks_the_api_ends_naming_the_endpoint(tmp_path, write_urls, shop, wdm):
    with ShopProxy(shop.base_url, Misbehaviour(garbage_path="/orders/find")) as proxy:
        r = wdm("consistency", "--urls", str(write_urls(proxy.urls())), "--runs-dir", str(tmp_path / "runs"),
                "--n-users", "10", "--n-orders", "10")
    assert r.returncode == 2
    assert "GET " in r.stderr and "/orders/find/" in r.stderr and "answered 200 with an HTML page (oops)" in r.stderr
    assert "Traceback" not in r.stderr
    [run_dir] = (tmp_path / "runs").iterdir()
    # Everything done before the fault is on disk.
    assert len(read_ops(run_dir / "history.csv")) > 10


@pytest.mark.parametrize("args, fault", [
    (["--n-users", "0"], "--n-users is 0; expected at least 1"),
    (["--timeout", "-1"], "--timeout is -1; expected a positive number"),
    (["--anomaly", "nonsense"], "--anomaly 'nonsense' is not known"),
    (["--quiet", "10", "--settle", "5"], "--settle is 5 s, shorter than --quiet 10 s"),
    (["--quiet", "-1"], "--quiet is -1; expected 0 or more seconds"),
    (["--urls", "missing.json"], "missing.json: no such file"),
    (["--urls", "urls.json", "--anomaly", "lost-ack"], "applies only to the embedded reference shop"),
])
def test_bad_options_end_in_one_sentence(tmp_path, args, fault, wdm):
    r = wdm("consistency", "--runs-dir", str(tmp_path), *args)
    assert r.returncode == 2
    err = r.stderr.strip()
    assert err.startswith("wdm: ") and fault in err and len(err.splitlines()) == 1, err
    assert not list(tmp_path.iterdir())  # refused before anything started


@pytest.mark.parametrize("ctrl_c", [signal.default_int_handler, signal.SIG_IGN], ids=["taken", "ignored"])
def test_a_kill_inside_a_run_cancels_its_task_as_ctrl_c_does(ctrl_c):
    """SIGTERM goes where Ctrl-C goes: asyncio's handler cancels the run's task, which then ends
    cleanly. Raised as KeyboardInterrupt in the middle of the event loop instead, it once left a
    50,000-order run in its clean-up for ten minutes; the test of a real run above cannot catch that
    (where the exception lands is luck), this one can. Where Ctrl-C is ignored (a shell script's
    background job), asyncio sets no handler of its own, and a kill must still end the task cleanly."""
    import asyncio
    import os

    from wdm_lib import stopping

    seen = []

    async def run():
        try:
            os.kill(os.getpid(), signal.SIGTERM)
            await asyncio.sleep(10)
            seen.append("not stopped")
        except asyncio.CancelledError:
            seen.append("cancelled")
            raise
        except KeyboardInterrupt:
            seen.append("interrupted mid-step")
            raise

    previous = signal.signal(signal.SIGINT, ctrl_c)
    try:
        with stopping.stop_signals_as_ctrl_c():
            started = time.monotonic()
            with pytest.raises(KeyboardInterrupt):  # asyncio.run says so once the task has ended
                asyncio.run(run())
    finally:
        signal.signal(signal.SIGINT, previous)
    assert seen == ["cancelled"] and time.monotonic() - started < 5


@pytest.mark.parametrize("sig, said", [(signal.SIGINT, "Ctrl-C"), (signal.SIGTERM, "SIGTERM")])
def test_ctrl_c_or_a_kill_keeps_the_history_and_marks_the_run_interrupted(tmp_path, sig, said):
    # Signalled once the history passes 20 kB: some 500 users into seeding 5,000, seconds from its end.
    proc = subprocess.Popen([sys.executable, "-m", "wdm_lib", "consistency", "--runs-dir", str(tmp_path),
                             "--n-users", "5000", "--n-orders", "5000"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    history = None
    while time.monotonic() < deadline:
        found = list(tmp_path.glob("*/history.csv"))
        if found and found[0].stat().st_size > 20_000:
            history = found[0]
            break
        time.sleep(0.1)
    assert history is not None, "the run did not start recording"
    proc.send_signal(sig)
    try:
        # Seconds, as Ctrl-C takes. (A SIGTERM raised as KeyboardInterrupt inside the event loop once
        # left the run in its clean-up for ten minutes.)
        out, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    assert err.strip().splitlines()[-1] == f"wdm: interrupted ({said}); what was recorded so far is kept."
    manifest = json.loads((history.parent / "manifest.json").read_text())
    assert manifest["status"] == "interrupted" and manifest["error"] == f"interrupted by the user ({said})"
    ops = read_ops(history)
    assert len(ops) > 100 and ops[-1].kind == "fault"
    assert sum(op.kind == "create_user" for op in ops) < 5000  # stopped mid-run, not after it


def test_a_checker_that_raises_ends_the_run_failed_naming_it_and_keeps_the_rest(shop, wdm, write_urls, tmp_path,
                                                                               monkeypatch):
    from wdm_lib import checkers, runs, summaries

    def broken(scenario, history, state):
        raise ZeroDivisionError("a checker's own bug")

    monkeypatch.setitem(checkers.CONSISTENCY_CHECKERS, "broken", broken)
    done = wdm("consistency", "--urls", str(write_urls(shop.base_url)), "--runs-dir", str(tmp_path / "runs"),
               "--n-users", "50", "--n-orders", "50", "--quiet", "0")
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
    assert "checker 'broken' failed (ZeroDivisionError: a checker's own bug)" in done.stderr
    [run] = runs.list_runs(tmp_path / "runs")
    assert run.status == runs.FAILED and "checker 'broken' failed" in run.manifest["error"]
    assert len(read_ops(run.file("history.csv"))) > 100
    summary = summaries.read(run)
    checks = {c["checker"]: c for c in summary["checks"]}
    assert checks["broken"]["valid"] is None and checks["stock"]["valid"] is True
    assert summary["verdict"] == "no verdict: a checker failed" and summaries.verdict_class(summary) == "none"


@pytest.mark.parametrize("workload, anomaly", [("original", "lost-ack"), ("mixed", "racy-add-funds")])
def test_the_verdict_reads_only_the_rows_it_needs_and_judges_as_from_every_row(tmp_path, workload, anomaly):
    from wdm_lib.checkers import check_run, rows_read

    sc = ConsistencyScenario(workload=workload, n_orders=120, n_users=60, seed=4, **QUICK)
    run, summary = run_consistency(sc, anomaly=anomaly, runs_dir=tmp_path)
    state = run.read_json("state.json")
    every = read_ops(run.file("history.csv"))
    kept = read_ops(run.file("history.csv"), keep=rows_read(sc, state["initial"]["after_op"]))
    # The rows that built the orders are left out, and nothing the verdict reads: the same
    # verdict, anomalies, warnings and read figures as from every row, and the run's own.
    assert {"create_order", "add_item"} <= {op.kind for op in every} and \
        not {"create_order", "add_item"} & {op.kind for op in kept}
    assert check_run(sc, kept, state).to_dict() == check_run(sc, every, state).to_dict()
    assert summary["valid"] is False or summary["warnings"], summary["verdict"]
