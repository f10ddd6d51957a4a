"""Nothing outlives the workbench, whatever killed it.

A process that wdm starts (a shop, Locust's master and workers, a fault command and whatever it
left in the background, a report's kernel) and a temporary path it makes are handed to a small
watcher, the reaper: a child process of its own session that reads a pipe from wdm. When that pipe
reaches its end, wdm is gone (a `kill -9` included: the kernel closes the pipe), and the reaper
ends every process group and process still handed to it (resumed first, as a paused one would
never act on SIGTERM; then SIGTERM; SIGKILL after a grace) and removes every path. What wdm ends
itself it takes back (`release`), so the reaper touches nothing that has gone its own way.

    guard = reaper.watch_group(proc.pid)     # Locust, in its own session
    guard = reaper.watch_path(data_dir)      # a temporary folder
    ...; guard.release()                     # ended here, as it should be

One reaper serves a wdm process, started with the first thing handed to it. It runs this file as a
script with Python's -I: no wdm_lib import, no site packages, some 20 ms to start.
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import threading

GRACE_S = 5.0  # from SIGTERM to SIGKILL: a shop or Locust flushes and goes well within it

_lock = threading.Lock()
_pipe = None
_pid_of_pipe = None  # a forked child (Locust's workers are not ours) must not write to our reaper
_ids = itertools.count(1)


class Guard:
    """One thing handed to the reaper; release() when it was ended here."""

    def __init__(self, guard_id: int):
        self.id = guard_id
        self.released = False

    def release(self) -> None:
        if not self.released:
            self.released = True
            _send({"drop": self.id})


def watch_group(pgid: int) -> Guard:
    """A process group (a process started with start_new_session=True leads one: its pid)."""
    return _add("group", int(pgid))


def watch_process(pid: int) -> Guard:
    return _add("process", int(pid))


def watch_path(path: str | os.PathLike) -> Guard:
    """A file or folder removed once wdm is gone (after the processes, which may still write to it)."""
    return _add("path", os.path.abspath(os.fspath(path)))


def _add(kind: str, value) -> Guard:
    guard = Guard(next(_ids))
    _send({"add": guard.id, "kind": kind, "value": value})
    return guard


def _send(message: dict) -> None:
    global _pipe, _pid_of_pipe
    with _lock:
        if _pipe is None or _pid_of_pipe != os.getpid():
            if "drop" in message:
                return  # handed to another process's reaper, or none: nothing to take back here
            proc = subprocess.Popen([sys.executable, "-I", "-S", __file__], stdin=subprocess.PIPE,
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                    start_new_session=True, close_fds=True)
            _pipe, _pid_of_pipe = proc.stdin, os.getpid()
            # Our end of the pipe must not leak into the processes we start: a child holding it
            # open would keep the reaper waiting after we are gone.
            os.set_inheritable(_pipe.fileno(), False)
        try:
            _pipe.write((json.dumps(message) + "\n").encode())
            _pipe.flush()
        except (BrokenPipeError, ValueError):  # the reaper was killed: nothing more it can do for us
            pass


# --- the reaper itself, run as a script ---------------------------------------------------------------

def _reap(watched: dict[int, tuple[str, object]]) -> None:
    import shutil
    import signal
    import time

    def send(kind, value, sig):
        try:
            (os.killpg if kind == "group" else os.kill)(value, sig)
            return True
        except (ProcessLookupError, PermissionError):
            return False

    processes = [(k, v) for k, v in watched.values() if k in ("group", "process")]
    alive = [(k, v) for k, v in processes if send(k, v, signal.SIGCONT)]
    for k, v in alive:
        send(k, v, signal.SIGTERM)
    deadline = time.monotonic() + GRACE_S
    while alive and time.monotonic() < deadline:
        time.sleep(0.05)
        alive = [(k, v) for k, v in alive if send(k, v, 0) and not _zombie_only(k, v)]
    for k, v in alive:
        send(k, v, signal.SIGKILL)
    for kind, value in watched.values():
        if kind == "path":
            if os.path.isdir(value) and not os.path.islink(value):
                shutil.rmtree(value, ignore_errors=True)
            else:
                try:
                    os.unlink(value)
                except OSError:
                    pass


def _zombie_only(kind: str, value: int) -> bool:
    """Every process of it has exited and waits only to be reaped by a parent that is gone (where
    the machine's first process reaps none, as in some containers): it counts as gone."""
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/stat", "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].split()
        except (OSError, IndexError):
            continue
        state, pgrp = fields[0], int(fields[2])
        if (int(pid) == value if kind == "process" else pgrp == value) and state != b"Z":
            return False
    return True


def _main() -> None:
    import signal

    # Ctrl-C, a closed terminal or a kill meant for wdm are not for the reaper: it goes when wdm has.
    for sig in (signal.SIGINT, signal.SIGHUP, signal.SIGTERM):
        signal.signal(sig, signal.SIG_IGN)
    watched: dict[int, tuple[str, object]] = {}
    for line in sys.stdin.buffer:
        try:
            message = json.loads(line)
            if "drop" in message:
                watched.pop(message["drop"], None)
            else:
                watched[message["add"]] = (message["kind"], message["value"])
        except (ValueError, KeyError, TypeError):
            continue
    _reap(watched)


if __name__ == "__main__":
    _main()
