"""Checks of the numbers a user gives as options, shared by every scenario: each failure is one
sentence naming the option. A float option also takes `nan` and `inf` from the command line,
which compare false with everything: `timeout <= 0` lets nan through and turns every timeout off."""

from __future__ import annotations

import math

from wdm_lib.errors import WorkbenchError


def seconds(option: str, value: float, *, zero: bool = False) -> float:
    """A finite number of seconds, above zero (or at least zero, with `zero`)."""
    if not (isinstance(value, (int, float)) and math.isfinite(value) and (value >= 0 if zero else value > 0)):
        raise WorkbenchError(f"{option} is {_shown(value)}; expected {'0 or more' if zero else 'a positive number of'} seconds.")
    return value


def rate(option: str, value: float, what: str) -> float:
    """A finite, positive number of `what` per second."""
    if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
        raise WorkbenchError(f"{option} is {_shown(value)}; expected a positive number of {what} per second.")
    return value


def _shown(value) -> str:
    return f"{value:g}" if isinstance(value, (int, float)) else repr(value)
