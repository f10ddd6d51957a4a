"""A run's verdict as every page shows it: its words, its colour, and the banner at the top of a
report with the headline figures as a row of numbers, so a page answers at a glance. The words and the
colour of a verdict are summaries.verdict and summaries.verdict_class, for every page alike. Pure: the banner's HTML has
every text escaped (names and errors come from targets and files)."""

from __future__ import annotations

import html

from wdm_lib.runs import CRASHED, FAILED, INTERRUPTED, RUNNING
from wdm_lib.styles import COLORS, disclosed


def anomaly_list(found: list[dict]) -> str:
    """A consistency run's anomalies (or warnings), each with its count, or "none"."""
    return ", ".join(f"{a['name']} ×{a['count']}" for a in found) or "none"


def consistency_figures(summary: dict) -> list[tuple[str, str]]:
    """The headline figures of a consistency run: what was tried, what happened, how fast, how soon
    the state was right, and what the faults cost."""
    o = summary["outcomes"]
    figures = [("checkouts", f"{summary['checkouts']:,}"), ("ok", f"{o['ok']:,}"), ("refused", f"{o['fail']:,}"),
               ("unknown", f"{o['unknown']:,}")]
    if summary.get("checkouts_happened") is not None:
        figures.append(("happened", f"{summary['checkouts_happened']:,}"))
    p99 = (summary.get("latency_ms") or {}).get("ok", {}).get("p99")
    if p99 is not None:
        figures.append(("p99 of ok (ms)", f"{p99:,.1f}"))
    if summary.get("anomalies"):
        figures.append(("anomalies", f"{len(summary['anomalies'])}"))
    ttc = summary.get("time_to_consistency_s")
    if summary.get("valid") is not None:
        figures.append(("consistent after (s)", "never" if ttc is None else f"{ttc:.2f}"))
    figures += fault_figures(summary)
    return figures


def fault_figures(summary: dict) -> list[tuple[str, str]]:
    """Each fault's outage (the time its users' checkouts failed, masked or not) and recovery."""
    figures = []
    for f in summary.get("faults") or []:
        if f["tested_nothing"]:
            figures.append((f"{f['name']}", "tested nothing"))
            continue
        out = f["outage_s"]
        figures.append((f"{f['name']}: outage (s)" + (", masked" if f["masked_outage"] else ""),
                        "-" if out is None else f"{out:.2f}"))
        figures.append((f"{f['name']}: recovered after", f["recovery"]))
    return figures


def judged_line(judged_by: dict) -> str:
    """Who judged a consistency run: the run itself, or `wdm check` later with newer checkers."""
    who = f"judged again by `wdm check` at {judged_by['at']}" if judged_by["rejudged"] else "judged by the run itself"
    return f"{who} (wdm {judged_by['wdm']}), checkers: {', '.join(judged_by['checkers'])}"


def unfinished(status: str) -> str:
    """The words under the verdict of a run that did not finish (crashed, interrupted, failed, or
    still running): what its figures are; "" for a run that did (completed, or degraded: it lost
    part of its load, a verdict of its own). Why it did not is the banner's detail."""
    if status not in (CRASHED, INTERRUPTED, FAILED, RUNNING):
        return ""
    return f"The run did not finish ({status}); the figures cover only what was recorded."


def banner(verdict: str, cls: str, figures: list[tuple[str, str]], subtitle: str = "", detail: str = "") -> str:
    """The banner's HTML; detail (an error) under the subtitle, one line with the rest disclosed."""
    fg, bg = COLORS[cls]
    cells = "".join(
        f'<div style="margin-right:2.2em"><div style="font-size:1.6em;font-weight:600">{html.escape(value)}</div>'
        f'<div style="font-size:.85em;color:#57606a">{html.escape(label)}</div></div>' for label, value in figures)
    return (f'<div class="wdm-banner wdm-{cls}" style="border-left:8px solid {fg};background:{bg};'
            f'padding:.8em 1.2em;margin:.5em 0 1em 0">'
            f'<div style="font-size:2em;font-weight:700;color:{fg};letter-spacing:.02em">{html.escape(verdict)}</div>'
            f'<div style="color:#24292f;margin:.2em 0 .7em 0">{html.escape(subtitle)}'
            + (f'<div style="margin-top:.3em">{disclosed(detail)}</div>' if detail else "") + '</div>'
            f'<div style="display:flex;flex-wrap:wrap">{cells}</div></div>')


def stress_figures(summary: dict) -> list[tuple[str, str]]:
    """The headline figures of a stress run: how much, how fast, and what the faults cost."""
    o, lat = summary["outcomes"], summary.get("latency_ms") or {}
    figures = [("requests", f"{summary['requests']:,}"), ("ok", f"{o['ok']:,}"), ("refused", f"{o['fail']:,}"),
               ("unknown", f"{o['unknown']:,}"), ("requests/s", f"{summary['throughput_rps']:,.1f}")]
    figures += [(f"{p} (ms)", f"{lat[p]:,.1f}") for p in ("p50", "p99") if lat.get(p) is not None]
    rate = summary.get("rate")
    if rate is not None and (summary.get("response_ms") or {}).get("p99") is not None:
        figures.append(("p99 from intended start (ms)", f"{summary['response_ms']['p99']:,.1f}"))
    figures += fault_figures(summary)
    return figures
