"""wdm_lib.analysis on small hand-made frames and run folders: every figure checked by hand."""

import json
import math

import pandas as pd
import pytest

from synthetic_stress import make_stress_run
from wdm_lib import analysis
from wdm_lib.analysis import latency_percentiles


def checkout_frame(rows):
    """rows: (outcome, invoke_ns, complete_ns)"""
    return pd.DataFrame({"kind": "checkout", "outcome": [r[0] for r in rows],
                         "invoke_ns": [r[1] for r in rows], "complete_ns": [r[2] for r in rows],
                         "latency_ms": [(r[2] - r[1]) / 1e6 for r in rows]})


def test_outcome_counts_name_every_outcome_even_absent_ones():
    frame = checkout_frame([("ok", 0, 1), ("ok", 0, 1), ("fail", 0, 1)])
    assert analysis.outcome_counts(frame).to_dict() == {"ok": 2, "fail": 1, "unknown": 0}


def test_outcome_percentiles_are_summary_json_figures_in_outcome_order():
    rows = [("unknown", 0, 9_000_000)] + [("ok", 0, i * 1_000_000) for i in range(1, 101)] + [("fail", 0, 5_000_000)]
    table = analysis.outcome_percentiles(checkout_frame(rows))
    assert list(table.index) == ["ok", "fail", "unknown"]
    assert table.loc["ok"].to_dict() == latency_percentiles(float(i) for i in range(1, 101))
    assert table.loc["ok", "p99"] == 99.0 and table.loc["ok", "p50"] == 50.0 and table.loc["ok", "max"] == 100.0
    assert table.loc["fail", "count"] == 1 and table.loc["fail", "p99.9"] == 5.0


def test_outcome_percentiles_leave_out_outcomes_that_never_occurred():
    table = analysis.outcome_percentiles(checkout_frame([("fail", 0, 2_000_000)]))
    assert list(table.index) == ["fail"]


def test_percentile_table_by_two_columns_has_a_multiindex():
    frame = pd.DataFrame({"method": ["GET", "GET", "POST"], "name": ["a", "a", "b"], "latency_ms": [1.0, 3.0, 2.0]})
    table = analysis.percentile_table(frame, ["method", "name"])
    assert table.index.names == ["method", "name"]
    assert table.loc[("GET", "a"), "p50"] == 1.0 and table.loc[("GET", "a"), "max"] == 3.0
    assert table.loc[("POST", "b"), "count"] == 1


def test_stress_percentiles_of_a_run_with_no_raw_row_keep_locusts_figures(tmp_path):
    # Locust counted requests whose raw rows never reached the disk (a web UI run killed before it
    # flushed them): the table of nothing breaks no page, and Locust's own figures stay.
    run = make_stress_run(tmp_path, rows=3000, duration_s=10)
    requests = analysis.load_requests(run).iloc[0:0]
    table = analysis.stress_percentiles(requests, analysis.load_locust_stats(run))
    total = table.loc["Aggregated"]
    assert total["count"] == 0 and pd.isna(total["p99"]) and total["locust count"] == 3000


def test_cdf_rises_to_one_over_sorted_values():
    frame = analysis.cdf([3.0, 1.0, 2.0, 2.0])
    assert frame["value"].tolist() == [1.0, 2.0, 2.0, 3.0]
    assert frame["fraction"].tolist() == [0.25, 0.5, 0.75, 1.0]


def test_timeline_is_relative_to_the_first_start_and_ordered_by_start():
    frame = checkout_frame([("ok", 3_000_000_000, 4_000_000_000), ("fail", 1_000_000_000, 5_000_000_000)])
    tl = analysis.timeline(frame)
    assert tl.to_dict("list") == {"start_s": [0.0, 2.0], "end_s": [4.0, 3.0], "outcome": ["fail", "ok"]}


