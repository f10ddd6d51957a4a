"""Pure verdicts over (scenario, history, state). No I/O: tests feed them hand-made histories.

`state` is the dict a workload writes to state.json:
    {"initial": {"items": {id: {"stock", "price"}}, "users": {id: {"credit"}}, "after_op": op_id},
     "final":   {"items": {...}, "users": {...}, "orders": {id: {"paid", "items", "user_id", "total_cost"}}}}
A record the target no longer has is None. `initial` is read back after seeding; operations with
op_id > after_op are the ones the run judges.

Outcomes follow API.md: `ok` happened, `fail` did not, `unknown` is never counted either way. An
unknown checkout is resolved from the order's final `paid` flag when that is unambiguous (see
resolve_checkouts); otherwise it stays unresolved, and every balance it touches is accepted
anywhere between "it happened" and "it did not". Additions (stock, funds) follow the same rule:
an unknown one widens the range of its balance.

Anomalies are facts about balances and records: any one makes the state inconsistent. Warnings are
facts about replies (a checkout that answered 5xx yet happened, a run in which nothing could
succeed): worth a user's attention, but API.md allows them, so they never turn the verdict.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from typing import Callable, Iterable

from wdm_lib import convergence
from wdm_lib.history import (ADD_FUNDS, ADD_STOCK, CAUSES, CHECKOUT, CREATE_ITEM, CREATE_USER, FAIL, FAULT, OK,
                             UNKNOWN, Op, unknown_cause)
from wdm_lib.workloads.consistency_scenario import ORIGINAL

MAX_EXAMPLES = 10
CONSISTENT, WITH_WARNINGS, INCONSISTENT = "consistent", "consistent with warnings", "inconsistent"
# A checker raised: the run has no verdict, only what the other checkers found.
CHECKER_FAILED = "no verdict: a checker failed"

# The names of anomalies (facts about balances and records) and warnings (facts about replies),
# each defined once: summaries, reports, fault measures and tests name them through these.
STOCK_MISMATCH, OVERSOLD, NEGATIVE_STOCK, LOST_ITEM = "stock-mismatch", "oversold", "negative-stock", "lost-item"
CREDIT_MISMATCH, NEGATIVE_CREDIT, LOST_USER = "credit-mismatch", "negative-credit", "lost-user"
CONSERVATION, PAID_FLAG, PAID_AFTER_REFUSAL = "conservation", "paid-flag", "paid-after-refusal"
LOST_SEED_WRITE, ORDER_CONTENTS = "lost-seed-write", "order-contents"
LOST_ACK, NOTHING_SUCCEEDED = "lost-ack", "nothing-succeeded"
MISSING_ITEM, MISSING_USER = "missing-item", "missing-user"
# What a mixed load's re-checkouts can get wrong, named beside the balances they break.
HALF_APPLIED_RECHECKOUT, IGNORED_RECHECKOUT = "half-applied-recheckout", "ignored-recheckout"
REGRESSED = "regressed"
MONEY_NOT_CONSERVED, CHECKOUTS_UNACCOUNTED = "money-not-conserved", "checkouts-unaccounted"
# Records the target acknowledged and then did not show: what a fault that loses writes leaves.
LOST_WRITES = (PAID_FLAG, LOST_ITEM, LOST_USER, LOST_SEED_WRITE, ORDER_CONTENTS)


@dataclass
class Anomaly:
    name: str
    count: int              # how many items, users, orders or operations show it
    magnitude: int          # how much stock or credit went wrong (or the count, where nothing is summed)
    examples: list[str]     # up to MAX_EXAMPLES ids
    description: str
    details: list[dict] = field(default_factory=list)   # one row per id: expected, actual, diff
    # Balance anomalies only: the ids whose value is above what the history allows, and by how much
    # in all ({"ids": n, "by": +x}), and those below ({"ids": n, "by": -y}). A magnitude alone
    # would show 14 users charged too much and 14 too little as one number.
    over: dict | None = None
    under: dict | None = None
    checker: str = ""       # the checker that found it


@dataclass
class CheckResult:
    valid: bool | None      # None: the checker failed (`error`), so it says nothing either way
    anomalies: list[Anomaly] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    warnings: list[Anomaly] = field(default_factory=list)
    checker: str = ""       # whose result this is ("" for one composed of several)
    error: str | None = None
    parts: list["CheckResult"] = field(default_factory=list)   # a composed result: each checker's own
    # What a checker measured beside its verdict, for the summary (the read checker's figures).
    figures: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def errors(self) -> list["CheckResult"]:
        return [p for p in self.parts or [self] if p.error is not None]

    @property
    def verdict(self) -> str:
        if self.anomalies:
            return INCONSISTENT
        if self.errors:
            return CHECKER_FAILED
        return WITH_WARNINGS if self.warnings else CONSISTENT

    @classmethod
    def of(cls, anomalies: list[Anomaly], notes: list[str] | None = None,
           warnings: list[Anomaly] | None = None) -> "CheckResult":
        return cls(valid=not anomalies, anomalies=anomalies, notes=notes or [], warnings=warnings or [])


def check_safe(name: str, check, *args) -> CheckResult:
    """One checker's result under its name; a checker that raises is that checker's error (its
    result says nothing either way), not the end of the others' (Jepsen's check-safe)."""
    try:
        result = check(*args)
    except Exception as e:  # a checker's bug, or a state it did not foresee
        return CheckResult(valid=None, checker=name, error=f"{e.__class__.__name__}: {e}")
    result.checker = name
    for a in result.anomalies + result.warnings:
        a.checker = name
    return result


def compose(checks: dict, *args) -> CheckResult:
    """Every named checker over the same inputs, each run safely (Jepsen's compose): anomalies,
    warnings and notes together, and each checker's own result in `parts`. Valid when every
    checker found the state valid; invalid when one found an anomaly; None when none did but one
    failed."""
    parts = [check_safe(name, check, *args) for name, check in checks.items()]
    return merge(parts)


def merge(results: Iterable[CheckResult]) -> CheckResult:
    parts = list(results)
    anomalies = [a for r in parts for a in r.anomalies]
    merged = CheckResult(valid=not anomalies, anomalies=anomalies, notes=[n for r in parts for n in r.notes],
                         warnings=[w for r in parts for w in r.warnings], parts=parts)
    if not anomalies and merged.errors:
        merged.valid = None
    return merged


# --- resolving what happened ---------------------------------------------------------------------

@dataclass
class Resolution:
    happened: list[Op]       # ok, or unknown resolved as happened
    not_happened: list[Op]   # fail, or unknown resolved as not happened
    unresolved: list[Op]     # unknown, and the final state cannot tell
    resolved_happened: list[Op]
    resolved_not: list[Op]


def rows_read(scenario, after_op: int) -> Callable[[int, str], bool]:
    """Which rows of a history the verdict reads (history.read_ops' `keep`): the load's (after
    `after_op`, the last row before the initial read), and of the seeding only each item's
    creation (the price check_seeding holds it to) and, under a workload that reads during the
    load, every balance's creation and additions (the read checker starts each balance there).
    Orders are judged by the lines their checkouts carry: the rows that built them are never read."""
    seeding = {CREATE_ITEM} if scenario.workload == ORIGINAL else {CREATE_ITEM, CREATE_USER, ADD_STOCK, ADD_FUNDS}
    return lambda op_id, kind: op_id > after_op or kind in seeding


def judged(history: list[Op], state: dict) -> list[Op]:
    after = state.get("initial", {}).get("after_op", -1)
    return [op for op in history if op.op_id > after and op.kind != FAULT]


def resolve_checkouts(history: list[Op], state: dict) -> Resolution:
    """What each checkout did, as far as the history and the final state can tell. An unknown one is
    resolved from its order's final `paid` flag only where that is unambiguous (a checkout that
    happened leaves its order paid, and nothing makes a paid order unpaid):
    - the order is unpaid and none of its checkouts answered 2xx: none of its unknown ones happened;
    - it is paid, none answered 2xx, and exactly one is unknown: that one happened (the others were
      refused).
    Otherwise (a paid order that also had a 2xx checkout, or several unknown ones: which of them
    happened, and how many?) they stay unresolved."""
    checkouts = [op for op in judged(history, state) if op.kind == CHECKOUT]
    answered_ok = {op.order_id for op in checkouts if op.outcome == OK}
    unknowns = Counter(op.order_id for op in checkouts if op.outcome == UNKNOWN)
    orders = state["final"].get("orders", {})
    r = Resolution([], [], [], [], [])
    for op in checkouts:
        order = orders.get(op.order_id)
        if op.outcome == OK:
            r.happened.append(op)
        elif op.outcome == FAIL:
            r.not_happened.append(op)
        elif order is None or op.order_id in answered_ok:
            r.unresolved.append(op)
        elif not order["paid"]:
            r.not_happened.append(op)
            r.resolved_not.append(op)
        elif unknowns[op.order_id] == 1:
            r.happened.append(op)
            r.resolved_happened.append(op)
        else:
            r.unresolved.append(op)
    return r


def _quantities(items: list) -> dict[str, int]:
    q: dict[str, int] = defaultdict(int)
    for item_id, quantity in items:
        q[str(item_id)] += int(quantity)
    return q


def _examples(ids: Iterable) -> list[str]:
    return [str(i) for i in list(ids)[:MAX_EXAMPLES]]


def _missing_anomaly(name: str, what: str, ids: list[str]) -> list[Anomaly]:
    """Records that are not there, where nothing is known of what they held."""
    return [Anomaly(name, len(ids), len(ids), _examples(ids), what)] if ids else []


def _balance_anomaly(name: str, what: str, rows: list[dict]) -> list[Anomaly]:
    if not rows:
        return []
    rows.sort(key=lambda d: -abs(d["diff"]))
    over = [d["diff"] for d in rows if d["diff"] > 0]
    under = [d["diff"] for d in rows if d["diff"] < 0]
    return [Anomaly(name, len(rows), sum(abs(d["diff"]) for d in rows), _examples(d["id"] for d in rows),
                    what, rows, over={"ids": len(over), "by": sum(over)}, under={"ids": len(under), "by": sum(under)})]




# --- the checkers ----------------------------------------------------------------------------------

def _stock_pairs(op: Op) -> list:
    """What an addition or a checkout moves of stock: [[item_id, quantity], ...]."""
    return op.items


def _credit_pairs(op: Op) -> list:
    """... and of credit: [[user_id, amount]]."""
    return [[op.user_id, op.amount]]


def _moves(history: list[Op], state: dict, addition: str, pairs, res: Resolution,
           leave_out: frozenset[int] = frozenset(), maybe: frozenset[int] = frozenset()) -> tuple[list, list, list]:
    """(additions with their outcome, checkouts that happened, unresolved checkouts) as (pairs,
    outcome) of one balance. For a hypothesis about some checkouts that happened: `leave_out`,
    op ids of those to count as not applied; `maybe`, of those to count as either (unresolved)."""
    adds = [(pairs(op), op.outcome) for op in judged(history, state) if op.kind == addition]
    skip = leave_out | maybe
    return (adds, [(pairs(op), OK) for op in res.happened if op.op_id not in skip],
            [(pairs(op), UNKNOWN) for op in res.unresolved + [op for op in res.happened if op.op_id in maybe]])


def _stock_moves(history: list[Op], state: dict) -> tuple[list, list, list]:
    return _moves(history, state, ADD_STOCK, _stock_pairs, resolve_checkouts(history, state))


def _credit_moves(history: list[Op], state: dict) -> tuple[list, list, list]:
    return _moves(history, state, ADD_FUNDS, _credit_pairs, resolve_checkouts(history, state))


def _additions(adds: list[tuple[list, str]], outcomes: tuple[str, ...] = (OK,)) -> defaultdict[str, int]:
    """id -> what additions of those outcomes added: 2xx ones by default (what certainly was added);
    with UNKNOWN too, the most that may have been."""
    added: defaultdict[str, int] = defaultdict(int)
    for pairs, outcome in adds:
        if outcome in outcomes:
            for key, amount in pairs:
                added[str(key)] += int(amount or 0)
    return added


def _compare_balances(initial: dict, final: dict, field_: str, moves: tuple[list, list, list]
                      ) -> tuple[list[dict], list[dict], list[dict]]:
    """Per id: (rows outside the range the history allows, rows below zero, rows of ids no longer
    found, with what they held)."""
    low, high = _expected_ranges({k: v[field_] for k, v in initial.items() if v is not None}, *moves)
    mismatch, negative, missing = [], [], []
    for key, before in initial.items():
        if before is None:
            continue
        after = final.get(key)
        if after is None:
            # Gone, and what it held with it: the least the history says it should still hold (never
            # below zero, where unresolved checkouts stretch the range that far).
            held = max(low[key], 0)
            missing.append({"id": key, "expected": held, "actual": None, "diff": -held})
            continue
        actual = after[field_]
        if not low[key] <= actual <= high[key]:
            expected = high[key] if actual > high[key] else low[key]
            mismatch.append({"id": key, "expected": expected, "actual": actual, "diff": actual - expected})
        if actual < 0:
            negative.append({"id": key, "expected": 0, "actual": actual, "diff": actual})
    return mismatch, negative, missing


def check_stock(scenario, history: list[Op], state: dict) -> CheckResult:
    """Per item: final stock against initial + added - quantities of checkouts that happened;
    oversold (more sold than there was) and negative stock."""
    initial = state["initial"]["items"]
    moves = _stock_moves(history, state)
    mismatch, negative, missing = _compare_balances(initial, state["final"]["items"], "stock", moves)
    adds, happened, _ = moves
    # What an item may have had: an addition of unknown outcome may have happened.
    added = _additions(adds, (OK, UNKNOWN))
    available = {k: v["stock"] + added[k] for k, v in initial.items() if v is not None}
    sold: dict[str, int] = defaultdict(int)
    for items, _ in happened:
        for item_id, q in _quantities(items).items():
            sold[item_id] += q
    oversold = [{"id": i, "expected": available[i], "actual": sold[i], "diff": sold[i] - available[i]}
                for i in available if sold[i] > available[i]]
    anomalies = (
        _balance_anomaly(STOCK_MISMATCH, "final stock differs from initial stock plus additions minus "
                         "the quantities of checkouts that happened", mismatch)
        + _balance_anomaly(OVERSOLD, "checkouts that happened took more of an item than it had "
                           "(expected: the most it had; actual: what was sold)", oversold)
        + _balance_anomaly(NEGATIVE_STOCK, "an item's final stock is below zero", negative)
        + _balance_anomaly(LOST_ITEM, "an item that existed after seeding can no longer be found (expected: "
                           "the stock it should still hold, lost with it)", missing))
    return CheckResult.of(anomalies)


def check_credit(scenario, history: list[Op], state: dict) -> CheckResult:
    """Per user: final credit against initial + funds added - cost of checkouts that happened;
    negative credit."""
    mismatch, negative, missing = _compare_balances(state["initial"]["users"], state["final"]["users"],
                                                    "credit", _credit_moves(history, state))
    anomalies = (
        _balance_anomaly(CREDIT_MISMATCH, "final credit differs from initial credit plus funds added "
                         "minus the cost of checkouts that happened", mismatch)
        + _balance_anomaly(NEGATIVE_CREDIT, "a user's final credit is below zero", negative)
        + _balance_anomaly(LOST_USER, "a user who existed after seeding can no longer be found (expected: "
                           "the credit they should still hold, lost with them)", missing))
    return CheckResult.of(anomalies)


def _expected_ranges(initial: dict[str, int], adds: list[tuple[list, str]], taken: list[tuple[list, str]],
                     maybe_taken: list[tuple[list, str]]) -> tuple[dict, dict]:
    """For each id, the lowest and highest final balance the history allows. Definite additions and
    takings move both bounds; unknown additions raise only the upper bound, unresolved takings lower
    only the lower bound."""
    low, high = dict(initial), dict(initial)

    def move(bound: dict, pairs: list, sign: int) -> None:
        for key, amount in pairs:
            key = str(key)
            if key in bound and amount is not None:
                bound[key] += sign * int(amount)

    for pairs, outcome in adds:
        if outcome == OK:
            move(low, pairs, +1)
            move(high, pairs, +1)
        elif outcome == UNKNOWN:
            move(high, pairs, +1)
    for pairs, _ in taken:
        move(low, pairs, -1)
        move(high, pairs, -1)
    for pairs, _ in maybe_taken:
        move(low, pairs, -1)
    return low, high


def check_conservation(scenario, history: list[Op], state: dict) -> CheckResult:
    """Money against goods from the state alone, no client log: the credit users spent must equal
    price times the stock that left the shelves (funds and stock added during the run accounted).
    An addition of unknown outcome that happened makes the state show more than the 2xx ones
    explain: unknown funds make the spending look smaller by up to their sum, unknown stock the
    goods sold by up to its value, and any difference within that range is accepted."""
    i0, i1 = state["initial"]["items"], state["final"]["items"]
    u0, u1 = state["initial"]["users"], state["final"]["users"]
    stock_adds, funds_adds = _stock_moves(history, state)[0], _credit_moves(history, state)[0]
    stock_added, funds_added = _additions(stock_adds), _additions(funds_adds)
    present = {i: v for i, v in i0.items() if v is not None and i1.get(i) is not None}
    sold_value = sum(v["price"] * (v["stock"] + stock_added[i] - i1[i]["stock"]) for i, v in present.items())
    spent = sum(v["credit"] + funds_added[u] - u1[u]["credit"]
                for u, v in u0.items() if v is not None and u1.get(u) is not None)
    maybe_stock, maybe_funds = _additions(stock_adds, (UNKNOWN,)), _additions(funds_adds, (UNKNOWN,))
    low = -sum(maybe_funds[u] for u, v in u0.items() if v is not None and u1.get(u) is not None)
    high = sum(v["price"] * maybe_stock[i] for i, v in present.items())
    diff = spent - sold_value
    if low <= diff <= high:
        return CheckResult.of([])
    beyond = diff - high if diff > high else diff - low
    return CheckResult.of([Anomaly(
        CONSERVATION, 1, abs(beyond), [], f"users spent {spent} credit but goods worth {sold_value} left the stock",
        [{"id": "total", "expected": spent - beyond, "actual": spent, "diff": beyond}],
        over={"ids": int(beyond > 0), "by": max(beyond, 0)}, under={"ids": int(beyond < 0), "by": min(beyond, 0)})])


def check_orders(scenario, history: list[Op], state: dict) -> CheckResult:
    """An order's `paid` flag against the observed outcomes: a checkout that answered 2xx must leave
    it paid; an order whose every checkout answered 4xx must stay unpaid."""
    orders = state["final"].get("orders", {})
    by_order: dict[str, list[Op]] = defaultdict(list)
    for op in judged(history, state):
        if op.kind == CHECKOUT:
            by_order[op.order_id].append(op)
    unpaid_ok, paid_refused = [], []
    for order_id, ops in by_order.items():
        order = orders.get(order_id)
        if order is None:
            continue
        outcomes = {op.outcome for op in ops}
        if OK in outcomes and not order["paid"]:
            unpaid_ok.append(order_id)
        elif outcomes == {FAIL} and order["paid"]:
            paid_refused.append(order_id)
    anomalies = []
    if unpaid_ok:
        anomalies.append(Anomaly(PAID_FLAG, len(unpaid_ok), len(unpaid_ok), _examples(unpaid_ok),
                                 "checkout answered 2xx but the order is not paid"))
    if paid_refused:
        anomalies.append(Anomaly(PAID_AFTER_REFUSAL, len(paid_refused), len(paid_refused),
                                 _examples(paid_refused), "every checkout answered 4xx but the order is paid"))
    return CheckResult.of(anomalies)


def _recheckouts(res: Resolution) -> tuple[frozenset[int], frozenset[int]]:
    """Op ids of the checkouts that happened of an order another checkout that happened was for (all
    but the first sent, per order), split in two: those sent after that order's first checkout had
    answered (the system knew it was paid), and those racing it (it may not have known yet)."""
    first_done: dict[str, int] = {}
    after, racing = [], []
    for op in sorted(res.happened, key=lambda op: op.invoke_ns):
        if op.order_id not in first_done:
            first_done[op.order_id] = op.complete_ns
        else:
            (after if op.invoke_ns > first_done[op.order_id] else racing).append(op.op_id)
            first_done[op.order_id] = min(first_done[op.order_id], op.complete_ns)
    return frozenset(after), frozenset(racing)


def check_recheckouts(scenario, history: list[Op], state: dict) -> CheckResult:
    """Orders checked out more than once, judged per API.md: each checkout that happened charged
    `total_cost` and took every line, or it was refused and changed nothing. The balances judge the
    sums; this names what a wrong re-checkout did. When the stock (or credit) balances are wrong, and
    every one of them would be right had the re-checkouts of paid orders taken no stock (or charged
    nothing) — those racing their order's first checkout may have or not — the re-checkouts were
    half applied (`half-applied-recheckout`); both at once, a re-checkout answered 2xx and changed
    nothing (`ignored-recheckout`: API.md has a second checkout charge and take stock again, or be
    refused with a 4xx). The rows are the balances' own (expected with every checkout that
    happened applied), so the signed magnitudes are theirs."""
    res = resolve_checkouts(history, state)
    after, racing = _recheckouts(res)
    if not after:
        return CheckResult.of([])
    wrong = {}
    for field_, kind, addition, pairs in (("stock", "items", ADD_STOCK, _stock_pairs),
                                          ("credit", "users", ADD_FUNDS, _credit_pairs)):
        initial, final = state["initial"][kind], state["final"][kind]
        rows = _compare_balances(initial, final, field_, _moves(history, state, addition, pairs, res))[0]
        if rows and not _compare_balances(initial, final, field_,
                                          _moves(history, state, addition, pairs, res, after, racing))[0]:
            wrong[field_] = rows
    n = len(after)
    if set(wrong) == {"stock", "credit"}:
        return CheckResult.of(_balance_anomaly(
            IGNORED_RECHECKOUT, f"re-checkouts of paid orders ({n} answered 2xx) took no stock and charged nothing: "
            f"every balance is right as if they had been refused, which API.md asks to be a 4xx",
            wrong["stock"] + wrong["credit"]))
    if "stock" in wrong:
        return CheckResult.of(_balance_anomaly(
            HALF_APPLIED_RECHECKOUT, f"re-checkouts of paid orders ({n} answered 2xx) charged the user but took no "
            f"stock: every item's stock is right as if they had taken none", wrong["stock"]))
    if "credit" in wrong:
        return CheckResult.of(_balance_anomaly(
            HALF_APPLIED_RECHECKOUT, f"re-checkouts of paid orders ({n} answered 2xx) took the stock but charged "
            f"nothing: every user's credit is right as if they had been charged nothing", wrong["credit"]))
    return CheckResult.of([])


def unknowns_by_cause(history: list[Op], state: dict) -> dict[str, dict[str, int]]:
    """Unknown checkouts per cause (5xx, timeout, reset, other status), each split by how the final
    state resolved them. Every cause is counted the same way: API.md makes them all 'unknown'."""
    res = resolve_checkouts(history, state)
    counts: dict[str, dict[str, int]] = {}
    for ops, how in ((res.resolved_happened, "happened"), (res.resolved_not, "not_happened"),
                     (res.unresolved, "unresolved")):
        for op in ops:
            row = counts.setdefault(unknown_cause(op), {"happened": 0, "not_happened": 0, "unresolved": 0})
            row[how] += 1
    return {cause: counts[cause] for cause in CAUSES if cause in counts}


# What to do about unknowns of each cause: advice that fits the cause, not a blanket "raise --timeout".
CAUSE_ADVICE = {
    "timeout": "they got no reply within --timeout: raise --timeout if the system is just slow, or lower "
               "--concurrency",
    "reset": "the connection was dropped or reset before a reply (a gateway out of connections, a crashing "
             "service): raising --timeout will not help; lower --concurrency, and look at the system's logs",
    "5xx": "the system answered with a server error: its logs say why (the error column of history.csv "
           "holds the start of each reply)",
    "other-status": "the system answered with a status that is neither 2xx nor 4xx (a redirect?): API.md "
                    "makes that unknown",
}


def check_unknowns(scenario, history: list[Op], state: dict) -> CheckResult:
    """Unknown checkouts, resolved where the final state can tell, and named by cause. A 5xx for a
    checkout that happened is a lost acknowledgement (`lost-ack`): the client was told it failed
    while the stock and credit were taken. API.md allows it (a 5xx is unknown, and an unknown may
    have happened), so it is a warning, never an anomaly; the balances judge the rest."""
    res = resolve_checkouts(history, state)
    causes = unknowns_by_cause(history, state)
    notes = []
    for cause, n in causes.items():
        total = sum(n.values())
        notes.append(f"{total} {'checkout' if total == 1 else 'checkouts'} had an unknown outcome ({cause}): "
                     f"{n['happened']} happened, "
                     f"{n['not_happened']} did not, {n['unresolved']} unresolved; {CAUSE_ADVICE[cause]}.")
    lost_ack = [op for op in res.resolved_happened if unknown_cause(op) == "5xx"]
    warnings = []
    if lost_ack:
        warnings.append(Anomaly(LOST_ACK, len(lost_ack), len(lost_ack), _examples(op.order_id for op in lost_ack),
                                "checkout answered 5xx, yet the order is paid: it happened and the client "
                                "was told it failed"))
    return CheckResult.of([], notes, warnings)


def _why_nothing_can_succeed(scenario) -> str:
    """The scenario's own reason no checkout could succeed, when its numbers make that certain (under
    the original workload only: a mixed load adds funds and stock as it goes)."""
    if scenario.workload != ORIGINAL:
        return ""
    reasons = []
    cost = scenario.items_per_order * scenario.quantity * scenario.item_price
    if cost > scenario.user_credit:
        reasons.append(f"every order costs {cost} but each user has credit {scenario.user_credit}")
    if scenario.quantity > scenario.item_stock:
        reasons.append(f"every order asks for {scenario.quantity} of an item that has stock {scenario.item_stock}")
    return "; ".join(reasons)


def check_something_happened(scenario, history: list[Op], state: dict) -> CheckResult:
    """A run in which no checkout happened tested refusals only: every balance is trivially right.
    Consistent, but a user must not read it as a test of the checkout path (`nothing-succeeded`)."""
    res = resolve_checkouts(history, state)
    tried = res.happened + res.not_happened + res.unresolved
    if not tried or res.happened or res.unresolved:
        return CheckResult.of([])
    why = _why_nothing_can_succeed(scenario)
    return CheckResult.of([], warnings=[Anomaly(
        NOTHING_SUCCEEDED, len(tried), len(tried), [],
        "no checkout happened, so the run tested refusals only"
        + (f" ({why})" if why else " (check the scenario's stock and credit against what the orders cost)"))])


def check_seeding(scenario, history: list[Op], state: dict) -> CheckResult:
    """Acknowledged seeding writes must be visible in the initial read-back: each item's stock and
    the price it was created with (its create_item row), each user's credit."""
    prices = {str(op.items[0][0]): op.amount for op in history
              if op.kind == CREATE_ITEM and op.outcome == OK and op.items}
    rows = []
    for item_id, v in state["initial"]["items"].items():
        # Without its row (a history cut short), any price the scenario allows.
        lo, hi = (prices[item_id],) * 2 if item_id in prices else scenario.price_range
        if v is None or v["stock"] != scenario.item_stock or not lo <= v["price"] <= hi:
            rows.append({"id": item_id, "expected": scenario.item_stock,
                         "actual": None if v is None else v["stock"],
                         "diff": (0 if v is None else v["stock"]) - scenario.item_stock})
    for user_id, v in state["initial"]["users"].items():
        if v is None or v["credit"] != scenario.user_credit:
            rows.append({"id": user_id, "expected": scenario.user_credit,
                         "actual": None if v is None else v["credit"],
                         "diff": (0 if v is None else v["credit"]) - scenario.user_credit})
    return CheckResult.of(_balance_anomaly(
        LOST_SEED_WRITE, "after seeding answered 2xx, an item or user did not show the stock, price "
        "or credit it was given", rows))


