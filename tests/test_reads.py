"""The read checker (wdm_lib.reads) on hand-made histories with known fine, stale and impossible
reads: writes that race their reads, unknown writes that land late, refused ones that never land,
orders paid and unpaid, and reads that go back in time; against a direct, quadratic reading of its
definitions over random histories; what it does to the verdict; and end to end: test shops whose
reads lag (a replica, a cache that never forgets), each caught and measured. (The reference shop,
single process and three services, through a fault schedule with no stale read: test_mixed.py.)"""

import json
import random

import numpy as np
import pytest

from shop_proxy import Misbehaviour, ShopProxy
from wdm_lib import reads
from wdm_lib.checkers import CONSISTENT, INCONSISTENT, WITH_WARNINGS
from wdm_lib.errors import WorkbenchError
from wdm_lib.history import (ADD_FUNDS, ADD_STOCK, CHECKOUT, CREATE_ITEM, CREATE_USER, FAIL, FIND_ITEM, FIND_ORDER,
                             FIND_USER, OK, UNKNOWN, Op, read_ops)
from wdm_lib.reads import FINE, IMPOSSIBLE, STALE
from wdm_lib.reference.process import ReferenceShopProcess
from wdm_lib.runner import run_consistency
from wdm_lib.summary import render_table
from wdm_lib.workloads.consistency_scenario import ConsistencyScenario

S = 10**9   # seconds, in the history's nanoseconds
STATUS = {OK: 200, FAIL: 400, UNKNOWN: 503}


class History(list):
    """A history built in the order its rows are written; times in seconds."""

    def op(self, kind, sent, answered, outcome=OK, **fields):
        self.append(Op(len(self), kind, invoke_ns=round(sent * S), complete_ns=round(answered * S),
                       status=STATUS[outcome], outcome=outcome, **fields))
        return self

    def item(self, item, stock=0, at=0.0):
        self.op(CREATE_ITEM, at, at, items=[[item, 0]], amount=1)
        return self.add_stock(item, stock, at, at) if stock else self

    def user(self, user, credit=0, at=0.0):
        self.op(CREATE_USER, at, at, user_id=user)
        return self.add_funds(user, credit, at, at) if credit else self

    def add_stock(self, item, n, sent, answered, outcome=OK):
        return self.op(ADD_STOCK, sent, answered, outcome, items=[[item, n]], amount=n)

    def add_funds(self, user, n, sent, answered, outcome=OK):
        return self.op(ADD_FUNDS, sent, answered, outcome, user_id=user, amount=n)

    def checkout(self, order, user, lines, cost, sent, answered, outcome=OK):
        return self.op(CHECKOUT, sent, answered, outcome, order_id=order, user_id=user, items=lines, amount=cost)

    def find_item(self, item, value, sent, answered):
        return self.op(FIND_ITEM, sent, answered, items=[[item, 0]], amount=value)

    def find_user(self, user, value, sent, answered):
        return self.op(FIND_USER, sent, answered, user_id=user, amount=value)

    def find_order(self, order, paid, sent, answered):
        return self.op(FIND_ORDER, sent, answered, order_id=order, amount=int(paid))


def verdicts(history):
    """(status, staleness in s or None) of each read, in the history's order."""
    judged = reads.judge_reads(history)
    return [(int(s), None if ns < 0 else round(ns / S, 6)) for s, ns in zip(judged.status, judged.staleness_ns)]


def test_a_read_sees_every_2xx_write_answered_before_it_was_sent():
    h = History().item("a", 10).add_stock("a", 5, 2.0, 2.1)
    h.find_item("a", 15, 3.0, 3.1)     # fine
    h.find_item("a", 10, 3.0, 3.1)     # stale: 10 was last possible when the addition answered, 0.9 s before
    h.find_item("a", 99, 3.0, 3.1)     # impossible: no moment allowed 99
    h.find_item("a", 0, 3.2, 3.3)      # stale: the stock before seeding's addition, 3.2 s before
    assert verdicts(h) == [(FINE, None), (STALE, 0.9), (IMPOSSIBLE, None), (STALE, 3.2)]
    judged = reads.judge_reads(h)
    assert judged.lower.tolist() == [15, 15, 15, 15] and judged.upper.tolist() == [15, 15, 15, 15]


