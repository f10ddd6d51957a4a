"""The Run folder: reports/runs/<id>/ holding manifest.json, history.csv, state.json, summary.json
and whatever else a workload measures (Locust's CSVs). The manifest is rewritten atomically at
every change of status, so a folder always says whether its run completed, failed or was cut short."""

from __future__ import annotations

import itertools
import json
import os
import platform
import re
import secrets
import sys
import threading
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

from wdm_lib import __version__
from wdm_lib.config import redact
from wdm_lib.errors import WorkbenchError

RUNNING, COMPLETED, FAILED, INTERRUPTED = "running", "completed", "failed", "interrupted"
# A stress run that lost part of its load: its figures cover less than was planned.
DEGRADED = "degraded"
# The kinds of run wdm makes, and the notebook that reports each (None: a run with nothing to chart).
# A run folder is input from anyone: its manifest names one of these or it is not read, so it can
# never choose the notebook that runs, nor, through its id, where a page is written.
KINDS = {"consistency": "consistency.ipynb", "stress": "stress.ipynb", "stress-init": None}
STATUSES = (RUNNING, COMPLETED, FAILED, INTERRUPTED, DEGRADED)
# A run's id is a plain name: it becomes a file name (<id>.html) beside every other team's.
PLAIN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
# What a report writes into its run folder: not a change of the run.
EXECUTED_NOTEBOOK = "report.ipynb"
# What a run still marked running is when its process is gone: it was killed, or the machine died.
CRASHED = "crashed"
# A running run's process rewrites the manifest's heartbeat this often; one silent for STALE_S is
# taken as crashed even where its pid cannot be checked (another machine, a reused pid).
HEARTBEAT_S = 5.0
STALE_S = 6 * HEARTBEAT_S


def default_runs_dir() -> Path:
    """reports/runs of the working folder, wherever the workbench is installed (a notebook's working
    folder is its own folder in JupyterLab, the folder papermill runs in otherwise)."""
    return Path.cwd().resolve() / "reports" / "runs"


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    found = {"wdm_lib": __version__, "python": platform.python_version()}
    for pkg in ("aiohttp", "locust", "pandas"):
        try:
            found[pkg] = version(pkg)
        except PackageNotFoundError:
            pass
    return found


def write_atomic(path: Path, text: str) -> None:
    """Write then rename: a reader (or a crash) never sees half a file. Credentials in a URL
    (user:password@) never reach a file."""
    tmp = path.with_name(path.name + ".tmp")
    try:
        tmp.write_text(redact(text), encoding="utf-8")
        os.replace(tmp, path)
    except OSError as e:
        tmp.unlink(missing_ok=True)  # a half-written copy is no use to anyone
        raise OSError(e.errno, e.strerror, str(path)) from None  # a failed close names no file


# The pieces of a one-line-per-record map are joined this many records at a time: few, short strings.
_RECORDS_A_PIECE = 10_000


def _pieces(obj: Any, one_line_from: int | None, depth: int = 0) -> Iterator[str]:
    """The JSON of `obj` indented by two, except that every container at depth `one_line_from`
    or deeper is one line, written by json's C encoder: the pure-Python encoder that `indent`
    needs spends seconds on a state of 300,000 records (3.4 s against 0.6 s for the whole state
    compact, measured), while a record a line stays as easy to read and to grep."""
    if one_line_from is None:
        yield from json.JSONEncoder(indent=2, default=str).iterencode(obj)
        return
    encode = json.JSONEncoder(default=str).encode
    if depth >= one_line_from or not isinstance(obj, (dict, list)) or not obj:
        yield encode(obj)
        return
    inner, outer = "\n" + "  " * (depth + 1), "\n" + "  " * depth
    opening, closing = ("{", "}") if isinstance(obj, dict) else ("[", "]")
    # (the key as written, the value), made as they are written: a list's values have no key
    entries = ((_key(k) + ": ", v) for k, v in obj.items()) if isinstance(obj, dict) else (("", v) for v in obj)
    yield opening
    if depth + 1 >= one_line_from:
        # A map of records: every line made here, a batch at a time.
        first = True
        while batch := list(itertools.islice(entries, _RECORDS_A_PIECE)):
            yield ("" if first else ",") + ",".join(inner + key + encode(value) for key, value in batch)
            first = False
    else:
        for k, (key, value) in enumerate(entries):
            yield ("," if k else "") + inner + key
            yield from _pieces(value, one_line_from, depth + 1)
    yield outer + closing


_encode_str = json.encoder.encode_basestring_ascii  # as json.dumps writes a string (ensure_ascii)


