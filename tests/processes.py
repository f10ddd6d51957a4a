"""The tests' look at processes: whether one is still there, and waiting for a condition. A process
that has exited but waits to be reaped (a zombie) counts as gone: where the machine's first process
reaps none, as in some containers, an orphan's end leaves one."""

from __future__ import annotations

import time


def process_state(pid: int) -> str:
    """R, S, T (stopped), Z (zombie)... as /proc says; X when there is no such process."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return "X"


def alive(pid: int) -> bool:
    return process_state(pid) not in ("X", "Z")


def wait_for(condition, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def proc_stat(pid) -> list[str]:
    """/proc/PID/stat's fields after the command name (state, ppid, pgrp, ...); [] once it has gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return []


def locust_of(wdm_pid: int) -> int | None:
    """The Locust that a wdm started: its child running `-m locust`, which leads a process group."""
    import os

    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if proc_stat(pid)[1:2] == [str(wdm_pid)] and b"locust" in f.read():
                    return int(pid)
        except OSError:
            pass
    return None
