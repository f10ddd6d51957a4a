"""Rendered reports: a run's notebook executed by papermill on that run, exported to HTML by
nbconvert with the code hidden and the charts embedded, and reports/index.html listing every run.
A report opens with no network: nothing in it is fetched from elsewhere."""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

from wdm_lib import banner, pages, reaper, runs, summaries
from wdm_lib.errors import WorkbenchError
from wdm_lib.shipped import NOTEBOOKS

# The kernelspec every ipykernel installs into its environment; its argv names "python", which
# jupyter_client replaces with sys.executable, so the kernel is the interpreter rendering the report.
KERNEL = "python3"
# The kernel's own log (that it talks over unencrypted loopback TCP, that its shutdown interrupted it)
# is noise on the terminal of someone rendering a report; the notebook's output is captured anyway.
KERNEL_ARGUMENTS = ["--IPKernelApp.log_level=CRITICAL"]
# The lab template less the scripts it loads from a CDN (require.js, MathJax, mermaid): the reports
# hold no widgets, maths or diagrams, and must open offline.
# templates/report.css comes after lab's own stylesheet, so its rules win.
OFFLINE_TEMPLATE = """{%- extends 'lab/index.html.j2' -%}
{%- block html_head_js_requirejs -%}{%- endblock html_head_js_requirejs -%}
{%- block html_head_js_mathjax -%}{%- endblock html_head_js_mathjax -%}
{%- block html_head_js_mermaidjs -%}{%- endblock html_head_js_mermaidjs -%}
{%- block html_head_css -%}<style>{% include 'report.css' %}</style>{%- endblock html_head_css -%}
"""
INDEX = "index.html"

# papermill and nbconvert validate notebooks with jsonschema, which imports rfc3987-syntax when it is
# installed (JupyterLab brings it), and that builds an Earley parser for IRIs as it is imported: a
# second of CPU for every process that renders a report, for a string format no notebook holds.
# Marked absent, jsonschema leaves out that one format check, as it does where the package is missing.
sys.modules.setdefault("rfc3987_syntax", None)


def default_reports_dir() -> Path:
    return runs.default_runs_dir().parent


def execute(notebook: Path, output: Path, parameters: dict, cwd: Path | None = None) -> None:
    """Run a notebook with papermill; a failure becomes one sentence naming the notebook."""
    import papermill
    from papermill.exceptions import PapermillExecutionError

    with _kernel_that_goes_with_wdm() as kernel_options:
        try:
            papermill.execute_notebook(str(notebook), str(output), parameters=parameters, kernel_name=KERNEL,
                                       progress_bar=False, log_output=False, cwd=str(cwd or NOTEBOOKS),
                                       extra_arguments=KERNEL_ARGUMENTS, **kernel_options)
        except PapermillExecutionError as e:
            raise WorkbenchError(f"{notebook}: stopped in cell {e.exec_count} with {e.ename}: {e.evalue} "
                                 f"(the executed notebook is {output}).") from None
        except Exception as e:  # the kernel would not start or died: still a sentence, not a traceback
            raise WorkbenchError(f"{notebook}: could not be executed ({e.__class__.__name__}: {e}).") from None


@contextlib.contextmanager
def _kernel_that_goes_with_wdm() -> Iterator[dict]:
    """papermill's options for a kernel that leaves nothing behind, however wdm ends (a `kill -9`
    included): the kernel's process group is handed to the reaper as it starts, and its connection
    file, which jupyter_client would write to the temporary folder and remove only on a clean end,
    goes in a folder of its own that the reaper holds too."""
    from jupyter_client.manager import AsyncKernelManager
    from traitlets import Unicode

    folder = tempfile.mkdtemp(prefix="wdm-kernel-")
    held = [reaper.watch_path(folder)]

    class ReapedKernelManager(AsyncKernelManager):
        connection_file = Unicode(os.path.join(folder, "kernel.json"))

        async def _async_launch_kernel(self, kernel_cmd: list[str], **kw) -> None:
            await super()._async_launch_kernel(kernel_cmd, **kw)
            # The hook jupyter_client offers subclasses. It starts a kernel in a session of its own: the
            # kernel leads its group, whose id is its pid.
            held.append(reaper.watch_group(self.provisioner.pid))

    try:
        yield {"kernel_manager_class": ReapedKernelManager}
    finally:  # papermill has shut the kernel down by now, as it always does
        shutil.rmtree(folder, ignore_errors=True)
        for guard in held:
            guard.release()


def to_html(executed: Path, title: str) -> str:
    import jinja2
    import nbformat
    from nbconvert import HTMLExporter

    # Only report.css from templates/: its page templates would stand in for lab's of the same names.
    css = (pages.TEMPLATES / "report.css").read_text(encoding="utf-8")
    exporter = HTMLExporter(extra_loaders=[jinja2.DictLoader({"offline.html.j2": OFFLINE_TEMPLATE, "report.css": css})],
                            template_file="offline.html.j2", exclude_input=True, exclude_input_prompt=True,
                            exclude_output_prompt=True, embed_images=True)
    nb = nbformat.read(executed, as_version=4)
    nb.metadata["title"] = title
    body, _ = exporter.from_notebook_node(nb)
    return body


