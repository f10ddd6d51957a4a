"""Runs -> figures: percentiles, outcome counts, DataFrames for the notebooks. Pure functions;
pandas is imported only by the functions that return DataFrames, so the CLI starts fast."""

from __future__ import annotations

import math
from typing import Iterable

PERCENTILES = (50, 90, 95, 99, 99.9)


def percentile_label(p: float) -> str:
    return f"p{p:g}"


def latency_percentiles(latencies_ms: Iterable[float]) -> dict[str, float | int | None]:
    """Exact percentiles (nearest rank, no interpolation: every figure is a latency that was
    measured), plus count, mean and max."""
    values = sorted(latencies_ms)
    n = len(values)
    out: dict[str, float | int | None] = {"count": n}
    for p in PERCENTILES:
        out[percentile_label(p)] = values[max(0, math.ceil(p / 100 * n) - 1)] if n else None
    out["max"] = values[-1] if n else None
    out["mean"] = sum(values) / n if n else None
    return out