def test_in_flight_counts_overlaps_and_not_back_to_back_requests():
    # [0, 3) and [1, 2) overlap; [2, 4) starts as [1, 2) ends.
    series = analysis.in_flight([0, 1, 2], [3, 2, 4])
    assert series["t_s"].tolist() == [0, 1, 2, 2, 3, 4]
    assert series["in_flight"].tolist() == [1, 2, 1, 2, 1, 0]
    assert series["in_flight"].max() == 2


SUMMARY = {
    "original": {"stock_inconsistencies_in_logs": 5, "stock_inconsistencies_in_db": -3,
                 "payment_inconsistencies_in_logs": 5, "payment_inconsistencies_in_db": 2},
    "original_caveats": "The original counts every reply that is not 4xx as a success.",
    "anomalies": [
        {"name": "stock-mismatch", "count": 1, "magnitude": 3, "examples": ["i1"], "description": "stock off",
         "details": [{"id": "i1", "expected": 0, "actual": 3, "diff": 3}],
         "over": {"ids": 1, "by": 3}, "under": {"ids": 0, "by": 0}},
        {"name": "credit-mismatch", "count": 2, "magnitude": 2, "examples": ["u1", "u2"], "description": "credit off",
         "details": [{"id": "u1", "expected": -1, "actual": 0, "diff": 1},
                     {"id": "u2", "expected": 1, "actual": 0, "diff": -1}],
         "over": {"ids": 1, "by": 1}, "under": {"ids": 1, "by": -1}},
        {"name": "conservation", "count": 1, "magnitude": 1, "examples": [], "description": "money off",
         "details": [{"id": "total", "expected": 3, "actual": 2, "diff": -1}]},
        {"name": "paid-flag", "count": 1, "magnitude": 1, "examples": ["o1"], "description": "flag off", "details": []},
    ],
}
STATE = {"initial": {"items": {"i1": {"stock": 3, "price": 1}}, "users": {"u1": {"credit": 1}, "u2": {"credit": 1}}}}


def test_findings_table_lists_anomalies_then_warnings_with_signed_magnitudes():
    summary = {**SUMMARY, "warnings": [{"name": "lost-ack", "count": 2, "examples": ["o1", "o2"],
                                        "description": "answered 5xx, happened"}]}
    table = analysis.findings_table(summary).set_index("finding")
    assert list(table["kind"]) == ["anomaly"] * 4 + ["warning"]
    assert table.loc["credit-mismatch", "count"] == 2
    assert table.loc["credit-mismatch", "over"] == "1 id, +1" and table.loc["credit-mismatch", "under"] == "1 id, -1"
    assert table.loc["paid-flag", "meaning"] == "flag off" and table.loc["paid-flag", "over"] == ""
    assert table.loc["lost-ack", "examples"] == "o1, o2"


def test_findings_table_says_so_when_there_is_no_anomaly():
    table = analysis.findings_table({**SUMMARY, "anomalies": []})
    assert list(table["finding"]) == ["no anomaly"]


def test_original_figures_come_with_their_caveats_and_this_runs_unknowns():
    table = analysis.original_table(SUMMARY).set_index("figure")
    assert table.loc["stock inconsistencies in db", "value"] == -3
    assert table.loc["payment inconsistencies in db", "value"] == 2
    assert "4 checkouts with an unknown outcome were counted as successes" in analysis.original_caveats(
        {**SUMMARY, "original_counts_unknowns": 4})
    assert analysis.original_caveats(SUMMARY) == SUMMARY["original_caveats"]


def test_convergence_frame_adds_up_each_passs_anomalies():
    frame = analysis.convergence_frame({"convergence": [
        {"t_s": 0.0, "changed": True, "valid": False, "anomalies": {"stock-mismatch": 1, "credit-mismatch": 3}},
        {"t_s": 0.7, "changed": True, "valid": True, "anomalies": {}}]})
    assert frame["anomalies"].tolist() == [4, 0] and frame["valid"].tolist() == [False, True]


def test_deviations_mark_each_row_as_an_items_a_users_or_the_shops():
    dev = analysis.deviations(SUMMARY, STATE)
    assert dev["of"].tolist() == ["item", "user", "user", "total"]
    assert dev[dev["of"] == "user"]["id"].tolist() == ["u1", "u2"]
    assert dev.iloc[0][["anomaly", "expected", "actual", "diff"]].tolist() == ["stock-mismatch", 0, 3, 3]
    assert analysis.deviations({"anomalies": []}, STATE).empty


