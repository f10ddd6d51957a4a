"""The notebooks: committed clean, parameterised like the scenario, and, executed by papermill
against the embedded reference shop, showing the very figures summary.json holds."""

import json
import re
import subprocess
import sys
from dataclasses import fields
from pathlib import Path

import nbformat
import papermill
import pytest

from notebook_outputs import as_row, banners, cell, figures, paragraphs, stderr, tables, text
from synthetic_stress import make_stress_run
from wdm_lib import styles
from wdm_lib.report import execute
from wdm_lib.shipped import NOTEBOOKS
from wdm_lib.workloads.consistency import ConsistencyScenario

CONSISTENCY, STRESS = NOTEBOOKS / "consistency.ipynb", NOTEBOOKS / "stress.ipynb"


# --- reading an executed notebook ---------------------------------------------------------------------

def assert_percentiles_shown(table: dict, label: str, figures: dict):
    """The notebook shows each figure of summary.json as a reader reads it (styles.readable: 35.8 for
    35.792, 6,037 for a count), the exact value staying in summary.json."""
    shown = dict(zip(table["columns"], table[label]))
    for key, value in figures.items():
        assert shown[key] == styles.readable(value), (key, shown[key], value)


# --- the committed notebooks ---------------------------------------------------------------------------

@pytest.mark.parametrize("path", sorted(NOTEBOOKS.glob("*.ipynb")), ids=lambda p: p.name)
def test_notebooks_are_committed_without_outputs(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code and all(not c.outputs and c.execution_count is None for c in code)
    assert nb.metadata["kernelspec"]["name"] == "python3"


def test_consistency_parameters_are_the_scenarios_with_its_defaults():
    params = papermill.inspect_notebook(str(CONSISTENCY))
    # The dataclass's own defaults: None where a size is the workload's (original or mixed).
    expected = {f.name: repr(f.default) for f in fields(ConsistencyScenario)}
    assert expected["workload"] == "'original'" and expected["n_items"] == expected["seed"] == "None"
    assert {k: params[k]["default"] for k in expected} == expected
    assert {k: params[k]["default"] for k in ("urls", "run_dir", "runs_dir", "anomaly", "faults")} == dict.fromkeys(
        ("urls", "run_dir", "runs_dir", "anomaly", "faults"), "None")
    # Exploratory by default: the notebook of an inconsistent run executes to its end.
    assert params["fail_on_inconsistent"]["default"] == "False"


def wdm_stress_run_options(capsys) -> set[str]:
    """`wdm stress run`'s options as its --help lists them, by their names as parameters
    (`--no-raw-latencies` -> no_raw_latencies)."""
    from wdm_lib.cli import main

    with pytest.raises(SystemExit):
        main(["stress", "run", "--help"])
    listed = re.findall(r"^  (?:-\w [A-Z]+, )?--([a-z][a-z-]*)", capsys.readouterr().out, re.M)
    return {name.replace("-", "_") for name in listed} - {"help"}


def test_stress_parameters_are_every_option_of_wdm_stress_run(capsys):
    from wdm_lib.notebook import STRESS_OPTIONS

    options = wdm_stress_run_options(capsys)
    assert {"no_raw_latencies", "wait_between", "threshold", "master_bind_port"} <= options
    params = papermill.inspect_notebook(str(STRESS))
    # --report renders this very notebook: the one option a notebook cannot take.
    assert set(params) == {"run_dir", "fail_on_inconsistent"} | options - {"report"}
    assert all(p["default"] == "None" for p in params.values())
    assert sorted(STRESS_OPTIONS) == sorted(options - {"report"})


def test_stress_notebook_parameters_mean_what_the_commands_options_mean():
    from wdm_lib.errors import WorkbenchError
    from wdm_lib.notebook import stress_call
    from wdm_lib.workloads.stress.scenario import Distributed, StressScenario

    scenario, how = stress_call(threshold=["p99<5ms", "rps>1"], wait_between="1 15", verify=True, init=False,
                                steps=[5, 10], users=5, rate=None, timeout=7, urls="team.json")
    assert scenario == StressScenario(thresholds=["p99<5ms", "rps>1"], wait=(1, 15), steps=[5, 10], users=5, timeout_s=7)
    assert how == {"init": False, "check": True, "ui": False, "dist": Distributed(), "urls": "team.json"}
    scenario, how = stress_call(threshold="p99<5ms", wait=0, master=True, master_bind_port=6000, workers_wait="5s")
    assert scenario.thresholds == ["p99<5ms"] and scenario.wait == 0
    assert how["dist"] == Distributed(master=True, bind_port=6000, workers_wait_s=5)
    assert not stress_call(no_raw_latencies=True)[0].raw_latencies and stress_call()[0] == StressScenario()
    with pytest.raises(WorkbenchError, match="^'wait_time' is not an option of `wdm stress run`"):
        stress_call(wait_time=3)
    # As the command's mutually exclusive options: one way to pace the users.
    with pytest.raises(WorkbenchError, match="^wait_between and rate each say how users pace"):
        stress_call(wait_between=[1, 15], rate=10)


@pytest.mark.long
def test_a_stress_run_made_in_a_kernel_leaves_its_interpreter_unpatched(tmp_path):
    """Locust's gevent patches the interpreter that imports it: the notebook makes its stress run in
    the kernel (on a thread: a kernel runs an event loop, as this asyncio.run does), and Locust runs
    in a process of its own."""
    script = """
import asyncio, json, sys
from wdm_lib.notebook import stress_run

async def cell():
    return stress_run(runs_dir="runs", n_items=20, n_users=20, n_orders=20, users=2, run_time="2s", wait=0.05,
                      verify=True, threshold=["p99<10s"])

run = asyncio.run(cell())
print(json.dumps({"status": run.status, "verdict": run.read_json("summary.json")["verdict"],
                  "patched": sorted(m for m in sys.modules if m.split(".")[0] in ("locust", "gevent"))}))
"""
    done = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=120,
                          stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.splitlines()[-1]) == {"status": "completed", "verdict": "passed", "patched": []}
    only_run(tmp_path / "runs")


