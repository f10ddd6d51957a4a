"""A target whose checkout answers an endless body: the locustfile reads no reply past 1 MiB
(decoded), counts it as a failure naming the URL, and ends the run; `wdm stress run` says so in one
sentence (exit 2) within seconds, with Locust's memory bounded. Before the cap, Locust read such a
body whole: 3.7 GB in 24 s."""

from __future__ import annotations

import http.server
import json
import os
import signal
import subprocess
import sys
import threading
import time
import zlib
from pathlib import Path

import pytest

from processes import locust_of, proc_stat

from wdm_lib import cli
from wdm_lib.runs import Run
from wdm_lib.workloads.stress.locust import LOCUSTFILE

SMALL = ["--n-items", "10", "--n-users", "10", "--n-orders", "10"]
WDM = [sys.executable, "-m", "wdm_lib"]
CHUNK = b"x" * 65536
# Locust peaked at 3.7 GB on such a body; capped, it stays near its start-up size (~100 MB).
RSS_BOUND_KB = 400 * 1024


class EndlessCheckout(http.server.BaseHTTPRequestHandler):
    """Every read answers 404 (the target answers: the run may start); every checkout answers 200
    with a body that never ends until the client hangs up, or with `encoding` gzip a bomb: 64 MiB of
    zeros in some 64 KiB on the wire, which only a count of decoded bytes finds past the cap."""

    protocol_version = "HTTP/1.1"
    encoding = "identity"

    def do_GET(self):
        self.send_response(404)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_POST(self):
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Transfer-Encoding", "chunked")
        if self.encoding == "gzip":
            self.send_header("Content-Encoding", "gzip")
        self.end_headers()
        try:
            for data in self._body():
                self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            self.wfile.write(b"0\r\n\r\n")
        except OSError:  # the client stopped reading and hung up, as it should
            pass

    def _body(self):
        if self.encoding != "gzip":
            while True:
                yield CHUNK
        squeeze = zlib.compressobj(9, zlib.DEFLATED, 31)
        for _ in range(64):
            yield squeeze.compress(bytes(1 << 20)) + squeeze.flush(zlib.Z_SYNC_FLUSH)
        yield squeeze.flush()

    def log_message(self, *args):
        pass