def _key(key: Any) -> str:
    """A dict key as json writes it (a key that is not a string becomes the string of its JSON)."""
    return _encode_str(key if isinstance(key, str) else json.dumps(key))


def write_json(path: Path, obj: Any, one_line_from: int | None = None) -> None:
    """As write_atomic, streamed: a state of 300,000 records is never one string (and its redacted
    and encoded copies) in memory. Written a megabyte at a time, cut only between the encoder's
    pieces: a URL lies inside one JSON string, which is one piece, so redacting each part is
    redacting the whole. `one_line_from`: the depth from which containers are written on one line
    (see _pieces); None indents everything."""
    tmp = path.with_name(path.name + ".tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            part: list[str] = []
            size = 0
            for piece in _pieces(obj, one_line_from):
                part.append(piece)
                size += len(piece)
                if size >= 1 << 20:
                    f.write(redact("".join(part)))
                    part, size = [], 0
            f.write(redact("".join(part)) + "\n")
        os.replace(tmp, path)
    except OSError as e:
        tmp.unlink(missing_ok=True)  # a half-written copy is no use to anyone
        raise OSError(e.errno, e.strerror, str(path)) from None  # a failed close names no file


@dataclass
class Run:
    path: Path
    manifest: dict = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)
    _finished: threading.Event = field(default_factory=threading.Event, repr=False, compare=False)

    @classmethod
    def create(cls, runs_dir: str | Path | None, kind: str, scenario: dict, target: dict) -> "Run":
        runs_dir = Path(runs_dir) if runs_dir is not None else default_runs_dir()
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        run_id = f"{stamp}-{kind}-{secrets.token_hex(2)}"
        path = runs_dir / run_id
        try:
            path.mkdir(parents=True)
        except OSError as e:
            raise WorkbenchError(f"{runs_dir}: cannot create the run folder there ({e.strerror}); "
                                 f"expected a writable folder (see --runs-dir).") from None
        run = cls(path, {
            "id": run_id, "kind": kind, "status": RUNNING, "error": None,
            "scenario": scenario, "target": target, "versions": versions(),
            "command": " ".join(sys.argv), "host": platform.node(), "pid": os.getpid(),
            "started_at": _now(), "ended_at": None, "heartbeat_at": _now(),
        })
        run.save_manifest()
        run._start_heartbeat()
        return run

    def _start_heartbeat(self) -> None:
        """A daemon thread rewrites heartbeat_at until the run finishes, so a run whose process was
        killed (no chance to say so) is recognised later as crashed."""
        def beat() -> None:
            while not self._finished.wait(HEARTBEAT_S):
                with self._lock:
                    if self.manifest.get("status") != RUNNING:
                        return
                    self.manifest["heartbeat_at"] = _now()
                    try:
                        self.save_manifest()
                    except OSError:  # the folder is gone (removed under a run): nothing left to beat for
                        return
        threading.Thread(target=beat, name=f"heartbeat {self.id}", daemon=True).start()

    @classmethod
    def open(cls, path: str | Path) -> "Run":
        """The run in a folder, its manifest checked field by field: one sentence naming the file
        and the field when it is not what wdm writes."""
        path = Path(path)
        manifest_path = path / "manifest.json"
        try:
            manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise WorkbenchError(f"{path}: no manifest.json there; expected a run folder made by wdm "
                                 f"(under reports/runs/).") from None
        except (OSError, UnicodeDecodeError) as e:
            raise WorkbenchError(f"{manifest_path}: cannot be read ({e.__class__.__name__}: {e}).") from None
        except ValueError as e:
            raise WorkbenchError(f"{manifest_path}: not valid JSON ({e}); expected the manifest wdm writes.") from None
        run = cls(path, check_manifest(manifest, manifest_path))
        run.check_contained()
        return run

    @property
    def id(self) -> str:
        return self.manifest["id"]

    @property
    def kind(self) -> str:
        return self.manifest["kind"]

    def file(self, name: str) -> Path:
        return self.path / name

    def inside(self, name: str) -> Path:
        """A file of the run to read, resolved: one that a link takes out of the run folder is
        refused, so a folder from someone else cannot make a report read the machine's files."""
        path = self.file(name)
        resolved, folder = path.resolve(), self.path.resolve()
        if folder not in resolved.parents:
            raise WorkbenchError(f"{path}: leads out of its run folder (to {resolved}); expected a file of the run.")
        return resolved

    def check_contained(self) -> None:
        """Every link in the run folder (and in its faults/ logs) stays inside it: the analysis reads
        the folder's files by name, and none of them may be another file of the machine."""
        for folder in (self.path, self.path / "faults"):
            try:
                entries = [e for e in os.scandir(folder) if e.is_symlink()]
            except (FileNotFoundError, NotADirectoryError):
                continue
            for entry in entries:
                self.inside(os.path.relpath(entry.path, self.path))

    def last_change(self) -> float:
        """When the run last changed (a file's modification time, the report's own notebook aside):
        a page rendered before it shows a run that has moved on since."""
        times = [0.0]
        for entry in os.scandir(self.path):
            if entry.name != EXECUTED_NOTEBOOK:
                try:
                    times.append(entry.stat(follow_symlinks=False).st_mtime)
                except OSError:
                    continue
        return max(times)

    def save_manifest(self) -> None:
        write_json(self.file("manifest.json"), self.manifest)

    def update(self, **fields: Any) -> None:
        with self._lock:
            self.manifest.update(fields)
            self.save_manifest()

    def finish(self, status: str, error: str | None = None) -> None:
        """The run's end, in its manifest. Where the manifest cannot be written any more (the disk
        filled), the run's own error is the one to report: the folder then shows the run crashed."""
        self._finished.set()
        try:
            self.update(status=status, error=error, ended_at=_now())
        except OSError:
            if status == COMPLETED:
                raise

    @property
    def status(self) -> str:
        """The manifest's status, except that a run still marked running whose process is gone (or
        whose heartbeat stopped) is `crashed`."""
        m = self.manifest
        if m.get("status") != RUNNING:
            return m.get("status", "")
        if m.get("host") == platform.node() and isinstance(m.get("pid"), int) and not _alive(m["pid"]):
            return CRASHED
        beat = m.get("heartbeat_at") or m.get("started_at")
        try:
            silent = (datetime.now(timezone.utc) - datetime.fromisoformat(beat)).total_seconds()
        except (TypeError, ValueError):
            return RUNNING
        return CRASHED if silent > STALE_S else RUNNING

    def write_json(self, name: str, obj: Any, one_line_from: int | None = None) -> Path:
        path = self.file(name)
        write_json(path, obj, one_line_from)
        return path

    def read_json(self, name: str) -> Any:
        path = self.inside(name)
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except ValueError as e:  # not JSON, or not UTF-8
            raise WorkbenchError(f"{self.file(name)}: not valid JSON ({e}); expected the file wdm writes.") from None