def test_a_read_racing_its_write_may_see_it_or_not():
    h = History().item("a", 10).user("u", 5)
    h.add_stock("a", 5, 2.0, 2.5).checkout("o", "u", [["a", 3]], 4, 2.0, 2.5)
    h.find_item("a", 10, 2.2, 2.3).find_item("a", 15, 2.2, 2.3).find_item("a", 7, 2.2, 2.3).find_item("a", 12, 2.2, 2.3)
    h.find_user("u", 5, 1.9, 2.1).find_user("u", 1, 1.9, 2.1)
    # sent before the writes, answered after they were sent: both values are possible
    h.find_item("a", 10, 1.9, 2.0).find_item("a", 12, 1.9, 2.0)
    # answered before the writes were sent: only the old value
    h.find_item("a", 12, 1.8, 1.9)
    assert [v[0] for v in verdicts(h)] == [FINE] * 8 + [IMPOSSIBLE]
    assert reads.judge_reads(h).lower.tolist()[:4] == [7] * 4   # the subtraction may have, the addition not yet


def test_an_unknown_write_may_land_at_any_time_from_its_sending_on_and_a_refused_one_never():
    h = History().item("a", 10).user("u", 5)
    h.add_stock("a", 5, 1.0, 1.1, UNKNOWN).add_funds("u", 3, 1.0, 1.2, FAIL)
    h.checkout("o", "u", [["a", 2], ["a", 2]], 5, 1.0, 1.1, UNKNOWN)   # two lines of one item: 4 in all
    h.find_item("a", 10, 100.0, 100.1)    # neither has landed yet
    h.find_item("a", 15, 100.0, 100.1)    # the addition landed late
    h.find_item("a", 11, 100.0, 100.1)    # both landed
    h.find_item("a", 6, 100.0, 100.1)     # the checkout landed
    h.find_item("a", 8, 100.0, 100.1)     # between what may have landed: the bounds are sound, not exact
    h.find_item("a", 16, 100.0, 100.1)    # more than everything that may have landed
    h.find_user("u", 0, 100.0, 100.1)     # charged
    h.find_user("u", 8, 100.0, 100.1)     # the refused funds: never
    h.find_item("a", 15, 0.5, 0.9)        # answered before the addition was sent
    assert [v[0] for v in verdicts(h)] == [FINE, FINE, FINE, FINE, FINE, IMPOSSIBLE, FINE, IMPOSSIBLE,
                                           IMPOSSIBLE]


def test_a_stale_read_of_a_value_an_unknown_write_made_possible_is_as_stale_as_its_last_moment():
    h = History().item("a", 10).add_stock("a", 5, 1.0, 1.1, UNKNOWN).add_stock("a", 100, 2.0, 2.1)
    # 15 was possible from 1.0 (the unknown addition) until 2.1, when the second addition answered
    h.find_item("a", 15, 5.0, 5.1)
    h.find_item("a", 10, 5.0, 5.1)
    assert verdicts(h) == [(STALE, 2.9), (STALE, 2.9)]


def test_stale_below_the_bounds_is_measured_from_the_subtraction_that_made_it_impossible():
    h = History().user("u", 20).checkout("o1", "u", [], 5, 1.0, 1.2).checkout("o2", "u", [], 5, 3.0, 3.5)
    h.find_user("u", 20, 4.0, 4.1).find_user("u", 15, 4.0, 4.1).find_user("u", 15, 3.1, 3.2).find_user("u", 25, 4.0, 4.1)
    assert verdicts(h) == [(STALE, 2.8), (STALE, 0.5), (FINE, None), (IMPOSSIBLE, None)]


