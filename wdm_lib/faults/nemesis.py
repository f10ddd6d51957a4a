"""The nemesis: runs a fault schedule while the load runs, and records every step in the history.

Each step (a fault's injection, its recovery) starts at its time after the load started, as a task
of its own, so a slow command never delays another fault. A shell command runs in a session of its
own with the fault's timeout; its exit status and output are kept in the run folder
(`faults/NN-<step>.log`), written there as it comes. Its process group is ended with the run (a
child it left in the background included), and is the reaper's meanwhile, so that even a `kill -9`
of wdm leaves none of it behind. A built-in action calls the embedded shop's process (kill, pause,
restart; start and resume to recover) on a worker thread, so the load's event loop never waits.

The nemesis judges nothing: measures.py and the checkers read its rows.
"""

from __future__ import annotations

import asyncio
import codecs
import os
import re
import signal
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Awaitable

from wdm_lib import reaper
from wdm_lib.errors import WorkbenchError
from wdm_lib.faults.schedule import UNDO, Fault
from wdm_lib.history import FAIL, OK, HistoryWriter

OUTPUT_CAP = 1 << 20  # of a command's output, kept in its log file
TAIL_BYTES = 4096  # of a command's output, kept in memory for the sentence that says why it failed
INJECT, RECOVER = "inject", "recover"
# A command waits for its stdin to close before it runs: by then its process group is the
# reaper's, so a wdm killed at any moment leaves nothing of it behind. (Its stdin is then at its
# end, as /dev/null would be.)
GATED = 'read -r _ ; exec /bin/sh -c "$1"'


if TYPE_CHECKING:
    from wdm_lib.reference.supervisor import Shop


class FaultFailed(WorkbenchError):
    """A step of the fault schedule did not do what it says: the run cannot say what it tested."""

    phrase = "fault step failed"


