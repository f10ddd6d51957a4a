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


# --- a run folder is input from anyone ---------------------------------------------------------------

import os  # noqa: E402
import signal  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import pytest  # noqa: E402

from wdm_lib import report  # noqa: E402
from wdm_lib.errors import WorkbenchError  # noqa: E402

HOSTILE = {
    "an id that climbs out": ({"id": "../escaped"}, "id"),
    "an id with a slash": ({"id": "a/b"}, "id"),
    "a kind that names a notebook path": ({"kind": "/some/path/evil"}, "kind"),
    "no kind": ({"kind": None}, "kind"),
    "a status wdm never writes": ({"status": "done"}, "status"),
    "a target that is no object": ({"target": ["x"]}, "target"),
    "a pid that is no number": ({"pid": "1; rm -rf /"}, "pid"),
}


def _run_with(tmp_path, **fields):
    run = runs.Run.create(tmp_path / "runs", "consistency", {}, {"source": "t.json"})
    run.finish(runs.COMPLETED)
    manifest = {**run.manifest, **fields}
    run.file("manifest.json").write_text(json.dumps(manifest))
    return run


@pytest.mark.parametrize("case", HOSTILE)
def test_a_manifest_that_wdm_did_not_write_is_one_sentence_naming_file_and_field(tmp_path, case):
    fields, named = HOSTILE[case]
    run = _run_with(tmp_path, **fields)
    with pytest.raises(WorkbenchError) as e:
        runs.Run.open(run.path)
    assert str(run.file("manifest.json")) in str(e.value) and f": {named} is " in str(e.value)


def test_a_manifest_that_is_not_json_or_not_an_object_is_one_sentence(tmp_path):
    run = _run_with(tmp_path)
    for text, said in (("{not json", "not valid JSON"), ("[1, 2]", "expected a JSON object"), ("\xff", "cannot be read")):
        run.file("manifest.json").write_bytes(text.encode("latin-1"))
        with pytest.raises(WorkbenchError, match=said):
            runs.Run.open(run.path)


def test_a_link_out_of_the_run_folder_is_refused(tmp_path):
    run = _run_with(tmp_path)
    secret = tmp_path / "secret.json"
    secret.write_text('{"outcomes": "the machine\'s own file"}')
    os.symlink(secret, run.file("summary.json"))
    with pytest.raises(WorkbenchError, match="leads out of its run folder"):
        runs.Run.open(run.path)
    # A link that stays inside is the run's own business.
    os.unlink(run.file("summary.json"))
    run.file("kept.json").write_text("{}")
    os.symlink("kept.json", run.file("summary.json"))
    assert runs.Run.open(run.path).read_json("summary.json") == {}


def test_a_hostile_run_folder_neither_runs_a_notebook_nor_writes_outside_nor_stops_the_index(tmp_path, wdm):
    # A notebook the manifest points at, which would leave a mark if it ran.
    evil = tmp_path / "evil.ipynb"
    mark = tmp_path / "ran"
    evil.write_text(json.dumps({"cells": [{"cell_type": "code", "metadata": {"tags": ["parameters"]}, "outputs": [],
                                           "execution_count": None, "source": f"open({str(mark)!r}, 'w').close()"}],
                                "metadata": {}, "nbformat": 4, "nbformat_minor": 5}))
    good = _run_with(tmp_path)
    (good.path / "summary.json").unlink(missing_ok=True)
    bad_kind = _run_with(tmp_path, kind=str(tmp_path / "evil"))
    climbing = _run_with(tmp_path, id="../escaped")
    no_kind = _run_with(tmp_path)
    manifest = json.loads(no_kind.file("manifest.json").read_text())
    del manifest["kind"]
    no_kind.file("manifest.json").write_text(json.dumps(manifest))
    reports_dir = tmp_path / "reports"

    for folder in (bad_kind.path, climbing.path):
        done = wdm("report", str(folder), "--reports-dir", str(reports_dir))
        code, err = done.returncode, done.stderr
        assert code == 2 and err.count("\n") == 1 and "Traceback" not in err
        assert str(folder / "manifest.json") in err
    done = wdm("report", "--index", "--reports-dir", str(tmp_path))  # runs under tmp_path/runs
    code, err = done.returncode, done.stderr
    assert code == 0, err
    index = (tmp_path / "index.html").read_text()
    assert index.count(">unreadable<") == 3 and good.id in index
    assert all(f"skipped {r.path}" in err for r in (bad_kind, climbing, no_kind))
    assert not mark.exists()
    assert not (tmp_path / "escaped.html").exists() and not (tmp_path.parent / "escaped.html").exists()


