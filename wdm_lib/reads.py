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
# Moments per block in last_at_least: a read looks at most at one block per level, and there are
# log_BLOCK(n) levels (16 was the fastest of 8 to 128 over bench/bench_reads.py's history).
BLOCK = 16
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


class _Moves:
    """Writes of one kind of balance as they are gathered, a list per column (rows of small objects
    would cost the pass its speed): the record's id, sent, answered, by how much, 2xx?"""

    def __init__(self):
        self.ids, self.sent, self.answered, self.by, self.ok = [], [], [], [], []


def _writes(moved: list[tuple[_Moves, dict]]) -> _Writes:
    """The writes of every kind of balance (with the index of its records) as columns, the entries
    of records never created left out. Each list goes as soon as its column is made: all the lists
    and all the columns at once were once the pass's peak of memory."""
    def column(name: str, made) -> np.ndarray:
        parts = []
        for moves, index in moved:
            parts.append(made(getattr(moves, name), index))
            setattr(moves, name, None)
        return np.concatenate(parts)

    key = column("ids", lambda ids, index: _ints([index.get(id_, -1) for id_ in ids]))
    sent, answered, by = (column(name, lambda values, _: _ints(values)) for name in ("sent", "answered", "by"))
    ok = column("ok", lambda values, _: np.array(values, dtype=bool))
    known = key >= 0
    if known.all():
        return _Writes(key, sent, answered, by, ok)
    return _Writes(key[known], sent[known], answered[known], by[known], ok[known])


@dataclass
class _Columns:
    """What judging reads needs of a history, as columns. Balances are indexed items first, then
    users (an item and a user may share an id); a read's `key` is its balance's index, or for an
    order its index among the orders a checkout was sent for (-1: none was); its `record` an index
    unique to what it read (balances first, then orders)."""
    n_keys: int
    writes: _Writes | None  # let go once the timeline is made of them (_timeline)
    r_of: np.ndarray
    r_key: np.ndarray
    r_record: np.ndarray
    r_id: list
    r_inv: np.ndarray
    r_cmp: np.ndarray
    r_value: np.ndarray
    paid_by: np.ndarray       # per order: the earliest 2xx reply of a checkout of it (_NONE: none)
    sent_by: np.ndarray       # per order: the earliest sending of a checkout of it not refused


@dataclass
class _Rows:
    """What one pass over a history gathers, as lists: the writes of stock and of credit, the
    checkouts by order (order id, sent, answered, 2xx?), the reads with a value (of, id, sent,
    answered, value), and the ids of the items and users created."""
    stock: _Moves = field(default_factory=_Moves)
    credit: _Moves = field(default_factory=_Moves)
    checkouts: tuple = field(default_factory=lambda: ([], [], [], []))
    reads: tuple = field(default_factory=lambda: ([], [], [], [], []))
    items: list = field(default_factory=list)
    users: list = field(default_factory=list)


def _gather(history: list[Op]) -> _Rows:
    """One pass over the rows: writes that answered 2xx or unknown (a refused one never took effect),
    each checkout's lines of one item as entries at the same moments (which sum as one), reads that
    came back with a value. It appends to local names: a method call per entry would double its time."""
    rows = _Rows()
    stock, credit = rows.stock, rows.credit
    s_ids, s_sent, s_answered, s_by, s_ok = stock.ids, stock.sent, stock.answered, stock.by, stock.ok
    u_ids, u_sent, u_answered, u_by, u_ok = credit.ids, credit.sent, credit.answered, credit.by, credit.ok
    c_order, c_sent, c_answered, c_ok = rows.checkouts
    r_of, r_id, r_inv, r_cmp, r_value = rows.reads
    for op in history:
        kind, outcome = op.kind, op.outcome
        if kind == FIND_ITEM or kind == FIND_USER or kind == FIND_ORDER:
            if outcome == OK and op.amount is not None:
                r_of.append(ITEM if kind == FIND_ITEM else USER if kind == FIND_USER else ORDER)
                r_id.append(op.items[0][0] if kind == FIND_ITEM else op.user_id if kind == FIND_USER else op.order_id)
                r_inv.append(op.invoke_ns)
                r_cmp.append(op.complete_ns)
                r_value.append(op.amount)
        elif outcome != OK and outcome != UNKNOWN:
            continue
        elif kind == CHECKOUT or kind == ADD_STOCK:
            sent, answered, ok, sign = op.invoke_ns, op.complete_ns, outcome == OK, -1 if kind == CHECKOUT else 1
            for item, quantity in op.items:
                s_ids.append(item)
                s_sent.append(sent)
                s_answered.append(answered)
                s_by.append(sign * int(quantity))
                s_ok.append(ok)
            if kind == CHECKOUT:
                u_ids.append(op.user_id)
                u_sent.append(sent)
                u_answered.append(answered)
                u_by.append(-int(op.amount or 0))
                u_ok.append(ok)
                c_order.append(op.order_id)
                c_sent.append(sent)
                c_answered.append(answered)
                c_ok.append(ok)
        elif kind == ADD_FUNDS:
            u_ids.append(op.user_id)
            u_sent.append(op.invoke_ns)
            u_answered.append(op.complete_ns)
            u_by.append(int(op.amount or 0))
            u_ok.append(outcome == OK)
        elif kind == CREATE_ITEM and outcome == OK and op.items:
            rows.items.append(op.items[0][0])
        elif kind == CREATE_USER and outcome == OK:
            rows.users.append(op.user_id)
    return rows