def test_orders_are_paid_from_their_2xx_checkout_on_and_never_before_one_was_sent():
    h = History().item("a", 10).user("u", 5)
    h.checkout("o1", "u", [["a", 1]], 1, 1.0, 1.5, FAIL).checkout("o1", "u", [["a", 1]], 1, 2.0, 2.5)
    h.checkout("o2", "u", [["a", 1]], 1, 2.0, 2.5, UNKNOWN).checkout("o3", "u", [["a", 1]], 1, 2.0, 2.5, FAIL)
    h.find_order("o1", False, 3.0, 3.1)    # stale: unpaid 0.5 s after its checkout answered 2xx
    h.find_order("o1", True, 2.1, 2.2)     # racing the checkout: fine
    h.find_order("o1", False, 2.1, 2.2)    # fine
    h.find_order("o1", True, 1.6, 1.7)     # only a refused checkout sent by then: impossible
    h.find_order("o2", True, 90.0, 90.1)   # the unknown one landed (late or not): fine
    h.find_order("o2", False, 90.0, 90.1)  # it never did: fine
    h.find_order("o3", True, 3.0, 3.1)     # refused only: impossible
    h.find_order("o4", True, 3.0, 3.1)     # never checked out: impossible
    assert verdicts(h) == [(STALE, 0.5), (FINE, None), (FINE, None), (IMPOSSIBLE, None), (FINE, None),
                           (FINE, None), (IMPOSSIBLE, None), (IMPOSSIBLE, None)]


def test_a_later_read_that_shows_an_older_value_is_non_monotonic():
    h = History().item("a", 10).add_stock("a", 5, 1.0, 1.1).add_stock("a", 5, 2.0, 2.1)
    h.find_item("a", 20, 3.0, 3.1)      # 0: fresh
    h.find_item("a", 10, 3.2, 3.3)      # 1: older than what read 0 showed (10 ended at 1.1, 20 began at 2.0)
    h.find_item("a", 15, 3.4, 3.5)      # 2: stale too, but 15 and 20 were both possible from 2.0 to 2.1
    h.find_item("a", 10, 3.05, 3.15)    # 3: sent before read 0 answered: not after it
    h.user("u", 5).find_order("o", True, 1.0, 1.1).checkout("o", "u", [], 1, 0.5, 0.9, UNKNOWN)
    h.find_order("o", False, 1.2, 1.3)  # 5: unpaid after a read showed it paid: a paid order stays paid
    judged = reads.judge_reads(h)
    assert [int(s) for s in judged.status] == [FINE, STALE, STALE, STALE, FINE, FINE]
    assert judged.monotonic.tolist() == [[0, 1], [4, 5]]
    assert reads.describe_monotonic(judged, 0, 1) == "item a read 10 100 ms after an earlier read had shown the newer 20"
    assert reads.describe_monotonic(judged, 4, 5) == "order o read unpaid 100 ms after an earlier read had shown the newer paid"


def test_items_and_users_with_one_id_are_apart_and_records_never_created_are_not_judged():
    h = History().item("7", 10).user("7", 3).find_item("7", 10, 1.0, 1.1).find_user("7", 3, 1.0, 1.1)
    h.find_item("ghost", 5, 1.0, 1.1).find_user("ghost", 5, 1.0, 1.1)
    assert verdicts(h) == [(FINE, None), (FINE, None)]
    assert reads.judge_reads(h).ids == ["7", "7"]


def test_times_too_far_apart_to_pack_are_ranked_and_judged_alike():
    h = History().item("a", 10).add_stock("a", 5, 2.0, 2.1).find_item("a", 10, 3.0, 3.1).find_item("a", 99, 3.0, 3.1)
    h.find_item("a", 15, 3.0, 3.1)
    far = History(Op(op.op_id, op.kind, op.order_id, op.user_id, op.items, op.amount, 0, op.invoke_ns * 2**30,
                     op.complete_ns * 2**30, op.status, op.outcome) for op in h)
    assert [v[0] for v in verdicts(far)] == [v[0] for v in verdicts(h)] == [STALE, IMPOSSIBLE, FINE]
    assert verdicts(far)[0][1] == pytest.approx(0.9 * 2**30)


