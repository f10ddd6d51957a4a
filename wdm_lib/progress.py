"""Progress bars on a terminal, silence in CI and in notebooks' logs."""

from __future__ import annotations

import os
import sys

from tqdm import tqdm


def progress_wanted() -> bool:
    return sys.stderr.isatty() and not os.environ.get("CI")


def bar(total: int, desc: str, enabled: bool | None = None) -> tqdm:
    enabled = progress_wanted() if enabled is None else enabled
    return tqdm(total=total, desc=desc, unit="op", disable=not enabled, leave=False, file=sys.stderr,
                dynamic_ncols=True)