def _earliest(order_of: np.ndarray, n: int, times: np.ndarray) -> np.ndarray:
    """Per order: the earliest of its times (_NONE: none)."""
    latest_negated = np.full(n, _NONE)
    np.maximum.at(latest_negated, order_of, -times)
    return np.where(latest_negated == _NONE, _NONE, -latest_negated)


def _collect(history: list[Op]) -> _Columns:
    """The writes and the reads of a history, as columns. A balance exists from its create row on:
    writes to records no create row made, and reads of them, are left out. An item's id is matched
    as its rows hold it (the JSON of `items` keeps a shop's ids as the shop gave them)."""
    rows = _gather(history)
    items = {item: n for n, item in enumerate(dict.fromkeys(rows.items))}
    users = {user: len(items) + n for n, user in enumerate(dict.fromkeys(rows.users))}
    n_keys = len(items) + len(users)
    writes = _writes([(rows.stock, items), (rows.credit, users)])
    c_order, c_sent, c_answered, c_ok = rows.checkouts
    orders: dict = {}
    order_of = _ints([orders.setdefault(order, len(orders)) for order in c_order])
    answered_ok = np.array(c_ok, dtype=bool)
    paid_by = _earliest(order_of[answered_ok], len(orders), _ints(c_answered)[answered_ok])
    sent_by = _earliest(order_of, len(orders), _ints(c_sent))
    # Each read's balance (or order) index, and a record index: orders no checkout was sent for get
    # theirs after every other.
    r_of, r_id, r_inv, r_cmp, r_value = rows.reads
    of = np.array(r_of, dtype=np.int8)
    index = {ITEM: items, USER: users, ORDER: orders}
    key = _ints([index[o].get(i, -1) for o, i in zip(r_of, r_id)])
    record = np.where(of == ORDER, n_keys + key, key)
    unchecked: dict = {}
    never = np.flatnonzero((of == ORDER) & (key < 0))
    record[never] = n_keys + len(orders) + _ints([unchecked.setdefault(r_id[i], len(unchecked)) for i in never.tolist()])
    keep = np.flatnonzero((of == ORDER) | (key >= 0))
    ids = r_id if len(keep) == len(r_id) else [r_id[i] for i in keep.tolist()]
    return _Columns(n_keys, writes, of[keep], key[keep], record[keep], ids, _ints(r_inv)[keep], _ints(r_cmp)[keep],
                    _ints(r_value)[keep], paid_by, sent_by)


def _search(keys: np.ndarray, queries: np.ndarray, side: str) -> np.ndarray:
    """np.searchsorted, the queries taken in their order: the keys are then read in passing rather
    than at random (twenty times faster for a million queries into millions of keys)."""
    order = np.argsort(queries)
    found = np.empty(len(queries), dtype=np.int64)
    found[order] = np.searchsorted(keys, queries[order], side=side)
    return found


# --- time, as small integers that keep its order -----------------------------------------------------

