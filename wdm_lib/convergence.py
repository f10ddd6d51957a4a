"""How the final state converged: the checkers' verdict on every pass of the quiet-state read-back,
as a timeline. Pure: the runner feeds it one point per pass.

A system that is consistent at once shows one valid point after another. A system whose reads lag
shows invalid points that turn valid. A saga that compensates after it replied, or a queue whose
late work is wrong, shows valid points that turn invalid: `regressed`, the signature of a late step
that a verdict on the first read would have missed."""

from __future__ import annotations


def point(t_s: float, changed: bool, valid: bool, anomalies: dict[str, int], reverted: bool = False) -> dict:
    """One pass: seconds from the last checkout reply to the pass's start, whether the state differed
    from the pass before, the checkers' verdict on it (anomaly name -> count), and whether it brought
    a record back to what it was before the pass before changed it (a value that went and came back)."""
    return {"t_s": round(t_s, 3), "changed": changed, "valid": valid, "anomalies": anomalies, "reverted": reverted}


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
    """(t of the first valid pass, t of the first invalid pass after it that shows the system moving
    away from a right state) when there is one; None when it never regressed.

    A pass is read record by record, not as a snapshot, so a correct system still at work after the
    last reply (a queue working off checkouts the client gave up on) can be read torn, half before
    and half after one of its steps, and look wrong once. Such a pass is followed by one in which the
    records have moved on. An invalid pass counts as the system moving away when the next pass shows
    the same state (it held), or brings a record back to what it was before (it went and came back:
    a reader that flaps to a stale copy), or when it is the last pass (the final state is wrong)."""
    first_valid = next((i for i, p in enumerate(points) if p["valid"]), None)
    if first_valid is None:
        return None
    wrong = [i for i in range(first_valid + 1, len(points)) if not points[i]["valid"]]
    for i in wrong:
        after = points[i + 1] if i + 1 < len(points) else None
        if after is None or not after["changed"] or after.get("reverted"):
            return points[first_valid]["t_s"], points[wrong[0]]["t_s"]
    return None