def check_order_contents(scenario, history: list[Op], state: dict) -> CheckResult:
    """Each order as the target reads it back against what was added to it (items and total cost)."""
    orders = state["final"].get("orders", {})
    wrong: dict[str, None] = {}  # ordered set: examples in history order
    for op in history:
        if op.kind != CHECKOUT or op.order_id in wrong:
            continue
        order = orders.get(op.order_id)
        if order is None or (_quantities(order["items"]) != _quantities(op.items)
                             or order["total_cost"] != op.amount or str(order["user_id"]) != op.user_id):
            wrong[op.order_id] = None
    if not wrong:
        return CheckResult.of([])
    return CheckResult.of([Anomaly(ORDER_CONTENTS, len(wrong), len(wrong), _examples(wrong),
                                   "an order's items, user or total cost differ from what was added to it")])


def check_read_back(scenario, history: list[Op], state: dict) -> CheckResult:
    """The final read-back pass by pass (`state["passes"]`: each whole pass's verdict, from the
    last checkout reply on): a correct system never moves away from a right final state, so a
    valid pass followed by an invalid one that held, came back from, or ended the read-back is an
    anomaly, whether or not the state ever settled (convergence.regression says which count). A
    late compensation that undoes a checkout, or a reader that flaps to a stale copy, does that; a
    reader that lags shows invalid passes turning valid, and a system still at work a pass read
    torn, which are no anomaly. (A single pass, as the checkers judge each one, has no `passes`.)"""
    passes = state.get("passes") or []
    found = convergence.regression(passes)
    if found is None:
        return CheckResult.of([])
    right, wrong = found
    broken = [p for p in passes if p["t_s"] >= wrong and not p["valid"]]
    names = sorted({name for p in broken for name in p["anomalies"]})
    return CheckResult.of([Anomaly(
        REGRESSED, len(broken), len(broken), [],
        f"the final state was right {right:g} s after the last checkout reply, and a later pass "
        f"({wrong:g} s) showed it wrong ({', '.join(names) or 'anomalies'}): the system moved away from a "
        f"right state (a late compensation, or a reader that serves a stale copy now and then)")])


