"""summary.json of a consistency run, and the short verdict table the CLI prints. Pure."""

from __future__ import annotations

from collections import Counter

from wdm_lib import convergence, reads, summaries
from wdm_lib.analysis import latency_percentiles
from wdm_lib.faults.measures import fault_lines, measure_faults, requests_of
from wdm_lib.checkers import (ORIGINAL_CAVEATS, CheckResult, judged, original_figures, resolve_checkouts,
                              unknowns_by_cause)
from wdm_lib.history import (ADD_FUNDS, ADD_ITEM, ADD_STOCK, CHECKOUT, CREATE_ITEM, CREATE_ORDER, CREATE_USER, FAULT,
                             FIND_ITEM, FIND_ORDER, FIND_USER, OK, OUTCOMES, RECHECKOUT, Op)

# The load's operations in the order the terminal and the report list them.
OPERATION_KINDS = (CHECKOUT, RECHECKOUT, ADD_FUNDS, ADD_STOCK, FIND_ITEM, FIND_USER, FIND_ORDER)
SEEDING_ONLY = (CREATE_ITEM, CREATE_USER, CREATE_ORDER, ADD_ITEM)


def operations(load: list[Op]) -> dict[str, dict[str, int]]:
    """The load's operations by kind and outcome, re-checkouts (a checkout of an order that an
    earlier-sent checkout was for) counted apart from first checkouts."""
    counts: dict[str, Counter] = {}
    ordered: set[str] = set()
    for op in sorted((op for op in load if op.kind != FAULT), key=lambda op: op.invoke_ns):
        kind = op.kind
        if kind == CHECKOUT:
            kind = RECHECKOUT if op.order_id in ordered else CHECKOUT
            ordered.add(op.order_id)
        counts.setdefault(kind, Counter())[op.outcome] += 1
    known = [k for k in OPERATION_KINDS if k in counts] + sorted(set(counts) - set(OPERATION_KINDS))
    return {kind: {o: counts[kind].get(o, 0) for o in OUTCOMES} for kind in known}


def _after_seeding(history: list[Op]) -> list[Op]:
    """A run without a read-back state: the operations after its last seeding-only write."""
    last = max((i for i, op in enumerate(history) if op.kind in SEEDING_ONLY), default=-1)
    return history[last + 1:]


def _checkout_figures(history: list[Op]) -> dict:
    """What the checkouts' replies say, with or without a verdict: counts and latency per outcome."""
    checkouts = [op for op in history if op.kind == CHECKOUT]
    outcomes = Counter(op.outcome for op in checkouts)
    return {
        "checkouts": len(checkouts),
        "outcomes": {k: outcomes.get(k, 0) for k in OUTCOMES},
        "original_counts_unknowns": outcomes.get("unknown", 0),
        "latency_ms": {outcome: latency_percentiles(
            (op.complete_ns - op.invoke_ns) / 1e6 for op in checkouts if op.outcome == outcome)
            for outcome in OUTCOMES if outcomes.get(outcome)},
    }


def summarize(run_id: str, scenario, history: list[Op], state: dict, result: CheckResult,
              phases_s: dict[str, float], points: list[dict] | None = None) -> dict:
    """`points`: the convergence timeline, one checkers' verdict per pass of the final read-back."""
    points = points or []
    figures = _checkout_figures(history)
    resolution = resolve_checkouts(history, state)
    i0, i1 = state["initial"]["items"], state["final"]["items"]
    u0, u1 = state["initial"]["users"], state["final"]["users"]
    regression = convergence.regression(points)
    load = judged(history, state)
    faults = measure_faults(history, requests_of(history), [a.name for a in result.anomalies])
    return {
        "run_id": run_id,
        "kind": "consistency",
        "valid": result.valid,
        "verdict": result.verdict,
        "judged_by": summaries.judged_by(result),
        "checks": summaries.checks(result),
        "anomalies": [a.__dict__ for a in result.anomalies],
        "warnings": [a.__dict__ for a in result.warnings],
        "notes": _read_back_notes(scenario, state) + result.notes,
        "checkouts": figures["checkouts"],
        "outcomes": figures["outcomes"],
        "operations": operations(load),
        "checkouts_happened": len(resolution.happened),
        "unknown_resolved": {"happened": len(resolution.resolved_happened),
                             "not_happened": len(resolution.resolved_not),
                             "unresolved": len(resolution.unresolved)},
        "unknown_by_cause": unknowns_by_cause(history, state),
        # From the state, net of what the load added for sure (a mixed load adds stock and funds).
        "stock_sold": sum(v["stock"] - i1[i]["stock"] for i, v in i0.items() if v and i1.get(i))
        + sum(op.amount or 0 for op in load if op.kind == ADD_STOCK and op.outcome == OK),
        "credit_spent": sum(v["credit"] - u1[u]["credit"] for u, v in u0.items() if v and u1.get(u))
        + sum(op.amount or 0 for op in load if op.kind == ADD_FUNDS and op.outcome == OK),
        "settled": state.get("final_settled", True),
        "read_back": {"reads": state.get("final_reads", 1), "quiet_s": scenario.quiet_s,
                      "unchanged_for_s": state.get("final_quiet_s"), "settle_s": scenario.settle_s,
                      "pass_s": state.get("final_pass_s")},
        "convergence": points,
        "time_to_consistency_s": convergence.time_to_consistency(points),
        "regressed": regression is not None,
        "original": original_figures(scenario, history, state),
        "original_caveats": ORIGINAL_CAVEATS,
        "original_counts_unknowns": figures["original_counts_unknowns"],
        "latency_ms": figures["latency_ms"],
        "phases_s": {k: round(v, 4) for k, v in phases_s.items()},
        "faults": faults,
        "reads": reads.figures_of(result),
    }