def render(run_path: str | Path, reports_dir: str | Path | None = None, index: bool = True) -> Path:
    """Execute the notebook of the run's kind on it, write <reports_dir>/<run_id>.html, refresh the
    index of the runs beside it, and return the report's path. reports_dir defaults to the folder
    above the run's runs folder: reports/ for reports/runs/<id>. The executed notebook stays in the
    run folder."""
    path = Path(run_path).expanduser().resolve()
    if not path.is_dir():
        raise WorkbenchError(f"{run_path}: no such folder; expected a run folder made by wdm (under reports/runs/).")
    run = runs.Run.open(path)
    if runs.KINDS[run.kind] is None:
        raise WorkbenchError(f"{path}: a {run.kind} run, which has no report (it only times the batch init; "
                             f"its figures are in its summary.json).")
    notebook = NOTEBOOKS / runs.KINDS[run.kind]
    reports_dir = writable_folder(Path(reports_dir) if reports_dir is not None else path.parent.parent)
    executed = run.file(runs.EXECUTED_NOTEBOOK)
    execute(notebook, executed, {"run_dir": str(path)})
    report = reports_dir / f"{run.id}.html"
    write_page(report, to_html(executed, f"{run.kind} run {run.id}"))
    if index:
        write_index(reports_dir, path.parent)
    return report


def writable_folder(folder: Path) -> Path:
    """The folder reports go to, made if missing; one sentence when it cannot be written, found out
    before a notebook runs for nothing."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".wdm-write-test-{os.getpid()}"
        probe.touch()
        probe.unlink()
    except OSError as e:
        raise WorkbenchError(f"{folder}: reports cannot be written there ({e.strerror}); expected a writable "
                             f"folder (see --reports-dir).") from None
    return folder


def write_page(path: Path, text: str) -> None:
    try:
        runs.write_atomic(path, text)
    except OSError as e:
        raise WorkbenchError(f"{path}: cannot be written ({e.strerror}); nothing else was changed.") from None


def render_compare(run_dirs: list[str | Path], reports_dir: str | Path | None = None) -> Path:
    """Execute the compare notebook on the runs (the first the baseline) and write
    <reports_dir>/compare-<first>-vs-<n>.html; returns its path. reports_dir defaults to the folder
    above the first run's runs folder."""
    import tempfile

    paths = [Path(d).expanduser().resolve() for d in run_dirs]
    for d, path in zip(run_dirs, paths):
        if not path.is_dir():
            raise WorkbenchError(f"{d}: no such folder; expected a run folder made by wdm (under reports/runs/).")
    if len(paths) < 2:
        raise WorkbenchError(f"wdm compare needs at least two run folders, got {len(paths)}; expected RUN_DIR RUN_DIR [...].")
    from wdm_lib.compare import one_kind

    # a folder that is no readable run, or runs of two kinds, is one sentence before any notebook runs
    one_kind([runs.Run.open(path) for path in paths])
    reports_dir = writable_folder(Path(reports_dir) if reports_dir is not None else paths[0].parent.parent)
    name = f"compare-{paths[0].name}-vs-{len(paths) - 1}-{'-'.join(p.name[-4:] for p in paths[1:])}"
    with tempfile.TemporaryDirectory() as tmp:
        executed = Path(tmp) / "compare.ipynb"
        execute(NOTEBOOKS / "compare.ipynb", executed, {"run_dirs": [str(p) for p in paths]})
        report = reports_dir / f"{name}.html"
        write_page(report, to_html(executed, f"{len(paths)} runs compared"))
    return report


# --- the index ------------------------------------------------------------------------------------

# Fits 1,400 px: how a run ended is in its verdict cell ("failed: no verdict"), under it why, one line
# that opens to the whole error; a target that is a file shows its name (the whole path on hover).
INDEX_COLUMNS = ("run", "kind", "started", "target", "verdict", "anomalies", "ok / fail / unknown", "requests", "req/s",
                 "p99 ms")
NUMBER_COLUMNS = ("ok / fail / unknown", "requests", "req/s", "p99 ms")  # right-aligned, as figures are


def verdict_words(run: runs.Run, summary: dict | None) -> str:
    """The verdict as the index says it, how the run ended included: "inconsistent", "failed: no
    verdict", "crashed: passed" (a summary written before its process died)."""
    if summary is None:
        return "running" if run.status == runs.RUNNING else f"{run.status}: no verdict"
    words = summaries.verdict(summary)
    if run.status in (runs.COMPLETED, runs.DEGRADED) or words.startswith(run.status):
        return words
    return f"{run.status}: {words}"


