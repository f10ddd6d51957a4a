"""`wdm grade`: one team after another, a league table that links every report, and a team whose
system is down is a row saying so, not the end of the grading."""

import csv
import json
import re

import pytest

from wdm_lib import banner
from wdm_lib.errors import WorkbenchError
from wdm_lib.grade import COLUMNS, Outcome, TeamRow, _run, league_cells, write_league
from wdm_lib.reference.process import ReferenceShopProcess
from wdm_lib.report import write_index


@pytest.mark.long
def test_two_teams_one_of_them_down(tmp_path, wdm, refused_port):
    teams = tmp_path / "teams"
    teams.mkdir()
    with ReferenceShopProcess() as shop:
        (teams / "team01.json").write_text(json.dumps(shop.urls()))
        down = f"http://127.0.0.1:{refused_port}"
        (teams / "team02.json").write_text(json.dumps(dict.fromkeys(("ORDER_URL", "PAYMENT_URL", "STOCK_URL"), down)))
        r = wdm("grade", str(teams / "team01.json"), str(teams / "team02.json"),
                "--runs-dir", str(tmp_path / "reports" / "runs"), "--seed", "3", "--quiet", "0.5",
                "-u", "4", "-r", "4", "-t", "3s", "--wait", "0.05", "--n-items", "50", "--n-users", "50", "--n-orders", "50")
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr
    league_csv = next((tmp_path / "reports").glob("league-*.csv"))
    rows = list(csv.DictReader(league_csv.open()))
    assert [row["team"] for row in rows] == ["team01", "team02"]
    up, gone = rows
    assert up["consistency"] == "consistent" and up["anomalies"] == "none"
    assert float(up["requests/s"]) > 0 and float(up["p99 ms"]) > 0 and up["problem"] == "" and up["rank"] == "1"
    assert gone["consistency"] == "could not be run" and gone["stress"] == "could not be run"
    assert gone["problem"] == "unreachable" and gone["rank"] == "2"  # why, in a word; the whole sentence beside it
    assert down in gone["error"]  # the sentence names the URL it could not reach
    page = next((tmp_path / "reports").glob("league-*.html")).read_text()
    # Every run made links to its report, and the report is there.
    for report in ("consistency", "stress"):
        link = next(p for p in (tmp_path / "reports").glob("2*-" + report + "-*.html"))
        assert f'href="{link.name}"' in page
    assert "2 teams" in page


def test_the_league_shows_texts_as_written_links_reports_and_shares_the_index_stylesheet(tmp_path):
    report = tmp_path / "20250101-000000-consistency-abcd.html"
    report.write_text("a report")
    row = TeamRow("<b>team01</b>", tmp_path / "t.json", Outcome(None, "", report),
                  Outcome(None, "http://127.0.0.1:9: cannot connect <refused>"))
    row.cells = {"team": row.team, "consistency": "consistent", "stress": "could not be run", "fault outage s": 12.34,
                 "problem": "unreachable", "error": row.stress.said, "classes": {"consistency": "pass", "stress": "none"}}
    html_path, csv_path = write_league([row], tmp_path, "20250101-000000")
    page = html_path.read_text()
    assert "&lt;b&gt;team01&lt;/b&gt;" in page and "<b>" not in page and "cannot connect &lt;refused&gt;" in page
    assert f'<td class="verdict pass"><a href="{report.name}">consistent</a></td>' in page
    assert '<td class="verdict none">could not be run</td>' in page and '<td class="number">12.3</td>' in page
    # why in a word, the whole sentence behind a disclosure
    assert "<td>unreachable<details><summary>http://127.0.0.1:9: cannot connect" in page
    assert f'<a href="{csv_path.name}">{csv_path.name}</a>' in page and "1 team, graded 20250101-000000" in page
    # One stylesheet, inlined (the page is one file that opens offline), the same on the index; a
    # verdict is coloured as the banner of its report is.
    index = write_index(tmp_path, tmp_path / "runs").read_text()
    [style] = re.findall(r"<style>(.*?)</style>", page, re.S)
    assert re.findall(r"<style>(.*?)</style>", index, re.S) == [style]
    assert all(f".{cls} {{ color: {fg}; }}" in style for cls, (fg, _) in banner.COLORS.items())
    assert "td.verdict a { color: inherit; }" in style  # a linked verdict in its colour, not a link's blue
    assert not re.search(r"<(link|script)\b", page + index)


def test_a_run_that_cannot_be_made_or_crashes_is_the_teams_row_in_one_sentence(tmp_path):
    def unreachable():
        raise WorkbenchError("http://ta:secret@10.0.0.7:8000/stock/find/1: cannot connect; expected the shop to answer.")

    def crashed():
        raise ValueError("a reply wdm did not foresee")

    def interrupted():
        raise KeyboardInterrupt

    down = _run(unreachable, tmp_path)
    assert down.run is None and down.report is None and down.phrase == "could not be run"
    assert down.said == "http://***@10.0.0.7:8000/stock/find/1: cannot connect; expected the shop to answer."
    assert _run(crashed, tmp_path).said == "ValueError: a reply wdm did not foresee"
    assert _run(crashed, tmp_path).phrase == "crashed (ValueError)"
    with pytest.raises(KeyboardInterrupt):  # Ctrl-C ends the grading, not one team's run
        _run(interrupted, tmp_path)


