"""Locust's CSV files, read in one place: their names in a run folder, the columns the workbench
uses, the row over every request, and the numbers in them ("N/A" where nothing was measured yet).

The figures, the live progress line, the lost-load check and the report's charts all read Locust's
files through here. pandas is imported only by `frame`, so the CLI starts fast.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

PREFIX = "locust"  # Locust's --csv prefix in a run folder
STATS, HISTORY = f"{PREFIX}_stats.csv", f"{PREFIX}_stats_history.csv"
FAILURES, EXCEPTIONS = f"{PREFIX}_failures.csv", f"{PREFIX}_exceptions.csv"

NAME, TYPE, TOTAL = "Name", "Type", "Aggregated"  # TOTAL: Locust's name for the row over every request
REQUESTS, FAILED = "Request Count", "Failure Count"
RPS, USERS, TIMESTAMP = "Requests/s", "User Count", "Timestamp"
TOTAL_REQUESTS, TOTAL_FAILED = "Total Request Count", "Total Failure Count"
MEDIAN, P50, P95, P99, MAX = "Median Response Time", "50%", "95%", "99%", "Max Response Time"
MISSING = "N/A"


def number(value) -> float | int | None:
    """A figure of Locust's: None for N/A, a blank or anything not finite; whole numbers as ints."""
    try:
        f = float(value)
    except (TypeError, ValueError):
        return None
    if not math.isfinite(f):
        return None
    return int(f) if f.is_integer() else f


def rows(path: str | Path) -> list[dict] | None:
    """Every row of one of Locust's CSVs as a dict by column name; None when Locust never wrote it."""
    try:
        with open(path, newline="", encoding="utf-8") as f:
            return list(csv.DictReader(f))
    except FileNotFoundError:
        return None


def total_rows(path: str | Path) -> list[dict]:
    """The rows over every request (one in locust_stats.csv, one per sample in its history)."""
    return [r for r in rows(path) or [] if r.get(NAME) == TOTAL]


def is_total(row: dict) -> bool:
    return row.get(NAME) == TOTAL


def frame(path: str | Path):
    """One of Locust's CSVs as a DataFrame: N/A and blanks as NaN, names as text ("" for the total's
    request type, which Locust leaves blank)."""
    import pandas as pd

    table = pd.read_csv(path, na_values=[MISSING, ""], keep_default_na=False, dtype={TYPE: str, NAME: str})
    for column in (TYPE, NAME):
        if column in table:
            table[column] = table[column].fillna("")
    return table