@pytest.fixture
def endless_target(request):
    handler = type("Handler", (EndlessCheckout,), {"encoding": getattr(request, "param", "identity")})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _largest_rss_kb(group: int) -> int:
    """The resident size of the largest process of the group (the master, or a worker reading bodies)."""
    sizes = [0]
    for pid in filter(str.isdigit, os.listdir("/proc")):
        if proc_stat(pid)[2:3] == [str(group)]:
            try:
                status = Path(f"/proc/{pid}/status").read_text()
            except OSError:
                continue
            sizes += [int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:")]
    return max(sizes)


def _stress_run(urls: Path, runs_dir: Path, *extra: str) -> tuple[subprocess.CompletedProcess, int, float]:
    """`wdm stress run` against the target, with Locust's peak RSS seen meanwhile and the run's wall
    time. A Locust past the bound is killed at once: without the cap, it would take the machine's
    memory for the rest of its -t."""
    started = time.monotonic()
    proc = subprocess.Popen([*WDM, "stress", "run", "--urls", str(urls), *SMALL, "-u", "4", "-r", "4", "-t", "300s",
                             "--wait", "0.05", "--runs-dir", str(runs_dir), *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peak, group = 0, None
    try:
        while proc.poll() is None and time.monotonic() - started < 200:
            group = group or locust_of(proc.pid)
            peak = max(peak, _largest_rss_kb(group) if group else 0)
            if peak > RSS_BOUND_KB:
                break
            time.sleep(0.05)
    finally:
        if proc.poll() is None:
            if group:
                os.killpg(group, signal.SIGKILL)
            proc.kill()
    out, err = proc.communicate(timeout=30)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err), peak, time.monotonic() - started


@pytest.mark.long
@pytest.mark.parametrize("endless_target, extra", [("identity", []), ("gzip", ["--processes", "2"])],
                         indirect=["endless_target"], ids=["plain", "gzip-over-two-processes"])
def test_an_endless_checkout_body_ends_the_run_in_one_sentence_naming_the_url(tmp_path, write_urls,
                                                                               endless_target, extra):
    r, peak_kb, took_s = _stress_run(write_urls(endless_target), tmp_path / "runs", *extra)
    assert r.returncode == cli.EXIT_ERROR, r.stdout + r.stderr
    assert "Traceback" not in r.stderr
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith(f"wdm: POST {endless_target}/orders/checkout/") and "more than 1 MiB" in last, last
    assert took_s < 150, f"the run took {took_s:.0f} s to end (its -t is 300 s)"
    assert 0 < peak_kb < RSS_BOUND_KB, f"Locust's RSS peaked at {peak_kb / 1024:.0f} MB"
    (path,) = (tmp_path / "runs").iterdir()
    run = Run.open(path)
    assert run.manifest["status"] == "failed" and run.manifest["error"] == last.removeprefix("wdm: ")
    # Locust counted the failure and says where; what was recorded stays. (Over two processes too:
    # the worker reports its figures to the master before it asks it to stop.)
    failures = (run.path / "locust_failures.csv").read_text()
    assert "more than 1 MiB" in failures and f"{endless_target}/orders/checkout/" in failures
    summary = json.loads((run.path / "summary.json").read_text())
    assert summary["requests"] >= 1


# body_size against made-up replies, in a process of its own (the locustfile imports Locust, whose
# gevent patches must not reach the tests): each encoding Locust asks for is counted decoded, and a
# bomb is read no further than the cap.
BODIES = r"""
import gzip, sys, zlib
import brotli
sys.path.insert(0, sys.argv[1])
import locustfile as lf

class Reply:
    def __init__(self, body, encoding="", length=None):
        self.headers = {**({"content-encoding": encoding} if encoding else {}),
                        **({"content-length": str(length)} if length is not None else {})}
        self.body, self.read_so_far, self.released = body, 0, False
    def read(self, n):
        chunk = self.body[self.read_so_far:self.read_so_far + n]
        self.read_so_far += len(chunk)
        return chunk
    def release(self):
        self.released = True

small, bomb = b'{"paid": true}' * 40, bytes(64 << 20)
raw_deflate = zlib.compressobj(9, zlib.DEFLATED, -15)
cases = {
    "plain": Reply(small), "gzip": Reply(gzip.compress(small), "gzip"), "zlib": Reply(zlib.compress(small), "deflate"),
    "raw deflate": Reply(raw_deflate.compress(small) + raw_deflate.flush(), "deflate"),
    "br": Reply(brotli.compress(small), "br"), "not gzip": Reply(b"plain text", "gzip"),
    "endless": Reply(b"x" * (8 << 20)), "gzip bomb": Reply(gzip.compress(bomb), "gzip"),
    "br bomb": Reply(brotli.compress(bomb, quality=1), "br"), "declared": Reply(b"", length=(1 << 20) + 1),
}
for name, reply in cases.items():
    print(name, lf.body_size(reply), reply.read_so_far, reply.released)
"""


def test_body_size_counts_decoded_bytes_and_stops_at_the_cap():
    out = subprocess.run([sys.executable, "-c", BODIES, str(LOCUSTFILE.parent)], capture_output=True,
                         text=True, timeout=180, cwd="/")
    assert out.returncode == 0, out.stderr
    seen = {line.rsplit(" ", 3)[0]: tuple(line.rsplit(" ", 3)[1:]) for line in out.stdout.splitlines()}
    small = str(len(b'{"paid": true}' * 40))
    for name in ("plain", "gzip", "zlib", "raw deflate", "br"):
        assert seen[name][0] == small and seen[name][2] == "False", (name, seen[name])
    assert seen["not gzip"][0] == "10"  # a body that does not decode as it says is counted as sent
    cap = 1 << 20
    for name in ("endless", "gzip bomb", "br bomb"):
        size, read, released = int(seen[name][0]), int(seen[name][1]), seen[name][2]
        assert size > cap and released == "True", (name, seen[name])
        assert read <= cap + 64 * 1024, (name, read)  # read no further than the chunk that crossed the cap
    assert seen["declared"] == (str(cap + 1), "0", "True")  # a declared length past the cap is enough
