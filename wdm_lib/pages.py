"""The workbench's own pages (the index of runs, the league of a class), from the Jinja templates in
templates/: one scaffold, one stylesheet inlined into every page, so a page opens offline and can be
shared as one file. Reports rendered from notebooks are nbconvert's, not these."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import jinja2

from wdm_lib import styles

TEMPLATES = Path(__file__).resolve().parent / "templates"  # package data: an installed wheel has them

# Autoescaped: every text on a page (run ids, target names, errors, team names) comes from targets
# and files, and must show as written, never as markup.
_env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True, undefined=jinja2.StrictUndefined,
                          trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)
# The banner's colours, so a verdict is the same colour on a report and on the pages that list it.
_env.globals["verdict_colors"] = styles.COLORS


# How many characters of a long text (an error) a cell shows on its one line; the rest opens under it.
NOTE_CHARS = 40


@dataclass
class Cell:
    """One table cell; cls is a class of the stylesheet: "number", "id", or "verdict " + summaries.verdict_class.
    detail: a text shown under the cell's text as one short line, the whole of it behind a disclosure."""
    text: str
    cls: str = ""
    href: str = ""
    title: str = ""
    colspan: int = 0
    detail: str = ""

    @property
    def note(self) -> str:
        """The detail's first line, cut to NOTE_CHARS."""
        first = self.detail.strip().splitlines()[0] if self.detail.strip() else ""
        return first if len(first) <= NOTE_CHARS else first[:NOTE_CHARS - 1].rstrip() + "…"


def render(template: str, **context) -> str:
    return _env.get_template(template).render(**context)