def test_run_overview_lists_the_run_then_its_scenario():
    overview = analysis.run_overview({"id": "r1", "status": "completed", "target": {"source": "urls.json"},
                                      "scenario": {"n_users": 10, "seed": None}})
    assert overview.loc["run", "value"] == "r1" and overview.loc["target", "value"] == "urls.json"
    assert overview.loc["n_users", "value"] == "10" and overview.loc["seed", "value"] == ""


def test_load_history_reads_a_run_folder(tmp_path):
    (tmp_path / "history.csv").write_text(
        "op_id,kind,order_id,user_id,items,amount,intended_ns,invoke_ns,complete_ns,status,outcome,error\n"
        '0,create_user,,007,[],,5,5,2000005,200,ok,\n'
        '1,checkout,12,007,"[[""1"", 1]]",1,10,10,3000010,409,fail,\n'
        '2,checkout,13,007,"[[""1"", 1]]",1,10,10')  # torn by a crash
    history = analysis.load_history(tmp_path)
    assert history["user_id"].tolist() == ["007", "007"]
    assert analysis.checkouts(history)["latency_ms"].tolist() == [3.0]


# --- stress -----------------------------------------------------------------------------------------

HEADER = "start_ns,name,method,status,latency_us,outcome\n"


def test_load_requests_joins_every_process_file_and_drops_a_torn_line(tmp_path):
    (tmp_path / "requests-0.csv").write_text(HEADER + "2000000000,/a,GET,200,1500,ok\n1000000000,/b,POST,,90000,unknown\n")
    (tmp_path / "requests-1.csv").write_text(HEADER + "3500000000,/a,GET,409,250,fail\n3600000000,/a,GE")
    frame = analysis.load_requests(tmp_path)
    assert len(frame) == 3
    assert sorted(frame["latency_ms"].tolist()) == [0.25, 1.5, 90.0]
    assert sorted(frame["t_s"].tolist()) == [0.0, 1.0, 2.5]
    assert frame["name"].dtype == "category" and frame["outcome"].dtype == "category"
    assert frame["status"].isna().sum() == 1
    assert analysis.outcome_counts(frame).to_dict() == {"ok": 1, "fail": 1, "unknown": 1}


def test_load_requests_of_a_folder_without_rows_is_empty(tmp_path):
    frame = analysis.load_requests(tmp_path)
    assert frame.empty and {"latency_ms", "t_s", "outcome"} <= set(frame.columns)


def test_load_locust_history_keeps_the_aggregated_row_with_na_as_nan(tmp_path):
    (tmp_path / "locust_stats_history.csv").write_text(
        "Timestamp,User Count,Type,Name,Requests/s,Failures/s,50%,66%,75%,80%,90%,95%,98%,99%,99.9%,99.99%,100%,"
        "Total Request Count,Total Failure Count,Total Median Response Time,Total Average Response Time,"
        "Total Min Response Time,Total Max Response Time,Total Average Content Size\n"
        "100,0,,Aggregated,0.000000,0.000000,N/A,N/A,N/A,N/A,N/A,N/A,N/A,N/A,N/A,N/A,N/A,0,0,0,0.0,0,0,0\n"
        "101,5,POST,/a,3.000000,0.000000,12,13,14,15,16,17,18,19,20,21,22,3,0,12,12.0,10,22,0\n"
        "101,5,,Aggregated,3.000000,1.000000,12,13,14,15,16,17,18,19,20,21,22,3,1,12,12.0,10,22,0\n")
    history = analysis.load_locust_history(tmp_path)
    assert history["t_s"].tolist() == [0, 1] and history["users"].tolist() == [0, 5]
    assert math.isnan(history.loc[0, "p99"]) and history.loc[1, "p99"] == 19
    assert history.loc[1, "failures_per_s"] == 1.0 and history.loc[1, "requests"] == 3


