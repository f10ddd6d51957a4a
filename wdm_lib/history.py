"""The History: an append-only CSV, one row per operation, flushed as it goes, so a run that dies
keeps every operation it made. Checkers read it back as `Op` records, notebooks as a DataFrame."""

from __future__ import annotations

import csv
import gc
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable

# What an operation's reply means, as API.md defines it. The names belong to the history, the data
# model every part reads (the HTTP client only sorts replies into them); their one definition sits
# in the standalone module the locustfile ships with, so the stress rows use the very same names.
from wdm_lib.config import redact
from wdm_lib.errors import RecordingFailed
from wdm_lib.workloads.shop_rows import FAIL, OK, OUTCOMES, UNKNOWN  # noqa: F401  (re-exported)

if TYPE_CHECKING:
    from wdm_lib.client import Reply

COLUMNS = ["op_id", "kind", "order_id", "user_id", "items", "amount", "intended_ns", "invoke_ns",
           "complete_ns", "status", "outcome", "error", "fault"]
# The error text of an unknown that got no reply within the client's timeout; other unknowns with
# no HTTP status are connections dropped or reset before a reply came.
TIMEOUT_ERROR = "no reply within"
# ... and of one whose status came but whose body was still arriving then: a timeout as well.
INCOMPLETE_ERROR = "reply incomplete within"
CAUSES = ("5xx", "timeout", "reset", "other-status")
# The kinds of operation a consistency run makes, each a row of its history: the names the
# workload records and the checkers, summaries and analysis look for, defined once.
CREATE_ITEM, ADD_STOCK, CREATE_USER, ADD_FUNDS = "create_item", "add_stock", "create_user", "add_funds"
CREATE_ORDER, ADD_ITEM, CHECKOUT = "create_order", "add_item", "checkout"
# Reads made during a mixed load, each a row with its invoke and complete times and what it read
# (for a checker of reads against the bounds the history allows at that moment): `find_item` has the
# item in `items` ([[item_id, 0]]) and the stock read in `amount`; `find_user` the user in `user_id`
# and the credit read in `amount`; `find_order` the order in `order_id`, the user and lines read in
# `user_id` and `items`, and the paid flag read in `amount` (1 paid, 0 not). A read that got no 2xx
# has `amount` blank. Prices and costs never change after seeding, so they are not recorded again.
FIND_ITEM, FIND_USER, FIND_ORDER = "find_item", "find_user", "find_order"
READS = (FIND_ITEM, FIND_USER, FIND_ORDER)
# Not a kind of row but a role: a checkout of an order that an earlier-sent checkout was for (a
# mixed load checks orders out again). The summaries count re-checkouts apart under this name.
RECHECKOUT = "recheckout"
# Kind of the rows that record something done *to* the run: a step of the fault schedule (its
# `fault` column says which: {"name", "step": "inject" | "recover", "what": command or action}),
# or an interruption or crash of the run itself (no `fault`, the reason in `error`).
FAULT = "fault"


@dataclass(slots=True)
class Op:
    op_id: int
    kind: str                       # create_item, add_stock, create_user, add_funds, create_order,
                                    # add_item, checkout, find_item, find_user, find_order, or FAULT
    order_id: str = ""
    user_id: str = ""
    items: list = field(default_factory=list)   # [[item_id, quantity], ...]; read back: a tuple of pairs
    amount: int | None = None       # price, stock or credit added, the checkout's total cost, or
                                    # what a read read (stock, credit, paid 1/0)
    intended_ns: int = 0
    invoke_ns: int = 0
    complete_ns: int = 0
    status: int | None = None
    outcome: str = ""
    error: str = ""
    fault: dict = field(default_factory=dict)   # a fault schedule's step: name, step, what (NO_FAULT read back)


def unknown_cause(op: Op) -> str:
    """Why an operation's outcome is unknown, from what its row recorded."""
    if op.status is not None:
        return "5xx" if op.status >= 500 else "other-status"
    return "timeout" if op.error.startswith((TIMEOUT_ERROR, INCOMPLETE_ERROR)) else "reset"


class HistoryWriter:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        try:
            self._file = open(self.path, "w", newline="", encoding="utf-8")
            self._csv = csv.writer(self._file)
            self._csv.writerow(COLUMNS)
            self._file.flush()
        except OSError as e:
            raise RecordingFailed.writing(self.path, e) from None
        self._next_id = 0

    def record(self, kind: str, reply: "Reply | None" = None, *, order_id: str = "", user_id: str = "",
               items: list | None = None, amount: int | None = None, intended_ns: int | None = None,
               error: str = "") -> None:
        """One row; `reply` is None for what happens to the run itself (an interruption), at this moment."""
        if reply is None:
            now = time.time_ns()
            row = [self._next_id, kind, order_id, user_id, json.dumps(items or []), _blank(amount),
                   intended_ns or now, now, now, "", "", error, ""]
        else:
            row = [self._next_id, kind, order_id, user_id, json.dumps(items or []), _blank(amount),
                   intended_ns or reply.invoke_ns, reply.invoke_ns, reply.complete_ns,
                   _blank(reply.status), reply.outcome, reply.error, ""]
        self._write(row)

    def record_fault(self, name: str, step: str, what: str, intended_ns: int, invoke_ns: int, complete_ns: int,
                     status: int | None, outcome: str, error: str = "") -> None:
        """One step of a fault schedule: when it was due, when it ran, and how it ended."""
        self._write([self._next_id, FAULT, "", "", "[]", "", intended_ns, invoke_ns, complete_ns, _blank(status),
                     outcome, error, json.dumps({"name": name, "step": step, "what": what})])

    def _write(self, row: list) -> None:
        self._next_id += 1
        row = [redact(cell) if isinstance(cell, str) and "@" in cell else cell for cell in row]
        try:
            self._csv.writerow(row)
            # One write per row: a crash or kill of the workbench loses nothing it was told.
            self._file.flush()
        except OSError as e:
            raise RecordingFailed.writing(self.path, e) from None

    @property
    def last_op_id(self) -> int:
        """The id of the last row written (-1 before any)."""
        return self._next_id - 1

    def close(self) -> None:
        if not self._file.closed:
            try:
                self._file.close()
            except OSError:  # what could not be flushed was reported when its row was written
                pass

    def __enter__(self) -> "HistoryWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _blank(v):
    return "" if v is None else v


