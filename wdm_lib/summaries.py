"""summary.json: a run's verdict and figures, its shape defined once per kind of run, written and
read here and nowhere else. Reports, compare, grade, the index, the banner and JUnit read a summary
through `read`; the workloads write one through `write`. docs/summary.md shows an example of each.

A summary is plain JSON (a TypedDict, not an object), so a notebook reads it as a dict and a file
from an older or newer wdm is told apart by its `schema_version`. A run folder is input from
anyone: `read` checks the shape before a page relies on it, and a summary that is not what wdm
writes is one sentence naming the file and the field.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, TypedDict

from wdm_lib import __version__, runs
from wdm_lib.checkers import CheckResult
from wdm_lib.errors import WorkbenchError

SCHEMA_VERSION = 2
SUMMARY = "summary.json"
# A run judged again by `wdm check`: beside the run's own summary, which stays as the run left it.
CHECKED = "summary-checked-{stamp}.json"
CHECKED_GLOB = "summary-checked-*.json"


class Check(TypedDict):
    """One checker's result, under its name: valid, invalid, or None when the checker failed."""
    checker: str
    valid: bool | None
    error: str | None
    anomalies: list[str]      # names of what it found; the anomalies themselves are the summary's
    warnings: list[str]
    notes: list[str]


class Finding(TypedDict):
    """An anomaly (a fact about balances and records) or a warning (a fact about replies)."""
    name: str
    checker: str
    count: int
    magnitude: int
    examples: list[str]
    description: str
    details: list[dict]
    over: dict | None
    under: dict | None


class JudgedBy(TypedDict):
    """Who judged the run: its own run, or `wdm check` later with the checkers of its day."""
    wdm: str
    at: str
    checkers: list[str]
    rejudged: bool


# Each entry of a summary's `faults` (wdm_lib/faults/measures.py writes them; docs/summary.md says
# what each is). Checked on reading: the figures of an older wdm (its `downtime_s`) are not these.
FAULT_KEYS = ("name", "what", "recover", "due_s", "started_s", "late_ms", "inject_status", "recover_step_s",
              "recover_status", "requests", "baseline_s", "success_per_s_before", "no_answer_gap_s", "outage_s",
              "refusal_share", "masked_outage", "latency_ms", "recovered_s", "recovery", "tested_nothing",
              "tested_nothing_why", "acknowledged_writes_lost")


class _Summary(TypedDict):
    schema_version: int
    run_id: str
    kind: str
    verdict: str


class _ConsistencySince(TypedDict, total=False):
    """Keys added since schema 2 was first written: a summary of an older wdm lacks them."""
    operations: dict[str, dict]         # the load's operations by kind (re-checkouts apart): ok / fail / unknown
    reads: dict | None                  # the reads made during the load, judged (wdm_lib.reads.figures); None: none judged


class ConsistencySummary(_Summary, _ConsistencySince):
    valid: bool | None
    judged_by: JudgedBy
    checks: list[Check]
    anomalies: list[Finding]
    warnings: list[Finding]
    notes: list[str]
    checkouts: int
    outcomes: dict[str, int]            # ok / fail / unknown
    checkouts_happened: int | None
    unknown_resolved: dict | None       # happened / not_happened / unresolved
    unknown_by_cause: dict
    stock_sold: int | None
    credit_spent: int | None
    settled: bool | None
    read_back: dict | None              # reads, quiet_s, unchanged_for_s, settle_s, pass_s
    convergence: list[dict]             # one entry per pass of the final read-back
    time_to_consistency_s: float | None
    regressed: bool | None
    original: dict | None               # the original benchmark's four figures (None: not the original workload)
    original_caveats: Any
    original_counts_unknowns: int
    latency_ms: dict                    # per outcome: p50, p90, p99, ...
    phases_s: dict[str, float]
    faults: list[dict]


class _StressVerdict(TypedDict, total=False):
    """What only a stress run that reached its verdict has; a run that ended before it keeps its
    figures (verdict "interrupted: no verdict", say) without these."""
    passed: bool
    gates: list[dict]
    degraded: list[dict]
    verify: dict | None


class StressSummary(_Summary, _StressVerdict):
    requests: int
    failures: int
    duration_s: float
    throughput_rps: float
    latency_ms: dict
    response_ms: dict
    by_name: dict
    outcomes: dict[str, int]
    locust: dict | None
    steps: list[dict] | None
    rate: dict | None
    recorded: dict
    faults: list[dict]


