"""How a report shows a table, the same in every notebook: figures rounded for reading (the exact
values stay in summary.json and the CSVs), text left and figures right with each header over its
column, verdicts in their colours (COLORS: the one mapping of a verdict class to a colour, for the
banner and the workbench's pages too),
and a long text as its first line with the rest behind a disclosure. Every text is escaped here:
names and errors come from targets and files."""

from __future__ import annotations

import html
import math
import numbers

from wdm_lib.summaries import FAIL, NONE, PASS, WARN

# green: consistent or gates passed; amber: with warnings; red: inconsistent or gates failed;
# grey: no verdict (interrupted, crashed, failed). Every page colours a verdict so.
COLORS = {PASS: ("#1a7f37", "#e6f4ea"), WARN: ("#9a6700", "#fff8e1"), FAIL: ("#c62828", "#fdecea"),
          NONE: ("#57606a", "#f0f1f3")}
TICK, CROSS = "✓", "✗"
LONG_TEXT = 90  # characters: a cell longer than this (or of several lines) shows its first line, the rest disclosed


def readable(value) -> str:
    """A figure as a reader takes it in: integers with thousands separators, 1 decimal from 1 up,
    2 significant digits below (a sub-millisecond latency keeps its size), "-" for none."""
    if _missing(value):
        return "-"
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return str(value)
    if isinstance(value, numbers.Integral):
        return f"{value:,}"
    if math.isinf(value):
        return "∞" if value > 0 else "-∞"
    # from 0.95 up, two significant digits would print 0.999 as "1": one decimal, as from 1 up
    return f"{value:,.1f}" if abs(value) >= 0.95 or value == 0 else f"{value:.2g}"


def _missing(value) -> bool:
    import pandas as pd

    return value is None or (not isinstance(value, str) and bool(pd.api.types.is_scalar(value)) and bool(pd.isna(value)))


def ratio(value) -> str:
    """A ratio to a baseline, 2 decimals (1.00 is the baseline itself)."""
    return "-" if _missing(value) else f"{value:.2f}"


def colored(text: str, cls: str) -> str:
    """HTML: the text (escaped) in the colour of verdict class cls, bold."""
    return f'<span style="color:{COLORS[cls][0]};font-weight:600">{html.escape(text)}</span>'


def gate(passed: bool | None, measured: str) -> str:
    """A gate's result as k6 shows it: ✓ or ✗ and what was measured (HTML, coloured)."""
    if passed is None:
        return html.escape(measured)
    return colored(f"{TICK if passed else CROSS} {measured}", PASS if passed else FAIL)


def disclosed(text: str, limit: int = LONG_TEXT) -> str:
    """HTML: a text as one line; a longer one (or one of several lines) shows its first line, cut to
    `limit` characters, and the whole behind a <details> disclosure."""
    text = "" if text is None else str(text)
    lines = text.strip().splitlines()
    first = lines[0] if lines else ""
    if len(lines) <= 1 and len(first) <= limit:
        return html.escape(text)
    shown = first if len(first) <= limit else first[:limit - 1].rstrip() + "…"
    return (f'<details><summary>{html.escape(shown)}</summary>'
            f'<div style="white-space:pre-wrap">{html.escape(text.strip())}</div></details>')


def _count(value) -> str:
    return "-" if _missing(value) else f"{int(value):,}"


def _cell(value) -> str:
    return html.escape(value) if isinstance(value, str) else readable(value)


def table(frame, *, index: bool = False, verdicts: dict | None = None, html_columns=(), ratios=(), disclose=(),
          formats=None):
    """A DataFrame as a report shows it (a pandas Styler).

    index: show the row labels (left, as text); verdicts: {column: verdict class per row} colours
    those cells; html_columns: columns already HTML (made here: gate, colored, disclosed); ratios:
    columns of ratios to a baseline; disclose: columns whose long texts (errors) show one line, the
    rest disclosed; formats: {column: function} for any other column's own format."""
    import pandas as pd

    numeric = [c for c in frame.columns if pd.api.types.is_numeric_dtype(frame[c]) and not pd.api.types.is_bool_dtype(frame[c])]
    formatters = {}
    for c in frame.columns:
        counts = c in numeric and all(float(v).is_integer() for v in frame[c].dropna())  # 450.0 requests: 450
        formatters[c] = ((formats or {}).get(c) or (ratio if c in ratios else (lambda v: v) if c in html_columns
                         else disclosed if c in disclose else _count if counts else _cell))
    styler = frame.style.format(formatters, escape=None).format_index(lambda v: html.escape(str(v)), escape=None)
    if not index:
        styler = styler.hide(axis="index")
    # Each header aligned as its cells are: jupyterlab's stylesheet puts every cell to the right,
    # and text read that way drifts away from its header.
    styler = styler.set_table_styles(
        {c: [{"selector": "", "props": f"text-align: {'right' if c in numeric else 'left'}"}] for c in frame.columns},
        overwrite=False)
    styler = styler.set_table_styles(
        [{"selector": "th.row_heading, th.index_name", "props": "text-align: left"},
         {"selector": "td.data", "props": "font-variant-numeric: tabular-nums; vertical-align: top"}], overwrite=False)
    for column, classes in (verdicts or {}).items():
        css = [f"color: {COLORS[cls][0]}; font-weight: 600" if cls in COLORS else "" for cls in classes]
        styler = styler.apply(lambda _, css=css: css, subset=[column], axis=0)
    return styler
