"""Errors a user can cause. Each carries one sentence that names the file, URL or option at fault;
the CLI prints that sentence and exits 2, never a traceback."""


class WorkbenchError(Exception):
    """A fault the user can fix: bad input, an unreachable target, a target that breaks the API."""


class ConfigError(WorkbenchError):
    """urls.json (or another input file) is missing or malformed."""


class TargetUnreachable(WorkbenchError):
    """The target did not answer at all (connection refused, DNS failure, nothing within the timeout)."""


class ContractError(WorkbenchError):
    """The target answered 2xx with a body that API.md does not allow."""


class TargetDied(WorkbenchError):
    """The embedded shop's process exited during a run, and no fault schedule stopped it."""


def stopped_by(interrupt: KeyboardInterrupt) -> str:
    """What stopped wdm: Ctrl-C, or the signal cli.main turns into one (it raises
    KeyboardInterrupt("SIGTERM"), say)."""
    return str(interrupt.args[0]) if interrupt.args else "Ctrl-C"
