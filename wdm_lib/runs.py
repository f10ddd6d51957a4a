"""The Run folder: reports/runs/<id>/ holding manifest.json, history.csv, state.json, summary.json
and whatever else a workload measures (Locust's CSVs). The manifest is rewritten atomically at
every change of status, so a folder always says whether its run completed, failed or was cut short."""

from __future__ import annotations

import json
import os
import platform
import secrets
import sys
import threading
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from wdm_lib import __version__
from wdm_lib.config import PROJECT_ROOT
from wdm_lib.errors import WorkbenchError

RUNNING, COMPLETED, FAILED, INTERRUPTED = "running", "completed", "failed", "interrupted"
# What a run still marked running is when its process is gone: it was killed, or the machine died.
CRASHED = "crashed"
# A running run's process rewrites the manifest's heartbeat this often; one silent for STALE_S is
# taken as crashed even where its pid cannot be checked (another machine, a reused pid).
HEARTBEAT_S = 5.0
STALE_S = 6 * HEARTBEAT_S


def default_runs_dir() -> Path:
    """reports/runs of the project when working inside its checkout (from notebooks/ too), else of
    the working folder."""
    cwd = Path.cwd().resolve()
    if (PROJECT_ROOT / "pyproject.toml").is_file() and (cwd == PROJECT_ROOT or PROJECT_ROOT in cwd.parents):
        return PROJECT_ROOT / "reports" / "runs"
    return cwd / "reports" / "runs"


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
    """Write then rename: a reader (or a crash) never sees half a file."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def write_json(path: Path, obj: Any) -> None:
    write_atomic(path, json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n")


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
        path = Path(path)
        manifest_path = path / "manifest.json"
        try:
            manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise WorkbenchError(f"{path}: no manifest.json there; expected a run folder made by wdm "
                                 f"(under reports/runs/).") from None
        return cls(path, manifest)

    @property
    def id(self) -> str:
        return self.manifest["id"]

    @property
    def kind(self) -> str:
        return self.manifest["kind"]

    def file(self, name: str) -> Path:
        return self.path / name

    def save_manifest(self) -> None:
        write_json(self.file("manifest.json"), self.manifest)

    def update(self, **fields: Any) -> None:
        with self._lock:
            self.manifest.update(fields)
            self.save_manifest()

    def finish(self, status: str, error: str | None = None) -> None:
        self._finished.set()
        self.update(status=status, error=error, ended_at=_now())

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

    def write_json(self, name: str, obj: Any) -> Path:
        path = self.file(name)
        write_json(path, obj)
        return path

    def read_json(self, name: str) -> Any:
        return json.loads(self.file(name).read_text(encoding="utf-8"))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def list_runs(runs_dir: str | Path | None = None) -> list[Run]:
    """Every run folder under runs_dir, oldest first."""
    runs_dir = Path(runs_dir) if runs_dir is not None else default_runs_dir()
    runs = []
    for manifest in sorted(runs_dir.glob("*/manifest.json")):
        try:
            runs.append(Run.open(manifest.parent))
        except (ValueError, OSError):
            continue  # a folder someone else left, or a manifest being written: not ours to judge
    return runs
