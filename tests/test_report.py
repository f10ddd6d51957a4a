"""`wdm report` and wdm_lib.report: rendered HTML that opens offline with the code hidden, the
index of every run, and errors as one sentence."""

import html
import json
import re
import shutil

import pytest

from synthetic_stress import make_stress_run
from notebook_outputs import STDERR_ON_A_PAGE, stderr
from wdm_lib import banner, pages, report, runs, styles, summaries
from wdm_lib.cli import main
from wdm_lib.notebook import consistency_run, consistency_summary
from wdm_lib.runner import run_consistency
from wdm_lib.workloads.consistency import ConsistencyScenario


HOSTILE_NAME = "<img src=x onerror=alert(1)>_*team*.json"
HOSTILE_FAULT = {
    "name": "<img src=x onerror=alert(2)>", "what": "<script>alert(3)</script>", "recover": None,
    "due_s": 0.0, "started_s": 0.0, "late_ms": 0.0, "inject_status": 0, "recover_step_s": None,
    "recover_status": None, "requests": {"ok": 1, "fail": 0, "unknown": 0}, "baseline_s": None, "recovery": "no baseline",
    "success_per_s_before": None, "no_answer_gap_s": 0.0, "outage_s": None,
    "refusal_share": {"before": None, "during": 0.0}, "masked_outage": False,
    "latency_ms": {k: {"p50": None, "p99": None} for k in ("before", "during", "after")}, "recovered_s": None,
    "tested_nothing": True, "tested_nothing_why": "<b>nothing</b>", "acknowledged_writes_lost": []}

def SHARES_REPORTS(test):
    """The tests of the rendered pair run in one worker, so it is made once (pyproject.toml:
    loadgroup); together they take half a minute, so they start among the long tests."""
    return pytest.mark.long(pytest.mark.xdist_group("reports")(test))


@pytest.fixture(scope="module")
def reports(tmp_path_factory):
    """reports/ with a consistency run (faulty shop) and a stress run in reports/runs, both rendered.
    Both say they ran against a urls file whose name is HTML, and the consistency run has a fault
    whose name and command are HTML, as a schedule file may give them (see the test of that)."""
    reports_dir = tmp_path_factory.mktemp("reports")
    run, _ = run_consistency(ConsistencyScenario(n_users=40, n_orders=50, item_stock=10, seed=2, quiet_s=0.5),
                             anomaly="no-rollback", runs_dir=reports_dir / "runs")
    summary = run.read_json("summary.json")
    run.write_json("summary.json", {**summary, "faults": [HOSTILE_FAULT]})
    stress = make_stress_run(reports_dir / "runs" / "20250101-000000-stress-abcd", rows=2000, duration_s=10)
    for path in (run.path, stress):
        manifest = json.loads((path / "manifest.json").read_text())
        manifest["target"]["source"] = HOSTILE_NAME
        (path / "manifest.json").write_text(json.dumps(manifest))
    # by default, a report lands beside the runs folder that holds its run
    rendered = {"consistency": report.render(run.path), "stress": report.render(stress, reports_dir)}
    return reports_dir, runs.Run.open(run.path), stress, rendered


def offline(html: str) -> bool:
    """No script, stylesheet or image loaded from the network."""
    return not re.search(r"""<(script|link|img)\b[^>]*(src|href)\s*=\s*["']?(https?:)?//""", html, re.I)


@SHARES_REPORTS
def test_render_writes_an_offline_report_with_code_hidden_and_charts_embedded(reports):
    reports_dir, run, _, rendered = reports
    html = rendered["consistency"].read_text()
    assert rendered["consistency"] == reports_dir / f"{run.id}.html"
    summary = json.loads((run.path / "summary.json").read_text())
    assert summary["verdict"] == "inconsistent"
    assert "INCONSISTENT" in html and run.id in html
    assert offline(html)
    assert html.count("data:image/png;base64,") >= 2
    assert "consistency_run(" not in html and "import pandas" not in html  # code cells' inputs hidden
    assert (run.path / "report.ipynb").is_file()  # the executed notebook, kept beside the run
    stress_html = rendered["stress"].read_text()
    assert offline(stress_html) and stress_html.count("data:image/png;base64,") >= 3