def test_figures_and_the_terminal_line():
    h = History().item("3", 2).user("u", 1)
    h.find_item("3", 2, 1.0, 1.1).find_user("u", 1, 1.0, 1.1)
    fine = reads.figures(reads.judge_reads(h))
    assert fine["checked"] == 2 and fine["stale"] == fine["impossible"] == 0 and fine["examples"] == []
    assert fine["staleness_ms"] == {"p50": None, "p99": None, "max": None} and fine["max_staleness_s"] is None
    assert reads.reads_line(fine) == "reads: 2 checked, all possible"
    assert reads.reads_line(reads.figures(reads.judge_reads(History()))) is None
    h.checkout("o", "u", [["3", 2]], 1, 2.0, 2.1)
    for k in range(10):
        h.find_item("3", 2, 2.1 + 0.2 * k, 2.2 + 0.2 * k)     # stale by 0 to 1.8 s
    h.find_item("3", 5, 4.0, 4.1)                              # impossible
    found = reads.figures(reads.judge_reads(h))
    assert (found["checked"], found["stale"], found["impossible"]) == (13, 9, 1)
    assert found["max_staleness_s"] == pytest.approx(1.8)
    assert found["staleness_ms"] == {"p50": pytest.approx(1000.0), "p99": pytest.approx(1800.0),
                                     "max": pytest.approx(1800.0)}
    assert found["examples"][:2] == ["item 3 read 5 when at most 0 was possible, and no earlier moment allowed it",
                                     "item 3 read 2 when at most 0 was possible (last possible 1.8 s before)"]
    assert found["by_id"][0] == {"of": "item", "id": "3", "reads": 12, "stale": 9, "impossible": 1, "share": 0.8333,
                                 "staleness_ms": found["staleness_ms"]}
    assert reads.reads_line(found) == ("reads: 9 of 13 stale (p99 1.8 s, max 1.8 s), 1 impossible, e.g. item 3 read 5 "
                                       "when at most 0 was possible, and no earlier moment allowed it")


# --- against a direct reading of the definitions -----------------------------------------------------

def _balance_writes(history):
    """(of, id) -> [(sent, answered, by, 2xx?)] for the created balances, written as the docstring says."""
    created = {(reads.ITEM, op.items[0][0]) for op in history if op.kind == CREATE_ITEM and op.outcome == OK}
    created |= {(reads.USER, op.user_id) for op in history if op.kind == CREATE_USER and op.outcome == OK}
    writes = {key: [] for key in created}
    for op in history:
        if op.outcome not in (OK, UNKNOWN):
            continue
        moves = []
        if op.kind == CHECKOUT:
            moves = [((reads.ITEM, i), -q) for i, q in op.items] + [((reads.USER, op.user_id), -op.amount)]
        elif op.kind == ADD_STOCK:
            moves = [((reads.ITEM, i), q) for i, q in op.items]
        elif op.kind == ADD_FUNDS:
            moves = [((reads.USER, op.user_id), op.amount)]
        for key, by in moves:
            if key in writes:
                writes[key].append((op.invoke_ns, op.complete_ns, by, op.outcome == OK))
    return writes


def _possible(ws, t):
    """[L(t), U(t)]: 2xx writes answered before t have landed; any sent by t may have."""
    low = sum(by for s, a, by, ok in ws if ok and by > 0 and a < t) + sum(by for s, a, by, ok in ws if by < 0 and s <= t)
    high = sum(by for s, a, by, ok in ws if ok and by < 0 and a < t) + sum(by for s, a, by, ok in ws if by > 0 and s <= t)
    return low, high


