"""Run folders: a running run's heartbeat, and a run whose process died recognised as crashed."""

import json

from wdm_lib import runs


def test_a_run_beats_while_it_runs_and_stops_when_it_finishes(tmp_path, monkeypatch):
    monkeypatch.setattr(runs, "HEARTBEAT_S", 0.05)
    run = runs.Run.create(tmp_path, "consistency", {}, {"source": "t"})
    first = run.manifest["heartbeat_at"]
    import time

    deadline = time.monotonic() + 10
    while json.loads(run.file("manifest.json").read_text())["heartbeat_at"] == first and time.monotonic() < deadline:
        time.sleep(0.05)
    assert json.loads(run.file("manifest.json").read_text())["heartbeat_at"] != first
    run.finish(runs.COMPLETED)
    assert runs.Run.open(run.path).status == runs.COMPLETED


def test_a_run_whose_process_is_gone_or_silent_is_crashed(tmp_path):
    run = runs.Run.create(tmp_path, "consistency", {}, {"source": "t"})
    manifest = json.loads(run.file("manifest.json").read_text())
    run.finish(runs.COMPLETED)
    # As a killed process leaves it: still "running", its pid gone.
    gone = {**manifest, "status": runs.RUNNING, "pid": 2**22 + 12345}
    run.file("manifest.json").write_text(json.dumps(gone))
    assert runs.Run.open(run.path).status == runs.CRASHED
    # On another machine the pid says nothing; a heartbeat long silent does.
    elsewhere = {**gone, "host": "another-host", "heartbeat_at": "2020-01-01T00:00:00.000+00:00"}
    run.file("manifest.json").write_text(json.dumps(elsewhere))
    assert runs.Run.open(run.path).status == runs.CRASHED
    fresh = {**elsewhere, "heartbeat_at": runs._now()}
    run.file("manifest.json").write_text(json.dumps(fresh))
    assert runs.Run.open(run.path).status == runs.RUNNING