@SHARES_REPORTS
def test_no_warning_reaches_a_rendered_report(reports):
    """Nothing a reader did not ask for: no warning (a library's deprecation, pandas 3's fill value),
    no log line, in the executed notebook or on its page."""
    import nbformat

    _, run, stress, rendered = reports
    for executed in (run.path / runs.EXECUTED_NOTEBOOK, stress / runs.EXECUTED_NOTEBOOK):
        assert stderr(nbformat.read(executed, as_version=4)) == [], executed
    for page in rendered.values():
        assert STDERR_ON_A_PAGE not in page.read_text(), page


@SHARES_REPORTS
def test_index_lists_every_run_with_its_headline_figures_and_link(reports):
    reports_dir, run, stress, _ = reports
    index = (reports_dir / "index.html").read_text()
    summary = json.loads((run.path / "summary.json").read_text())
    rows = re.findall(r"<tr>(.*?)</tr>", index, re.S)[1:]
    assert len(rows) == 2
    cells = {re.sub("<[^>]+>", "", r.split("</td>")[0]): re.findall(r"<td[^>]*>(.*?)</td>", r) for r in rows}
    mine = dict(zip(report.INDEX_COLUMNS, cells[run.id]))
    o = summary["outcomes"]
    assert f'<a href="{run.id}.html">' in mine["run"]
    assert mine["kind"] == "consistency" and "(no-rollback)" in mine["target"]
    assert mine["verdict"] == "inconsistent" and mine["ok / fail / unknown"] == f"{o['ok']:,} / {o['fail']:,} / {o['unknown']:,}"
    assert all(a["name"] in mine["anomalies"] for a in summary["anomalies"])
    stress_summary = json.loads((stress / "summary.json").read_text())
    theirs = dict(zip(report.INDEX_COLUMNS, cells[stress.name]))
    assert theirs["requests"] == f"{stress_summary['requests']:,}"
    assert theirs["p99 ms"] == f"{stress_summary['latency_ms']['p99']:,.1f}"
    # a verdict reads by its colour, the same as its report's banner
    assert f'<td class="verdict {summaries.verdict_class(summary)}">' in index
    assert offline(index)


@SHARES_REPORTS
def test_index_renders_the_reports_runs_made_elsewhere_lack_and_a_failed_run_says_failed(reports, tmp_path):
    # As runs a notebook made under papermill: in the runs folder, with no HTML report yet.
    # The stress run's report came along; only the consistency run lacks one, and it failed:
    # its report has no verdict, and says why. (One render for both: a kernel costs 3 CPU-seconds.)
    reports_dir, run, stress, rendered = reports
    copy = tmp_path / "reports"
    shutil.copytree(reports_dir / "runs", copy / "runs")
    failed = copy / "runs" / run.id
    (failed / "summary.json").unlink()
    manifest = json.loads((failed / "manifest.json").read_text())
    (failed / "manifest.json").write_text(json.dumps({**manifest, "status": "failed", "error": "target went away"}))
    kept = copy / rendered["stress"].name
    kept.write_text("<p>rendered before</p>")
    assert main(["report", "--index", "--reports-dir", str(copy)]) == 0
    index = (copy / "index.html").read_text()
    assert f'<a href="{run.id}.html">' in index and (copy / f"{run.id}.html").is_file()
    page = (copy / f"{run.id}.html").read_text()
    assert "FAILED: NO VERDICT" in page and "target went away" in page and "INCONSISTENT" not in page
    assert f'<a href="{stress.name}.html">' in index and kept.read_text() == "<p>rendered before</p>"  # not again
    assert "2 runs in" in index and '<td class="verdict none">failed: no verdict<details><summary>target went away' in index


def test_index_cuts_a_long_error_to_one_line_and_counts_in_words(tmp_path):
    from wdm_lib import runs

    run = runs.Run.create(tmp_path / "runs", "consistency", {}, {"source": "t.json"})
    long_error = "http://127.0.0.1:9/stock/item/create/1: cannot connect: refused while creating the first item; " * 5
    run.finish(runs.FAILED, long_error + "\nsecond line")
    index = report.write_index(tmp_path, tmp_path / "runs").read_text()
    # Under the verdict, one short line of the error; the whole of it (both lines) opens under that.
    [(note, whole)] = re.findall(r'<td class="verdict none">failed: no verdict<details><summary>([^<]*)</summary>'
                                 r'<div class="detail">([^<]*)</div></details></td>', index)
    assert note.startswith("http://127") and len(note) <= pages.NOTE_CHARS and note.endswith("…")
    assert whole.startswith(long_error[:60]) and whole.endswith("\nsecond line")
    assert "1 run in" in index