def test_stress_percentiles_are_exact_beside_locusts(tmp_path):
    run = make_stress_run(tmp_path, rows=3000, duration_s=10)
    requests = analysis.load_requests(run)
    table = analysis.stress_percentiles(requests, analysis.load_locust_stats(run))
    summary = json.loads((run / "summary.json").read_text())
    total = table.loc["Aggregated"]
    for key, value in summary["latency_ms"].items():
        assert total[key] == pytest.approx(value, rel=1e-12), key
    assert total["locust count"] == 3000 and total["locust p99"] == summary["locust"]["p99_ms"]
    assert list(table.index) == ["GET /stock/find/[item_id]", "POST /orders/checkout/[order_id]",
                                 "POST /payment/pay/[user_id]/[amount]", "Aggregated"]
    for name, figures in summary["by_name"].items():
        row = table.loc[[label for label in table.index if label.endswith(" " + name)][0]]
        assert row["p99"] == figures["p99"] and row["count"] == figures["count"]
    assert table["locust p50"].notna().all()


def test_step_figures_split_requests_by_step_time():
    requests = pd.DataFrame({"t_s": [0.0, 0.5, 1.0, 1.2, 1.9, 2.5], "latency_ms": [1.0, 2.0, 3.0, 4.0, 5.0, 9.0]})
    steps = analysis.step_figures(requests, [10, 20], 1.0)
    assert steps.to_dict("list") == {"step": [1, 2], "users": [10, 20], "requests": [2, 3],
                                     "throughput_rps": [2.0, 3.0], "p99_ms": [2.0, 5.0]}


def test_step_figures_agree_with_the_summarys_steps(tmp_path):
    run = make_stress_run(tmp_path, rows=2000, duration_s=8, steps=[5, 10, 20, 40])
    requests = analysis.load_requests(run)
    steps = analysis.step_figures(requests, [5, 10, 20, 40], 2.0, analysis.load_started_ns(run, requests))
    summary = json.loads((run / "summary.json").read_text())
    assert steps[["users", "requests", "throughput_rps", "p99_ms"]].to_dict("records") == summary["steps"]


def test_steps_are_counted_by_the_shapes_clock_when_the_first_request_came_late(tmp_path):
    # The load started at 0; the busy generator's first request came at 2.5 s, in the second step
    # of 2 s. Counted from that request, every request would fall in step 1 and step 2 look empty.
    s = 10**9
    start = [int(2.5 * s), 3 * s, int(3.5 * s), int(4.5 * s)]
    requests = pd.DataFrame({"start_ns": start, "t_s": [(t - start[0]) / s for t in start],
                             "latency_ms": [1.0, 2.0, 3.0, 4.0]})
    (tmp_path / "load-started.txt").write_text("0\n")
    started = analysis.load_started_ns(tmp_path, requests)
    assert started == 0
    steps = analysis.step_figures(requests, [1, 3, 5], 2.0, started)
    assert steps["requests"].tolist() == [0, 3, 1]
    assert analysis.step_figures(requests, [1, 3, 5], 2.0)["requests"].tolist() == [3, 1, 0]


@pytest.mark.parametrize("written, expected", [
    ("not a time", None), ("-5", None), ("1e9", None), ("", None),
    (str(10**9 * 10_000), None),      # hours before the first request: no clock of this run
    (str(10**9 * 20_000 + 500), 10**9 * 20_000),   # after it (a clock ahead): the first request
    (str(10**9 * 19_999), 10**9 * 19_999),
    (None, None)])
def test_a_step_clock_from_a_run_folder_is_taken_only_when_it_is_a_time_of_that_run(tmp_path, written, expected):
    requests = pd.DataFrame({"start_ns": [10**9 * 20_000, 10**9 * 20_001], "t_s": [0.0, 1.0], "latency_ms": [1.0, 1.0]})
    if written is not None:
        (tmp_path / "load-started.txt").write_text(written)
    assert analysis.load_started_ns(tmp_path, requests) == expected
