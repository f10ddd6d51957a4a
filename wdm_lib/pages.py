"""The workbench's own pages (the index of runs, the league of a class), from the Jinja templates in
templates/: one scaffold, one stylesheet inlined into every page, so a page opens offline and can be
shared as one file. Reports rendered from notebooks are nbconvert's, not these."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import jinja2

from wdm_lib import banner

TEMPLATES = Path(__file__).resolve().parent / "templates"  # package data: an installed wheel has them

# Autoescaped: every text on a page (run ids, target names, errors, team names) comes from targets
# and files, and must show as written, never as markup.
_env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True, undefined=jinja2.StrictUndefined,
                          trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)
# The banner's colours, so a verdict is the same colour on a report and on the pages that list it.
_env.globals["verdict_colors"] = banner.COLORS


@dataclass
class Cell:
    """One table cell; cls is a class of the stylesheet: "number", or "verdict " + summaries.verdict_class."""
    text: str
    cls: str = ""
    href: str = ""
    title: str = ""
    colspan: int = 0


def render(template: str, **context) -> str:
    return _env.get_template(template).render(**context)
