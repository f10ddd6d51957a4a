"""`wdm grade`: one team after another, a league table that links every report, and a team whose
system is down is a row saying so, not the end of the grading."""

import csv
import json

import pytest

from wdm_lib.reference.process import ReferenceShopProcess


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
    assert float(up["requests/s"]) > 0 and float(up["p99 ms"]) > 0 and up["problem"] == ""
    assert gone["consistency"] == "could not be run" and gone["stress"] == "could not be run"
    assert down in gone["problem"]  # the sentence names the URL it could not reach
    page = next((tmp_path / "reports").glob("league-*.html")).read_text()
    # Every run made links to its report, and the report is there.
    for report in ("consistency", "stress"):
        link = next(p for p in (tmp_path / "reports").glob("2*-" + report + "-*.html"))
        assert f'href="{link.name}"' in page
    assert "2 teams" in page