def test_the_index_never_links_a_page_older_than_its_run(tmp_path):
    run = _run_with(tmp_path)
    page = tmp_path / f"{run.id}.html"
    page.write_text("<p>rendered while the run was taken for crashed</p>")
    os.utime(page, (time.time() - 60, time.time() - 60))
    report.write_index(tmp_path)
    assert f'href="{run.id}.html"' not in (tmp_path / "index.html").read_text()
    os.utime(page, None)  # rendered after the run's last change: current
    report.write_index(tmp_path)
    assert f'href="{run.id}.html"' in (tmp_path / "index.html").read_text()


BEATING = """
import sys, time
from wdm_lib import runs
runs.HEARTBEAT_S = 0.1
run = runs.Run.create(sys.argv[1], "consistency", {}, {"source": "t"})
print(run.path, flush=True)
sys.stdin.readline()
run.finish(runs.COMPLETED)
"""


def test_a_suspended_run_is_taken_for_crashed_and_a_resumed_one_is_running_again(tmp_path, monkeypatch):
    monkeypatch.setattr(runs, "STALE_S", 1.0)
    proc = subprocess.Popen([sys.executable, "-c", BEATING, str(tmp_path)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    try:
        path = proc.stdout.readline().strip()

        def status_within(wanted, bound_s):
            deadline = time.monotonic() + bound_s
            while runs.Run.open(path).status != wanted and time.monotonic() < deadline:
                time.sleep(0.05)
            return runs.Run.open(path).status

        assert status_within(runs.RUNNING, 5) == runs.RUNNING
        os.kill(proc.pid, signal.SIGSTOP)  # the process is there, but its heartbeat cannot be
        assert status_within(runs.CRASHED, 10) == runs.CRASHED
        os.kill(proc.pid, signal.SIGCONT)
        assert status_within(runs.RUNNING, 10) == runs.RUNNING
        proc.stdin.write("\n")
        proc.stdin.flush()
        assert proc.wait(10) == 0
        assert runs.Run.open(path).status == runs.COMPLETED
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGCONT)
            proc.kill()
        proc.wait()


def test_a_state_is_written_a_record_a_line_and_reads_back_as_written_with_credentials_hidden(tmp_path, monkeypatch):
    # More records than one piece holds, keys that are not strings, text json escapes, a URL with credentials.
    monkeypatch.setattr(runs, "_RECORDS_A_PIECE", 3)
    users = {str(i): {"credit": i} for i in range(10)}
    state = {"initial": {"items": {"0": {"stock": 1, "price": 2}}, "users": users, "after_op": 5},
             "final": {"users": users, "orders": {"o\"é": {"paid": True, "items": [["0", 1]]}}},
             "passes": [{"at": 1, "error": "GET http://u:secret@shop/x failed"}], 7: {}, True: [], None: 1.5}
    runs.write_json(tmp_path / "s.json", state, one_line_from=3)
    runs.write_json(tmp_path / "all.json", state)
    written = (tmp_path / "s.json").read_text()
    assert json.loads(written) == json.loads((tmp_path / "all.json").read_text())
    assert json.loads(written)["passes"][0]["error"] == "GET http://***@shop/x failed"
    assert "secret" not in written
    lines = written.splitlines()
    assert '      "7": {"credit": 7},' in lines and '      "9": {"credit": 9}' in lines
    assert sum(line.lstrip().startswith('"') and line.endswith(("},", "}")) and ": {" in line for line in lines) >= 22
