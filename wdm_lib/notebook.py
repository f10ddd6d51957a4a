"""What the notebooks call: their run (the folder their `run_dir` parameter names, or a new run
made from their other parameters), and text from a target made safe for Markdown. Kept here so a
notebook is parameters, calls and charts."""

from __future__ import annotations

import argparse
import html
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from wdm_lib import runs, summaries
from wdm_lib.errors import WorkbenchError


# The characters that start markup in the middle of a line (emphasis, code, links, tables,
# strikethrough), and the backslash that would escape them; HTML's are replaced by entities.
_MARKDOWN_PUNCTUATION = re.compile(r"([\\`*_\[\]|~])")


def markdown_text(value: object) -> str:
    """A string from a target or a file name (a urls file's name, an id, an error text), to be put
    into a Markdown cell: it shows as written. A name holding an HTML tag renders as text, never as
    live HTML in the report; one holding `*` or `_` is not turned into emphasis."""
    return html.escape(_MARKDOWN_PUNCTUATION.sub(r"\\\1", str(value)), quote=False)


def open_run(run_dir: str | Path, kind: str | None = None) -> runs.Run:
    """A run (of that kind, if given); a relative path is from the working folder. A run may have
    ended without a verdict, however it ended (see consistency_summary and stress's report_summary):
    its report shows what it recorded."""
    path = Path(run_dir).expanduser()
    if not path.is_dir():
        raise WorkbenchError(f"{run_dir}: no such folder; expected a run folder made by wdm (under reports/runs/).")
    run = runs.Run.open(path)
    if kind is not None and run.kind != kind:
        raise WorkbenchError(f"{path}: a {run.kind} run; expected a {kind} run.")
    return run


def consistency_run(run_dir=None, urls=None, anomaly=None, runs_dir=None, faults=None, **scenario) -> runs.Run:
    """The run at run_dir, or a new one of ConsistencyScenario(**scenario) against urls, with the
    fault schedule `faults` (a YAML file) during its checkouts."""
    if run_dir is not None:
        return open_run(run_dir, "consistency")
    from wdm_lib.runner import run_consistency
    from wdm_lib.workloads.consistency_scenario import ConsistencyScenario

    # A Jupyter kernel runs an event loop of its own, and asyncio.run refuses to start inside one:
    # the run gets a thread without a loop.
    with ThreadPoolExecutor(1) as pool:
        run, _ = pool.submit(run_consistency, ConsistencyScenario(**scenario), urls=urls, anomaly=anomaly,
                             runs_dir=runs_dir, progress=False, faults=faults).result()
    return run


def consistency_summary(run: runs.Run) -> tuple[dict, dict | None]:
    """(summary, state) of a consistency run; for one that ended without a verdict (interrupted,
    crashed, failed), what its history recorded and no state."""
    if summaries.has(run):  # the newest judgement: `wdm check`'s, else the run's own
        return summaries.latest(run)[1], run.read_json("state.json")
    from wdm_lib.history import read_ops
    from wdm_lib.summary import summarize_recorded

    ops = read_ops(run.file("history.csv")) if run.file("history.csv").is_file() else []
    return summarize_recorded(run.id, run.status, run.manifest.get("error"), ops), None


def stress_run(run_dir=None, urls=None, runs_dir=None, **options) -> runs.Run:
    """The run at run_dir, or a new one made by `wdm stress run` with the given options, named as
    the command's options are (`threshold=["p99<500ms"]`, `wait_between=[1, 15]`, `verify=True`;
    None: the command's default). A separate process, because Locust's gevent patches the
    interpreter it runs in, which must not be the notebook's kernel."""
    if run_dir is not None:
        return open_run(run_dir, "stress")
    runs_dir = Path(runs_dir) if runs_dir is not None else runs.default_runs_dir()
    before = {r.path for r in runs.list_runs(runs_dir)}
    command = [sys.executable, "-m", "wdm_lib", "stress", "run", "--runs-dir", str(runs_dir),
               *stress_run_arguments({"urls": urls, **options})]
    done = subprocess.run(command, capture_output=True, text=True)
    made = [r for r in runs.list_runs(runs_dir) if r.path not in before and r.kind == "stress"]
    if not made:
        reason = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise WorkbenchError(f"{runs_dir}: `wdm stress run` made no run folder there (exit {done.returncode}: {reason}).")
    return open_run(made[-1].path, "stress")


def stress_run_options() -> dict:
    """`wdm stress run`'s options by their names as parameters (`--no-raw-latencies` ->
    no_raw_latencies), as argparse actions: the one list of what the command takes."""
    from wdm_lib.cli import build_parser

    def sub(parser, name):
        return next(a for a in parser._actions if a.choices and name in a.choices).choices[name]

    run = sub(sub(build_parser(), "stress"), "run")
    return {a.option_strings[-1].lstrip("-").replace("-", "_"): a for a in run._actions
            if a.option_strings and a.dest != "help"}


def stress_run_arguments(options: dict) -> list[str]:
    """Command-line arguments of `wdm stress run` for parameters named as stress_run_options."""
    known = stress_run_options()
    args: list[str] = []
    for name, value in options.items():
        if value is None or value is False:
            continue
        if name not in known:
            raise WorkbenchError(f"{name!r} is not an option of `wdm stress run`; expected one of "
                                 f"{', '.join(sorted(known))}.")
        action = known[name]
        flag = action.option_strings[-1]
        if action.nargs == 0:           # a switch: True turns it on
            args.append(flag)
        elif action.nargs == 2:          # wait_between=[1, 15] or "1 15"
            parts = value.replace(",", " ").split() if isinstance(value, str) else list(value)
            args += [flag, *map(str, parts)]
        elif isinstance(action, argparse._AppendAction):  # threshold: one flag per gate
            for v in [value] if isinstance(value, str) else value:
                args += [flag, str(v)]
        elif isinstance(value, (list, tuple)):  # steps=[50, 100]
            args += [flag, ",".join(map(str, value))]
        else:
            args += [flag, str(value)]
    return args