# The consistency checkers by name, in the order their findings are listed.
CONSISTENCY_CHECKERS = {"seeding": check_seeding, "order-contents": check_order_contents, "stock": check_stock,
                        "credit": check_credit, "conservation": check_conservation, "orders": check_orders,
                        "recheckouts": check_recheckouts,
                        "unknowns": check_unknowns, "something-happened": check_something_happened,
                        "read-back": check_read_back}


def check_consistency(scenario, history: list[Op], state: dict) -> CheckResult:
    """The state's checkers: each pass of the final read-back is judged with these."""
    return compose(CONSISTENCY_CHECKERS, scenario, history, state)


def run_checkers() -> dict:
    """Every checker of a consistency run by name, in order: the state's, then the reads made during
    the load against real time (wdm_lib.reads), which judge the history, not a pass of the read-back."""
    from wdm_lib import reads  # it builds on this module's results

    return {**CONSISTENCY_CHECKERS, reads.CHECKER: reads.check_reads}


def check_run(scenario, history: list[Op], state: dict) -> CheckResult:
    """A consistency run's verdict: every checker of run_checkers() over its history and state."""
    return compose(run_checkers(), scenario, history, state)


# --- the original benchmark's four figures --------------------------------------------------------

ORIGINAL_CAVEATS = (
    "The original counts every reply that is not 4xx as a success (5xx and timeouts included), "
    "assumes all stock sells, reads only the first item, adds the item price once per success "
    "whatever the order holds, and takes the absolute value of the payment figures, so errors "
    "of opposite sign cancel and their direction is hidden.")


