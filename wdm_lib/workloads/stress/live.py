"""The line a terminal shows while the load runs, refreshed every few seconds:

       12 of 60 s  100 users  87.9 req/s  fail 0.0%  p50 11 ms  p99 48 ms  1,054 requests

Users, requests/s and the counts come from the samples Locust appends to
locust_stats_history.csv each second; p50 / p99 are exact, over every raw row written so far
(requests-*.csv, a few seconds behind), or Locust's figures over its recent window when the run
keeps no raw rows. Quiet when not on a terminal (CI, notebooks' logs)."""

from __future__ import annotations

import csv
import io
import sys
from pathlib import Path
from typing import TextIO

import numpy as np

from wdm_lib.analysis import exact_percentile
from wdm_lib.workloads.stress import locust_csv
from wdm_lib.workloads.shop_rows import RAW_COLUMNS

LATENCY_US = RAW_COLUMNS.index("latency_us")


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
            if locust_csv.is_total(row):
                self.latest = row
        return self.latest


class RawTail:
    """Every latency of the raw rows written so far, read a file's new complete lines at a time."""

    def __init__(self, folder: Path):
        self.folder = folder
        self._offsets: dict[Path, int] = {}
        self._parts: list[np.ndarray] = []

    def poll(self) -> np.ndarray:
        for path in sorted(self.folder.glob("requests-*.csv")):
            offset = self._offsets.get(path, 0)
            with open(path, "rb") as f:
                f.seek(offset)
                chunk = f.read()
            complete = chunk[:chunk.rfind(b"\n") + 1]
            self._offsets[path] = offset + len(complete)
            rows = list(csv.reader(io.StringIO(complete.decode("utf-8", "replace"))))
            if offset == 0:
                rows = rows[1:]  # the header
            self._parts.append(np.array([float(r[LATENCY_US]) for r in rows if len(r) == len(RAW_COLUMNS)]))
        if len(self._parts) > 1:
            self._parts = [np.concatenate(self._parts)]
        return self._parts[0] / 1000 if self._parts else np.empty(0)


def progress_line(sample: dict | None, elapsed_s: float, planned_s: float | None,
                  latencies_ms: np.ndarray | None = None) -> str:
    """One line from one Aggregated sample of locust_stats_history.csv (None: nothing sampled yet)
    and the latencies so far (None: no raw rows kept, so Locust's recent figures stand in)."""
    of = f" of {planned_s:g}" if planned_s else ""
    head = f"{elapsed_s:5.0f}{of} s" + ("  stopping" if planned_s and elapsed_s > planned_s else "")
    if sample is None:
        return f"{head}  starting Locust ..."
    number = locust_csv.number
    total, failed = number(sample.get(locust_csv.TOTAL_REQUESTS)) or 0, number(sample.get(locust_csv.TOTAL_FAILED)) or 0
    fail = 100 * failed / total if total else 0.0
    if latencies_ms is None:
        p50, p99, which = number(sample.get(locust_csv.P50)), number(sample.get(locust_csv.P99)), " (recent)"
    elif len(latencies_ms):
        (p50, p99), which = exact_percentile(latencies_ms, [50, 99]), ""
    else:
        p50 = p99 = None
        which = ""
    ms = "-" if p50 is None else f"{p50:.0f}", "-" if p99 is None else f"{p99:.0f}"
    return (f"{head}  {sample.get(locust_csv.USERS, '?')} users  {number(sample.get(locust_csv.RPS)) or 0:.1f} req/s  "
            f"fail {fail:.1f}%  p50 {ms[0]} ms  p99 {ms[1]} ms{which}  {int(total):,} requests")


class LiveLine:
    """Rewrites one terminal line in place; `done` leaves the last one standing."""

    def __init__(self, folder: Path, history_csv: str, planned_s: float | None, raw_rows: bool, enabled: bool,
                 out: TextIO = sys.stderr):
        self.tail = HistoryTail(folder / history_csv)
        self.raw = RawTail(folder) if raw_rows else None
        self.planned_s = planned_s
        self.enabled = enabled
        self.out = out
        self._width = 0

    def show(self, elapsed_s: float) -> None:
        if not self.enabled:
            return
        line = progress_line(self.tail.poll(), elapsed_s, self.planned_s,
                             None if self.raw is None else self.raw.poll())
        self.out.write("\r" + line.ljust(self._width))
        self.out.flush()
        self._width = len(line)

    def done(self) -> None:
        if self.enabled and self._width:
            self.out.write("\n")
            self.out.flush()
