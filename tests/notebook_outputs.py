"""Reading a notebook papermill executed: a tagged cell's text, tables, banners and charts, as a
reader of its report sees them. For the tests of the notebooks and of the reports."""

from bs4 import BeautifulSoup


def cell(nb, tag):
    found = [c for c in nb.cells if tag in c.metadata.get("tags", [])]
    assert len(found) == 1, f"one cell tagged {tag!r}"
    errors = [o for o in found[0].outputs if o.output_type == "error"]
    assert not errors, errors
    return found[0]


def text(nb, tag) -> str:
    """What a cell printed and every markdown it displayed."""
    parts = []
    for o in cell(nb, tag).outputs:
        if o.output_type == "stream":
            parts.append(o.text)
        elif "text/markdown" in o.get("data", {}):
            parts.append(o.data["text/markdown"])
    return "\n".join(parts)


def paragraphs(nb, tag) -> list[str]:
    """The HTML paragraphs (not tables, not banners) a cell displayed, as HTML."""
    return [o.data["text/html"] for o in cell(nb, tag).outputs
            if o.get("data", {}).get("text/html", "").startswith("<p>")]


def tables(nb, tag) -> list[dict[str, list[str]]]:
    """Each DataFrame a cell displayed, as {row label: [cell texts]} read from its HTML (the row label
    joins the index levels with '|'); the header row under the key 'columns'."""
    out = []
    for o in cell(nb, tag).outputs:
        html = o.get("data", {}).get("text/html")
        if not html:
            continue
        table = BeautifulSoup(html, "html.parser").find("table")
        if table is None:  # a paragraph (see paragraphs), not a table
            continue
        body = table.find("tbody").find_all("tr")
        levels = max(len(tr.find_all("th")) for tr in body)
        head = [th.get_text(strip=True) for th in table.find("thead").find_all("tr")[0].find_all("th")]
        rows, last = {"columns": head[levels:]}, []
        for i, tr in enumerate(body):
            ths, tds = tr.find_all("th"), [td.get_text(strip=True) for td in tr.find_all("td")]
            # a MultiIndex shows each outer label once (rowspan): carry it down
            labels = [th.get_text(strip=True) for th in ths]
            labels = last[: len(last) - len(labels)] + labels if len(labels) < len(last) else labels
            last = labels
            rows["|".join(labels) or str(i)] = tds  # a table shown without its index: rows by position
        out.append(rows)
    return out


def banners(nb) -> list[dict]:
    """The verdict banners a notebook displayed: their colour class, verdict, subtitle and figures."""
    out = []
    for c in nb.cells:
        for o in c.get("outputs", []):
            page = o.get("data", {}).get("text/html", "")
            if "wdm-banner" not in page:
                continue
            soup = BeautifulSoup(page, "html.parser").find("div", class_="wdm-banner")
            verdict, subtitle, row = soup.find_all("div", recursive=False)
            figures = {pair.find_all("div")[1].get_text(): pair.find_all("div")[0].get_text()
                       for pair in row.find_all("div", recursive=False)}
            cls = next(c[len("wdm-"):] for c in soup["class"] if c != "wdm-banner")
            out.append({"class": cls, "verdict": verdict.get_text(), "subtitle": subtitle.get_text(), "figures": figures})
    return out


def figures(nb, tag) -> int:
    return sum("image/png" in o.get("data", {}) for o in cell(nb, tag).outputs)


def as_row(table, label) -> dict[str, float]:
    """A row of figures as numbers, read as a reader does (6,037 is 6037; - is none)."""
    return {col: float("nan") if v == "-" else float(v.replace(",", "")) for col, v in zip(table["columns"], table[label])}


# How nbconvert marks what a cell wrote to stderr (a warning, a log line) on a rendered page.
STDERR_ON_A_PAGE = 'data-mime-type="application/vnd.jupyter.stderr"'


def stderr(nb) -> list[str]:
    """Everything an executed notebook's cells wrote to stderr: a warning, a log line, a traceback's
    text. A report shows none of it."""
    return [o.text for c in nb.cells for o in c.get("outputs", []) if o.output_type == "stream" and o.name == "stderr"]