def original_figures(scenario, history: list[Op], state: dict) -> dict | None:
    """The four numbers the original consistency test prints, computed exactly as it defines them;
    None under a workload other than the original's, which they do not describe (one price, first
    checkouts only)."""
    if scenario.workload != ORIGINAL:
        return None
    successes = sum(1 for op in judged(history, state)
                    if op.kind == CHECKOUT and not (op.status is not None and 400 <= op.status < 500))
    all_stock = scenario.n_items * scenario.item_stock
    correct_user_state = scenario.n_users * scenario.user_credit - all_stock * scenario.item_price
    items = state["final"]["items"]
    first_item = next(iter(state["initial"]["items"]), None)
    first_stock = (items.get(first_item) or {}).get("stock", 0) if first_item is not None else 0
    logged_credit = scenario.n_users * scenario.user_credit - scenario.item_price * successes
    db_credit = sum(v["credit"] for v in state["final"]["users"].values() if v is not None)
    return {
        "stock_inconsistencies_in_logs": successes - all_stock,
        "stock_inconsistencies_in_db": (all_stock - first_stock) - all_stock,
        "payment_inconsistencies_in_logs": abs(correct_user_state - logged_credit),
        "payment_inconsistencies_in_db": abs(correct_user_state - db_credit),
    }