def test_the_kernel_is_the_interpreter_running_the_tests(tmp_path):
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("import sys; print(sys.prefix)")])
    nbformat.write(nb, tmp_path / "in.ipynb")
    execute(tmp_path / "in.ipynb", tmp_path / "out.ipynb", {}, cwd=tmp_path)
    out = nbformat.read(tmp_path / "out.ipynb", as_version=4)
    assert out.cells[0].outputs[0].text.strip() == sys.prefix


# --- executed -----------------------------------------------------------------------------------------

def only_run(runs_dir: Path) -> Path:
    made = list(runs_dir.iterdir())
    assert len(made) == 1, made
    return made[0]


@pytest.mark.long
def test_consistency_notebook_with_defaults_from_notebooks_folder_shows_summary_figures(tmp_path, monkeypatch):
    """The default (original) scenario, made by the notebook itself on a faulty embedded shop. Asked
    to fail on an inconsistent verdict, it does so in its last cell, every figure shown before it."""
    monkeypatch.chdir(NOTEBOOKS)
    with pytest.raises(papermill.PapermillExecutionError, match="is inconsistent"):
        papermill.execute_notebook(str(CONSISTENCY), str(tmp_path / "out.ipynb"), kernel_name="python3",
                                   parameters={"runs_dir": str(tmp_path / "runs"), "anomaly": "lost-update", "seed": 3,
                                               "quiet_s": 0.5, "fail_on_inconsistent": True},
                                   progress_bar=False)
    run = only_run(tmp_path / "runs")
    summary = json.loads((run / "summary.json").read_text())
    nb = nbformat.read(tmp_path / "out.ipynb", as_version=4)
    assert stderr(nb) == []  # no warning, no log line: nothing a reader did not ask for
    assert summary["verdict"] == "inconsistent" and summary["checkouts"] == 1000

    shown = text(nb, "verdict")
    [banner] = banners(nb)
    # The banner's colour is the verdict's: red for inconsistent.
    assert banner["class"] == "fail" and banner["verdict"] == "INCONSISTENT" and run.name in banner["subtitle"]
    assert banner["figures"]["checkouts"] == "1,000" and banner["figures"]["anomalies"] == str(len(summary["anomalies"]))
    o = summary["outcomes"]
    assert f"{summary['checkouts']} checkouts: {o['ok']} ok, {o['fail']} refused, {o['unknown']} unknown" in shown

    findings = tables(nb, "findings")[0]
    assert findings["columns"] == ["finding", "kind", "count", "over", "under", "examples", "meaning"]
    shown = {row[0]: row for label, row in findings.items() if label != "columns"}
    for a in summary["anomalies"]:
        row = shown[a["name"]]
        assert row[1:3] == ["anomaly", str(a["count"])]
        # Signed: how many ids were over and under, and by how much each way.
        if a["over"]["ids"]:
            assert row[3] == f"{a['over']['ids']} {'id' if a['over']['ids'] == 1 else 'ids'}, {a['over']['by']:+d}"
        if a["under"] and a["under"]["ids"]:
            assert row[4].endswith(f"{a['under']['by']:+d}")

    assert figures(nb, "convergence") == 1
    original = tables(nb, "original")[0]
    values = {row[0]: row[1] for label, row in original.items() if label != "columns"}
    assert values["stock inconsistencies in logs"] == str(summary["original"]["stock_inconsistencies_in_logs"])
    assert values["payment inconsistencies in db"] == str(summary["original"]["payment_inconsistencies_in_db"])
    # The original's figures come last, their caveats beside them.
    tags = [c.metadata.get("tags", []) for c in nb.cells if c.cell_type == "code"]
    assert tags[-2:] == [["original"], ["final-verdict"]] and "counts every reply that is not 4xx" in text(nb, "original")
    # The last cell said the verdict, then failed on it.
    [final] = [c for c in nb.cells if "final-verdict" in c.metadata.get("tags", [])]
    assert [o.output_type for o in final.outputs] == ["stream", "error"]
    assert "verdict: INCONSISTENT" in final.outputs[0].text and final.outputs[1].ename == "RuntimeError"

    counts = tables(nb, "outcomes")[0]
    assert as_row(counts, "0") == {k: float(v) for k, v in summary["outcomes"].items()}

    percentiles = tables(nb, "percentiles")[0]
    assert [k for k in percentiles if k != "columns"] == list(summary["latency_ms"])
    for outcome, figures_ in summary["latency_ms"].items():
        assert_percentiles_shown(percentiles, outcome, figures_)

    assert figures(nb, "cdf") == 1 and figures(nb, "timeline") == 1

    shown_tables = tables(nb, "deviations")
    users = [a for a in summary["anomalies"] if a["name"] == "credit-mismatch"][0]
    user_table = [t for t in shown_tables if any(r[1] == users["details"][0]["id"] for k, r in t.items() if k != "columns")][0]
    assert len(user_table) - 1 == min(25, len(users["details"]))
    first = users["details"][0]
    assert user_table["0"] == ["credit-mismatch", first["id"], f"{first['expected']:,}", f"{first['actual']:,}", f"{first['diff']:,}"]
    assert "**item**: 2 deviations" in text(nb, "deviations") and f"**user**: {len(users['details'])} deviations" in text(nb, "deviations")
    assert cell(nb, "faults").outputs == [] and cell(nb, "fault-effects").outputs == []  # no schedule: no section
    assert cell(nb, "operations").outputs == []  # the original workload: checkouts only, shown above


