"""Exit codes mean one thing each: 1 only for a verdict or a gate, 2 for every run that could not
be made or finished, always with one sentence. Tested against the real thing: a tmpfs that fills,
a folder mounted read-only."""

import contextlib
import json
import subprocess
import sys
import time

import pytest

from wdm_lib import runs


def _mount(*args) -> bool:
    return subprocess.run(["mount", *args], capture_output=True).returncode == 0


@contextlib.contextmanager
def mounted(folder, *args):
    folder.mkdir(parents=True, exist_ok=True)
    if not _mount(*args, str(folder)):
        pytest.skip(f"cannot mount here (mount {' '.join(args)}): needs root")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=True)


def one_sentence(err: str) -> bool:
    return err.count("\n") == 1 and err.startswith("wdm: ") and "Traceback" not in err


BAD_URLS = {
    "port out of range": ("http://127.0.0.1:99999", "port"),
    "empty host": ("http://:18100", "no host"),
    "port zero": ("http://127.0.0.1:0", "port"),
    "query": ("http://127.0.0.1:8000/?team=7", "no query"),
    "fragment": ("http://127.0.0.1:8000#x", "no query or fragment"),
    "white space": ("http://127.0.0.1:8000\n", "white space"),
}


@pytest.mark.parametrize("case", BAD_URLS)
def test_a_bad_url_of_any_shape_is_one_sentence_and_exit_2(case, wdm, write_urls):
    url, said = BAD_URLS[case]
    urls = write_urls({"ORDER_URL": "http://127.0.0.1:8000", "PAYMENT_URL": url, "STOCK_URL": "http://127.0.0.1:8000"})
    done = wdm("consistency", "--urls", str(urls))
    assert done.returncode == 2 and one_sentence(done.stderr), done.stderr
    assert str(urls) in done.stderr and "PAYMENT_URL" in done.stderr and said in done.stderr


@pytest.mark.parametrize("args", [["consistency", "--timeout", "nan"], ["consistency", "--quiet", "nan"],
                                  ["consistency", "--settle", "inf"], ["consistency", "--rate", "nan"],
                                  ["consistency", "--timeout", "0"], ["stress", "run", "--timeout", "nan"],
                                  ["stress", "run", "--spawn-rate", "inf"], ["stress", "run", "--rate", "-5"]])
def test_a_number_that_is_not_finite_or_not_positive_is_one_sentence_and_exit_2(args, wdm):
    done = wdm(*args)
    assert done.returncode == 2 and one_sentence(done.stderr), done.stderr
    assert args[-2] in done.stderr


def test_credentials_in_a_url_are_never_written(wdm, write_urls, refused_port, tmp_path):
    url = f"http://team07:s3cret@127.0.0.1:{refused_port}"
    done = wdm("consistency", "--urls", str(write_urls(url)), "--runs-dir", str(tmp_path / "runs"))
    assert done.returncode == 2 and one_sentence(done.stderr)
    written = [p.read_text() for p in (tmp_path / "runs").rglob("*") if p.is_file()]
    assert written and any("***@127.0.0.1" in text for text in written)
    assert not any("s3cret" in text for text in written + [done.stdout, done.stderr])


def test_a_read_only_reports_folder_is_one_sentence_and_exit_2(tmp_path, wdm, shop, write_urls):
    done = wdm("consistency", "--urls", str(write_urls(shop.base_url)), "--runs-dir", str(tmp_path / "runs"),
               "--n-orders", "20", "--n-users", "20", "--quiet", "0")
    assert done.returncode == 0, done.stderr
    run_dir = next((tmp_path / "runs").iterdir())
    with mounted(tmp_path / "ro", "-o", "bind,ro", str(tmp_path / "ro")) as read_only:
        done = wdm("report", str(run_dir), "--reports-dir", str(read_only))
        assert done.returncode == 2 and one_sentence(done.stderr), done.stderr
        assert str(read_only) in done.stderr and "Read-only file system" in done.stderr
        done = wdm("consistency", "--urls", str(write_urls(shop.base_url)), "--runs-dir", str(read_only / "runs"))
        assert done.returncode == 2 and one_sentence(done.stderr), done.stderr
        assert "--runs-dir" in done.stderr


def test_a_disk_that_fills_mid_run_is_exit_2_and_keeps_what_was_flushed(tmp_path, wdm, shop, write_urls):
    with mounted(tmp_path / "small", "-t", "tmpfs", "-o", "size=256k", "tmpfs") as small:
        done = wdm("consistency", "--urls", str(write_urls(shop.base_url)), "--runs-dir", str(small / "runs"),
                   "--n-users", "4000", "--n-orders", "4000", "--quiet", "0")
        assert done.returncode == 2 and one_sentence(done.stderr), done.stderr
        run_dir = next((small / "runs").iterdir())
        history = run_dir / "history.csv"
        assert f"{history}: cannot be written (No space left on device)" in done.stderr and str(run_dir) in done.stderr
        assert len(history.read_text().splitlines()) > 100  # what was flushed before stays
        assert json.loads((run_dir / "manifest.json").read_text())["id"] == run_dir.name


@pytest.mark.long
def test_a_disk_that_fills_under_locust_ends_the_stress_run_at_once_with_exit_2(tmp_path):
    with mounted(tmp_path / "small", "-t", "tmpfs", "-o", "size=256k", "tmpfs") as small:
        started = time.monotonic()
        done = subprocess.run([sys.executable, "-m", "wdm_lib", "stress", "run", "--runs-dir", str(small / "runs"),
                               "-u", "10", "-r", "10", "-t", "300s", "--wait", "0"],
                              capture_output=True, text=True, timeout=400)
        took = time.monotonic() - started
        assert done.returncode == 2, done.stderr
        last = done.stderr.strip().splitlines()[-1]
        assert last.startswith("wdm: ") and "No space left on device" in last and "Traceback" not in done.stderr
        # Not the 300 s load, nor a Locust blocked on its own output (it takes some 15 s; a busy
        # machine has made it 60).
        assert took < 150
        run = runs.list_runs(small / "runs")[0]
        assert list(run.path.glob("requests-*.csv"))


@pytest.mark.parametrize("args, said", [
    (["consistency", "--concurency", "5"], "wdm consistency: error: unrecognized arguments: --concurency 5 "
                                           "(did you mean --concurrency?)"),
    (["stress", "run", "-u", "2", "--spawnrate=3"], "wdm stress run: error: unrecognized arguments: --spawnrate=3 "
                                                    "(did you mean --spawn-rate?)"),
    (["report", "--indx", "--reprots-dir", "x"], "wdm report: error: unrecognized arguments: --indx --reprots-dir "
                                                 "(--indx: did you mean --index?; --reprots-dir: did you mean "
                                                 "--reports-dir?)"),
    (["grade", "a.json", "--thresold", "p99<1s"], "wdm stress run: error: unrecognized arguments: --thresold p99<1s "
                                                  "(did you mean --threshold?)"),
    (["check", "r1", "--xyzzy"], "wdm check: error: unrecognized arguments: --xyzzy"),
])
def test_an_unknown_option_names_the_nearest_one_of_its_subcommand(args, said, capsys, tmp_path, monkeypatch):
    from wdm_lib.cli import main

    monkeypatch.chdir(tmp_path)
    (tmp_path / "a.json").write_text(json.dumps({k: "http://127.0.0.1:9" for k in ("ORDER_URL", "PAYMENT_URL",
                                                                                      "STOCK_URL")}))
    with pytest.raises(SystemExit) as e:
        main(args)
    assert e.value.code == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == said
