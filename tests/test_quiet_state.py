"""Verdicts on asynchronous shops: the workbench judges only a state that stayed unchanged for the
quiet window, charts how it converged, and tells warnings (facts about replies) from anomalies
(facts about balances). Each front below is a kind of system course teams build; the delays vary so
no test is tuned to one."""

import time

import pytest

import behind_proxy
from wdm_lib.errors import TargetUnreachable
from wdm_lib.history import (ADD_FUNDS, ADD_ITEM, ADD_STOCK, CHECKOUT, CREATE_ITEM, CREATE_ORDER, CREATE_USER, FAIL, OK,
                             read_ops)
from shop_proxy import Misbehaviour

# 50 orders for 2 items of 15 units: 30 checkouts succeed, 20 are refused.
SMALL = dict(n_items=2, item_stock=15, n_users=50, user_credit=2, n_orders=50, seed=5)


def run_behind(shop, tmp_path, misbehaviour, **scenario):
    """One run's summary, in this process."""
    return behind_proxy.run_behind(shop.base_url, misbehaviour, tmp_path, "urls.json", {**SMALL, **scenario})


def side_by_side(shop, tmp_path, cases, base=SMALL):
    """One summary per (misbehaviour, scenario options over `base`), the runs at the same time."""
    return behind_proxy.side_by_side(shop.base_url, tmp_path, [(m, {**base, **options}) for m, options in cases])


@pytest.mark.long
@pytest.mark.timing
def test_reads_that_lag_by_seconds_are_waited_out(shop, tmp_path):
    lags = (1.5, 3.0)
    summaries = side_by_side(shop, tmp_path,
                             [(Misbehaviour(read_lag_s=lag), {"quiet_s": lag + 1.5}) for lag in lags])
    for lag_s, summary in zip(lags, summaries):
        assert summary["verdict"] == "consistent", (lag_s, summary["anomalies"])
        assert summary["settled"] is True and summary["regressed"] is False
        points = summary["convergence"]
        # The first passes saw the stale state (a verdict on them would have been wrong) ...
        assert not points[0]["valid"] and points[0]["anomalies"]
        # ... and it turned consistent once the lag had passed, and stayed so: the first consistent
        # pass read its last record at least the lag after the last checkout reply. (A point's time is
        # its pass's start; a pass lasts up to the longest one, over a second on a busy machine.)
        assert points[-1]["valid"]
        assert summary["time_to_consistency_s"] + summary["read_back"]["pass_s"] >= lag_s - 0.1, summary["read_back"]


@pytest.mark.long
def test_a_saga_that_compensates_after_it_replied_is_caught(shop, tmp_path):
    summaries = side_by_side(shop, tmp_path,
                             [(Misbehaviour(late_undo_every=3, late_undo_s=after), {"quiet_s": 4}) for after in (1.0, 2.5)])
    for summary in summaries:
        # 30 checkouts answered 200; every 3rd had its stock and credit given back after the reply.
        assert summary["verdict"] == "inconsistent"
        assert {"stock-mismatch", "credit-mismatch"} <= {a["name"] for a in summary["anomalies"]}
        credit = next(a for a in summary["anomalies"] if a["name"] == "credit-mismatch")
        assert credit["over"]["by"] == 10 and credit["under"] == {"ids": 0, "by": 0}  # given back, never taken
        # The first read added up: only waiting for quiet saw the state break.
        assert summary["convergence"][0]["valid"] is True
        assert summary["regressed"] is True and summary["time_to_consistency_s"] is None
        assert "regressed" in {a["name"] for a in summary["anomalies"]}  # an anomaly of its own now


@pytest.mark.long
@pytest.mark.timing
def test_a_queue_that_works_after_the_client_gave_up_is_judged_on_its_work(shop, tmp_path):
    # The client gives up after 4 s (seeding through the front must fit in that on a busy machine);
    # the queue works the checkouts off later, correctly, or (the last case) takes the stock and
    # forgets the payment.
    right, later, wrong = side_by_side(shop, tmp_path, [
        (Misbehaviour(queue_s=5.0), {"timeout_s": 4, "quiet_s": 3}),
        (Misbehaviour(queue_s=6.5), {"timeout_s": 4, "quiet_s": 3}),
        (Misbehaviour(queue_s=5.0, queue_forgets_payment=True), {"timeout_s": 4, "quiet_s": 3})])
    for summary in (right, later):
        assert summary["outcomes"]["unknown"] == 50
        assert summary["verdict"] == "consistent", summary["anomalies"]
        # Resolved from the final, quiet state: the late work happened.
        assert summary["unknown_by_cause"] == {"timeout": {"happened": 30, "not_happened": 20, "unresolved": 0}}
        assert summary["stock_sold"] == 30
    # Stock was taken for orders never paid: the first read (before the queue worked) added up.
    assert wrong["verdict"] == "inconsistent"
    assert {"stock-mismatch", "conservation"} <= {a["name"] for a in wrong["anomalies"]}
    assert wrong["regressed"] is True


