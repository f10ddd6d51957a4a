"""A fault schedule: the YAML file `--faults FILE` names, read and checked before any load.

    faults:
      - name: stock dies                  # shown in tables and charts
        at: 2s                            # after the load starts
        run: docker compose kill stock-service    # any shell command, on this machine
        recover_after: 3s                 # optional
        recover: docker compose start stock-service
        timeout: 30s                      # optional: the most a command may take (default 30s)
      - name: shop paused
        at: 8s
        action: pause shop                # built in, on the embedded reference shop
        recover_after: 2s

A fault does `run` (a shell command) or `action` (`kill`, `pause` or `restart` of the embedded
shop, or of one of its services), then, `recover_after` later, recovers: the `recover` command, or
for an action its own undoing (a killed shop is started again, a paused one resumed; a restart
recovers by itself). A fault with a way to recover but no `recover_after` recovers when the load
ends, so the final state can always be read. Every fault in the file is checked here — keys, times,
actions, times beyond the run — so a typo ends the run before any load, in one sentence.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

from wdm_lib.errors import ConfigError, WorkbenchError
from wdm_lib.workloads.stress.scenario import parse_duration

KEYS = ("name", "at", "run", "action", "recover_after", "recover", "timeout")
VERBS = ("kill", "pause", "restart")
DEFAULT_TIMEOUT_S = 30.0
# What undoes each built-in action; a restart needs nothing (it starts the shop again itself).
UNDO = {"kill": "start", "pause": "resume", "restart": None}


@dataclass(frozen=True)
class Fault:
    name: str
    at_s: float
    run: str | None = None              # a shell command
    action: tuple[str, str] | None = None   # (verb, service) on the embedded shop
    recover_after_s: float | None = None
    recover: str | None = None          # a shell command
    timeout_s: float = DEFAULT_TIMEOUT_S

    @property
    def recovers(self) -> bool:
        return self.recover is not None or (self.action is not None and UNDO[self.action[0]] is not None)

    @property
    def what(self) -> str:
        """The command or action, as a table shows it."""
        return self.run if self.run is not None else " ".join(self.action)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["action"] = None if self.action is None else " ".join(self.action)
        return d


def _fault(source: str, index: int, entry: object, services: tuple[str, ...] | None) -> Fault:
    where = f"{source}: fault {index}"
    if not isinstance(entry, dict):
        raise ConfigError(f"{where} is {entry!r}; expected a mapping with name, at and run or action.")
    if isinstance(entry.get("name"), str) and entry["name"].strip():
        where += f" ({entry['name']!r})"
    unknown = [k for k in entry if k not in KEYS]
    if unknown:
        raise ConfigError(f"{where} has an unknown key {unknown[0]!r}; expected only {', '.join(KEYS)}.")
    for key in ("name", "at"):
        if key not in entry:
            raise ConfigError(f"{where} has no {key!r}; every fault needs a name and an at.")
    if not isinstance(entry["name"], str) or not entry["name"].strip():
        raise ConfigError(f"{where}: name is {entry['name']!r}; expected a non-empty text.")
    if ("run" in entry) == ("action" in entry):
        raise ConfigError(f"{where} has {'both' if 'run' in entry else 'neither'} run and action; "
                          f"expected exactly one: a shell command (run) or a built-in action.")

    def duration(key: str) -> float:
        try:
            return parse_duration(entry[key], f"{where}: {key}")
        except WorkbenchError as e:
            raise ConfigError(str(e)) from None

    def command(key: str) -> str:
        value = entry[key]
        if not isinstance(value, str) or not value.strip():
            raise ConfigError(f"{where}: {key} is {value!r}; expected a shell command.")
        return value

    action = None
    if "action" in entry:
        words = str(entry["action"]).split()
        if len(words) != 2 or words[0] not in VERBS:
            raise ConfigError(f"{where}: action is {entry['action']!r}; expected one of "
                              f"{', '.join(VERBS)} and what it acts on, such as 'kill shop'.")
        if services is None:
            raise ConfigError(f"{where}: action {entry['action']!r} acts on the embedded reference shop, but "
                              f"this run tests the system a urls file names; expected run: with a shell command.")
        if words[1] not in services:
            raise ConfigError(f"{where}: action {entry['action']!r} names {words[1]!r}; expected one of "
                              f"{', '.join(services)}.")
        action = (words[0], words[1])
    if "recover" in entry and "action" in entry:
        raise ConfigError(f"{where} has recover beside a built-in action; an action recovers by itself "
                          f"(expected recover only with run).")
    if "recover_after" in entry and "recover" not in entry and (action is None or UNDO[action[0]] is None):
        raise ConfigError(f"{where} has recover_after but nothing to recover with; expected a recover command.")
    return Fault(name=entry["name"].strip(), at_s=duration("at"),
                 run=command("run") if "run" in entry else None, action=action,
                 recover_after_s=duration("recover_after") if "recover_after" in entry else None,
                 recover=command("recover") if "recover" in entry else None,
                 timeout_s=duration("timeout") if "timeout" in entry else DEFAULT_TIMEOUT_S)


def parse_schedule(text: str, source: str, services: tuple[str, ...] | None = None,
                   load_s: float | None = None) -> list[Fault]:
    """The faults of a schedule's YAML text, in time order. `services`: what built-in actions may
    name (None: the target is not the embedded shop); `load_s`: how long the load is planned to
    last, so a fault that could never land during it is refused."""
    import yaml  # here, not at the top: a run without faults does not pay for it at start-up

    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{source}: not valid YAML{at} ({getattr(e, 'problem', None) or e}).") from None
    if not isinstance(data, dict) or set(data) != {"faults"} or not isinstance(data["faults"], list) \
            or not data["faults"]:
        raise ConfigError(f"{source}: expected a YAML mapping with one key, faults, holding a list of faults.")
    faults = [_fault(source, i, entry, services) for i, entry in enumerate(data["faults"], 1)]
    names = [f.name for f in faults]
    twice = next((n for n in names if names.count(n) > 1), None)
    if twice is not None:
        raise ConfigError(f"{source}: two faults are named {twice!r}; expected every name once (tables show them).")
    if load_s is not None:
        late = next((f for f in faults if f.at_s >= load_s), None)
        if late is not None:
            raise ConfigError(f"{source}: fault {late.name!r} is at {late.at_s:g} s, but the load lasts "
                              f"{load_s:g} s; expected every fault to start during the load.")
    return sorted(faults, key=lambda f: f.at_s)


def load_schedule(path: str | Path, services: tuple[str, ...] | None = None,
                  load_s: float | None = None) -> list[Fault]:
    from wdm_lib.shipped import FAULT_EXAMPLES, FAULTS_FOLDER, fault_example

    file = Path(path).expanduser()
    if not file.is_file():  # relative: from the working folder, or faults/<name>.yaml, a shipped example
        file = fault_example(file) or file
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        examples = ", ".join(f"{FAULTS_FOLDER}/{p.name}" for p in sorted(FAULT_EXAMPLES.glob("*.yaml")))
        raise ConfigError(f"{path}: no such file; expected a YAML fault schedule, such as one of the shipped "
                          f"examples ({examples}).") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: cannot be read ({e.__class__.__name__}: {e}).") from None
    return parse_schedule(text, str(path), services, load_s)
