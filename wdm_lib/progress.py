"""Progress bars on a terminal, silence in CI and in notebooks' logs."""

from __future__ import annotations

import asyncio
import os
import sys
from typing import Awaitable, TypeVar

from tqdm import tqdm

T = TypeVar("T")
# A wait longer than this gets a line saying what is awaited: a bar that does not move says nothing.
WAIT_NOTICE_S = 2.0


def progress_wanted() -> bool:
    return sys.stderr.isatty() and not os.environ.get("CI")


def bar(total: int, desc: str, enabled: bool | None = None) -> tqdm:
    enabled = progress_wanted() if enabled is None else enabled
    return tqdm(total=total, desc=desc, unit="op", disable=not enabled, leave=False, file=sys.stderr,
                dynamic_ncols=True)


async def noting_a_wait(awaitable: Awaitable[T], pb: tqdm, message: str, after_s: float = WAIT_NOTICE_S) -> T:
    """Await it; if it is not done within after_s, write `message` above the bar (only where the
    bar shows), so a long wait is never silent."""
    task = asyncio.ensure_future(awaitable)
    try:
        done, _ = await asyncio.wait({task}, timeout=after_s)
        if not done and not pb.disable:
            pb.write(message, file=sys.stderr)
        return await task
    finally:
        task.cancel()  # nothing if it ended; stops it if we were cancelled while waiting