@pytest.mark.long
def test_consistency_notebook_of_a_mixed_load_shows_its_operations_and_no_original_figures(tmp_path):
    papermill.execute_notebook(str(CONSISTENCY), str(tmp_path / "out.ipynb"), kernel_name="python3",
                               parameters={"runs_dir": str(tmp_path / "runs"), "workload": "mixed",
                                           "anomaly": "recheckout-no-stock", "n_orders": 150, "n_users": 15,
                                           "n_items": 6, "item_price": "2-4", "seed": 2, "quiet_s": 0},
                               progress_bar=False)
    run = only_run(tmp_path / "runs")
    summary = json.loads((run / "summary.json").read_text())
    assert json.loads((run / "manifest.json").read_text())["scenario"]["item_price"] == "2-4"
    nb = nbformat.read(tmp_path / "out.ipynb", as_version=4)
    assert stderr(nb) == []  # no warning, no log line: nothing a reader did not ask for
    [operations] = tables(nb, "operations")
    assert operations["columns"] == ["operation", "ok", "fail", "unknown", "all"]
    shown = {row[0]: [int(v) for v in row[1:4]] for label, row in operations.items() if label != "columns"}
    assert shown == {kind: [n["ok"], n["fail"], n["unknown"]] for kind, n in summary["operations"].items()}
    assert "recheckout" in shown and "add_funds" in shown and "find_order" in shown
    findings = {row[0]: row for label, row in tables(nb, "findings")[0].items() if label != "columns"}
    # Each finding's "over" as ids and by how much. (Which of the bug's anomalies a run of 150 orders
    # shows depends on how its re-checkouts race: half-applied-recheckout in some runs, not all.)
    over = [a for a in summary["anomalies"] if (a.get("over") or {}).get("ids")]
    assert {"stock-mismatch"} <= {a["name"] for a in over}, summary["anomalies"]
    for a in over:
        ids = a["over"]["ids"]
        assert findings[a["name"]][3] == f"{ids} id{'s' * (ids != 1)}, {a['over']['by']:+d}", (a, findings[a["name"]])
    assert summary["original"] is None and cell(nb, "original").outputs == []
    # The reads made during the load: the terminal's line, a chart of how stale each was, the worst records.
    from wdm_lib.reads import reads_line

    assert summary["reads"]["checked"] > 0 and reads_line(summary["reads"]) in text(nb, "reads")
    assert any("image/png" in output.get("data", {}) for output in cell(nb, "reads").outputs)


