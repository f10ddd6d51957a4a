"""Stopping wdm: a `kill` or a closed terminal stops any command as Ctrl-C does."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator

from wdm_lib.errors import stop_came_from


def _interrupt() -> None:
    raise KeyboardInterrupt


@contextlib.contextmanager
def stop_signals_as_ctrl_c() -> Iterator[None]:
    """A `kill` or a closed terminal stops wdm as Ctrl-C does: what was recorded is kept, the run
    says `interrupted`, and the processes it started (Locust runs in a session of its own, out of
    a terminal's reach) are stopped. Otherwise they died with wdm's Python, a run was left `running`
    until called crashed, and a Locust load or web UI went on without it. (Only the main thread
    may set signal handlers; `wdm serve` sets its own.)"""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def as_ctrl_c(signum, frame):
        stop_came_from(signal.Signals(signum).name)
        # Whatever Ctrl-C would do now: Python's handler raises KeyboardInterrupt, asyncio's cancels
        # the run's task so that it ends cleanly (a KeyboardInterrupt raised inside the event loop
        # left a consistency run hanging in its clean-up for minutes).
        on_ctrl_c = signal.getsignal(signal.SIGINT)
        if callable(on_ctrl_c):
            on_ctrl_c(signal.SIGINT, frame)
            return
        # Ctrl-C ignored, as in a shell script's background job, so asyncio set no handler of its
        # own: a kill still stops wdm, raised between two steps of the event loop if one runs, never
        # inside one. asyncio.run then cancels the run's tasks, and each ends cleanly as above.
        import asyncio

        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            raise KeyboardInterrupt from None
        loop.call_soon_threadsafe(_interrupt)

    previous = {sig: signal.signal(sig, as_ctrl_c) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@contextlib.contextmanager
def children_hear_ctrl_c() -> Iterator[None]:
    """Around starting a process that wdm stops with SIGINT (Locust, in a session of its own, so
    that only wdm passes Ctrl-C on): the child must not inherit Ctrl-C ignored, as a wdm started
    with `&` in a shell script has it, or it ignores the SIGINT wdm sends and is killed only after
    its grace, its files unwritten (a `--ui` run took 31 s to stop, then said `failed`). An ignored
    signal stays ignored across exec, a handler does not: Python's own handler stands in for the
    moment the child is started, after which Ctrl-C is ignored here again."""
    if (threading.current_thread() is not threading.main_thread()
            or signal.getsignal(signal.SIGINT) is not signal.SIG_IGN):
        yield
        return
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
