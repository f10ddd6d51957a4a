"""The mixed workload: its generator (pure), its options, and end to end over real HTTP. Each bug
that only a mixed load exercises (a re-checkout charging without stock, a read-modify-write add
funds, duplicate lines collapsed, the first item's stock taken for every line, and the test shops
below) is caught in at least 9 of 10 seeds; correct shops (the reference shop, single process and
three services, with and without faults) are consistent, and no read they answer during the load
is stale."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from shop_proxy import Misbehaviour, ShopProxy
from wdm_lib.history import ADD_FUNDS, ADD_STOCK, CHECKOUT, FIND_ITEM, FIND_ORDER, FIND_USER, read_ops
from wdm_lib.reference.process import ReferenceShopProcess
from wdm_lib.runner import run_consistency
from wdm_lib.workloads.consistency_scenario import ConsistencyScenario
from wdm_lib.workloads.mixed import RACING_SHARE, plan

# Small enough for ten seeds in a few seconds, contended enough for every bug to show.
SMALL = dict(workload="mixed", n_items=6, n_users=15, n_orders=150, quiet_s=0)
SEEDS = range(10)


# --- the generator -------------------------------------------------------------------------------

def test_one_seed_is_one_plan():
    sc = ConsistencyScenario(workload="mixed", seed=5)
    assert plan(sc) == plan(ConsistencyScenario(workload="mixed", seed=5))
    assert plan(sc).steps != plan(ConsistencyScenario(workload="mixed", seed=6)).steps


def test_the_plan_interleaves_every_kind_of_operation_as_the_scenario_asks():
    sc = ConsistencyScenario(workload="mixed", seed=3)
    p = plan(sc)
    lo, hi = sc.price_range
    assert len(p.prices) == sc.n_items and all(lo <= price <= hi for price in p.prices) and len(set(p.prices)) > 1
    assert len(p.orders) == sc.n_orders
    lengths = Counter(len(lines) for _, lines in p.orders)
    assert set(lengths) == {1, 2, 3}
    assert sum(len({i for i, _ in lines}) < len(lines) for _, lines in p.orders) > sc.n_orders / 10  # an item twice
    assert {q for _, lines in p.orders for _, q in lines} == {1, 2, 3}

    first_at, waiting_after = {}, []
    kinds = Counter()
    for k, step in enumerate(p.steps):
        if step.kind == CHECKOUT and step.index not in first_at:
            first_at[step.index] = k
            kinds["first"] += 1
        elif step.kind == CHECKOUT:
            kinds["again"] += 1
            if first_at[step.index] == k - 1:
                kinds["racing"] += 1
        else:
            kinds[step.kind] += 1
            waiting_after.append((k, step))
    assert len(first_at) == sc.n_orders  # every order's first checkout, once
    # Each other kind about as often per first checkout as its weight says.
    for kind, weight in (("again", sc.recheckout_weight), (ADD_FUNDS, sc.add_funds_weight),
                         (ADD_STOCK, sc.add_stock_weight)):
        assert 0.7 * weight * sc.n_orders < kinds[kind] < 1.3 * weight * sc.n_orders, (kind, kinds)
    reads = kinds[FIND_ITEM] + kinds[FIND_USER] + kinds[FIND_ORDER]
    assert 0.7 * sc.read_weight * sc.n_orders < reads < 1.3 * sc.read_weight * sc.n_orders
    assert min(kinds[FIND_ITEM], kinds[FIND_USER], kinds[FIND_ORDER]) > 0
    assert kinds["racing"] > RACING_SHARE * kinds["again"] / 2  # some re-checkouts race their first
    # An addition is for an order still waiting for its first checkout, and adds what it needs.
    for k, step in waiting_after:
        waiting = [o for o, at in first_at.items() if at > k]
        if step.kind == ADD_FUNDS:
            assert any(p.orders[o][0] == step.index and step.amount == sum(p.prices[i] * q for i, q in p.orders[o][1])
                       for o in waiting)
        elif step.kind == ADD_STOCK:
            assert any((step.index, step.amount) in p.orders[o][1] for o in waiting)


def test_weights_of_zero_leave_first_checkouts_only():
    sc = ConsistencyScenario(workload="mixed", seed=3, recheckout_weight=0, add_funds_weight=0, add_stock_weight=0,
                             read_weight=0)
    steps = plan(sc).steps
    assert sorted(s.index for s in steps) == list(range(sc.n_orders)) and {s.kind for s in steps} == {CHECKOUT}


def test_each_workload_has_its_defaults_and_a_size_given_is_kept():
    original, mixed = ConsistencyScenario(seed=1), ConsistencyScenario(workload="mixed", seed=1)
    assert (original.n_items, original.item_stock, original.item_price, original.n_users, original.user_credit,
            original.n_orders, original.items_per_order, original.quantity) == (1, 100, 1, 1000, 1, 1000, 1, 1)
    assert original.recheckout_weight == original.read_weight == 0
    assert mixed.items_per_order == 3 and mixed.quantity == "1-3" and mixed.price_range == (1, 5)
    assert ConsistencyScenario(workload="mixed", item_price="2-2", quantity=" 4 ", seed=1).item_price == 2
    assert ConsistencyScenario(workload="mixed", quantity="4", seed=1).quantity_range == (4, 4)
    # The manifest's scenario rebuilds the same scenario (wdm check judges with it).
    assert ConsistencyScenario(**mixed.to_dict()) == mixed
    paced = ConsistencyScenario(workload="mixed", rate=100, seed=1)
    assert paced.load_s == len(plan(paced).steps) / 100


@pytest.mark.parametrize("args, fault", [
    (["--workload", "chaos"], "--workload is 'chaos'; expected one of original, mixed."),
    (["--workload", "mixed", "--item-price", "5-1"], "--item-price is '5-1'; expected a whole number of at least 0"),
    (["--workload", "mixed", "--quantity", "0-2"], "--quantity is '0-2'; expected a whole number of at least 1"),
    (["--item-price", "1-5"], "--item-price 1-5 is a range; expected a single number under --workload original"),
    (["--read-weight", "0.5"], "--read-weight is 0.5; expected it only with --workload mixed"),
    (["--workload", "mixed", "--add-funds-weight", "-1"], "--add-funds-weight is -1.0; expected a number of 0 or more."),
    (["--workload", "mixed", "--add-stock-weight", "nan"], "--add-stock-weight is nan; expected a number of 0 or more."),
])
def test_bad_mixed_options_end_in_one_sentence(tmp_path, wdm, args, fault):
    r = wdm("consistency", "--runs-dir", str(tmp_path), *args)
    err = r.stderr.strip()
    assert r.returncode == 2 and err.startswith("wdm: ") and fault in err and len(err.splitlines()) == 1, err
    assert not list(tmp_path.iterdir())


# --- end to end ----------------------------------------------------------------------------------

def run(tmp_path, base_url: str, seed: int, **scenario) -> dict:
    urls = tmp_path / "urls.json"
    urls.write_text(json.dumps(dict.fromkeys(("ORDER_URL", "PAYMENT_URL", "STOCK_URL"), base_url)))
    _, summary = run_consistency(ConsistencyScenario(**{**SMALL, **scenario}, seed=seed), urls=urls,
                                 runs_dir=tmp_path / "runs", progress=False)
    summary["names"] = {a["name"] for a in summary["anomalies"]}
    return summary


def ten_seeds(tmp_path, anomaly: str | None = None, misbehaviour: Misbehaviour | None = None) -> list[dict]:
    """The mixed load of each seed against one reference shop (every run makes its own ids), behind
    a fresh test shop front when one is given."""
    summaries = []
    with ReferenceShopProcess(anomaly=anomaly) as shop:
        for seed in SEEDS:
            if misbehaviour is None:
                summaries.append(run(tmp_path, shop.base_url, seed))
                continue
            with ShopProxy(shop.base_url, misbehaviour) as proxy:
                summaries.append(run(tmp_path, proxy.base_url, seed))
    return summaries


# Each reference shop mode that only a mixed load shows, and what the verdict must name.
BUGS = {
    "recheckout-no-stock": {"stock-mismatch", "conservation", "half-applied-recheckout"},
    "racy-add-funds": {"credit-mismatch"},
    "collapsed-lines": {"stock-mismatch"},
    "first-item-stock": {"stock-mismatch"},
}


@pytest.mark.long
@pytest.mark.parametrize("anomaly", sorted(BUGS))
def test_each_bug_only_a_mixed_load_shows_is_caught_in_nine_seeds_of_ten(tmp_path, anomaly):
    summaries = ten_seeds(tmp_path, anomaly=anomaly)
    caught = [s for s in summaries if s["valid"] is False and BUGS[anomaly] <= s["names"]]
    assert len(caught) >= 9, [sorted(s["names"]) for s in summaries]


@pytest.mark.long
def test_the_original_workload_misses_them(tmp_path):
    """Why mixed exists: the seed benchmark's pattern (first checkouts only, one line per order, no
    additions during the load) passes every one of these shops."""
    for anomaly in sorted(BUGS):
        _, summary = run_consistency(ConsistencyScenario(n_users=100, n_orders=100, quiet_s=0, seed=1), anomaly=anomaly,
                                     runs_dir=tmp_path / "runs", progress=False)
        assert summary["valid"] is True, (anomaly, summary["anomalies"])


@pytest.mark.long
def test_a_recheckout_answered_2xx_that_changed_nothing_is_named(tmp_path):
    summaries = ten_seeds(tmp_path, misbehaviour=Misbehaviour(paid_checkout_noop=True))
    # Caught: the balances it leaves wrong, in 9 runs of 10 or more.
    caught = [s for s in summaries if {"stock-mismatch", "credit-mismatch"} <= s["names"]]
    assert len(caught) >= 9, [sorted(s["names"]) for s in summaries]
    # Named: the re-checkout that answered 2xx and did nothing, when the paid flags pin it down
    # (measured 8 or 9 runs of 10; a racing first checkout can leave it unresolved).
    named = [s for s in caught if "ignored-recheckout" in s["names"]]
    assert len(named) >= 7, [sorted(s["names"]) for s in summaries]


@pytest.mark.long
def test_a_retry_that_crashed_after_taking_stock_is_resolved_from_the_paid_flag(tmp_path):
    # The order was refused, then its retry answered 500 and left it unpaid: it did not happen, so
    # the stock it took is missing. Several checkouts of one order, yet unambiguous.
    summaries = ten_seeds(tmp_path, misbehaviour=Misbehaviour(retry_crashes_after_stock=True))
    caught = [s for s in summaries if "stock-mismatch" in s["names"] and s["unknown_resolved"]["not_happened"] > 0]
    assert len(caught) >= 9, [(sorted(s["names"]), s["unknown_resolved"]) for s in summaries]


@pytest.mark.long
def test_additions_of_unknown_outcome_leave_a_correct_shop_consistent(tmp_path):
    # Every 3rd addition during the load answers 503, half of them after it was applied.
    summaries = ten_seeds(tmp_path, misbehaviour=Misbehaviour(addition_503_every=3))
    assert all(s["valid"] is True for s in summaries), [sorted(s["names"]) for s in summaries]
    unknown = sum(s["operations"][kind]["unknown"] for s in summaries for kind in (ADD_FUNDS, ADD_STOCK))
    assert unknown > 100


@pytest.mark.long
def test_the_reference_shop_is_consistent_under_mixed_and_every_operation_is_a_row(tmp_path):
    summaries = ten_seeds(tmp_path)
    assert all(s["valid"] is True and s["warnings"] == [] for s in summaries), [s["anomalies"] for s in summaries]
    s = summaries[0]
    ops = s["operations"]
    assert list(ops) == ["checkout", "recheckout", "add_funds", "add_stock", "find_item", "find_user", "find_order"]
    # Contention: refusals, re-checkouts that succeed and some that are refused, sell-outs.
    assert ops["checkout"]["ok"] > 10 and ops["checkout"]["fail"] > 10
    assert ops["recheckout"]["ok"] > 0 and ops["recheckout"]["fail"] > 0
    assert s["original"] is None and s["checkouts"] == ops["checkout"]["ok"] + ops["checkout"]["fail"] + \
        ops["recheckout"]["ok"] + ops["recheckout"]["fail"]
    [run_dir] = [p for p in (tmp_path / "runs").iterdir() if p.name == s["run_id"]]
    history = read_ops(run_dir / "history.csv")
    load = [op for op in history if op.op_id > json.loads((run_dir / "state.json").read_text())["initial"]["after_op"]]
    sc = ConsistencyScenario(**{**SMALL, "seed": 0})
    assert len(load) == len(plan(sc).steps)
    assert all(op.complete_ns >= op.invoke_ns >= op.intended_ns for op in load)
    reads = {op.kind: op for op in load if op.kind in (FIND_ITEM, FIND_USER, FIND_ORDER)}
    assert reads[FIND_ITEM].items[0][0] and reads[FIND_ITEM].amount >= 0
    assert reads[FIND_USER].user_id and reads[FIND_USER].amount >= 0
    assert reads[FIND_ORDER].order_id and reads[FIND_ORDER].amount in (0, 1) and reads[FIND_ORDER].items


def test_the_terminal_shows_the_operations_and_the_recheckouts_anomaly(tmp_path, wdm):
    r = wdm("consistency", "--workload", "mixed", "--anomaly", "recheckout-no-stock", "--seed", "2", "--quiet", "0",
            "--n-orders", "150", "--n-users", "15", "--n-items", "6", "--runs-dir", str(tmp_path))
    assert r.returncode == 1, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].startswith("verdict: INCONSISTENT")
    assert lines[2].startswith("operations (ok/refused/unknown): checkout ") and " recheckout " in lines[2]
    [half] = [line for line in lines if line.startswith("half-applied-recheckout ")]
    [stock] = [line for line in lines if line.startswith("stock-mismatch ")]
    assert half.split()[1:4] == stock.split()[1:4]  # the same count and signed magnitudes
    assert "original benchmark's figures" not in r.stdout


@pytest.mark.long
def test_the_three_service_shop_is_consistent_under_mixed(tmp_path, services):
    for seed in (1, 2):
        summary = run(tmp_path, services.base_url, seed, quiet_s=1.0)
        assert summary["valid"] is True and summary["outcomes"]["ok"] > 10, summary["anomalies"]
        assert summary["reads"]["checked"] > 30 and summary["reads"]["stale"] == 0, summary["reads"]["examples"]


@pytest.mark.long
@pytest.mark.parametrize("faults", ["faults/embedded-shop.yaml", "faults/embedded-services.yaml"])
def test_the_reference_shop_is_consistent_under_mixed_through_a_fault_schedule(tmp_path, faults):
    # 400 orders' load (about 800 operations) at 50/s lasts 16 s: every fault of both schedules lands in
    # it, and a shop restarted at 2 s is back before it ends on a busy machine too (a restart took 6 s).
    sc = ConsistencyScenario(workload="mixed", rate=50, timeout_s=30, quiet_s=1.5, seed=4)
    assert sc.load_s > 15
    _, summary = run_consistency(sc, runs_dir=tmp_path / "runs", faults=faults, progress=False)
    assert [f["inject_status"] for f in summary["faults"]] == [0] * len(summary["faults"])
    assert summary["valid"] is True, summary["anomalies"]
    assert any(f["no_answer_gap_s"] >= 0.5 or (f["outage_s"] or 0) >= 0.5 for f in summary["faults"]), \
        f"the faults cost nothing: {summary['faults']}"
    # Reads during the load, through every fault: none stale, none impossible.
    found = summary["reads"]
    assert found["checked"] > 50 and found["stale"] == found["impossible"] == 0, found["examples"]