# --- the stress run's books ------------------------------------------------------------------------
# A stress run records no history of balances, only its raw request rows; after the load, --verify
# reads every batch-initialised item's stock and user's credit. `recorded` is what the rows say
# happened (checkouts_ok / checkouts_unknown / add_funds_ok / add_funds_unknown, counts); `state`
# is {"items": {id: {"stock"} or None}, "users": {id: {"credit"} or None}}.

ITEMS_PER_STRESS_ORDER = 2  # every batch-initialised order holds two items of quantity 1 (API.md)


def stress_books(scenario, recorded: dict, state: dict) -> dict:
    """The figures the stress checks compare: stock sold, its price, credit spent (net of the funds
    certainly added), and the checkouts the shop's stock says happened."""
    stocks = [v["stock"] for v in state["items"].values() if v is not None]
    credits = [v["credit"] for v in state["users"].values() if v is not None]
    funds_added = recorded["add_funds_ok"] * scenario.funds_amount
    stock_sold = scenario.n_items * scenario.item_stock - sum(stocks)
    return {"stock_sold": stock_sold, "stock_value_sold": scenario.item_price * stock_sold,
            "credit_spent": scenario.n_users * scenario.user_credit + funds_added - sum(credits),
            "funds_added": funds_added, "add_funds_unknown": recorded["add_funds_unknown"],
            "checkouts_in_shop": stock_sold / ITEMS_PER_STRESS_ORDER,
            "checkouts_ok": recorded["checkouts_ok"], "checkouts_unknown": recorded["checkouts_unknown"]}


