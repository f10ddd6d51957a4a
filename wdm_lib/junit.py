"""JUnit XML of a run's verdicts, so a CI system shows them natively: one test case per gate (and
per way the run lost load, and per books check) of a stress run, one per checker of a consistency
run. Pure but for the write."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from wdm_lib.errors import WorkbenchError


def to_xml(suite: str, cases: list[dict]) -> str:
    """cases: {"name", "passed", "message", "details"} each."""
    failures = sum(not c["passed"] for c in cases)
    root = ET.Element("testsuites", name="wdm", tests=str(len(cases)), failures=str(failures))
    ts = ET.SubElement(root, "testsuite", name=suite, tests=str(len(cases)), failures=str(failures), errors="0")
    for c in cases:
        tc = ET.SubElement(ts, "testcase", classname=suite, name=c["name"])
        if not c["passed"]:
            f = ET.SubElement(tc, "failure", message=c["message"])
            f.text = c.get("details") or c["message"]
        elif c.get("message"):
            ET.SubElement(tc, "system-out").text = c["message"]
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"


def write(path: str | Path, suite: str, cases: list[dict]) -> Path:
    path = Path(path)
    try:
        path.write_text(to_xml(suite, cases), encoding="utf-8")
    except OSError as e:
        raise WorkbenchError(f"--junit {path}: cannot write it ({e.strerror}); expected a writable file path.") from None
    return path


def stress_cases(summary: dict) -> list[dict]:
    cases = [{"name": f"gate {g['gate']}", "passed": g["passed"],
              "message": f"measured {g['shown']}" if g["passed"] else g["why"]} for g in summary["gates"]]
    degraded = summary.get("degraded") or []
    cases.append({"name": "no load lost", "passed": not degraded,
                  "message": "; ".join(d["sentence"] for d in degraded) or "every worker and user ran to the end"})
    v = summary.get("verify")
    if v is not None:
        cases.append({"name": "books balance (--verify)", "passed": v["valid"],
                      "message": "; ".join(v["notes"]) or ("balanced" if v["valid"] else "violated"),
                      "details": "\n".join(f"{a['name']}: count {a['count']}, magnitude {a['magnitude']}, "
                                           f"examples {', '.join(a['examples'])}" for a in v["anomalies"])})
    return cases


def consistency_cases(summary: dict) -> list[dict]:
    """One case per checker that judged the run, read from its summary (the checkers do not run again)."""
    cases = []
    for check in summary["checks"]:
        anomalies = [a for a in summary["anomalies"] if a.get("checker") == check["checker"]]
        warnings = [w for w in summary["warnings"] if w.get("checker") == check["checker"]]
        message = "; ".join(f"{a['name']} ×{a['count']} (magnitude {a['magnitude']})" for a in anomalies)
        # Warnings (facts about replies) pass the case, as they pass the run, but are said.
        warned = "; ".join(f"warning {w['name']} ×{w['count']}" for w in warnings)
        message = "; ".join(m for m in (check["error"] and f"the checker failed: {check['error']}", message, warned) if m)
        cases.append({"name": check["checker"], "passed": check["valid"] is True, "message": message or "no anomaly",
                      "details": "\n".join(f"{a['name']}: {a['description']}; examples {', '.join(a['examples'])}"
                                           for a in anomalies) + "".join(f"\n{n}" for n in check["notes"])})
    return cases