@pytest.mark.parametrize("every", [2, 3])
def test_a_5xx_after_commit_warns_and_a_dropped_connection_after_commit_does_not_turn_the_verdict(
        shop, tmp_path, every):
    said_503, dropped = side_by_side(shop, tmp_path, [(Misbehaviour(ack_503_every=every), {"quiet_s": 1}),
                                                                 (Misbehaviour(ack_reset_every=every), {"quiet_s": 1})])
    lost = 30 // every
    # Both are consistent: an unknown that happened is allowed. Saying "error" while charging is
    # worth a warning; it is not a data inconsistency.
    assert said_503["valid"] and dropped["valid"], (said_503["anomalies"], dropped["anomalies"])
    assert said_503["verdict"] == "consistent with warnings"
    assert [(w["name"], w["count"]) for w in said_503["warnings"]] == [("lost-ack", lost)]
    assert dropped["verdict"] == "consistent" and dropped["warnings"] == []
    # Counted the same way, whatever the cause.
    assert said_503["unknown_by_cause"] == {"5xx": {"happened": lost, "not_happened": 0, "unresolved": 0}}
    assert dropped["unknown_by_cause"] == {"reset": {"happened": lost, "not_happened": 0, "unresolved": 0}}


def test_a_state_that_never_goes_quiet_is_judged_as_it_was_and_said_so(shop, tmp_path):
    summary = run_behind(shop, tmp_path, Misbehaviour(drift_every_s=0.3), quiet_s=1.5, settle_s=3)
    assert summary["settled"] is False
    assert summary["read_back"]["reads"] >= 2
    assert any("never stayed unchanged for --quiet 1.5 s" in n for n in summary["notes"])
    assert summary["verdict"] == "inconsistent"  # stock kept appearing from nowhere


# --- a read-back that real gateways cannot fool ----------------------------------------------------

# Orders of three lines, some repeating an item, so an order's lines can come back in any order.
LINES = dict(SMALL, n_items=4, items_per_order=3, user_credit=6)


@pytest.mark.long
def test_gzip_a_read_limiter_and_shuffled_lines_leave_a_correct_shop_consistent_and_quiet(shop, tmp_path):
    fronts = [Misbehaviour(gzip_replies=True), Misbehaviour(reads_429_every=7), Misbehaviour(shuffle_lines=True)]
    summaries = side_by_side(shop, tmp_path, [(m, {"quiet_s": 1}) for m in fronts], base=LINES)
    for front, summary in zip(fronts, summaries):
        assert summary["verdict"] == "consistent", (front, summary["anomalies"], summary["notes"])
        # Nothing changed after the last reply: two whole reads, the quiet window between them.
        assert summary["settled"] is True and summary["read_back"]["reads"] == 2, (front, summary["read_back"])


@pytest.mark.long
def test_a_reader_that_flaps_to_a_stale_copy_is_caught_in_nine_runs_of_ten(shop, tmp_path):
    # 0.4 s of every 4 s the reader serves the first copy it ever served (the state before the
    # checkouts): a pass that lands there sees the stock and credit unspent.
    # --settle 20: a flap every 4 s is seen several times, each a chance for a whole pass to land on it.
    cases = [(Misbehaviour(flap_every_s=4.0, flap_for_s=0.4), {"seed": seed, "settle_s": 20}) for seed in range(10)]
    # Five at a time: ten fronts and their runs at once on two cores would be a test of the machine.
    summaries = side_by_side(shop, tmp_path, cases[:5]) + side_by_side(shop, tmp_path, cases[5:])
    caught = [s for s in summaries if s["verdict"] == "inconsistent"]
    assert len(caught) >= 9, [(s["verdict"], [a["name"] for a in s["anomalies"]], s["read_back"]) for s in summaries]
    # The verdict line and the lines under it never say the opposite.
    assert all(s["settled"] is False or s["regressed"] for s in caught)


# --- a set-up behind a rate limiter ----------------------------------------------------------------