def check_stress_missing(scenario, recorded: dict, state: dict) -> CheckResult:
    """Every item and user of the batch init exists: a target initialised with other sizes (or not
    at all) makes every other figure meaningless."""
    items = sorted((i for i, v in state["items"].items() if v is None), key=_id_order)
    users = sorted((u for u, v in state["users"].items() if v is None), key=_id_order)
    anomalies = _missing_anomaly(MISSING_ITEM, "an item of the batch init is unknown to the target", items)
    anomalies += _missing_anomaly(MISSING_USER, "a user of the batch init is unknown to the target", users)
    notes = [f"{len(items)} items and {len(users)} users of the batch init are unknown to the target; was it "
             f"initialised with these sizes (wdm stress init, or --init)?"] if anomalies else []
    return CheckResult.of(anomalies, notes)


def check_stress_negative(scenario, recorded: dict, state: dict) -> CheckResult:
    """No stock and no credit below zero: a checkout sold what was not there or spent what was not."""
    stock = sorted(((i, v["stock"]) for i, v in state["items"].items() if v is not None and v["stock"] < 0),
                   key=lambda x: _id_order(x[0]))
    credit = sorted(((u, v["credit"]) for u, v in state["users"].items() if v is not None and v["credit"] < 0),
                    key=lambda x: _id_order(x[0]))
    anomalies = []
    if stock:
        anomalies.append(Anomaly(NEGATIVE_STOCK, len(stock), -sum(s for _, s in stock), _examples(i for i, _ in stock),
                                 "an item's stock is below zero"))
    if credit:
        anomalies.append(Anomaly(NEGATIVE_CREDIT, len(credit), -sum(c for _, c in credit),
                                 _examples(u for u, _ in credit), "a user's credit is below zero"))
    return CheckResult.of(anomalies)


