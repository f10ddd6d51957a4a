"""`wdm check`: a stored run judged again with today's checkers, beside its own summary."""

import json

from wdm_lib import runs, summaries


def test_a_run_judged_again_finds_what_its_state_shows_and_keeps_its_own_summary(shop, wdm, write_urls, tmp_path):
    made = wdm("consistency", "--urls", str(write_urls(shop.base_url)), "--runs-dir", str(tmp_path / "runs"),
               "--n-users", "60", "--n-orders", "60", "--quiet", "0")
    assert made.returncode == 0, made.stderr
    [run] = runs.list_runs(tmp_path / "runs")
    own = run.file("summary.json").read_text()

    again = wdm("check", str(run.path))
    assert again.returncode == 0 and "verdict: CONSISTENT" in again.stdout
    name, summary = summaries.latest(run)
    assert name.startswith("summary-checked-") and summary["judged_by"]["rejudged"] is True
    assert summary["judged_by"]["checkers"] == [c["checker"] for c in summary["checks"]]

    # A state that went wrong (as a newer checker would find what an older one missed): judged again,
    # the run is inconsistent, and its own summary is as the run left it.
    state = json.loads(run.file("state.json").read_text())
    user = next(u for u, v in state["final"]["users"].items() if v is not None)
    state["final"]["users"][user]["credit"] += 7
    run.file("state.json").write_text(json.dumps(state))
    worse = wdm("check", str(run.path))
    assert worse.returncode == 1 and "credit-mismatch" in worse.stdout
    assert summaries.latest(run)[1]["verdict"] == "inconsistent"
    assert run.file("summary.json").read_text() == own


def test_runs_that_cannot_be_judged_again_are_one_sentence_each_and_the_others_are_judged(shop, wdm, write_urls,
                                                                                          tmp_path):
    made = wdm("consistency", "--urls", str(write_urls(shop.base_url)), "--runs-dir", str(tmp_path / "runs"),
               "--n-users", "20", "--n-orders", "20", "--quiet", "0")
    assert made.returncode == 0, made.stderr
    [good] = runs.list_runs(tmp_path / "runs")
    cut = runs.Run.create(tmp_path / "runs", "consistency", good.manifest["scenario"], {"source": "t"})
    cut.finish(runs.INTERRUPTED, "interrupted by the user (Ctrl-C)")
    done = wdm("check", str(cut.path), str(good.path))
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and "no history.csv there" in done.stderr
    assert "judged again:" in done.stdout


def test_a_summary_of_another_shape_or_version_is_one_sentence_naming_file_and_field(tmp_path):
    import pytest

    from wdm_lib.errors import WorkbenchError

    run = runs.Run.create(tmp_path, "consistency", {}, {"source": "t"})
    run.finish(runs.COMPLETED)
    for summary, said in (({"run_id": run.id, "kind": "consistency"}, "schema_version is None; expected 2"),
                          ({"schema_version": 2, "run_id": run.id, "kind": "consistency", "verdict": "consistent"},
                           "no valid"),
                          ([1, 2], "expected a JSON object")):
        run.file("summary.json").write_text(json.dumps(summary))
        with pytest.raises(WorkbenchError) as e:
            summaries.read(run)
        assert str(run.file("summary.json")) in str(e.value) and said in str(e.value)