class _Clock:
    """Times as non-negative integers in the same order (their offset from the earliest, or their
    rank among all times when keys × span would not fit in 62 bits), so that (balance, time) is
    one int64 that sorts as the pair does."""

    def __init__(self, times: list[np.ndarray], n_keys: int):
        """`times`: every time to be told apart, in arrays (kept apart: one array of them all would
        be the pass's largest for a moment)."""
        times = [t for t in times if len(t)]
        self.t0 = min(int(t.min()) for t in times) if times else 0
        span = (max(int(t.max()) for t in times) - self.t0 + 2) if times else 2
        self.ranks = None
        if (n_keys + 1) * span * 2 >= 1 << 62:
            self.ranks = np.unique(np.concatenate(times))
            span = len(self.ranks) + 2
        self.span = span

    def __call__(self, times: np.ndarray) -> np.ndarray:
        """1 + the time's offset (or rank): 0 is kept for a record's creation, before every time."""
        if self.ranks is None:
            return times - self.t0 + 1
        return _search(self.ranks, times, "left") + 1

    def real(self, rel: np.ndarray) -> np.ndarray:
        """The times (ns) of those offsets or ranks."""
        return rel + self.t0 - 1 if self.ranks is None else self.ranks[rel - 1]

    def key(self, balance: np.ndarray, rel, after: int) -> np.ndarray:
        """(balance, time, after) as one sortable int64; after 0 sorts before 1 at the same time."""
        return (balance * self.span + rel) * 2 + after

    def balance(self, key: np.ndarray) -> np.ndarray:
        return key // 2 // self.span

    def rel(self, key: np.ndarray) -> np.ndarray:
        return key // 2 % self.span


# --- the timeline of possible values ---------------------------------------------------------------

@dataclass
class _Timeline:
    """Every balance's moments, sorted by (balance, time): moment j starts at event j (a record's
    creation, a write's sending, or just after a 2xx write's reply) and lasts to event j+1, and
    allows the values [low[j], high[j]]: L = pc + n and U = nc + p, of four sums up to event j, pc
    and nc of the 2xx additions and subtractions answered, p and n of the additions and subtractions
    sent. Only the sorted keys are kept of the events: a moment's balance and start come from its
    key (the clock's)."""
    key: np.ndarray
    first: np.ndarray        # per balance: index of its creation event
    low: np.ndarray
    high: np.ndarray


def _timeline(c: _Columns, clock: _Clock, read_sent: np.ndarray,
              read_answered: np.ndarray) -> tuple[_Timeline, np.ndarray, np.ndarray, np.ndarray]:
    """The events of every balance and the interval after each; and for the reads whose keys
    (clock.key(balance, time, 1)) at their sending and reply are given, the moment each was answered
    in and its bounds: L's certain part at its sending plus every subtraction sent by its reply, and
    U likewise. A 2xx write's reply takes effect just after it (it had taken effect before a read
    sent later), its sending at once (a read answered at that very moment may see it); at one time,
    replies narrow the interval before sendings widen it, so no moment in between allows more than
    either side.

    The columns here are the longest of the pass (one entry per event: two per write), so each goes
    as soon as it has served: the writes' own (c.writes is let go), and the four sums one at a time."""
    writes, c.writes = c.writes, None
    done = writes.ok
    creations = np.arange(c.n_keys, dtype=np.int64)
    key = np.concatenate([clock.key(creations, 0, 0), clock.key(writes.key, clock(writes.sent), 1),
                          clock.key(writes.key[done], clock(writes.answered[done] + 1), 0)])
    by = np.concatenate([np.zeros_like(creations), writes.by, writes.by[done]])
    sendings = len(creations) + len(writes.by)
    del writes, done
    order = np.argsort(key)
    key = key[order]
    by = by[order]
    reply = order >= sendings
    del order
    first = np.searchsorted(key, clock.key(creations, 0, 0))
    at_sent = _search(key, read_sent, "right") - 1
    at_reply = _search(key, read_answered, "right") - 1

    def summed(events: np.ndarray) -> np.ndarray:
        """Per balance from its creation on, the running sum of what those events add. Each
        balance's events start with its creation (balance 0's at event 0), so one running sum over
        all events restarts at each creation once the creation takes away the balance before's sum."""
        running = np.where(events, by, 0)
        if len(first):
            running[first[1:]] -= np.add.reduceat(running, first)[:-1]
        return np.cumsum(running, out=running)

    up = by > 0
    # The certain parts are needed only at the reads' moments: each is taken there and let go.
    certain = summed(reply & up)
    lower = certain[at_sent] - certain[at_reply]
    certain = summed(reply & ~up)
    upper = certain[at_sent] - certain[at_reply]
    del certain
    low, high = summed(reply == up), summed(reply != up)   # pc + n, nc + p: their events apart
    lower += low[at_reply]
    upper += high[at_reply]
    return _Timeline(key, first, low, high), at_reply, lower, upper


def _last_in_windows(values: np.ndarray, start: np.ndarray, stop: np.ndarray, threshold: np.ndarray,
                     most: bool) -> np.ndarray:
    """Per query: the last index in [start, stop] (at most BLOCK of them) with a value ≥ threshold
    (≤ it if `most`), -1 if none. Every query steps back from its stop at once, and leaves as soon
    as it is answered: most are within a step or two."""
    reaches = np.less_equal if most else np.greater_equal
    out = np.full(len(start), -1, dtype=np.int64)
    at = stop.copy()
    pending = np.flatnonzero((at >= start) & (at >= 0))
    while len(pending):
        here = at[pending]
        hit = reaches(values[here], threshold[pending])
        out[pending[hit]] = here[hit]
        pending = pending[~hit]
        at[pending] -= 1
        pending = pending[(at[pending] >= start[pending]) & (at[pending] >= 0)]
    return out