def test_a_rate_limiter_that_turns_writes_away_slows_seeding_and_leaves_the_verdict_right(shop, tmp_path):
    # Every second write (seeding's and the checkouts') answered 429, as nginx's limit_req does: a
    # 4xx, so the write did not happen and seeding sends it again; a checkout turned away is refused.
    summary = run_behind(shop, tmp_path, Misbehaviour(writes_429_every=2), quiet_s=0.5)
    assert summary["verdict"] == "consistent", (summary["anomalies"], summary["notes"])
    ops = read_ops(tmp_path / summary["run_id"] / "history.csv")
    seeding = [op for op in ops if op.kind != CHECKOUT]
    turned_away = [op for op in seeding if op.status == 429]
    # Every kind of set-up write met the limiter, was recorded refused, and was sent again until served.
    assert {op.kind for op in turned_away} == {CREATE_ITEM, ADD_STOCK, CREATE_USER, ADD_FUNDS, CREATE_ORDER, ADD_ITEM}
    assert all(op.outcome == FAIL for op in turned_away)
    assert f"did not serve {len(turned_away):,} tries" in " ".join(summary["notes"]), summary["notes"]
    served = [op for op in seeding if op.outcome == OK]
    assert len(served) == 2 * SMALL["n_items"] + 2 * SMALL["n_users"] + 2 * SMALL["n_orders"]
    # A checkout turned away is refused: it did not happen, and the verdict counts it so.
    turned_away = [op for op in ops if op.kind == CHECKOUT and op.status == 429]
    assert turned_away and all(op.outcome == FAIL for op in turned_away)


def test_writes_done_but_answered_503_leave_seeding_right_and_the_verdict_consistent(shop, tmp_path):
    # Every third write is done, then answered 503: it may have happened, so seeding never sends it
    # again (funds added twice would read as a lost seeding write); it leaves that record and makes
    # another in its place. The checkouts so answered are unknowns, resolved from the final state.
    summary = run_behind(shop, tmp_path, Misbehaviour(writes_503_after_every=3), quiet_s=0.5)
    # A checkout done and answered 503 is API.md's lost acknowledgement: a warning, never an anomaly.
    assert summary["valid"] is True and not summary["anomalies"], (summary["anomalies"], summary["notes"])
    assert {w["name"] for w in summary["warnings"]} <= {"lost-ack"}, summary["warnings"]
    ops = read_ops(tmp_path / summary["run_id"] / "history.csv")
    seeding = [op for op in ops if op.kind != CHECKOUT]
    unknown = {op.kind for op in seeding if op.status == 503}
    # (which writes meet the front's count depends on how the concurrent ones interleave)
    assert {ADD_FUNDS, ADD_ITEM} <= unknown and len(unknown) >= 4, unknown
    # No addition that may have happened was sent again: one served addition a record, as many
    # records as the scenario asks (the ones left have none).
    made = [op for op in seeding if op.outcome == OK and op.kind in (ADD_STOCK, ADD_FUNDS)]
    assert len(made) == SMALL["n_items"] + SMALL["n_users"] == len({op.user_id or op.items for op in made})
    assert any(op.kind == CHECKOUT and op.status == 503 for op in ops)
    left = sum(op.status == 503 for op in seeding)
    assert f"({left:,} records left, none of them read or judged)" in " ".join(summary["notes"]), summary["notes"]


def test_a_rate_limiter_that_serves_nothing_ends_the_run_in_one_sentence_after_settle(shop, tmp_path):
    started = time.monotonic()
    with pytest.raises(TargetUnreachable) as caught:
        run_behind(shop, tmp_path, Misbehaviour(writes_429_every=1), quiet_s=0.5, settle_s=1.5)
    said = str(caught.value)
    assert "429" in said and "not now" in said and "no record for 1.5 s (--settle)" in said and "while creating items" in said, said
    assert 1.5 <= time.monotonic() - started < 30


def test_a_pass_longer_than_settle_still_gets_its_quiet_window_and_exactly_two_passes(shop, tmp_path):
    # A slow target (two requests at a time, 20 ms each): one whole read of the 102 records takes
    # about a second, twice --settle. Nothing changes after the last reply, so the state is quiet:
    # two passes with the quiet window between them, not "never quiet".
    summary = run_behind(shop, tmp_path, Misbehaviour(serve_at_once=2, serve_s=0.02),
                         quiet_s=0.3, settle_s=0.5)
    rb = summary["read_back"]
    assert rb["pass_s"] > 0.5, rb
    assert summary["settled"] is True and rb["reads"] == 2 and rb["unchanged_for_s"] >= 0.3, rb
    assert summary["valid"] is True and [p["changed"] for p in summary["convergence"]] == [True, False]


def test_a_stress_runs_batch_init_waits_out_a_rate_limiter(shop):
    # The three batch-init calls behind a limiter that turns every second write away.
    import asyncio

    from wdm_lib.config import parse_urls
    from wdm_lib.workloads.stress.scenario import StressScenario
    from wdm_lib.workloads.stress.shop import batch_init
    from shop_proxy import ShopProxy

    with ShopProxy(shop.base_url, Misbehaviour(writes_429_every=2)) as proxy:
        timings = asyncio.run(batch_init(StressScenario(n_items=10, n_users=10, n_orders=10),
                                         parse_urls(proxy.urls(), "urls.json")))
    assert set(timings) == {"stock_s", "payment_s", "orders_s", "total_s"}
