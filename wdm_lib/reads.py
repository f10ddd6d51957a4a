"""Reads made during the load, judged against real time: stale reads, impossible reads, and how
stale. Pure: a history in, figures out (no I/O, no HTTP client).

Every verdict of checkers.py is about the state once the system is quiet. A shop that serves reads
from a replica, a cache or a read model that lags passes those as long as it catches up; this
checker asks of every `find_item`, `find_user` and `find_order` made during the load whether the
history allowed the value it read at the moment it was read (API.md, "Reads during the load").

The model is Jepsen's counter checker, with subtractions. A balance (an item's stock, a user's
credit) is 0 when its record is created and moves by the history's writes: `add_stock` and each
checkout's lines for stock, `add_funds` and each checkout's cost for credit. At a moment t, a write
- that answered 2xx before t has taken effect;
- that was sent by t and has not answered 2xx by then, or answered unknown (a 5xx, a timeout, a
  reset: it may take effect at any time from its sending on, for ever), may have;
- that was refused (4xx) has not, and never will.
So the values possible at t form an interval [L(t), U(t)]: U adds to what is certain every addition
that may have happened, L every subtraction that may have. A read sent at ri and answered at rc may
read anything between lower = L's certain part at ri plus every subtraction sent by rc, and upper
likewise: the bounds are sound for additions and subtractions (no value outside them has an
explanation), and wide where writes race the read.

A value outside its read's bounds is **stale** when some earlier moment allowed it, and its
staleness is how long before the read was sent it was last possible; otherwise it is
**impossible**. Each write moves one end of [L, U] at its sending and, if it answered 2xx, the
other at its reply, so each interval contains the one before it or lies within it: the intervals of
consecutive moments overlap. Hence the last moment at which a value v above the bounds was possible
is the last moment at which U ≥ v (then L ≤ v too, for the interval after it lies wholly below v and
overlaps it), a "last index at least" question that `last_at_least` answers for all reads at once,
in O(n + reads · BLOCK · log n).

An order's `paid` flag is judged the same way: once a checkout of it answered 2xx it is paid (lower
bound 1), and it can be paid only once a checkout of it that was not refused has been sent (upper
bound 1). Unpaid after such a reply is stale (from that reply); paid before any such sending is
impossible.

Beside: **monotonic reads**. A read that shows a value older than an earlier read of the same
record showed (the pattern of a load balancer spreading reads over replicas that lag differently):
for balances, the later read's value was last possible before the moment from which the earlier
read's value was continuously possible up to it; for orders, unpaid after a read that showed paid
(a paid order is never unpaid again). Read-your-writes is the stale rule itself: every write the
workbench saw answered 2xx before it sent a read is one that read must show.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np

from wdm_lib.analysis import exact_percentile
from wdm_lib.checkers import Anomaly, CheckResult
from wdm_lib.history import (ADD_FUNDS, ADD_STOCK, CHECKOUT, CREATE_ITEM, CREATE_USER, FIND_ITEM, FIND_ORDER,
                             FIND_USER, OK, UNKNOWN, Op)

# What a read was of, as its per-read code indexes: the records whose value is a balance, then orders.
ITEM, USER, ORDER = 0, 1, 2
OF = ("item", "user", "order")
# What a read's value was, judged, as its per-read code indexes.
FINE, STALE, IMPOSSIBLE = 0, 1, 2
VERDICTS = ("fine", "stale", "impossible")
# The names of what this checker finds, beside checkers.py's: a stale read is a warning unless the
# run promises linearizable reads; an impossible one is always an anomaly; non-monotonic reads are
# reported beside (each is a stale read too).
STALE_READ, IMPOSSIBLE_READ, NON_MONOTONIC_READ = "stale-read", "impossible-read", "non-monotonic-read"
# The checker's name among a run's checkers (checkers.check_run), where the summary finds its figures.
CHECKER = "reads"
MAX_EXAMPLES = 10
# Reads per block in last_at_least: each read looks at one block per level, and there are
# log_BLOCK(n) levels.
BLOCK = 64
# How many reads are scanned together (bounds the memory of a scan to CHUNK × BLOCK values).
CHUNK = 1 << 15
_NONE = np.iinfo(np.int64).min


# --- the history, as columns -------------------------------------------------------------------------

def _ints(values) -> np.ndarray:
    return np.array(values, dtype=np.int64)


@dataclass
class _Writes:
    """One entry per (write, balance it moves), for writes that answered 2xx or unknown (a refused
    write never took effect): the balance's index, when the write was sent and answered, by how
    much it moves the balance, and whether it answered 2xx."""
    key: np.ndarray
    sent: np.ndarray
    answered: np.ndarray
    by: np.ndarray
    ok: np.ndarray

    @classmethod
    def of(cls, ops: list[Op], keys: list, by: list, owner) -> "_Writes":
        """`keys`, `by`: one per entry; `owner`: which of `ops` each entry is of. Entries of
        records the history never created are left out."""
        key, owner = _ints(keys), _ints(owner)
        known = key >= 0
        owner = owner[known]
        return cls(key[known], _ints([op.invoke_ns for op in ops])[owner], _ints([op.complete_ns for op in ops])[owner],
                   _ints(by)[known], np.array([op.outcome == OK for op in ops], dtype=bool)[owner])

    @classmethod
    def joined(cls, parts: list["_Writes"]) -> "_Writes":
        return cls(*(np.concatenate([getattr(p, f) for p in parts]) for f in ("key", "sent", "answered", "by", "ok")))


def _lines(ops: list[Op], index: dict[str, int], sign: int) -> _Writes:
    """The item lines of checkouts (sign -1) or additions of stock (+1): one entry per line (two
    lines of one item are two entries at the same moments, which sum as one)."""
    return _Writes.of(ops, [index.get(item, -1) for op in ops for item, _ in op.items],
                      [sign * int(quantity) for op in ops for _, quantity in op.items],
                      [n for n, op in enumerate(ops) for _ in op.items])


def _credit(ops: list[Op], index: dict[str, int], sign: int) -> _Writes:
    """The credit a checkout charges (sign -1, its amount: the order's cost) or funds add (+1)."""
    return _Writes.of(ops, [index.get(op.user_id, -1) for op in ops], [sign * int(op.amount or 0) for op in ops],
                      range(len(ops)))


@dataclass
class _Columns:
    """What judging reads needs of a history, as columns. Balances are indexed items first, then
    users (an item and a user may share an id); a read's `key` is its balance's index, or for an
    order its index among the orders a checkout was sent for (-1: none was)."""
    n_keys: int
    writes: _Writes
    r_op: np.ndarray          # each read's op_id, to keep the history's order
    r_of: np.ndarray
    r_key: np.ndarray
    r_id: list
    r_inv: np.ndarray
    r_cmp: np.ndarray
    r_value: np.ndarray
    paid_by: np.ndarray       # per order: the earliest 2xx reply of a checkout of it (_NONE: none)
    sent_by: np.ndarray       # per order: the earliest sending of a checkout of it not refused


def _collect(history: list[Op]) -> _Columns:
    """The writes and the reads of a history, as columns (a pass to sort the rows by kind, then one
    per column of each kind). A balance exists from its create row on: writes to records no create
    row made, and reads of them, are left out. An item's id is matched as its rows hold it (the
    JSON of `items` keeps a shop's ids as the shop gave them)."""
    by_kind: dict[str, list[Op]] = defaultdict(list)
    for op in history:
        by_kind[op.kind].append(op)
    item_ids = dict.fromkeys(op.items[0][0] for op in by_kind[CREATE_ITEM] if op.outcome == OK and op.items)
    user_ids = dict.fromkeys(op.user_id for op in by_kind[CREATE_USER] if op.outcome == OK)
    items = {item: n for n, item in enumerate(item_ids)}
    users = {user: len(items) + n for n, user in enumerate(user_ids)}
    taking = [op for op in by_kind[CHECKOUT] if op.outcome == OK or op.outcome == UNKNOWN]
    adding_stock = [op for op in by_kind[ADD_STOCK] if op.outcome == OK or op.outcome == UNKNOWN]
    adding_funds = [op for op in by_kind[ADD_FUNDS] if op.outcome == OK or op.outcome == UNKNOWN]
    writes = _Writes.joined([_lines(taking, items, -1), _lines(adding_stock, items, 1),
                             _credit(taking, users, -1), _credit(adding_funds, users, 1)])
    orders: dict[str, int] = {}
    order_of = _ints([orders.setdefault(op.order_id, len(orders)) for op in taking])
    paid_by, sent_by = np.full(len(orders), _NONE), np.full(len(orders), _NONE)
    np.maximum.at(sent_by, order_of, -_ints([op.invoke_ns for op in taking]))
    ok = np.array([op.outcome == OK for op in taking], dtype=bool)
    np.maximum.at(paid_by, order_of[ok], -_ints([op.complete_ns for op in taking])[ok])
    paid_by, sent_by = np.where(paid_by == _NONE, _NONE, -paid_by), np.where(sent_by == _NONE, _NONE, -sent_by)
    parts = []
    for of, kind, record, index in ((ITEM, FIND_ITEM, lambda op: op.items[0][0], items),
                                    (USER, FIND_USER, lambda op: op.user_id, users),
                                    (ORDER, FIND_ORDER, lambda op: op.order_id, orders)):
        ops = [op for op in by_kind[kind] if op.outcome == OK and op.amount is not None]
        ids = [record(op) for op in ops]
        key = _ints([index.get(i, -1) for i in ids])
        keep = np.flatnonzero(key >= 0) if of != ORDER else np.arange(len(ops))
        parts.append((_ints([op.op_id for op in ops])[keep], np.full(len(keep), of, dtype=np.int8), key[keep],
                      [ids[i] for i in keep], _ints([op.invoke_ns for op in ops])[keep],
                      _ints([op.complete_ns for op in ops])[keep], _ints([op.amount for op in ops])[keep]))
    r_op, r_of, r_key, r_inv, r_cmp, r_value = (np.concatenate([p[n] for p in parts]) for n in (0, 1, 2, 4, 5, 6))
    r_id = [i for p in parts for i in p[3]]
    order = np.argsort(r_op, kind="stable")
    return _Columns(len(items) + len(users), writes, r_op[order], r_of[order], r_key[order],
                    [r_id[i] for i in order.tolist()], r_inv[order], r_cmp[order], r_value[order], paid_by, sent_by)


# --- time, as small integers that keep its order -----------------------------------------------------

class _Clock:
    """Times as non-negative integers in the same order (their offset from the earliest, or their
    rank among all times when keys × span would not fit in 62 bits), so that (balance, time) is
    one int64 that sorts as the pair does."""

    def __init__(self, times: np.ndarray, n_keys: int):
        self.t0 = int(times.min()) if len(times) else 0
        span = (int(times.max()) - self.t0 + 2) if len(times) else 2
        self.ranks = None
        if (n_keys + 1) * span * 2 >= 1 << 62:
            self.ranks = np.unique(times)
            span = len(self.ranks) + 2
        self.span = span

    def __call__(self, times: np.ndarray) -> np.ndarray:
        """1 + the time's offset (or rank): 0 is kept for a record's creation, before every time."""
        if self.ranks is None:
            return times - self.t0 + 1
        return np.searchsorted(self.ranks, times) + 1

    def key(self, balance: np.ndarray, rel: np.ndarray, after: int) -> np.ndarray:
        """(balance, time, after) as one sortable int64; after 0 sorts before 1 at the same time."""
        return (balance * self.span + rel) * 2 + after


# --- the timeline of possible values ---------------------------------------------------------------

@dataclass
class _Timeline:
    """Every balance's moments, sorted by (balance, time): moment j starts at event j (a record's
    creation, a write's sending, or just after a 2xx write's reply) and lasts to event j+1; `low`
    and `high` are L and U during it; pc, nc, p, n the four sums they are made of, up to event j
    (2xx additions and subtractions answered, additions and subtractions sent)."""
    key: np.ndarray          # sortable (balance, time) of each event
    balance: np.ndarray
    rel: np.ndarray          # when the moment starts, in the clock's units (a creation: 0)
    real_ns: np.ndarray      # when the moment starts (a creation: 0)
    first: np.ndarray        # per balance: index of its creation event
    pc: np.ndarray
    nc: np.ndarray
    p: np.ndarray
    n: np.ndarray

    @property
    def low(self) -> np.ndarray:
        return self.pc + self.n

    @property
    def high(self) -> np.ndarray:
        return self.nc + self.p


def _timeline(c: _Columns, clock: _Clock) -> _Timeline:
    """The events of every balance and the interval after each. A 2xx write's reply takes effect
    just after it (it had taken effect before a read sent later), its sending at once (a read
    answered at that very moment may see it); at one time, replies narrow the interval before
    sendings widen it, so no moment in between allows more than either side."""
    n_keys, w = c.n_keys, c.writes
    w_key, w_inv, w_cmp, w_d, w_ok = w.key, w.sent, w.answered, w.by, w.ok
    creations = np.arange(n_keys, dtype=np.int64)
    balance = np.concatenate([creations, w_key, w_key[w_ok]])
    rel = np.concatenate([np.zeros(n_keys, dtype=np.int64), clock(w_inv), clock(w_cmp[w_ok] + 1)])
    after = np.concatenate([np.zeros(n_keys, dtype=np.int64), np.ones(len(w_key), dtype=np.int64),
                            np.zeros(int(w_ok.sum()), dtype=np.int64)])
    real = np.concatenate([np.zeros(n_keys, dtype=np.int64), w_inv, w_cmp[w_ok] + 1])
    d_sent, d_done = w_d, w_d[w_ok]
    zero = np.zeros(n_keys, dtype=np.int64)
    none_sent, none_done = np.zeros(len(d_sent), dtype=np.int64), np.zeros(len(d_done), dtype=np.int64)
    parts = {  # each event adds to exactly one of the four sums
        "pc": np.concatenate([zero, none_sent, np.maximum(d_done, 0)]),
        "nc": np.concatenate([zero, none_sent, np.minimum(d_done, 0)]),
        "p": np.concatenate([zero, np.maximum(d_sent, 0), none_done]),
        "n": np.concatenate([zero, np.minimum(d_sent, 0), none_done]),
    }
    key = clock.key(balance, rel, after)
    order = np.argsort(key, kind="stable")
    balance = balance[order]
    first = np.searchsorted(balance, creations)
    sums = {}
    for name, delta in parts.items():
        running = np.cumsum(delta[order])
        sums[name] = running - running[first][balance]   # per balance, from its creation
    return _Timeline(key[order], balance, rel[order], real[order], first, **sums)


def _last_in_windows(values: np.ndarray, start: np.ndarray, stop: np.ndarray, threshold: np.ndarray) -> np.ndarray:
    """Per query: the last index in [start, stop] (at most BLOCK of them) with a value ≥ threshold,
    -1 if none; scanned CHUNK queries at a time."""
    out = np.full(len(start), -1, dtype=np.int64)
    offsets = np.arange(BLOCK, dtype=np.int64)
    for lo in range(0, len(start), CHUNK):
        s, e, t = start[lo:lo + CHUNK], stop[lo:lo + CHUNK], threshold[lo:lo + CHUNK]
        at = s[:, None] + offsets[None, :]
        inside = (at <= e[:, None]) & (at >= 0) & (at < len(values))
        hit = inside & (values[np.clip(at, 0, max(len(values) - 1, 0))] >= t[:, None])
        last = BLOCK - 1 - np.argmax(hit[:, ::-1], axis=1)
        out[lo:lo + CHUNK] = np.where(hit.any(axis=1), s + last, -1)
    return out


def last_at_least(values: np.ndarray, hi: np.ndarray, threshold: np.ndarray) -> np.ndarray:
    """Per query q: the largest j ≤ hi[q] with values[j] ≥ threshold[q], or -1. Each query scans
    its own block, then asks the same of the blocks' maxima for the last earlier block that holds
    one, then scans that block: BLOCK values per query per level, log_BLOCK(n) levels."""
    hi = np.asarray(hi, dtype=np.int64)
    threshold = np.asarray(threshold, dtype=np.int64)
    at_hi = np.flatnonzero(hi >= 0)
    at_hi = at_hi[values[hi[at_hi]] >= threshold[at_hi]]
    if len(at_hi):  # most often the answer is hi itself: no scan for those
        rest = np.setdiff1d(np.arange(len(hi)), at_hi, assume_unique=True)
        found = np.full(len(hi), -1, dtype=np.int64)
        found[at_hi] = hi[at_hi]
        found[rest] = last_at_least(values, hi[rest], threshold[rest])
        return found
    if len(values) <= BLOCK:
        return _last_in_windows(values, np.zeros_like(hi), hi, threshold)
    found = _last_in_windows(values, (hi // BLOCK) * BLOCK, hi, threshold)
    rest = np.flatnonzero((found < 0) & (hi >= BLOCK))
    if len(rest):
        padded = np.full(-(-len(values) // BLOCK) * BLOCK, _NONE, dtype=np.int64)
        padded[:len(values)] = values
        block = last_at_least(padded.reshape(-1, BLOCK).max(axis=1), hi[rest] // BLOCK - 1, threshold[rest])
        some = block >= 0
        found[rest[some]] = _last_in_windows(values, block[some] * BLOCK, block[some] * BLOCK + BLOCK - 1,
                                             threshold[rest[some]])
    return found


def _last_possible(t: _Timeline, at: np.ndarray, value: np.ndarray) -> np.ndarray:
    """Per read: the last moment up to `at` (an event index) that allowed its value, -1 if none
    since its balance's creation. Consecutive intervals overlap, so for a value above moment `at`'s
    interval it is the last moment whose U reaches it, and for one below the last whose L does."""
    low, high = t.low, t.high
    out = at.copy()
    above, below = value > high[at], value < low[at]
    out[above] = last_at_least(high, at[above], value[above])
    out[below] = last_at_least(-low, at[below], -value[below])
    first = t.first[t.balance[at]]
    return np.where(out >= first, out, -1)


def _last_not_possible(t: _Timeline, before: np.ndarray, value: np.ndarray) -> np.ndarray:
    """Per read: the last moment up to `before` that lasted and did not allow its value (U below
    it, or L above it), -1 if none. A moment between two events at the same time never lasted:
    a reply and a sending at one instant leave no gap between what was possible before and after."""
    instant = np.append(t.rel[1:] == t.rel[:-1], False) & np.append(t.balance[1:] == t.balance[:-1], False)
    low, high = np.where(instant, _NONE, t.low), np.where(instant, -_NONE - 1, t.high)
    safe = np.maximum(before, 0)
    under = last_at_least(-high, safe, 1 - value)
    over = last_at_least(low, safe, value + 1)
    return np.where(before >= 0, np.maximum(under, over), -1)


# --- judging every read ------------------------------------------------------------------------------

@dataclass
class Reads:
    """Every read made with a value, judged: one entry per read in each column, in the history's
    order. `lower`/`upper`: the bounds its moment allowed (an order's paid flag: 1/1 once a checkout
    answered 2xx, 0/0 before any was sent); `staleness_ns`: -1 unless stale. `monotonic`: pairs
    (earlier read, later read) where the later one showed an older value."""
    of: np.ndarray               # ITEM, USER or ORDER
    ids: list[str]
    value: np.ndarray
    invoke_ns: np.ndarray
    complete_ns: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    status: np.ndarray           # FINE, STALE or IMPOSSIBLE
    staleness_ns: np.ndarray
    monotonic: np.ndarray        # shape (m, 2)

    def __len__(self) -> int:
        return len(self.status)

    @property
    def stale(self) -> np.ndarray:
        return np.flatnonzero(self.status == STALE)

    @property
    def impossible(self) -> np.ndarray:
        return np.flatnonzero(self.status == IMPOSSIBLE)


def _judge_balances(c: _Columns, rows: np.ndarray, out: Reads) -> None:
    """The item and user reads among `rows`: bounds, verdict, staleness, and the later of each pair
    of non-monotonic reads (see _monotonic_balances)."""
    if not len(rows):
        return
    balance = c.r_key[rows]
    inv, cmp, value = out.invoke_ns[rows], out.complete_ns[rows], out.value[rows]
    clock = _Clock(np.concatenate([c.writes.sent, c.writes.answered + 1, inv, cmp]), c.n_keys)
    t = _timeline(c, clock)
    at_sent = np.searchsorted(t.key, clock.key(balance, clock(inv), 1), side="right") - 1
    at_reply = np.searchsorted(t.key, clock.key(balance, clock(cmp), 1), side="right") - 1
    lower, upper = t.pc[at_sent] + t.n[at_reply], t.nc[at_sent] + t.p[at_reply]
    last = _last_possible(t, at_reply, value)
    fine = (lower <= value) & (value <= upper)
    status = np.where(fine, FINE, np.where(last >= 0, STALE, IMPOSSIBLE))
    stale = status == STALE
    staleness = np.full(len(rows), -1, dtype=np.int64)
    staleness[stale] = inv[stale] - t.real_ns[last[stale] + 1]
    out.lower[rows], out.upper[rows], out.status[rows], out.staleness_ns[rows] = lower, upper, status, staleness
    # For monotonic reads, in the clock's units: until when the value was possible (a fine read: its
    # reply), and from when it had been possible without a break up to then.
    next_moment = np.minimum(np.maximum(last, 0) + 1, len(t.rel) - 1)
    until = np.where(fine, clock(cmp), np.where(stale, t.rel[next_moment], -1))
    gap = _last_not_possible(t, np.where(last >= 0, last - 1, -1), value)
    since = np.where(last < 0, -1, np.where(gap >= t.first[balance], t.rel[np.maximum(gap, 0) + 1], 0))
    out.monotonic = np.concatenate([out.monotonic, _monotonic_balances(rows, balance, clock, inv, cmp, until, since)])


def _monotonic_balances(rows, balance, clock: _Clock, inv, cmp, until, since) -> np.ndarray:
    """(earlier, later) read pairs of one balance where the later read was sent after the earlier
    one's reply and its value was last possible before the earlier read's value became possible
    for the stretch the earlier read saw: a client that saw a value, then an older one. For each
    later read the earlier read whose stretch began last is the example."""
    if not len(rows):
        return np.empty((0, 2), dtype=np.int64)
    by_reply = np.argsort(clock.key(balance, clock(cmp), 0), kind="stable")
    reply_key = clock.key(balance, clock(cmp), 0)[by_reply]
    # Per balance, the latest stretch start among reads answered so far (balances sort apart).
    began = balance[by_reply] * clock.span + np.maximum(since[by_reply], 0)
    best = np.maximum.accumulate(began)
    where = np.maximum.accumulate(np.where(began == best, np.arange(len(began)), 0))
    earlier = np.searchsorted(reply_key, clock.key(balance, clock(inv), 0), side="left") - 1
    safe = np.maximum(earlier, 0)
    same = (earlier >= 0) & (balance[by_reply][safe] == balance)
    r1 = by_reply[where[safe]]
    older = same & (since[r1] > 0) & (until >= 0) & (until < since[r1])
    return np.stack([rows[r1[older]], rows[older]], axis=1)


def _judge_orders(c: _Columns, rows: np.ndarray, out: Reads) -> None:
    """The order reads among `rows`: paid once a checkout of it answered 2xx before the read was
    sent (else stale, from that reply); paid only if a checkout not refused was sent by its reply
    (else impossible); and never unpaid after an earlier read showed it paid."""
    order = c.r_key[rows]
    ok_reply = np.where(order >= 0, c.paid_by[np.maximum(order, 0)], _NONE) if len(c.paid_by) else np.full(len(rows), _NONE)
    sent = np.where(order >= 0, c.sent_by[np.maximum(order, 0)], _NONE) if len(c.sent_by) else np.full(len(rows), _NONE)
    inv, cmp, paid = out.invoke_ns[rows], out.complete_ns[rows], out.value[rows]
    lower = ((ok_reply != _NONE) & (ok_reply < inv)).astype(np.int64)
    upper = ((sent != _NONE) & (sent <= cmp)).astype(np.int64)
    status = np.where(paid > upper, IMPOSSIBLE, np.where(paid < lower, STALE, FINE))
    out.lower[rows], out.upper[rows], out.status[rows] = lower, upper, status
    out.staleness_ns[rows] = np.where(status == STALE, inv - ok_reply, -1)
    seen_paid: dict[str, int] = {}   # order -> the read that showed it paid and answered first
    for i in sorted(rows[paid > 0].tolist(), key=lambda i: out.complete_ns[i]):
        seen_paid.setdefault(out.ids[i], i)
    pairs = [(seen_paid[out.ids[i]], i) for i in rows[paid == 0].tolist()
             if out.ids[i] in seen_paid and out.complete_ns[seen_paid[out.ids[i]]] < out.invoke_ns[i]]
    out.monotonic = np.concatenate([out.monotonic, np.array(pairs, dtype=np.int64).reshape(-1, 2)])


def judge_reads(history: list[Op]) -> Reads:
    """Every read of the history that came back with a value, judged against the moment it was
    made (see the module's docstring). Reads of a record the history never created are left out."""
    c = _collect(history)
    n = len(c.r_of)
    out = Reads(c.r_of, c.r_id, c.r_value, c.r_inv, c.r_cmp, np.zeros(n, dtype=np.int64), np.zeros(n, dtype=np.int64),
                np.zeros(n, dtype=np.int8), np.full(n, -1, dtype=np.int64), np.empty((0, 2), dtype=np.int64))
    _judge_balances(c, np.flatnonzero(out.of != ORDER), out)
    _judge_orders(c, np.flatnonzero(out.of == ORDER), out)
    out.monotonic = out.monotonic[np.lexsort((out.monotonic[:, 0], out.monotonic[:, 1]))]
    return out


# --- what the reads say, in figures and words --------------------------------------------------------

def label(reads: Reads, i: int) -> str:
    """A read's record as the terminal names it: 'item 3', 'user 7', 'order 12'."""
    return f"{OF[reads.of[i]]} {reads.ids[i]}"


def _seconds(ns: int) -> str:
    return f"{ns / 1e9:.3g} s" if ns >= 1e9 else f"{ns / 1e6:.3g} ms"


def describe(reads: Reads, i: int) -> str:
    """One read that broke the rule, in a sentence: what it read and what its moment allowed."""
    value, lower, upper, status = int(reads.value[i]), int(reads.lower[i]), int(reads.upper[i]), reads.status[i]
    if reads.of[i] == ORDER:
        if status == STALE:
            return (f"{label(reads, i)} read unpaid {_seconds(int(reads.staleness_ns[i]))} after a checkout of it "
                    f"answered 2xx")
        return f"{label(reads, i)} read paid before any checkout of it that was not refused had been sent"
    bound = f"at most {upper}" if value > upper else f"at least {lower}"
    if status == STALE:
        return (f"{label(reads, i)} read {value} when {bound} was possible (last possible "
                f"{_seconds(int(reads.staleness_ns[i]))} before)")
    return f"{label(reads, i)} read {value} when {bound} was possible, and no earlier moment allowed it"


def describe_monotonic(reads: Reads, earlier: int, later: int) -> str:
    """A pair of reads of one record of which the later showed the older value."""
    shown = (lambda i: "paid" if reads.value[i] else "unpaid") if reads.of[later] == ORDER else \
        (lambda i: str(int(reads.value[i])))
    return (f"{label(reads, later)} read {shown(later)} {_seconds(int(reads.invoke_ns[later] - reads.complete_ns[earlier]))} "
            f"after an earlier read had shown the newer {shown(earlier)}")


def _stalest_first(reads: Reads) -> list[int]:
    """The impossible reads in the history's order, then the stale ones, stalest first."""
    stale = reads.stale
    return reads.impossible.tolist() + stale[np.argsort(-reads.staleness_ns[stale], kind="stable")].tolist()


def _ms(values: np.ndarray) -> dict:
    """p50, p99 and max of staleness in ms (exact, nearest rank); None each without any."""
    if not len(values):
        return {"p50": None, "p99": None, "max": None}
    p50, p99 = exact_percentile(values / 1e6, [50, 99])
    return {"p50": round(float(p50), 3), "p99": round(float(p99), 3), "max": round(float(values.max()) / 1e6, 3)}


def worst_ids(reads: Reads, n: int = MAX_EXAMPLES) -> list[dict]:
    """The n records with the most reads that broke the rule (then the stalest): per record, its
    reads, how many were stale and impossible, their share of its reads, and its staleness."""
    wrong = np.flatnonzero(reads.status != FINE)
    if not len(wrong):
        return []
    records: dict[tuple[int, str], list[int]] = {}
    for i in wrong.tolist():
        records.setdefault((int(reads.of[i]), reads.ids[i]), []).append(i)
    per_record: dict[tuple[int, str], int] = defaultdict(int)
    for of, id_ in zip(reads.of.tolist(), reads.ids):
        if (of, id_) in records:
            per_record[(of, id_)] += 1
    ranked = sorted(records.items(), key=lambda kv: (-len(kv[1]), -int(reads.staleness_ns[kv[1]].max()), kv[0]))
    rows = []
    for (of, id_), rows_of in ranked[:n]:
        staleness = reads.staleness_ns[rows_of]
        rows.append({"of": OF[of], "id": id_, "reads": per_record[(of, id_)],
                     "stale": int((reads.status[rows_of] == STALE).sum()),
                     "impossible": int((reads.status[rows_of] == IMPOSSIBLE).sum()),
                     "share": round(len(rows_of) / per_record[(of, id_)], 4),
                     "staleness_ms": _ms(staleness[staleness >= 0])})
    return rows


def figures(reads: Reads) -> dict:
    """summary.json's `reads`: how many reads were checked, stale and impossible, the staleness
    distribution (exact), examples in words (impossible ones first, then the stalest), the worst
    records, and the non-monotonic pairs."""
    staleness = reads.staleness_ns[reads.stale]
    checked = len(reads)
    return {
        "checked": checked,
        "stale": len(staleness),
        "impossible": len(reads.impossible),
        "share": round((len(staleness) + len(reads.impossible)) / checked, 4) if checked else 0.0,
        "max_staleness_s": round(float(staleness.max()) / 1e9, 6) if len(staleness) else None,
        "staleness_ms": _ms(staleness),
        "examples": [describe(reads, i) for i in _stalest_first(reads)[:MAX_EXAMPLES]],
        "by_id": worst_ids(reads),
        "non_monotonic": {"count": len(reads.monotonic),
                          "examples": [describe_monotonic(reads, a, b) for a, b in reads.monotonic[:MAX_EXAMPLES].tolist()]},
    }


def reads_line(figures_: dict | None) -> str | None:
    """The terminal's line on reads during the load (None when the load made none)."""
    if not figures_ or not figures_["checked"]:
        return None
    checked, stale, impossible = figures_["checked"], figures_["stale"], figures_["impossible"]
    if not stale and not impossible:
        return f"reads: {checked:,} checked, all possible"
    parts = []
    if stale:
        ms = figures_["staleness_ms"]
        parts.append(f"{stale:,} of {checked:,} stale (p99 {_seconds(ms['p99'] * 1e6)}, max {_seconds(ms['max'] * 1e6)})")
    if impossible:
        parts.append(f"{impossible:,}{'' if stale else f' of {checked:,}'} impossible")
    monotonic = figures_["non_monotonic"]["count"]
    if monotonic:
        parts.append(f"{monotonic:,} non-monotonic")
    return f"reads: {', '.join(parts)}, e.g. {figures_['examples'][0]}"


# --- the verdict -------------------------------------------------------------------------------------

def _records(reads: Reads, rows: list[int]) -> list[str]:
    """The records of those reads, each once, in their order."""
    return list(dict.fromkeys(label(reads, i) for i in rows))


def verdict(reads: Reads, linearizable: bool) -> CheckResult:
    """What the reads do to the verdict: an impossible read is an anomaly (no moment of the history
    explains it: a write counted twice, a refused one applied, a value made up); a stale read is a
    warning, since API.md defines consistency on the quiet state, unless the run promises
    linearizable reads; reads that went back in time are a warning beside (each is a stale read
    too). The figures go to the summary's `reads`."""
    found = figures(reads)
    ordered = _stalest_first(reads)
    impossible, stale = ordered[:len(reads.impossible)], ordered[len(reads.impossible):]
    anomalies, warnings = [], []
    if impossible:
        names = _records(reads, impossible)
        anomalies.append(Anomaly(IMPOSSIBLE_READ, len(impossible), len(impossible), names[:MAX_EXAMPLES],
                                 f"reads during the load showed a value no moment of the history allowed, e.g. "
                                 f"{describe(reads, impossible[0])}"))
    if stale:
        names, ms = _records(reads, stale), found["staleness_ms"]
        finding = Anomaly(STALE_READ, len(stale), len(stale), names[:MAX_EXAMPLES],
                          f"reads during the load missed writes answered 2xx before they were sent (staleness p50 "
                          f"{_seconds(ms['p50'] * 1e6)}, p99 {_seconds(ms['p99'] * 1e6)}, max "
                          f"{_seconds(ms['max'] * 1e6)})" + ("; --linearizable makes that an anomaly" if linearizable else ""))
        (anomalies if linearizable else warnings).append(finding)
    if len(reads.monotonic):
        later = reads.monotonic[:, 1].tolist()
        warnings.append(Anomaly(NON_MONOTONIC_READ, len(later), len(later), _records(reads, later)[:MAX_EXAMPLES],
                                f"a read showed an older value than an earlier read of the same record had (reads "
                                f"spread over copies that lag differently), e.g. "
                                f"{describe_monotonic(reads, *reads.monotonic[0].tolist())}"))
    result = CheckResult.of(anomalies, warnings=warnings)
    result.figures = found
    return result


def check_reads(scenario, history: list[Op], state: dict) -> CheckResult:
    """The reads made during the load, judged against real time (a checker: see checkers.check_run)."""
    return verdict(judge_reads(history), scenario.linearizable)


def figures_of(result: CheckResult) -> dict | None:
    """summary.json's `reads` from a run's composed result (None when the read checker failed)."""
    return next((p.figures or None for p in result.parts if p.checker == CHECKER and p.error is None), None)
