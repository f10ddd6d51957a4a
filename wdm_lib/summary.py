"""summary.json of a consistency run, and the short verdict table the CLI prints. Pure."""

from __future__ import annotations

from collections import Counter

from wdm_lib.analysis import latency_percentiles
from wdm_lib.checkers import ORIGINAL_CAVEATS, CheckResult, original_figures, resolve_checkouts
from wdm_lib.history import Op


def summarize(run_id: str, scenario, history: list[Op], state: dict, result: CheckResult,
              phases_s: dict[str, float]) -> dict:
    checkouts = [op for op in history if op.kind == "checkout"]
    outcomes = Counter(op.outcome for op in checkouts)
    resolution = resolve_checkouts(history, state)
    i0, i1 = state["initial"]["items"], state["final"]["items"]
    u0, u1 = state["initial"]["users"], state["final"]["users"]
    return {
        "run_id": run_id,
        "kind": "consistency",
        "valid": result.valid,
        "verdict": "consistent" if result.valid else "inconsistent",
        "anomalies": [a.__dict__ for a in result.anomalies],
        "notes": result.notes + _read_back_notes(scenario, state),
        "checkouts": len(checkouts),
        "outcomes": {k: outcomes.get(k, 0) for k in ("ok", "fail", "unknown")},
        "checkouts_happened": len(resolution.happened),
        "unknown_resolved": {"happened": len(resolution.resolved_happened),
                             "not_happened": len(resolution.resolved_not),
                             "unresolved": len(resolution.unresolved)},
        "stock_sold": sum(v["stock"] - i1[i]["stock"] for i, v in i0.items() if v and i1.get(i)),
        "credit_spent": sum(v["credit"] - u1[u]["credit"] for u, v in u0.items() if v and u1.get(u)),
        "original": original_figures(scenario, history, state),
        "original_caveats": ORIGINAL_CAVEATS,
        "latency_ms": {outcome: latency_percentiles(
            (op.complete_ns - op.invoke_ns) / 1e6 for op in checkouts if op.outcome == outcome)
            for outcome in ("ok", "fail", "unknown") if outcomes.get(outcome)},
        "phases_s": {k: round(v, 4) for k, v in phases_s.items()},
    }


def _read_back_notes(scenario, state: dict) -> list[str]:
    if state.get("final_settled", True):
        return []
    return [f"the final state was still changing after {scenario.settle_s:g} s of reading back "
            f"({state.get('final_reads')} reads); the verdict judges the last read: raise --settle "
            f"for a system whose reads lag its writes."]


def render_table(summary: dict) -> str:
    """The few lines a terminal shows at the end of a run."""
    o = summary["outcomes"]
    lines = [
        f"verdict: {summary['verdict'].upper()}   (run {summary['run_id']})",
        f"checkouts: {summary['checkouts']}  ok {o['ok']}  refused {o['fail']}  unknown {o['unknown']}"
        f"  | stock sold {summary['stock_sold']}  credit spent {summary['credit_spent']}",
    ]
    if summary["anomalies"]:
        lines.append(f"{'anomaly':<20} {'count':>7} {'magnitude':>10}  examples")
        for a in summary["anomalies"]:
            lines.append(f"{a['name']:<20} {a['count']:>7} {a['magnitude']:>10}  {', '.join(a['examples'][:5])}")
    else:
        lines.append("no anomaly: every balance, flag and reply agrees with what happened")
    orig = summary["original"]
    lines.append("original benchmark's figures: stock (log/db) "
                 f"{orig['stock_inconsistencies_in_logs']}/{orig['stock_inconsistencies_in_db']}, "
                 f"payment (log/db) {orig['payment_inconsistencies_in_logs']}/"
                 f"{orig['payment_inconsistencies_in_db']}")
    lines += [f"note: {n}" for n in summary["notes"]]
    return "\n".join(lines)