def check_manifest(manifest: Any, source: Path) -> dict:
    """The manifest as wdm writes it, or one sentence naming the file and the first field that is not."""
    def bad(field_: str, expected: str) -> WorkbenchError:
        value = manifest.get(field_) if isinstance(manifest, dict) else manifest
        shown = repr(value) if len(repr(value)) <= 80 else repr(value)[:77] + "..."
        return WorkbenchError(f"{source}: {field_} is {shown}; expected {expected}.")

    if not isinstance(manifest, dict):
        raise bad("the whole file", "a JSON object")
    if not isinstance(manifest.get("id"), str) or not PLAIN_NAME.fullmatch(manifest["id"]):
        raise bad("id", "a plain name (letters, digits, '.', '_' and '-')")
    if manifest.get("kind") not in KINDS:
        raise bad("kind", f"one of {', '.join(KINDS)}")
    if manifest.get("status") not in STATUSES:
        raise bad("status", f"one of {', '.join(STATUSES)}")
    for name in ("scenario", "target", "versions"):
        if not isinstance(manifest.get(name, {}), dict):
            raise bad(name, "a JSON object")
    for name in ("error", "started_at", "ended_at", "heartbeat_at", "host", "command"):
        if manifest.get(name) is not None and not isinstance(manifest[name], str):
            raise bad(name, "a string")
    if manifest.get("pid") is not None and (not isinstance(manifest["pid"], int) or isinstance(manifest["pid"], bool)):
        raise bad("pid", "a process id")
    return manifest


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass(frozen=True)
class Unreadable:
    """A folder under the runs folder that is not a run wdm can read, and the sentence saying why."""

    path: Path
    reason: str


def scan_runs(runs_dir: str | Path | None = None) -> tuple[list[Run], list[Unreadable]]:
    """Every run folder under runs_dir, oldest first, and those that cannot be read. One bad
    folder (a manifest someone edited, a copy half made) is no reason not to read the others."""
    runs_dir = Path(runs_dir) if runs_dir is not None else default_runs_dir()
    found, unreadable = [], []
    for manifest in sorted(runs_dir.glob("*/manifest.json")):
        try:
            found.append(Run.open(manifest.parent))
        except WorkbenchError as e:
            unreadable.append(Unreadable(manifest.parent, str(e)))
    return found, unreadable


def list_runs(runs_dir: str | Path | None = None) -> list[Run]:
    """Every readable run folder under runs_dir, oldest first."""
    return scan_runs(runs_dir)[0]