class _NoFault(dict):
    """An empty dict that stays empty: what every row read back without a fault step holds in
    `fault`, one for all (a dict per row would be 64 bytes times millions of rows)."""

    def _shared(self, *_args, **_kwargs):
        raise TypeError("NO_FAULT is shared by every row read back: it is never changed")

    __setitem__ = __delitem__ = __ior__ = clear = pop = popitem = setdefault = update = _shared


NO_FAULT = _NoFault()


def _lines(written: str, text, line, one_line: dict):
    """An order's lines as read back: a tuple of shared `(item_id, quantity)` pairs, itself shared
    when it is one line (a read's item, an addition of stock: `one_line` keeps those by their JSON,
    read once). Anything but [[id, integer quantity], ...] is ValueError: wdm writes only those
    (client.ORDER holds a shop's reply to them), so another shape is a damaged or edited row,
    skipped like a row whose numbers are not numbers."""
    if written == "[]":
        return ()
    found = one_line.get(written)
    if found is not None:
        return found
    items = json.loads(written)
    if not (type(items) is list and all(type(pair) is list and len(pair) == 2 and type(pair[0]) in (str, int)
                                        and type(pair[1]) is int for pair in items)):
        raise ValueError(f"items {written[:80]!r} are not [[item_id, quantity], ...]")
    lines = tuple(line(pair, pair) for pair in ((text(i, i) if type(i) is str else i, q) for i, q in items))
    if len(lines) == 1:
        lines = one_line[written] = line(lines, lines)
    return lines


def read_ops(path: str | Path, keep: Callable[[int, str], bool] | None = None) -> list[Op]:
    """Every complete row of a history (a torn last line from a crash is skipped); with `keep`, only
    the rows whose (op_id, kind) it keeps, the others never built (a verdict at 100,000 orders need
    not hold the rows that built them).

    A history of millions of rows must fit in memory beside the checkers, so the rows share what
    they repeat: one string per distinct kind, outcome, error and id, one int per distinct amount
    and status, one `(item_id, quantity)` tuple per distinct line (`items` is a tuple of them,
    read-only), one int for `intended_ns` when it equals `invoke_ns`, and `NO_FAULT` for rows that
    are no fault step."""
    ops: list[Op] = []
    texts: dict[str, str] = {}
    lines: dict[tuple, tuple] = {}
    one_line: dict[str, tuple] = {}
    numbers: dict[int | None, int | None] = {}
    text, line, number = texts.setdefault, lines.setdefault, numbers.setdefault
    with open(path, newline="", encoding="utf-8") as f:
        rows = csv.reader(f)
        header = next(rows, [])
        try:
            at = [header.index(c) for c in COLUMNS[:-1]]
        except ValueError:   # a column missing: no row is complete
            return ops
        fault_at = header.index("fault") if "fault" in header else None
        # Millions of objects that make no cycle: collecting while they are made only costs time.
        collecting = gc.isenabled()
        gc.disable()
        try:
            for row in rows:
                try:
                    (op_id, kind, order_id, user_id, items, amount, intended, invoke, complete, status, outcome,
                     error) = [row[i] for i in at]
                    op_id = int(op_id)
                    if keep is not None and not keep(op_id, kind):
                        continue
                    fault = row[fault_at] if fault_at is not None and fault_at < len(row) else ""
                    invoke_ns = int(invoke)
                    amount = None if amount == "" else int(amount)
                    status = None if status == "" else int(status)
                    ops.append(Op(op_id, text(kind, kind), text(order_id, order_id), text(user_id, user_id),
                                  _lines(items, text, line, one_line),
                                  number(amount, amount), invoke_ns if intended == invoke else int(intended),
                                  invoke_ns, int(complete), number(status, status), text(outcome, outcome),
                                  text(error, error), json.loads(fault) if fault not in ("", "{}") else NO_FAULT))
                except (TypeError, ValueError, IndexError):
                    continue
        finally:
            if collecting:
                gc.enable()
    return ops


def read_history(path: str | Path):
    """The history as a DataFrame with ids kept as strings and latency in milliseconds."""
    import pandas as pd

    df = pd.read_csv(path, dtype={"order_id": str, "user_id": str, "error": str, "items": str, "fault": str},
                     keep_default_na=False, on_bad_lines="skip")
    for col in ("intended_ns", "invoke_ns", "complete_ns", "op_id"):
        df[col] = pd.to_numeric(df[col], errors="coerce").astype("Int64")
    df["status"] = pd.to_numeric(df["status"], errors="coerce").astype("Int64")
    df["amount"] = pd.to_numeric(df["amount"], errors="coerce").astype("Int64")
    df = df.dropna(subset=["invoke_ns", "complete_ns"])
    df["latency_ms"] = (df["complete_ns"] - df["invoke_ns"]).astype("float64") / 1e6
    return df
