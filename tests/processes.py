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
