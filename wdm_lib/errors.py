"""Errors a user can cause. Each carries one sentence that names the file, URL or option at fault;
the CLI prints that sentence and exits 2, never a traceback."""

from pathlib import Path


class WorkbenchError(Exception):
    """A fault the user can fix: bad input, an unreachable target, a target that breaks the API.
    `phrase`: what went wrong in a few words, as a league table names why a team is down."""

    phrase = "could not be run"


class ConfigError(WorkbenchError):
    """urls.json (or another input file) is missing or malformed."""

    phrase = "bad input file"


class TargetUnreachable(WorkbenchError):
    """The target did not answer at all (connection refused, DNS failure, nothing within the timeout)."""

    phrase = "unreachable"


class ContractError(WorkbenchError):
    """The target answered 2xx with a body that API.md does not allow."""

    phrase = "breaks the API"


class RecordingFailed(WorkbenchError):
    """wdm could not write what it records (a full disk, a folder it may not write): the run stops,
    and what was flushed before stays on disk."""

    phrase = "could not record"

    @classmethod
    def writing(cls, path, error: OSError) -> "RecordingFailed":
        return cls(f"{path}: cannot be written ({error.strerror or error}); the run stopped there, and what was "
                   f"recorded before is kept in {Path(path).parent}.")


class TargetDied(WorkbenchError):
    """The embedded shop's process exited during a run, and no fault schedule stopped it."""

    phrase = "shop died"


_stopped_by = "Ctrl-C"


def stop_came_from(name: str) -> None:
    """Set by cli.main: a SIGTERM or SIGHUP stops wdm as Ctrl-C does, and the run says which came."""
    global _stopped_by
    _stopped_by = name


def stopped_by() -> str:
    """What stopped wdm when a KeyboardInterrupt ends a run: Ctrl-C, or the signal taken for one."""
    return _stopped_by


def interruption() -> str:
    """The note of a run a KeyboardInterrupt ended, in its manifest (and history), naming what came."""
    return f"interrupted by the user ({_stopped_by})"