def check_stress_money(scenario, recorded: dict, state: dict) -> CheckResult:
    """Credit spent equals price times stock sold. An add funds of unknown outcome may or may not
    have added `funds_amount`: the books balance if some number of them explains the gap."""
    b = stress_books(scenario, recorded, state)
    gap = b["stock_value_sold"] - b["credit_spent"]
    amount = scenario.funds_amount
    explained = gap == 0 or (amount > 0 and gap % amount == 0 and 0 <= gap // amount <= b["add_funds_unknown"])
    if explained:
        return CheckResult.of([])
    return CheckResult.of(
        [Anomaly(MONEY_NOT_CONSERVED, 1, gap, [], "credit spent differs from price times stock sold")],
        [f"credit spent ({b['credit_spent']}) differs from price times stock sold ({b['stock_value_sold']}) "
         f"by {gap}."])


def check_stress_checkouts(scenario, recorded: dict, state: dict) -> CheckResult:
    """The checkouts the shop's stock shows lie between those that answered 2xx and those plus the
    unknown ones. More: checkouts happened that the run did not record as such (rows were lost, or
    the shop acted on a refusal); fewer: a 2xx checkout did not take its stock."""
    b = stress_books(scenario, recorded, state)
    shop, ok, unknown = b["checkouts_in_shop"], b["checkouts_ok"], b["checkouts_unknown"]
    if ok <= shop <= ok + unknown:
        return CheckResult.of([])
    gap = shop - (ok + unknown) if shop > ok + unknown else shop - ok
    return CheckResult.of(
        [Anomaly(CHECKOUTS_UNACCOUNTED, 1, int(gap) if float(gap).is_integer() else gap, [],
                 "the checkouts the shop's stock shows disagree with the checkout requests recorded")],
        [f"the shop's stock shows {shop:g} checkouts happened, but the requests recorded hold {ok} that "
         f"answered 2xx and {unknown} of unknown outcome."])


# The books checks of --verify, by name; each assumes every record is there to be summed.
STRESS_CHECKERS = {"negative": check_stress_negative, "money": check_stress_money,
                   "checkouts": check_stress_checkouts}


def check_money(scenario, recorded: dict, state: dict) -> CheckResult:
    """Every stress check over the books read back by --verify. With records missing, the sums say
    nothing: only the missing records are reported."""
    missing = compose({"missing": check_stress_missing}, scenario, recorded, state)
    if missing.valid is not True:
        return missing
    return compose(STRESS_CHECKERS, scenario, recorded, state)


def _id_order(i: str):
    return (0, int(i)) if i.isdigit() else (1, i)
