"""The line a terminal shows while the load runs, refreshed every few seconds from the samples
Locust appends to locust_stats_history.csv each second:

    12.0 of 60 s  100 users  87.9 req/s  fail 0.0%  p50 11 ms  p99 48 ms (last 10 s)

Locust's percentiles there cover its recent window, not the whole run (the exact ones come at the
end, from the raw rows). Quiet when not on a terminal (CI, notebooks' logs)."""

from __future__ import annotations

import csv
import io
import sys
from pathlib import Path
from typing import TextIO


class HistoryTail:
    """The newest Aggregated sample of a CSV that another process keeps appending to; reads only
    what was added since the last look, and never a half-written line."""

    def __init__(self, path: Path):
        self.path = path
        self._offset = 0
        self._header: list[str] | None = None
        self.latest: dict | None = None

    def poll(self) -> dict | None:
        try:
            with open(self.path, "rb") as f:
                f.seek(self._offset)
                chunk = f.read()
        except FileNotFoundError:
            return self.latest
        complete = chunk[:chunk.rfind(b"\n") + 1]
        self._offset += len(complete)
        lines = complete.decode("utf-8", "replace").splitlines()
        if self._header is None and lines:
            self._header, lines = next(csv.reader([lines[0]])), lines[1:]
        for row in csv.DictReader(io.StringIO("\n".join(lines)), fieldnames=self._header):
            if row.get("Name") == "Aggregated":
                self.latest = row
        return self.latest


def _num(v) -> float | None:
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


def progress_line(sample: dict | None, elapsed_s: float, planned_s: float | None) -> str:
    """One line from one Aggregated sample of locust_stats_history.csv (None: nothing sampled yet)."""
    of = f" of {planned_s:g}" if planned_s else ""
    head = f"{elapsed_s:5.0f}{of} s"
    if sample is None:
        return f"{head}  starting Locust ..."
    total, failed = _num(sample.get("Total Request Count")) or 0, _num(sample.get("Total Failure Count")) or 0
    fail = 100 * failed / total if total else 0.0
    p50, p99 = _num(sample.get("50%")), _num(sample.get("99%"))
    ms = "-" if p50 is None else f"{p50:.0f}", "-" if p99 is None else f"{p99:.0f}"
    return (f"{head}  {sample.get('User Count', '?')} users  {_num(sample.get('Requests/s')) or 0:.1f} req/s  "
            f"fail {fail:.1f}%  p50 {ms[0]} ms  p99 {ms[1]} ms (recent)  {int(total):,} requests")


class LiveLine:
    """Rewrites one terminal line in place; `done` leaves the last one standing."""

    def __init__(self, history_csv: Path, planned_s: float | None, enabled: bool, out: TextIO = sys.stderr):
        self.tail = HistoryTail(history_csv)
        self.planned_s = planned_s
        self.enabled = enabled
        self.out = out
        self._width = 0

    def show(self, elapsed_s: float) -> None:
        if not self.enabled:
            return
        line = progress_line(self.tail.poll(), elapsed_s, self.planned_s)
        self.out.write("\r" + line.ljust(self._width))
        self.out.flush()
        self._width = len(line)

    def done(self) -> None:
        if self.enabled and self._width:
            self.out.write("\n")
            self.out.flush()