def _direct(history):
    """Each balance read's (status, staleness ns, lower, upper), and the later reads of non-monotonic
    pairs, by trying every moment."""
    writes = _balance_writes(history)
    rows, spans = [], []
    for op in history:
        if op.kind not in (FIND_ITEM, FIND_USER):
            continue
        key = (reads.ITEM, op.items[0][0]) if op.kind == FIND_ITEM else (reads.USER, op.user_id)
        if key not in writes:
            continue
        ws, v, sent, answered = writes[key], op.amount, op.invoke_ns, op.complete_ns
        lower = sum(by for s, a, by, ok in ws if ok and by > 0 and a < sent) + sum(
            by for s, a, by, ok in ws if by < 0 and s <= answered)
        upper = sum(by for s, a, by, ok in ws if ok and by < 0 and a < sent) + sum(
            by for s, a, by, ok in ws if by > 0 and s <= answered)
        moments = sorted({-1} | {s for s, *_ in ws} | {a + 1 for s, a, by, ok in ws if ok})
        moments = [m for m in moments if m <= answered]
        allows = [_possible(ws, m)[0] <= v <= _possible(ws, m)[1] for m in moments]
        last = max((i for i, yes in enumerate(allows) if yes), default=None)
        if lower <= v <= upper:
            rows.append((FINE, -1, lower, upper))
            until = answered
        elif last is None:
            rows.append((IMPOSSIBLE, -1, lower, upper))
            until = None
        else:
            rows.append((STALE, sent - moments[last + 1], lower, upper))
            until = moments[last + 1]
        since = None
        if last is not None:
            first = last
            while first > 0 and allows[first - 1]:
                first -= 1
            since = moments[first] if first > 0 else None
        spans.append((key, op, since, until))
    later = {b for b, (key, op, _, until) in enumerate(spans)
             for key1, op1, since, _ in spans
             if key1 == key and op1.complete_ns < op.invoke_ns and since is not None and until is not None and until < since}
    return rows, later


def _random_history(rng):
    h = History().item("i0").item("i1").user("u0").user("u1")
    end = rng.choice([5, 40, 200])
    for _ in range(rng.randint(5, 60)):
        sent = rng.randint(1, end)
        answered = sent + rng.randint(0, 6)
        outcome = rng.choice([OK, OK, OK, FAIL, UNKNOWN])
        kind = rng.choice([ADD_STOCK, ADD_FUNDS, CHECKOUT, FIND_ITEM, FIND_USER, FIND_ITEM, FIND_USER])
        item, user = rng.choice(["i0", "i1"]), rng.choice(["u0", "u1"])
        if kind == ADD_STOCK:
            h.add_stock(item, rng.randint(1, 4), sent / S, answered / S, outcome)
        elif kind == ADD_FUNDS:
            h.add_funds(user, rng.randint(1, 4), sent / S, answered / S, outcome)
        elif kind == CHECKOUT:
            lines = [[rng.choice(["i0", "i1"]), rng.randint(1, 3)] for _ in range(rng.randint(1, 3))]
            h.checkout(f"o{len(h)}", user, lines, rng.randint(1, 5), sent / S, answered / S, outcome)
        elif kind == FIND_ITEM:
            h.find_item(item, rng.randint(-4, 8), sent / S, answered / S)
        else:
            h.find_user(user, rng.randint(-4, 8), sent / S, answered / S)
    return h


@pytest.mark.parametrize("block", [2, 3, 64])
def test_it_agrees_with_trying_every_moment(monkeypatch, block):
    # Small blocks make the block search go several levels deep on small histories.
    monkeypatch.setattr(reads, "BLOCK", block)
    rng = random.Random(block)
    flagged = 0
    for _ in range(400):
        h = _random_history(rng)
        want, later = _direct(h)
        judged = reads.judge_reads(h)
        got = list(zip(judged.status.tolist(), judged.staleness_ns.tolist(), judged.lower.tolist(), judged.upper.tolist()))
        assert got == want
        assert set(judged.monotonic[:, 1].tolist()) == later
        flagged += len(later)
    assert flagged > 20   # the random histories do go back in time