def last_at_least(values: np.ndarray, hi: np.ndarray, threshold: np.ndarray, most: bool = False) -> np.ndarray:
    """Per query q: the largest j ≤ hi[q] with values[j] ≥ threshold[q] (with `most`, ≤ it), or -1.
    Each query looks at hi, then scans back through its own block, then asks the same of the
    blocks' maxima (minima) for the last earlier block that holds one, and scans that block: at
    most BLOCK values per query per level, log_BLOCK(n) levels. The queries go in the order of their
    hi, so the values are read in passing, not at random. (`most` spares a negated copy of values
    the size of the history.)"""
    hi = np.asarray(hi, dtype=np.int64)
    order = np.argsort(hi)
    found = np.empty(len(hi), dtype=np.int64)
    found[order] = _last_at_least_sorted(values, hi[order], np.asarray(threshold, dtype=np.int64)[order], most)
    return found


def _last_at_least_sorted(values: np.ndarray, hi: np.ndarray, threshold: np.ndarray, most: bool) -> np.ndarray:
    """last_at_least of queries sorted by hi."""
    found = np.full(len(hi), -1, dtype=np.int64)
    valid = np.flatnonzero(hi >= 0)
    reaches = np.less_equal if most else np.greater_equal
    found[valid] = np.where(reaches(values[hi[valid]], threshold[valid]), hi[valid], -1)
    rest = valid[found[valid] < 0]
    if not len(rest):
        return found
    hi, threshold = hi[rest], threshold[rest]
    found[rest] = in_block = _last_in_windows(values, (hi // BLOCK) * BLOCK, hi - 1, threshold, most)
    up = np.flatnonzero((in_block < 0) & (hi >= BLOCK))
    if len(up):
        extreme = (np.minimum if most else np.maximum).reduceat(values, np.arange(0, len(values), BLOCK))
        block = _last_at_least_sorted(extreme, hi[up] // BLOCK - 1, threshold[up], most)
        some = block >= 0
        found[rest[up[some]]] = _last_in_windows(values, block[some] * BLOCK, block[some] * BLOCK + BLOCK - 1,
                                                 threshold[up[some]], most)
    return found


def _last_possible(low: np.ndarray, high: np.ndarray, at: np.ndarray, value: np.ndarray,
                   first: np.ndarray) -> np.ndarray:
    """Per read: the last moment up to `at` (an event index) that allowed its value, -1 if none
    since its balance's creation (moment `first`). Consecutive intervals overlap, so for a value
    above moment `at`'s interval it is the last moment whose U reaches it, and for one below the
    last whose L does."""
    out = at.copy()
    above, below = value > high[at], value < low[at]
    out[above] = last_at_least(high, at[above], value[above])
    out[below] = last_at_least(low, at[below], value[below], most=True)
    return np.where(out >= first, out, -1)


def _last_not_possible(low: np.ndarray, high: np.ndarray, key: np.ndarray, before: np.ndarray,
                       value: np.ndarray) -> np.ndarray:
    """Per read: the last moment up to `before` that lasted and did not allow its value (U below
    it, or L above it), -1 if none. A moment between two events of one balance at the same time
    (the same key but for the event's order) never lasted: a reply and a sending at one instant
    leave no gap between what was possible before and after. Such moments' low and high are
    overwritten (to allow every value): the caller needs them no more, and copies of the two would
    be the largest columns of the pass."""
    at_time = key // 2
    instant = np.append(at_time[1:] == at_time[:-1], False)
    del at_time
    low[instant], high[instant] = _NONE, -_NONE - 1
    del instant
    safe = np.maximum(before, 0)
    under = last_at_least(high, safe, value - 1, most=True)
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
    record: np.ndarray           # an index unique to the record read
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
    clock = _Clock([c.writes.sent, c.writes.answered + 1, inv, cmp], c.n_keys)
    t, at_reply, lower, upper = _timeline(c, clock, clock.key(balance, clock(inv), 1),
                                          clock.key(balance, clock(cmp), 1))
    low, high, first = t.low, t.high, t.first[balance]
    last = _last_possible(low, high, at_reply, value, first)
    fine = (lower <= value) & (value <= upper)
    status = np.where(fine, FINE, np.where(last >= 0, STALE, IMPOSSIBLE))
    stale = status == STALE
    staleness = np.full(len(rows), -1, dtype=np.int64)
    staleness[stale] = inv[stale] - clock.real(clock.rel(t.key[last[stale] + 1]))
    out.lower[rows], out.upper[rows], out.status[rows], out.staleness_ns[rows] = lower, upper, status, staleness
    # For monotonic reads, in the clock's units: until when the value was possible (a fine read: its
    # reply), and from when it had been possible without a break up to then.
    after_last = t.key[np.minimum(np.maximum(last, 0) + 1, len(t.key) - 1)]
    until = np.where(fine, clock(cmp), np.where(stale, clock.rel(after_last), -1))
    since = np.full(len(rows), -1, dtype=np.int64)
    asked = np.flatnonzero(_may_be_overtaken(clock, balance, inv, cmp, until, stale))
    gap = _last_not_possible(low, high, t.key, last[asked] - 1, value[asked])
    since[asked] = np.where(gap >= first[asked], clock.rel(t.key[np.maximum(gap, 0) + 1]), 0)
    out.monotonic = np.concatenate([out.monotonic, _monotonic_balances(rows, balance, clock, inv, cmp, until, since)])


def _may_be_overtaken(clock: _Clock, balance, inv, cmp, until, stale) -> np.ndarray:
    """Which reads a later stale read of their balance may show older than: one sent after this
    read's reply whose value was last possible before this read's was (`until`, the most the
    stretch of this read's value can have begun at). Only for those is the stretch worth finding."""
    later = np.flatnonzero(stale)
    if not len(later):
        return np.zeros(len(balance), dtype=bool)
    sent = clock.key(balance[later], clock(inv[later]), 0)
    order = np.argsort(sent)
    sent, of, by = sent[order], balance[later][order], until[later][order]
    # From each stale read on, the earliest `until` among those of its balance sent then or later.
    earliest = np.minimum.accumulate((of * (clock.span + 1) + by)[::-1])[::-1] - of * (clock.span + 1)
    next_stale = _search(sent, clock.key(balance, clock(cmp), 1), "right")
    there = np.minimum(next_stale, len(sent) - 1)
    return (until >= 0) & (next_stale < len(sent)) & (of[there] == balance) & (earliest[there] < until)


def _monotonic_balances(rows, balance, clock: _Clock, inv, cmp, until, since) -> np.ndarray:
    """(earlier, later) read pairs of one balance where the later read was sent after the earlier
    one's reply and its value was last possible before the earlier read's value became possible
    for the stretch the earlier read saw: a client that saw a value, then an older one. For each
    later read the earlier read whose stretch began last is the example."""
    if not len(rows):
        return np.empty((0, 2), dtype=np.int64)
    by_reply = np.argsort(clock.key(balance, clock(cmp), 0))
    reply_key = clock.key(balance, clock(cmp), 0)[by_reply]
    # Per balance, the latest stretch start among reads answered so far (balances sort apart).
    began = balance[by_reply] * clock.span + np.maximum(since[by_reply], 0)
    best = np.maximum.accumulate(began)
    where = np.maximum.accumulate(np.where(began == best, np.arange(len(began)), 0))
    earlier = _search(reply_key, clock.key(balance, clock(inv), 0), "left") - 1
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
    out = Reads(c.r_of, c.r_id, c.r_record, c.r_value, c.r_inv, c.r_cmp, np.zeros(n, dtype=np.int64), np.zeros(n, dtype=np.int64),
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
    size = int(reads.record.max()) + 1
    total, bad = np.bincount(reads.record, minlength=size), np.bincount(reads.record[wrong], minlength=size)
    stalest = np.full(size, -1, dtype=np.int64)
    np.maximum.at(stalest, reads.record[wrong], reads.staleness_ns[wrong])
    candidates = np.flatnonzero(bad)
    worst = candidates[np.lexsort((candidates, -stalest[candidates], -bad[candidates]))[:n]]
    rows = []
    for record in worst.tolist():
        of_record = wrong[reads.record[wrong] == record]
        staleness = reads.staleness_ns[of_record]
        first = int(of_record[0])
        rows.append({"of": OF[reads.of[first]], "id": reads.ids[first], "reads": int(total[record]),
                     "stale": int((reads.status[of_record] == STALE).sum()),
                     "impossible": int((reads.status[of_record] == IMPOSSIBLE).sum()),
                     "share": round(len(of_record) / int(total[record]), 4), "staleness_ms": _ms(staleness[staleness >= 0])})
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