def summarize_recorded(run_id: str, status: str, error: str | None, history: list[Op]) -> dict:
    """What a run that ended without a verdict (interrupted, crashed, failed) recorded: its
    checkouts' outcomes and latencies and its faults, with `valid` None and no balances, so its
    report shows what was measured under a "no verdict" banner. The same keys as summarize()."""
    return {
        "run_id": run_id, "kind": "consistency", "valid": None, "verdict": f"{status}: no verdict",
        "judged_by": None, "checks": [], "anomalies": [], "warnings": [], "notes": [error] if error else [],
        "checkouts_happened": None, "unknown_resolved": None, "unknown_by_cause": {},
        "stock_sold": None, "credit_spent": None, "settled": None, "read_back": None, "convergence": [],
        "time_to_consistency_s": None, "regressed": None, "original": None,
        "original_caveats": ORIGINAL_CAVEATS, "phases_s": {},
        "faults": measure_faults(history, requests_of(history), []),
        "operations": operations(_after_seeding(history)),
        "reads": None,
        **_checkout_figures(history),
    }


def _read_back_notes(scenario, state: dict) -> list[str]:
    notes = [scenario.sized_for_faults] if getattr(scenario, "sized_for_faults", None) else []
    seeding = state.get("seeding") or {}
    if seeding.get("not_served"):
        left = seeding.get("records_left") or 0
        notes.append(f"seeding: the target did not serve {seeding['not_served']:,} tries (\"not now\", a 5xx or no "
                     f"answer; each a row of history.csv)"
                     + (f"; where a write may have happened its record was left and another made in its place "
                        f"({left:,} records left, none of them read or judged)" if left else "; each was sent again")
                     + ".")
    if not state.get("final_settled", True):
        notes.append(f"the final state never stayed unchanged for --quiet {scenario.quiet_s:g} s within --settle "
                     f"{scenario.settle_s:g} s ({state.get('final_reads')} whole reads): the system was still "
                     f"changing; the verdict judges the last read and every pass before it (a right state that "
                     f"turned wrong is the anomaly regressed); raise --settle if it is slow to settle.")
    return notes


def _signed(side: dict | None) -> str:
    if not side or not side["ids"]:
        return "-"
    return f"{side['ids']} ({side['by']:+d})"


def read_back_line(summary: dict) -> str:
    """The convergence timeline in one line."""
    rb = summary["read_back"]
    if not summary["settled"]:
        head = (f"read-back: NEVER QUIET within --settle {rb['settle_s']:g} s ({rb['reads']} reads); "
                f"judged every pass")
    else:
        head = f"read-back: quiet (unchanged {rb['unchanged_for_s'] or 0:.1f} s) after {rb['reads']} reads"
    if rb.get("pass_s") is not None:  # what --quiet and --settle are measured against (README)
        head += f" (a whole read {rb['pass_s']:.1f} s)"
    ttc = summary["time_to_consistency_s"]
    if summary["regressed"]:
        return head + "; consistent, then REGRESSED to inconsistent (anomaly regressed)"
    if ttc is None:
        return head + "; never consistent"
    return head + f"; consistent from {ttc:.2f} s after the last checkout reply"


def render_table(summary: dict) -> str:
    """The few lines a terminal shows at the end of a run."""
    o = summary["outcomes"]
    verdict = summary["verdict"].upper().replace(" WITH WARNINGS", " with warnings")
    lines = [
        f"verdict: {verdict}   (run {summary['run_id']})",
        f"checkouts: {summary['checkouts']}  ok {o['ok']}  refused {o['fail']}  unknown {o['unknown']}"
        f"  | {summary['checkouts_happened']} happened, stock sold {summary['stock_sold']}, "
        f"credit spent {summary['credit_spent']}",
        read_back_line(summary),
    ]
    ops = summary.get("operations") or {}
    if set(ops) - {CHECKOUT}:  # a mixed load: every kind of operation, by outcome
        lines.insert(2, "operations (ok/refused/unknown): " + ", ".join(
            f"{kind} {n['ok']}/{n['fail']}/{n['unknown']}" for kind, n in ops.items()))
    line = reads.reads_line(summary.get("reads"))
    if line:
        lines.append(line)
    if summary["anomalies"]:
        width = max([20] + [len(a["name"]) for a in summary["anomalies"]])
        lines.append(f"{'anomaly':<{width}} {'count':>6} {'over (by)':>14} {'under (by)':>14}  examples")
        for a in summary["anomalies"]:
            lines.append(f"{a['name']:<{width}} {a['count']:>6} {_signed(a.get('over')):>14} "
                         f"{_signed(a.get('under')):>14}  {', '.join(a['examples'][:5])}")
    else:
        lines.append("no anomaly: every balance, flag and record agrees with what happened")
    for w in summary["warnings"]:
        examples = f" (e.g. {', '.join(w['examples'][:3])})" if w["examples"] else ""
        lines.append(f"warning: {w['name']} ×{w['count']}: {w['description']}{examples}")
    lines += fault_lines(summary.get("faults", []))
    lines += [f"note: {n}" for n in summary["notes"]]
    orig = summary["original"]
    if orig is None:  # not the original's workload: its four figures do not describe it
        return "\n".join(lines)
    counted = summary.get("original_counts_unknowns", 0)
    lines.append("original benchmark's figures" + (f" (they count the {counted} unknown checkouts as successes)"
                                                    if counted else "")
                 + f": stock (log/db) {orig['stock_inconsistencies_in_logs']}/{orig['stock_inconsistencies_in_db']}, "
                 f"payment (log/db) {orig['payment_inconsistencies_in_logs']}/{orig['payment_inconsistencies_in_db']}")
    return "\n".join(lines)