@pytest.mark.parametrize("block", [2, 5, 64])
def test_last_at_least(monkeypatch, block):
    monkeypatch.setattr(reads, "BLOCK", block)
    rng = np.random.default_rng(block)
    for _ in range(50):
        values = rng.integers(-20, 20, int(rng.integers(1, 400)))
        hi, threshold = rng.integers(-1, len(values), 100), rng.integers(-25, 25, 100)
        want = [max([j for j in range(h + 1) if values[j] >= t], default=-1) for h, t in zip(hi, threshold)]
        assert reads.last_at_least(values, hi, threshold).tolist() == want
        want = [max([j for j in range(h + 1) if values[j] <= t], default=-1) for h, t in zip(hi, threshold)]
        assert reads.last_at_least(values, hi, threshold, most=True).tolist() == want


# --- what reads do to the verdict --------------------------------------------------------------------

def _verdict(history, linearizable=False):
    return reads.check_reads(ConsistencyScenario(linearizable=linearizable, seed=1), history, {})


def _names(found):
    return [a.name for a in found]


def test_a_stale_read_is_a_warning_unless_reads_are_promised_linearizable_and_an_impossible_read_always_an_anomaly():
    h = History().item("a", 10).add_stock("a", 5, 2.0, 2.1).add_stock("a", 5, 3.0, 3.1)
    fine = _verdict(h + [])
    assert (fine.verdict, fine.figures["checked"]) == (CONSISTENT, 0)
    h.find_item("a", 20, 4.0, 4.1).find_item("a", 10, 4.2, 4.3)   # stale, and older than the read before it
    stale = _verdict(h)
    assert stale.verdict == WITH_WARNINGS and _names(stale.warnings) == [reads.STALE_READ, reads.NON_MONOTONIC_READ]
    assert stale.warnings[0].examples == ["item a"] and "2.1 s" in stale.warnings[0].description
    strict = _verdict(h, linearizable=True)
    assert strict.verdict == INCONSISTENT and _names(strict.anomalies) == [reads.STALE_READ]
    assert _names(strict.warnings) == [reads.NON_MONOTONIC_READ]
    h.find_item("a", 99, 4.4, 4.5)
    impossible = _verdict(h)
    assert impossible.verdict == INCONSISTENT and _names(impossible.anomalies) == [reads.IMPOSSIBLE_READ]
    assert impossible.anomalies[0].count == 1 and impossible.figures["impossible"] == 1


def test_the_run_composes_the_read_checker_and_its_figures_reach_the_summary_and_terminal():
    from wdm_lib.checkers import check_run
    from wdm_lib.summary import summarize

    h = History().item("a", 10).user("u", 5)
    h.checkout("o", "u", [["a", 2]], 2, 2.0, 2.1).find_item("a", 10, 3.0, 3.1).find_user("u", 3, 3.0, 3.1)
    st = {"initial": {"items": {"a": {"stock": 10, "price": 1}}, "users": {"u": {"credit": 5}}, "after_op": 3},
          "final": {"items": {"a": {"stock": 8, "price": 1}}, "users": {"u": {"credit": 3}},
                    "orders": {"o": {"paid": True, "items": [["a", 2]], "user_id": "u", "total_cost": 2}}}}
    sc = ConsistencyScenario(workload="mixed", n_items=1, item_stock=10, n_users=1, user_credit=5, n_orders=1, seed=1)
    result = check_run(sc, h, st)
    assert reads.CHECKER in [p.checker for p in result.parts]
    assert result.anomalies == [] and _names(result.warnings) == [reads.STALE_READ]
    summary = summarize("r", sc, h, st, result, {})
    assert summary["reads"]["checked"] == 2 and summary["reads"]["stale"] == 1
    assert "reads: 1 of 2 stale (p99 900 ms, max 900 ms), e.g. item a read 10 when at most 8 was possible " \
           "(last possible 900 ms before)" in render_table(summary).splitlines()


# --- end to end --------------------------------------------------------------------------------------