class StressInitSummary(_Summary):
    batch_init_s: dict        # stock_s, payment_s, orders_s, total_s
    sizes: dict


SHAPES: dict[str, type] = {"consistency": ConsistencySummary, "stress": StressSummary,
                           "stress-init": StressInitSummary}
assert set(SHAPES) == set(runs.KINDS)


# --- writing --------------------------------------------------------------------------------------

def checks(result: CheckResult) -> list[Check]:
    return [Check(checker=p.checker, valid=p.valid, error=p.error, anomalies=[a.name for a in p.anomalies],
                  warnings=[w.name for w in p.warnings], notes=p.notes) for p in result.parts]


def judged_by(result: CheckResult, rejudged: bool = False) -> JudgedBy:
    return JudgedBy(wdm=__version__, at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
                    checkers=[p.checker for p in result.parts], rejudged=rejudged)


def write(run: runs.Run, summary: dict, name: str = SUMMARY):
    """The summary into the run folder, stamped with the schema; a key its kind's shape lacks is
    wdm's own bug, found here rather than by a reader."""
    summary = {"schema_version": SCHEMA_VERSION, **summary}
    missing = _missing(run.kind, summary)
    if missing:
        raise AssertionError(f"a {run.kind} summary without {', '.join(missing)}")
    return run.write_json(name, summary)


# --- reading --------------------------------------------------------------------------------------

def _missing(kind: str, summary: dict) -> list[str]:
    shape = SHAPES[kind]
    return [key for key in shape.__annotations__ if key in shape.__required_keys__ and key not in summary]


def read(run: runs.Run, name: str = SUMMARY) -> dict:
    """A summary of the run (its own by default), its shape checked: one sentence naming the file
    and the field when it is not what this wdm writes."""
    path = run.file(name)
    summary = run.read_json(name)
    if not isinstance(summary, dict):
        raise WorkbenchError(f"{path}: expected a JSON object, the summary wdm writes.")
    version = summary.get("schema_version")
    if version != SCHEMA_VERSION:
        raise WorkbenchError(f"{path}: schema_version is {version!r}; expected {SCHEMA_VERSION} (a run made by "
                             f"another version of wdm: `wdm check {run.path}` judges it again with this one).")
    missing = _missing(run.kind, summary)
    if missing or summary.get("kind") != run.kind:
        raise WorkbenchError(f"{path}: {'no ' + missing[0] if missing else 'kind is ' + repr(summary.get('kind'))}; "
                             f"expected the summary of a {run.kind} run.")
    for i, fault in enumerate(summary.get("faults") or []):
        lacks = [key for key in FAULT_KEYS if key not in fault] if isinstance(fault, dict) else ["its fields"]
        if lacks:
            raise WorkbenchError(f"{path}: faults[{i}] has no {lacks[0]}; expected the fault figures this wdm writes "
                                 f"(a run made by an older wdm: `wdm check {run.path}` measures its faults again).")
    return summary


def has(run: runs.Run) -> bool:
    return run.file(SUMMARY).is_file()


def latest(run: runs.Run) -> tuple[str, dict]:
    """The newest judgement of the run: a `wdm check`'s, else the run's own summary (its name too)."""
    rejudged = sorted(p.name for p in run.path.glob(CHECKED_GLOB))
    name = rejudged[-1] if rejudged else SUMMARY
    return name, read(run, name)


# --- the verdict in words and colour, for every page ------------------------------------------------

def verdict(summary: dict | None) -> str:
    """The verdict in a few words ("" without a summary)."""
    return "" if summary is None else summary["verdict"]


# A verdict's class, as every page colours it (styles.COLORS) and the league ranks it.
PASS, WARN, FAIL, NONE = "pass", "warn", "fail", "none"


def verdict_class(summary: dict | None) -> str:
    """PASS, WARN, FAIL or NONE (no verdict), as every page colours a verdict."""
    if summary is None:
        return NONE
    if summary["kind"] == "consistency":
        if summary.get("valid") is None:  # no verdict: the run ended early, or a checker failed
            return NONE
        return FAIL if not summary["valid"] else WARN if summary.get("warnings") else PASS
    if "passed" not in summary:  # figures of a stress run that ended before it was judged
        return NONE
    if not summary["passed"]:
        return FAIL
    return WARN if (summary.get("rate") or {}).get("warning") else PASS