class Nemesis:
    def __init__(self, faults: list[Fault], history: HistoryWriter, folder: Path, shop: Shop | None = None):
        """`shop`: the embedded shop (ReferenceShopProcess or ReferenceServices), for built-in actions;
        None when the target is a urls file."""
        self.faults = faults
        self.history = history
        self.folder = folder
        self.shop = shop
        self._t0 = 0.0
        self._t0_ns = 0
        self._logs = 0
        self._tasks: list[asyncio.Task] = []
        self._load_ended: asyncio.Event | None = None
        self._failure: asyncio.Future | None = None
        # Services the schedule has taken down on purpose: their death is no error of the run.
        self._down: set[str] = set()
        # The process groups of the commands that left something running, and the reaper's hold on each.
        self._groups: dict[int, reaper.Guard] = {}

    # --- what the workload's load runs alongside -----------------------------------------------------
    async def alongside(self, load: Awaitable, started_ns: int | None = None) -> None:
        """Run the load with the schedule beside it, its times counted from now or from `started_ns`
        (wall clock), when the load started a moment before we heard of it. A step that fails stops
        the load (its in-flight requests are recorded as they end) and raises FaultFailed. When the
        load ends, faults not yet due never happen, and every fault injected recovers at once if it
        has not yet, so the final state can be read; the same on Ctrl-C, so a user's containers are
        not left down."""
        self._t0, self._t0_ns = time.monotonic(), time.time_ns()
        if started_ns is not None and started_ns <= self._t0_ns:
            self._t0, self._t0_ns = self._t0 - (self._t0_ns - started_ns) / 1e9, started_ns
        self._load_ended = asyncio.Event()
        self._failure = asyncio.get_running_loop().create_future()
        load_task = asyncio.ensure_future(load)
        self._tasks = [asyncio.ensure_future(self._fault(fault)) for fault in self.faults]
        try:
            await asyncio.wait({load_task, self._failure}, return_when=asyncio.FIRST_COMPLETED)
            if not load_task.done():
                load_task.cancel()
                await asyncio.gather(load_task, return_exceptions=True)
            else:
                load_task.result()
        finally:
            load_task.cancel()
            self._load_ended.set()
            try:
                await asyncio.gather(*self._tasks, return_exceptions=True)
            finally:
                self._end_commands()
        if self._failure.done():
            raise self._failure.result()

    def down_on_purpose(self, service: str) -> bool:
        return service in self._down or "shop" in self._down

    # --- the steps -------------------------------------------------------------------------------------
    async def _until(self, offset_s: float | None) -> int | None:
        """Wait until offset_s after the load started (None: until the load ends). Returns when it
        was due in wall-clock ns, or None if the load ended first."""
        delay = None if offset_s is None else self._t0 + offset_s - time.monotonic()
        if delay is None or delay > 0:
            try:
                await asyncio.wait_for(self._load_ended.wait(), delay)
                return None
            except asyncio.TimeoutError:
                pass
        return self._t0_ns + int(offset_s * 1e9)

    async def _fault(self, fault: Fault) -> None:
        due_ns = await self._until(fault.at_s)
        if due_ns is None or self._failure.done():
            return  # the load ended (or the run failed) before this fault was due: it never happens
        await self._step(fault, INJECT, due_ns)
        if fault.recovers:
            recover_at = None if fault.recover_after_s is None else fault.at_s + fault.recover_after_s
            due_ns = await self._until(recover_at)
            await self._step(fault, RECOVER, due_ns or time.time_ns())

    async def _step(self, fault: Fault, step: str, due_ns: int) -> None:
        if fault.action is not None:
            verb, service = fault.action
            what = f"{verb} {service}" if step == INJECT else f"{UNDO[verb]} {service}"
        else:
            what = fault.run if step == INJECT else fault.recover
        started_ns = time.time_ns()
        if fault.action is not None:
            status, error = await self._act(what)
        else:
            status, error = await self._shell(fault, step, what)
        self.history.record_fault(fault.name, step, what, due_ns, started_ns, time.time_ns(), status,
                                  OK if error is None else FAIL, error or "")
        if error is not None:
            failure = FaultFailed(f"fault {fault.name!r}: {step} step `{what}` {error}; expected it to succeed. "
                                  f"The run stopped; everything recorded up to it is kept.")
            if not self._failure.done():
                self._failure.set_result(failure)
            raise failure

    async def _act(self, what: str) -> tuple[int | None, str | None]:
        verb, service = what.split()
        if verb in ("kill", "restart"):
            self._down.add(service)
        try:
            await asyncio.to_thread(getattr(self.shop, verb), service)
        except (WorkbenchError, OSError) as e:
            return None, f"failed: {e}"
        if verb in ("start", "restart"):
            self._down.discard(service)
        return 0, None

    def _environment(self) -> dict[str, str]:
        """A command's environment: the workbench's, plus WDM_PID_<SERVICE> for each process of the
        embedded shop, so a command can signal one (`kill -STOP $WDM_PID_SHOP`)."""
        env = dict(os.environ)
        if self.shop is not None:
            env.update({f"WDM_PID_{service.upper()}": str(pid) for service, pid in self.shop.pids.items()})
        return env

    async def _shell(self, fault: Fault, step: str, command: str) -> tuple[int | None, str | None]:
        self._logs += 1
        slug = re.sub(r"[^a-z0-9]+", "-", fault.name.lower()).strip("-")[:40] or "fault"
        log = self.folder / "faults" / f"{self._logs:02d}-{slug}-{step}.log"
        log.parent.mkdir(exist_ok=True)
        started = time.monotonic()
        proc = await asyncio.create_subprocess_exec("/bin/sh", "-c", GATED, "sh", command,
                                                    stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
                                                    stderr=asyncio.subprocess.STDOUT, start_new_session=True,
                                                    env=self._environment())
        self._groups[proc.pid] = reaper.watch_group(proc.pid)
        proc.stdin.close()  # the go: the command runs, its group already the reaper's
        with open(log, "w", encoding="utf-8") as file:
            file.write(f"$ {command}\n")
            output = _Output(file)
            error = await _finish(proc, output, fault.timeout_s)
            file.write(f"{output.end()}\n[exit status {proc.returncode}, {time.monotonic() - started:.3f} s]\n")
        self._release_if_gone(proc.pid)
        if error is not None:
            said = error_line(output.tail())
            error += f": {said[:200]!r} (its output: {log})" if said else f", printing nothing (see {log})"
        return proc.returncode, error

    def _release_if_gone(self, pgid: int) -> None:
        """A command's group with nothing left in it is no longer ours to end: its id may be reused."""
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            self._groups.pop(pgid).release()

    def _end_commands(self) -> None:
        """What the commands left running (a child in the background) ends with the run."""
        for pgid, guard in self._groups.items():
            _end_group(pgid)
            guard.release()
        self._groups.clear()