@pytest.mark.long
def test_consistency_notebook_against_a_urls_file_from_the_working_folder(tmp_path, monkeypatch, shop):
    # Named as a file may be named: the run records it, and the report shows it as written (the
    # escaping of every name in every report is tests/test_report.py's). With a fault schedule that
    # any target can take, a shell command (its section is tests/test_report.py's too).
    name = "<u>team *07*.json"
    (tmp_path / name).write_text(json.dumps(shop.urls()))
    (tmp_path / "faults.yaml").write_text("faults:\n  - name: noted\n    at: 0.1s\n    run: echo noted\n")
    monkeypatch.chdir(tmp_path)
    papermill.execute_notebook(str(CONSISTENCY), str(tmp_path / "out.ipynb"), kernel_name="python3",
                               parameters={"urls": name, "runs_dir": "runs", "n_users": 50, "rate": 200,
                                           "faults": "faults.yaml", "n_orders": 60, "item_stock": 20,
                                           "seed": 5, "quiet_s": 0.5},
                               progress_bar=False)
    run = only_run(tmp_path / "runs")
    manifest = json.loads((run / "manifest.json").read_text())
    summary = json.loads((run / "summary.json").read_text())
    assert manifest["target"]["source"] == str(tmp_path / name)
    assert summary["verdict"] == "consistent" and summary["outcomes"] == {"ok": 20, "fail": 40, "unknown": 0}
    nb = nbformat.read(tmp_path / "out.ipynb", as_version=4)
    assert stderr(nb) == []  # no warning, no log line: nothing a reader did not ask for
    [banner] = banners(nb)
    assert banner["class"] == "pass" and banner["verdict"] == "CONSISTENT" and name in banner["subtitle"]
    assert "verdict: CONSISTENT" in text(nb, "final-verdict")
    assert as_row(tables(nb, "outcomes")[0], "0") == {"ok": 20.0, "fail": 40.0, "unknown": 0.0}
    assert cell(nb, "deviations").outputs == []  # nothing deviates: no empty section
    assert [row[:2] for label, row in tables(nb, "faults")[0].items() if label != "columns"] == [["noted", "echo noted"]]
    # Each fault figure explained, and second by second what the fault's users met.
    assert "How to read the fault figures" in text(nb, "fault-effects") and figures(nb, "fault-effects") == 1
    assert [row[0] for label, row in tables(nb, "findings")[0].items() if label != "columns"] == ["no anomaly"]
    assert "read-back: quiet" in text(nb, "verdict")