def test_report_errors_are_one_sentence_naming_the_path(tmp_path, capsys):
    assert main(["report", str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err
    assert f"{tmp_path / 'missing'}: no such folder" in err and "Traceback" not in err

    assert main(["report", str(tmp_path)]) == 2
    assert f"{tmp_path}: no manifest.json there" in capsys.readouterr().err

    assert main(["report"]) == 2
    assert "RUN_DIR" in capsys.readouterr().err


def inert(page: str) -> bool:
    """Offline, no event handler in any tag, and every image embedded (nothing loaded at all)."""
    return (offline(page) and not re.search(r"<[a-z][^>]*\son[a-z]+\s*=", page, re.I)
            and all(src.startswith("data:") for src in re.findall(r"<img\b[^>]*\ssrc=[\"']?([^\"' >]*)", page, re.I)))


@SHARES_REPORTS
def test_a_urls_file_named_with_html_renders_as_text_in_reports_and_index(reports):
    reports_dir, _, _, rendered = reports
    shown = html.escape(HOSTILE_NAME, quote=False)
    for page_path in rendered.values():
        page = page_path.read_text()
        assert inert(page), page_path
        # Shown as written, in the banner or the headline as in the tables.
        assert re.search(r"against [^<]*" + re.escape(shown) + "[^<]*(</p>|</div>)", page), page_path
    # A fault schedule's names and commands come from a file as well.
    page = rendered["consistency"].read_text()
    assert "<script>alert(3)" not in page and "&lt;script&gt;alert(3)&lt;/script&gt;" in page
    index = (reports_dir / "index.html").read_text()
    assert inert(index) and index.count(shown) == 2


@SHARES_REPORTS
def test_a_notebook_that_fails_is_one_sentence(reports, tmp_path, capsys):
    _, run, _, _ = reports
    broken = tmp_path / run.id
    shutil.copytree(run.path, broken)
    (broken / "summary.json").write_text("{not json")
    assert main(["report", str(broken), "--reports-dir", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert "consistency.ipynb" in err and str(broken / "summary.json") + ": not valid JSON" in err
    assert str(broken / "report.ipynb") in err
    assert not (tmp_path / "out" / f"{run.id}.html").exists()


def _start_paced_run(runs_dir, faults=None, n_orders: int = 300):
    import subprocess
    import sys

    # 300 checkouts at 50/s by default: six seconds of load, stopped after the first second or so.
    args = [sys.executable, "-m", "wdm_lib", "consistency", "--runs-dir", str(runs_dir), "--rate", "50",
            "--n-orders", str(n_orders), "--n-users", "100"]
    if faults is not None:
        args += ["--faults", str(faults)]
    return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            stdin=subprocess.DEVNULL)


def _wait_for_history(runs_dir, shows, what: str):
    """The run folder under runs_dir once its history shows what `shows(ops)` looks for."""
    import time

    from wdm_lib.history import read_ops

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        found = list(runs_dir.glob("*/history.csv"))
        if found and shows(read_ops(found[0])):
            return found[0].parent
        time.sleep(0.2)
    raise AssertionError(f"the run's history never showed {what}")


def _wait_for_checkouts(runs_dir, at_least: int):
    return _wait_for_history(runs_dir, lambda ops: sum(op.kind == "checkout" for op in ops) >= at_least,
                             f"{at_least} checkouts")


@pytest.mark.long
@pytest.mark.timing
def test_an_interrupted_run_is_reported_with_what_it_recorded_its_faults_and_its_in_flight_checkouts(tmp_path):
    import signal
    import time

    import nbformat

    from notebook_outputs import figures, tables, text
    from wdm_lib.history import read_ops

    # The shop is killed half a second into the load and started again; later it is paused, so
    # checkouts are in flight when Ctrl-C comes. (Later, not at once: a restart takes 0.3 s on a quiet
    # machine and over 2 s on a busy one, and a pause must find the shop started again.)
    faults = tmp_path / "faults.yaml"
    faults.write_text("faults:\n"
                      "  - name: shop killed\n    at: 0.5s\n    action: kill shop\n    recover_after: 0.5s\n"
                      "  - name: paused\n    at: 6s\n    action: pause shop\n    recover_after: 15s\n")
    proc = _start_paced_run(tmp_path / "runs", faults, n_orders=600)  # 12 s of load, past the pause
    run_dir = _wait_for_history(tmp_path / "runs", lambda ops: any(op.fault.get("name") == "paused" for op in ops),
                                "the shop paused")
    time.sleep(1.0)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    stopped = [op for op in read_ops(run_dir / "history.csv")
               if op.kind == "checkout" and op.error.startswith("the run stopped while")]
    assert stopped and all(op.outcome == "unknown" for op in stopped)
    assert main(["report", str(run_dir), "--reports-dir", str(tmp_path)]) == 0
    html = (tmp_path / f"{run_dir.name}.html").read_text()
    assert "INTERRUPTED: NO VERDICT" in html and "Checkout latency per outcome" in html
    index = (tmp_path / "index.html").read_text()
    assert "interrupted" in index
    # Each fault of the schedule, in a section of its own, and shaded on the charts.
    nb = nbformat.read(run_dir / "report.ipynb", as_version=4)
    assert "## Faults" in text(nb, "faults")
    [table] = tables(nb, "faults")
    rows = [row for label, row in table.items() if label != "columns"]
    assert [row[:3] for row in rows] == [["shop killed", "kill shop", "start shop"], ["paused", "pause shop", "resume shop"]]
    killed = consistency_summary(consistency_run(str(run_dir)))[0]["faults"][0]
    assert rows[0][table["columns"].index("no answer for (s)")] == styles.readable(killed["no_answer_gap_s"])
    assert figures(nb, "faults") == 1 and figures(nb, "timeline") == 1 and figures(nb, "fault-effects") == 1


@pytest.mark.long
def test_a_killed_run_is_recognised_as_crashed_and_reported(tmp_path):
    """A report of a run without a verdict is rendered end to end in the test above; here, what the
    notebook shows for a crashed run, read through the notebook's own first calls (no kernel)."""
    import signal

    import psutil

    proc = _start_paced_run(tmp_path / "runs")
    run_dir = _wait_for_checkouts(tmp_path / "runs", 20)
    shop = psutil.Process(proc.pid).children()
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)
    # Its shop goes when it notices, taking its temporary folder: wait for that, as no report does here.
    assert not psutil.wait_procs(shop, timeout=10)[1], "the shop outlived the killed run"
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["status"] == "running"  # it had no chance to say otherwise
    summary, state = consistency_summary(consistency_run(str(run_dir)))
    assert state is None and summary["verdict"] == "crashed: no verdict" and summaries.verdict_class(summary) == "none"
    assert summary["checkouts"] >= 20  # what it recorded is what the report shows
    report.write_index(tmp_path, tmp_path / "runs")
    assert re.search(r'<td class="verdict none">crashed: no verdict</td>', (tmp_path / "index.html").read_text())


def test_index_lists_a_batch_init_run_by_its_verdict_without_figures(tmp_path):
    # `wdm stress init` makes a run that only times the batch init: no outcomes, no report.
    run = runs.Run.create(tmp_path / "runs", "stress-init", {}, {"source": "t.json"})
    summaries.write(run, {"run_id": run.id, "kind": "stress-init", "verdict": "initialised",
                          "batch_init_s": {"total_s": 0.6}, "sizes": {"n_items": 10}})
    run.finish(runs.COMPLETED)
    index = report.write_index(tmp_path, tmp_path / "runs").read_text()
    [row] = re.findall(r"<tr>(.*?)</tr>", index)[1:]
    cells = dict(zip(report.INDEX_COLUMNS, re.findall(r"<td[^>]*>(.*?)</td>", row)))
    assert cells["kind"] == "stress-init" and cells["verdict"] == "initialised" and cells["ok / fail / unknown"] == ""