async def _finish(proc: asyncio.subprocess.Process, output: "_Output", timeout_s: float) -> str | None:
    """Wait for a command to exit and its output to end, copying the output meanwhile; None if it
    exited with status 0, else what went wrong. Past its timeout, its whole group is killed."""
    copying = asyncio.ensure_future(output.copy(proc.stdout))
    try:
        await asyncio.wait_for(asyncio.gather(asyncio.shield(copying), proc.wait()), timeout_s)
        error = None if proc.returncode == 0 else f"exited with status {proc.returncode}"
    except asyncio.TimeoutError:
        _end_group(proc.pid)  # its own session: the command and all it started
        error = f"did not finish within its timeout of {timeout_s:g} s"
    except asyncio.CancelledError:
        _end_group(proc.pid)
        copying.cancel()
        await proc.wait()
        raise
    await proc.wait()
    await copying  # at its end once the group has gone
    return error


# Lines a command prints after its error only to point at its help (docker's "Run 'docker --help'
# for more information", git's "See 'git --help'."): the line that says what went wrong is above.
HELP_POINTER = re.compile(r"--help\b|\bfor more information\b|^usage:", re.IGNORECASE)


def error_line(output: str) -> str:
    """The line of a failed command's output that says why: its last line that is not blank and
    not a pointer to its help (a command's output ends with its error, as the shell prints it)."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    said = [line for line in lines if not HELP_POINTER.search(line)]
    return (said or lines or [""])[-1]


def _end_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:  # every process of it has gone
        pass


class _Output:
    """A command's output on its way to its log file, as it comes: the first OUTPUT_CAP bytes are
    written, the rest read and dropped, and only the last TAIL_BYTES kept in memory, so a command
    that prints without end fills neither the disk nor the memory."""

    def __init__(self, file):
        self.file = file
        self.total = 0
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._tail = b""

    async def copy(self, stream: asyncio.StreamReader) -> None:
        while chunk := await stream.read(1 << 16):
            kept = chunk[:max(0, OUTPUT_CAP - self.total)]
            if kept:
                self.file.write(self._decoder.decode(kept))
                self.file.flush()
            self.total += len(chunk)
            self._tail = (self._tail + chunk)[-TAIL_BYTES:]

    def end(self) -> str:
        """What is left to write once the output has ended: the last characters the decoder held,
        and a line saying how much was dropped, if any was."""
        cut = f"\n[output cut at {OUTPUT_CAP:,} of {self.total:,} bytes]" if self.total > OUTPUT_CAP else ""
        return self._decoder.decode(b"", final=True) + cut

    def tail(self) -> str:
        return self._tail.decode(errors="replace")


class NemesisThread:
    """The nemesis on a thread and event loop of its own, beside a load the caller runs and waits
    for itself (Locust, in a subprocess). start() when the load starts; check() now and then to
    hear of a step that failed (it raises FaultFailed); stop() when the load has ended: the faults
    still injected recover, and a step that failed raises."""

    def __init__(self, nemesis: Nemesis):
        self.nemesis = nemesis
        self.error: BaseException | None = None
        self._started_ns: int | None = None
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ended: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, name="nemesis", daemon=True)

    def _run(self) -> None:
        async def main() -> None:
            self._loop, self._ended = asyncio.get_running_loop(), asyncio.Event()
            self._ready.set()
            await self.nemesis.alongside(self._ended.wait(), self._started_ns)
        try:
            asyncio.run(main())
        except BaseException as e:  # handed to the load's thread by check() and stop()
            self.error = e
        finally:
            self._ready.set()

    def start(self, started_ns: int | None = None) -> None:
        """The load has started (at `started_ns`, wall clock, when it began before this call)."""
        self._started_ns = started_ns
        self._thread.start()
        self._ready.wait()

    @property
    def started(self) -> bool:
        return self._thread.ident is not None

    def check(self) -> None:
        if not self._thread.is_alive() and self.error is not None:
            raise self.error

    def stop(self) -> None:
        if not self.started:
            return  # the load never started: no fault was due
        if self._thread.is_alive() and self._loop is not None:
            self._loop.call_soon_threadsafe(self._ended.set)
        self._thread.join()
        if self.error is not None:
            raise self.error