# A mixed load of about 3 s at 100 operations a second, half of them reads.
LOAD = dict(workload="mixed", n_orders=150, rate=100, read_weight=1.0, timeout_s=30)


def _through(tmp_path, write_urls, misbehaviour, **scenario):
    """A mixed run against a reference shop behind a test shop front."""
    with ReferenceShopProcess() as shop, ShopProxy(shop.base_url, misbehaviour) as proxy:
        return run_consistency(ConsistencyScenario(**{**LOAD, **scenario}), urls=write_urls(proxy.urls()),
                               runs_dir=tmp_path / "runs", progress=False)


@pytest.mark.long
@pytest.mark.timing
@pytest.mark.parametrize("lag_s", [0.5, 2.0])
def test_a_replica_that_lags_is_caught_and_its_lag_measured(tmp_path, write_urls, lag_s):
    run, summary = _through(tmp_path, write_urls, Misbehaviour(replica_lag_s=lag_s), quiet_s=lag_s + 1, seed=1)
    found = summary["reads"]
    # Consistent once it catches up, so only a warning; the stalest read is about as stale as the lag.
    assert summary["verdict"] == WITH_WARNINGS and summary["anomalies"] == [], summary["anomalies"]
    assert reads.STALE_READ in [w["name"] for w in summary["warnings"]]
    assert found["checked"] > 100 and found["stale"] > 10 and found["impossible"] == 0
    assert abs(found["max_staleness_s"] - lag_s) <= 0.2 * lag_s, found
    assert found["staleness_ms"]["p50"] <= found["staleness_ms"]["p99"] <= 1.2 * lag_s * 1000
    # Per kind of record: none staler than the lag, and the stock of the few items, written most
    # and read stale most, as stale as the lag (credit and paid flags are each read stale too seldom
    # for a read to land just after a change).
    judged = reads.judge_reads(read_ops(run.path / "history.csv"))
    stalest = {reads.OF[of]: judged.staleness_ns[judged.stale][judged.of[judged.stale] == of] / 1e9
               for of in (reads.ITEM, reads.USER, reads.ORDER)}
    assert all(staleness.max() <= 1.2 * lag_s for staleness in stalest.values() if len(staleness)), stalest
    assert len(stalest["item"]) >= 10 and abs(stalest["item"].max() - lag_s) <= 0.2 * lag_s, sorted(stalest["item"])


@pytest.mark.long
def test_a_cache_that_serves_one_old_value_for_ever_is_caught(tmp_path, write_urls):
    run, summary = _through(tmp_path, write_urls, Misbehaviour(stale_cache_path="/stock/find/"), quiet_s=0.5, seed=2,
                            linearizable=True)
    found, history = summary["reads"], reads.judge_reads(read_ops(run.path / "history.csv"))
    items = history.of == reads.ITEM
    assert set(history.value[items].tolist()) == {ConsistencyScenario(workload="mixed").item_stock}  # one value each
    # Every stale read is an item's, and the longer the run went on, the staler they came.
    assert found["stale"] > 10 and set(history.of[history.stale].tolist()) == {reads.ITEM}
    assert found["max_staleness_s"] > 1.5
    assert reads.STALE_READ in [a["name"] for a in summary["anomalies"]]   # --linearizable


def test_wdm_consistency_takes_linearizable_and_a_bad_value_is_one_sentence(tmp_path, wdm, shop, write_urls):
    done = wdm("consistency", "--urls", str(write_urls(shop.base_url)), "--linearizable", "--n-users", "20",
               "--n-orders", "20", "--quiet", "0", "--runs-dir", str(tmp_path / "runs"))
    assert done.returncode == 0, done.stderr
    [run] = (tmp_path / "runs").iterdir()
    assert json.loads((run / "manifest.json").read_text())["scenario"]["linearizable"] is True
    assert "reads:" not in done.stdout   # the original workload reads nothing during the load
    with pytest.raises(WorkbenchError, match=r"^--linearizable is 'yes'; expected true or false\.$"):
        ConsistencyScenario(linearizable="yes")
