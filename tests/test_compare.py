"""`wdm compare`: runs side by side, with ratios to the first run that can be checked by hand."""

import re

import numpy as np
import pandas as pd
import pytest

from notebook_outputs import STDERR_ON_A_PAGE
from synthetic_stress import make_stress_run
from wdm_lib import compare
from wdm_lib.cli import main
from wdm_lib.errors import WorkbenchError


def with_latencies(path, latencies_ms):
    """A synthetic stress run whose raw rows have exactly these latencies."""
    make_stress_run(path, rows=len(latencies_ms), run_id=path.name)
    for f in path.glob("requests-*.csv"):
        f.unlink()
    pd.DataFrame({"start_ns": np.arange(len(latencies_ms)) * 1000, "name": "/orders/checkout/[order_id]",
                  "method": "POST", "status": 200, "latency_us": np.asarray(latencies_ms) * 1000,
                  "outcome": "ok"}).to_csv(path / "requests-0.csv", index=False)
    return path


def test_percentiles_and_each_runs_ratio_to_the_first(tmp_path):
    base = with_latencies(tmp_path / "base", np.arange(1, 101))       # 1..100 ms
    slower = with_latencies(tmp_path / "slower", np.arange(1, 101) * 3)
    faster = with_latencies(tmp_path / "faster", np.arange(1, 201) / 4)  # 0.25..50 ms, twice the requests
    opened = compare.open_runs([str(base), str(slower), str(faster)])
    table = compare.percentiles(opened, [compare.latencies_ms(r) for r in opened])
    assert table.loc["base", "p99"] == 99 and table.loc["slower", "p99"] == 297 and table.loc["faster", "p99"] == 49.5
    assert table.loc["slower", "p50 ×first"] == 3 and table.loc["faster", "p50 ×first"] == pytest.approx(0.5)
    assert table.loc["base", "p99 ×first"] == 1 and list(table["count"]) == [100, 100, 200]
    cdf = compare.cdf(compare.latencies_ms(opened[2]), points=50)
    assert len(cdf) == 50 and cdf["value"].iloc[-1] == 50 and cdf.attrs["count"] == 200


def test_compare_needs_two_runs_and_names_a_missing_one(tmp_path):
    base = with_latencies(tmp_path / "base", np.arange(1, 101))
    with pytest.raises(WorkbenchError, match="at least two run folders"):
        compare.open_runs([str(base)])
    assert main(["compare", str(base), str(tmp_path / "nope")]) == 2


def test_wdm_compare_writes_one_offline_page(tmp_path):
    runs_dir = tmp_path / "reports" / "runs"
    a = make_stress_run(runs_dir / "a", rows=3000, steps=[10, 20], run_id="a", seed=1)
    b = make_stress_run(runs_dir / "b", rows=3000, steps=[10, 20], run_id="b", seed=2)
    assert main(["compare", str(a), str(b)]) == 0
    [page] = (tmp_path / "reports").glob("compare-*.html")
    html = page.read_text()
    assert "Runs compared" in html and "p99 ×first" in html and "Steps" in html
    assert STDERR_ON_A_PAGE not in html  # no warning, no log line
    # Nothing loaded from the network: the page opens offline.
    assert not re.search(r"""<(script|link|img)\b[^>]*(src|href)\s*=\s*["']?(https?:)?//""", html, re.I)


def test_a_stress_run_beside_a_consistency_run_is_refused_in_one_sentence(tmp_path, capsys):
    from wdm_lib import runs

    stress = with_latencies(tmp_path / "reports" / "runs" / "s", np.arange(1, 101))
    consistency = runs.Run.create(tmp_path / "reports" / "runs", "consistency", {}, {"source": "t.json"}).path
    assert main(["compare", str(stress), str(consistency)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert f"{consistency}: a consistency run, and {stress} a stress run" in err
    assert not list((tmp_path / "reports").glob("compare-*.html"))  # refused before any notebook ran
    with pytest.raises(WorkbenchError, match="expected runs of one kind"):  # as papermill's notebook is
        compare.open_runs([str(stress), str(consistency)])


def test_the_headline_says_faster_slower_or_a_worse_verdict():
    from bs4 import BeautifulSoup

    def headline(tmp, *latencies, verdicts=None):
        opened = [compare.open_runs([str(with_latencies(tmp / f"r{i}", v)) for i, v in enumerate(latencies)])][0]
        judged = [compare.summary_of(r) for r in opened]
        for s, v in zip(judged, verdicts or []):
            s["passed"], s["verdict"] = v == "passed", v
        soup = BeautifulSoup(compare.headline(opened, judged, [compare.latencies_ms(r) for r in opened]), "html.parser")
        return soup.find("div").find("div").get_text(), soup.get_text()

    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as tmp:
        base = np.arange(1, 101)
        assert headline(Path(tmp) / "a", base, base * 3)[0] == "SLOWER"
        title, text = headline(Path(tmp) / "b", base, base / 2)
        assert title == "FASTER" and "0.50× baseline" in text and "99.0" in text
        assert headline(Path(tmp) / "c", base, base)[0] == "AS FAST"
        title, text = headline(Path(tmp) / "d", base, base / 2, verdicts=["passed", "1 of 1 gates failed"])
        assert title == "WORSE VERDICT" and "passed → 1 of 1 gates failed" in text