def headline(run: runs.Run) -> dict:
    """The figures the index shows for one run, blank where its kind has none or it has no summary."""
    m = run.manifest
    target = m.get("target") or {}
    row = {"run": run.id, "kind": run.kind, "status": run.status, "started": (m.get("started_at") or "")[:16].replace("T", " "),
           "target": f"{target.get('source', '')}" + (f" ({target['anomaly']})" if target.get("anomaly") else ""),
           "note": m.get("error") or ""}
    try:
        summary = summaries.latest(run)[1]  # a run judged again by `wdm check` shows its newest verdict
    except (OSError, WorkbenchError) as e:
        row["verdict"], row["class"] = verdict_words(run, None), "none"
        row["note"] = row["note"] or ("" if isinstance(e, FileNotFoundError) else str(e))
        return row
    row["verdict"], row["class"] = verdict_words(run, summary), summaries.verdict_class(summary)
    if run.kind in ("consistency", "stress"):  # a stress-init run only timed the batch init
        o = summary["outcomes"]
        row["ok / fail / unknown"] = f"{o['ok']:,} / {o['fail']:,} / {o['unknown']:,}"
    if run.kind == "consistency":
        row["anomalies"] = banner.anomaly_list(summary["anomalies"])
    elif run.kind == "stress":
        row["requests"] = f"{summary['requests']:,}"
        row["req/s"] = f"{summary['throughput_rps']:,.1f}"
        p99 = (summary.get("latency_ms") or {}).get("p99")
        row["p99 ms"] = "" if p99 is None else f"{p99:,.1f}"
    return row


def current_report(reports_dir: Path, run: runs.Run) -> Path | None:
    """The run's rendered page, if there is one that shows the run as it is now: a page rendered
    before the run last changed (a run taken for crashed while it was suspended, which then went on
    and completed) is out of date and never linked."""
    page = reports_dir / f"{run.id}.html"
    try:
        return page if page.stat().st_mtime >= run.last_change() else None
    except OSError:
        return None


def _target(text: str) -> pages.Cell:
    """A urls file's name, its whole path on hover; the embedded shop as it is named."""
    name = Path(text.split(" (")[0]).name if "/" in text else ""
    return pages.Cell(text.replace(text.split(" (")[0], name, 1), title=text) if name else pages.Cell(text)


def write_index(reports_dir: str | Path | None = None, runs_dir: str | Path | None = None,
                render_missing: bool = False, say=None) -> Path:
    """reports/index.html: every run under <reports_dir>/runs (or runs_dir), newest first, with its
    headline figures and a link to its report. With render_missing, a run that has none yet (one a
    notebook made under papermill, say) gets its report rendered first."""
    reports_dir = Path(reports_dir) if reports_dir is not None else default_reports_dir()
    runs_dir = Path(runs_dir) if runs_dir is not None else reports_dir / "runs"
    writable_folder(reports_dir)
    found, unreadable = runs.scan_runs(runs_dir)
    for bad in unreadable if say else ():
        say(f"skipped {bad.path}: {bad.reason}")
    if render_missing:
        missing = [r for r in found if runs.KINDS[r.kind] and r.status != runs.RUNNING and current_report(reports_dir, r) is None]
        for i, run in enumerate(missing, 1):
            if say:
                say(f"rendering the report of {run.id} ({i} of {len(missing)})")
            try:
                render(run.path, reports_dir, index=False)
            except WorkbenchError as e:
                if say:
                    say(f"no report for {run.id}: {e}")
    rows = []
    for run in reversed(found):
        row, cells = headline(run), []
        for col in INDEX_COLUMNS:
            text = str(row.get(col, ""))
            cells.append(_target(text) if col == "target" else
                         pages.Cell(text, f"verdict {row.get('class', 'none')}" if col == "verdict" else
                                    "number" if col in NUMBER_COLUMNS else "id" if col == "run" else
                                    "when" if col == "started" else ""))
        cells[INDEX_COLUMNS.index("verdict")].detail = row["note"]
        page = current_report(reports_dir, run)
        cells[0].href = page.name if page is not None else ""
        rows.append(cells)
    for bad in unreadable:
        rows.append([pages.Cell(bad.path.name, "id"), pages.Cell("", colspan=3),
                     pages.Cell("unreadable", "verdict none", detail=bad.reason.removeprefix(str(bad.path)).lstrip("/: ")),
                     pages.Cell("", colspan=len(INDEX_COLUMNS) - 5)])
    text = pages.render("index.html.j2", columns=INDEX_COLUMNS, number_columns=NUMBER_COLUMNS, count=len(rows), runs_dir=runs_dir,
                        rows=rows or [[pages.Cell("no runs yet", colspan=len(INDEX_COLUMNS))]])
    index = reports_dir / INDEX
    write_page(index, text)
    return index
