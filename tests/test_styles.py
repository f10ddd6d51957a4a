"""wdm_lib.styles: a table as a report shows it, figures rounded for reading, verdicts coloured, a long
text one line with the whole behind a disclosure."""

import numpy as np
import pandas as pd
from bs4 import BeautifulSoup

from wdm_lib import styles


def test_figures_are_rounded_for_reading():
    # The open-loop table printed 35.792000 and 98.24174 before.
    assert [styles.readable(v) for v in (35.792, 98.24174, 1352.44, 0.35, 0.042, 0.0)] == \
        ["35.8", "98.2", "1,352.4", "0.35", "0.042", "0.0"]
    assert [styles.readable(v) for v in (6037, np.int64(100000), None, float("nan"), pd.NA)] == \
        ["6,037", "100,000", "-", "-", "-"]
    assert styles.ratio(0.7391) == "0.74" and styles.ratio(float("nan")) == "-"


def test_a_table_aligns_each_header_with_its_cells_and_colours_verdicts():
    frame = pd.DataFrame({"run": ["a", "<b>"], "count": [450.0, 6037.0], "p99": [35.792, np.nan],
                          "verdict": ["passed", "inconsistent"]})
    page = styles.table(frame, verdicts={"verdict": ["pass", "fail"]}).to_html()
    soup = BeautifulSoup(page, "html.parser")
    cells = [[td.get_text() for td in tr.find_all("td")] for tr in soup.find("tbody").find_all("tr")]
    assert cells == [["a", "450", "35.8", "passed"], ["<b>", "6,037", "-", "inconsistent"]]  # <b> shown as written
    # Text columns to the left, figures to the right, each rule for the column's header and cells alike.
    style = soup.find("style").get_text()
    for col, side in ((0, "left"), (1, "right"), (2, "right"), (3, "left")):
        assert f" .col{col} {{\n  text-align: {side};" in style, (col, style)
    assert f"color: {styles.COLORS['pass'][0]}" in style and f"color: {styles.COLORS['fail'][0]}" in style


def test_a_long_text_is_one_line_with_the_whole_disclosed():
    error = "http://127.0.0.1:9/stock/item/create/1: cannot connect <refused> " * 4 + "\nsecond line"
    shown = BeautifulSoup(styles.disclosed(error), "html.parser")
    summary = shown.find("summary").get_text()
    assert summary.startswith("http://127.0.0.1:9/stock") and summary.endswith("…") and len(summary) <= styles.LONG_TEXT
    assert "second line" in shown.find("details").get_text() and "<refused>" in shown.get_text()
    assert styles.disclosed("short <b>") == "short &lt;b&gt;"


def test_a_gate_is_a_tick_or_a_cross_with_what_was_measured():
    assert ">✓ 35.2 ms<" in styles.gate(True, "35.2 ms") and styles.COLORS["pass"][0] in styles.gate(True, "35.2 ms")
    assert ">✗ 0.00%<" in styles.gate(False, "0.00%") and styles.COLORS["fail"][0] in styles.gate(False, "0.00%")