def test_stress_notebook_on_a_step_run_shows_summary_figures(tmp_path):
    run = make_stress_run(tmp_path / "runs" / "r1", rows=4000, duration_s=12, steps=[10, 20, 40])
    summary = json.loads((run / "summary.json").read_text())
    papermill.execute_notebook(str(STRESS), str(tmp_path / "out.ipynb"), kernel_name="python3",
                               parameters={"run_dir": str(run)}, progress_bar=False, cwd=str(NOTEBOOKS))
    nb = nbformat.read(tmp_path / "out.ipynb", as_version=4)
    assert stderr(nb) == []  # no warning, no log line: nothing a reader did not ask for

    assert f"{summary['requests']:,} requests, {summary['failures']:,} failures" in text(nb, "headline")
    assert f"{summary['throughput_rps']:.1f} requests/s" in text(nb, "headline")
    [shown_banner] = banners(nb)
    assert shown_banner["figures"]["requests/s"] == f"{summary['throughput_rps']:,.1f}"
    assert as_row(tables(nb, "outcomes")[0], "0") == {k: float(v) for k, v in summary["outcomes"].items()}
    assert cell(nb, "rate").outputs == [] and cell(nb, "faults").outputs == []  # no empty sections
    assert cell(nb, "fault-effects").outputs == []
    exact = tables(nb, "percentiles")[0]
    assert_percentiles_shown(exact, "Aggregated", summary["latency_ms"])
    assert as_row(exact, "Aggregated")["locust p99"] == summary["locust"]["p99_ms"]
    for name, figures_ in summary["by_name"].items():
        label = [k for k in exact if k.endswith(" " + name)][0]
        assert_percentiles_shown(exact, label, figures_)
    steps = tables(nb, "steps")[0]
    assert [as_row(steps, str(i))["users"] for i in range(3)] == [10, 20, 40]
    for i, step in enumerate(summary["steps"]):
        row = as_row(steps, str(i))
        shown = dict(zip(steps["columns"], steps[str(i)]))
        assert shown["throughput_rps"] == styles.readable(step["throughput_rps"])
        assert shown["p99_ms"] == styles.readable(step["p99_ms"])
    assert figures(nb, "throughput") == figures(nb, "percentiles-over-time") == figures(nb, "histogram") == 1
    assert figures(nb, "steps") == 1


@pytest.mark.long
def test_stress_notebook_makes_a_paced_gated_verified_run_and_shows_its_verdict(tmp_path):
    papermill.execute_notebook(str(STRESS), str(tmp_path / "out.ipynb"), kernel_name="python3",
                               parameters={"runs_dir": str(tmp_path / "runs"), "n_items": 100, "n_users": 100,
                                           "n_orders": 100, "rate": 40, "run_time": "3s", "verify": True,
                                           "threshold": ["p99<10s", "rps>100000"]},
                               progress_bar=False, cwd=str(NOTEBOOKS))
    run = only_run(tmp_path / "runs")
    summary = json.loads((run / "summary.json").read_text())
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["scenario"]["rate"] == 40 and manifest["scenario"]["thresholds"] == ["p99<10s", "rps>100000"]
    assert summary["verdict"] == "1 of 3 gates failed" and summary["verify"]["valid"]
    nb = nbformat.read(tmp_path / "out.ipynb", as_version=4)
    [shown_banner] = banners(nb)
    assert shown_banner["verdict"] == "1 OF 3 GATES FAILED" and shown_banner["class"] == "fail"
    assert shown_banner["figures"]["requests"] == f"{summary['requests']:,}"
    assert "verdict: 1 OF 3 GATES FAILED" in text(nb, "final-verdict")
    gates = tables(nb, "verdict")[0]
    shown = {row[0]: dict(zip(gates["columns"], row)) for label, row in gates.items() if label != "columns"}
    assert list(shown) == ["p99<10s", "rps>100000", "ok>0"]  # the default gate after the asked ones
    # k6's way: a tick or a cross, with what was measured.
    failed = next(g for g in summary["gates"] if not g["passed"])
    passed = next(g for g in summary["gates"] if g["passed"])
    assert shown["p99<10s"]["result"] == f"✓ {passed['shown']}" and shown["rps>100000"]["result"] == f"✗ {failed['shown']}"
    assert shown["rps>100000"]["why"] == failed["why"]
    [books] = paragraphs(nb, "verdict")  # the books' verdict in its colour
    assert books.startswith(f"<p>Books after the load: {styles.colored('VALID', 'pass')}: credit spent ")
    rate = tables(nb, "rate")[0]
    assert dict(zip(rate["columns"], rate["response time (from the intended start)"]))["p99"] == \
        styles.readable(summary["response_ms"]["p99"])
    assert stderr(nb) == []
    assert "of 40 requests/s" in text(nb, "rate")
