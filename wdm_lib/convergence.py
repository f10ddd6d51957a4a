"""How the final state converged: the checkers' verdict on every pass of the quiet-state read-back,
as a timeline. Pure: the runner feeds it one point per pass.

A system that is consistent at once shows one valid point after another. A system whose reads lag
shows invalid points that turn valid. A saga that compensates after it replied, or a queue whose
late work is wrong, shows valid points that turn invalid: `regressed`, the signature of a late step
that a verdict on the first read would have missed."""

from __future__ import annotations


def point(t_s: float, changed: bool, valid: bool, anomalies: dict[str, int]) -> dict:
    """One pass: seconds from the last checkout reply to the pass's start, whether the state differed
    from the pass before, and the checkers' verdict on it (anomaly name -> count)."""
    return {"t_s": round(t_s, 3), "changed": changed, "valid": valid, "anomalies": anomalies}


def time_to_consistency(points: list[dict]) -> float | None:
    """From the last reply to the first pass from which every pass was valid; None if the last was not."""
    since = None
    for p in points:
        if not p["valid"]:
            since = None
        elif since is None:
            since = p["t_s"]
    return since


def regression(points: list[dict]) -> tuple[float, float] | None:
    """(t of the first valid pass, t of the first invalid pass after it) when the state was right
    and a later change broke it; None when it never regressed."""
    first_valid = next((p["t_s"] for p in points if p["valid"]), None)
    if first_valid is None:
        return None
    broken = next((p["t_s"] for p in points if p["t_s"] > first_valid and not p["valid"]), None)
    return None if broken is None else (first_valid, broken)