def test_an_option_grade_passes_on_that_wdm_stress_run_does_not_know_stops_it_before_any_run(tmp_path, wdm, capsys):
    (tmp_path / "team01.json").write_text(json.dumps(dict.fromkeys(("ORDER_URL", "PAYMENT_URL", "STOCK_URL"),
                                                                   "http://127.0.0.1:9")))
    with pytest.raises(SystemExit) as stopped:
        wdm("grade", str(tmp_path / "team01.json"), "--runs-dir", str(tmp_path / "runs"), "--users", "0x")
    assert stopped.value.code == 2
    assert "wdm stress run: error: argument -u/--users: invalid int value: '0x'" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()


def _stress_run(path, **summary):
    """A stress run folder that ended as summary says (synthetic: its figures are what a league shows)."""
    from synthetic_stress import make_stress_run
    from wdm_lib import runs

    make_stress_run(path, rows=200, run_id=path.name)
    run = runs.Run.open(path)
    run.write_json("summary.json", {**run.read_json("summary.json"), **summary})
    return run


def test_the_league_is_ranked_and_shows_no_figures_of_a_run_that_measured_nothing(tmp_path):
    """Consistent first, then by the stress run's verdict and p99; a stress run that failed after 2 s,
    or whose every request failed, shows no figures on the page (the CSV keeps them, marked), and
    ranks after those that measured; down teams last."""
    from wdm_lib import runs

    def team(name, consistency, stress_run=None, said=""):
        row = TeamRow(name, tmp_path / f"{name}.json", Outcome(None, "", None),
                      Outcome(stress_run, said, None, phrase="unreachable" if said else ""))
        if consistency is None:
            row.consistency = Outcome(None, "http://127.0.0.1:9: cannot connect", phrase="unreachable")
        else:
            row.consistency.run = _consistency(tmp_path / f"{name}-c", consistency)
        row.cells = league_cells(row)
        return row

    fast = _stress_run(tmp_path / "fast", latency_ms={"p50": 1.0, "p99": 5.0})
    slow = _stress_run(tmp_path / "slow", latency_ms={"p50": 2.0, "p99": 50.0})
    failed = _stress_run(tmp_path / "failed", latency_ms={"p50": 0.1, "p99": 0.2}, duration_s=2.0)
    failed.finish(runs.FAILED, "the shop went away")
    nothing = _stress_run(tmp_path / "nothing", latency_ms={"p50": 0.1, "p99": 0.3}, outcomes={"ok": 0, "fail": 0, "unknown": 200})
    rows = [team("t-down", None, said="http://127.0.0.1:9: cannot connect"), team("t-slow", True, slow),
            team("t-failed", True, failed), team("t-inconsistent", False, fast), team("t-nothing", True, nothing),
            team("t-fast", True, fast)]
    html_path, csv_path = write_league(rows, tmp_path, "20250101-000000")
    shown = list(csv.DictReader(csv_path.open()))
    assert [r["team"] for r in shown] == ["t-fast", "t-slow", "t-failed", "t-nothing", "t-inconsistent", "t-down"]
    assert [r["rank"] for r in shown] == ["1", "2", "3", "4", "5", "6"]
    by = {r["team"]: r for r in shown}
    assert by["t-failed"]["problem"] == "stress: failed after 2.0 s" and by["t-failed"]["stress measured"] == "no"
    assert by["t-nothing"]["problem"] == "stress: no request succeeded"
    assert by["t-failed"]["p99 ms"] == "0.2"  # the CSV keeps every field
    assert by["t-down"]["problem"] == "unreachable"
    page = html_path.read_text()
    rows_shown = {re.sub("<[^>]+>", "", r.split("</td>")[1]): re.findall(r"<td[^>]*>(.*?)</td>", r)
                  for r in re.findall(r"<tr>(.*?)</tr>", page)[1:]}
    p99 = COLUMNS.index("p99 ms")
    assert rows_shown["t-fast"][p99] == "5.0" and rows_shown["t-slow"][p99] == "50.0"
    assert rows_shown["t-failed"][p99] == "" and rows_shown["t-nothing"][p99] == ""  # never its figures
    assert rows_shown["t-failed"][COLUMNS.index("requests/s")] == ""
    # its verdict grey, as no verdict: gates may pass on replies that were all errors
    assert '<td class="verdict none">' + by["t-nothing"]["stress"] + "</td>" in page


def _consistency(path, valid):
    from wdm_lib import runs

    from wdm_lib import summaries

    run = runs.Run.create(path.parent / "runs", "consistency", {}, {"source": "t.json"})
    shape = dict.fromkeys(summaries.SHAPES["consistency"].__required_keys__)  # the fields wdm checks are there
    run.write_json("summary.json", {**shape, "schema_version": summaries.SCHEMA_VERSION, "kind": "consistency",
                                    "valid": valid, "verdict": "consistent" if valid else "inconsistent", "warnings": [],
                                    "anomalies": [] if valid else [{"name": "oversold", "count": 1}], "faults": [],
                                    "outcomes": {"ok": 1, "fail": 0, "unknown": 0}})
    run.finish(runs.COMPLETED)
    return run
