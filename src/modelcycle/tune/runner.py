"""Running one training attempt somewhere, and relaying what it reports.

A :class:`Launcher` runs the engine for a ``TrainSpec`` and hands every event
(``log``, ``metrics``, ``progress``, ``checkpoint``) to a callback as it comes,
then returns the final one (``done``). :class:`LocalLauncher` runs
``python -m modelcycle.tune.train_main`` as a child process of the worker:
a crash of the trainer (out of memory, a native fault) cannot take the worker
down, the child dies with the worker (``PR_SET_PDEATHSIG`` on Linux, so a
killed worker leaves no orphan writing checkpoints), and a stop request is a
SIGTERM, on which the engine saves a checkpoint and exits. A Ray launcher
(``MODELCYCLE_RAY_ADDRESS``) plugs in behind the same protocol.
"""

from __future__ import annotations

import collections
import json
import logging
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO, Any, Protocol

from modelcycle.errors import InvalidInput, ModelcycleError
from modelcycle.tune.engine import TrainSpec

log = logging.getLogger(__name__)

STDERR_TAIL_LINES = 40
STOP_GRACE_S = 120.0
"""How long a child asked to stop may take to checkpoint before it is killed."""
POLL_S = 0.2

EventSink = Callable[[Mapping[str, Any]], None]


class TrainingFailed(InvalidInput):
    """The trainer reported an error (data it cannot use, a model it cannot load, bad settings).

    Another attempt would fail the same way, so the job fails at once.
    """


class TrainerCrashed(ModelcycleError):
    """The trainer died without a final event (a signal, out of memory): worth another attempt."""


class Launcher(Protocol):
    """Runs one training attempt to its end."""

    def run(
        self, spec: TrainSpec, workdir: Path, on_event: EventSink, should_stop: Callable[[], bool]
    ) -> dict[str, Any]:
        """Train; relay events; return the ``done`` event (``interrupted`` when stopped).

        Raises :class:`TrainingFailed` when the trainer reports an error and
        :class:`TrainerCrashed` when it dies without a result.
        """
        ...


def _death_signal() -> Callable[[], None] | None:
    """A ``preexec_fn`` asking Linux to SIGKILL the child when the thread that started it ends.

    libc is resolved here, in the parent: the forked child only makes the call
    (no import, no lock another thread might hold).
    """
    if sys.platform != "linux":
        return None
    try:
        import ctypes

        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    kill = int(signal.SIGKILL)

    def preexec() -> None:  # pragma: no cover - runs in the forked child
        prctl(1, kill)  # PR_SET_PDEATHSIG

    return preexec


def _pump(stream: IO[str], into: queue.SimpleQueue[str | None]) -> None:
    for line in stream:
        into.put(line)
    into.put(None)


def _keep_tail(stream: IO[str], tail: collections.deque[str]) -> None:
    for line in stream:
        tail.append(line.rstrip("\n"))


class LocalLauncher:
    """Runs the engine in a child process of this one."""

    def __init__(self, *, python: str | None = None, stop_grace_s: float = STOP_GRACE_S):
        self.python = python or sys.executable
        self.stop_grace_s = stop_grace_s

    def run(
        self, spec: TrainSpec, workdir: Path, on_event: EventSink, should_stop: Callable[[], bool]
    ) -> dict[str, Any]:
        """See :meth:`Launcher.run`."""
        workdir.mkdir(parents=True, exist_ok=True)
        spec_path = workdir / "spec.json"
        spec_path.write_text(spec.to_json(), encoding="utf-8")
        command = [self.python, "-m", "modelcycle.tune.train_main", str(spec_path)]
        child = subprocess.Popen(  # noqa: S603 - our own interpreter and module
            command,
            cwd=workdir,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            bufsize=1,
            preexec_fn=_death_signal(),
        )
        assert child.stdout is not None
        assert child.stderr is not None
        lines: queue.SimpleQueue[str | None] = queue.SimpleQueue()
        tail: collections.deque[str] = collections.deque(maxlen=STDERR_TAIL_LINES)
        readers = [
            threading.Thread(target=_pump, args=(child.stdout, lines), daemon=True),
            threading.Thread(target=_keep_tail, args=(child.stderr, tail), daemon=True),
        ]
        for reader in readers:
            reader.start()
        try:
            final = self._follow(child, lines, on_event, should_stop)
        finally:
            if child.poll() is None:
                child.kill()
            child.wait()
            for reader in readers:
                reader.join(timeout=5)
            child.stdout.close()
            child.stderr.close()
        return self._outcome(final, child.returncode, tail)

    def _follow(
        self,
        child: subprocess.Popen[str],
        lines: queue.SimpleQueue[str | None],
        on_event: EventSink,
        should_stop: Callable[[], bool],
    ) -> dict[str, Any] | None:
        final: dict[str, Any] | None = None
        stop_sent_at: float | None = None
        while True:
            try:
                line = lines.get(timeout=POLL_S)
            except queue.Empty:
                line = ""
            if line is None:  # stdout closed: the child is done
                return final
            event = _parse(line) if line.strip() else None
            if event is not None:
                if event.get("event") in ("done", "error"):
                    final = event
                else:
                    on_event(event)
            if stop_sent_at is None and should_stop():
                log.info("asking the trainer (pid %s) to checkpoint and stop", child.pid)
                child.send_signal(signal.SIGTERM)
                stop_sent_at = time.monotonic()
            elif stop_sent_at is not None and time.monotonic() - stop_sent_at > self.stop_grace_s:
                child.kill()

    @staticmethod
    def _outcome(
        final: Mapping[str, Any] | None, returncode: int | None, tail: collections.deque[str]
    ) -> dict[str, Any]:
        stderr = "\n".join(tail)
        if final is not None and final.get("event") == "done":
            return dict(final)
        if final is not None:
            message = str(final.get("message") or "training failed")
            raise TrainingFailed(_with_tail(message, stderr))
        how = f"signal {-returncode}" if returncode and returncode < 0 else f"code {returncode}"
        raise TrainerCrashed(_with_tail(f"the trainer exited ({how}) without a result", stderr))


def _parse(line: str) -> dict[str, Any] | None:
    """A JSON event line; anything else (a stray print) is relayed as a log line."""
    try:
        value = json.loads(line)
    except json.JSONDecodeError:
        return {"event": "log", "level": "info", "message": line.rstrip()[:2000]}
    return value if isinstance(value, dict) else None


def _with_tail(message: str, stderr: str) -> str:
    return f"{message}\n--- trainer stderr (last lines) ---\n{stderr}" if stderr else message


def launcher_for(
    ray_address: str | None, *, ray_num_cpus: float = 1.0, ray_num_gpus: float = 0.0
) -> Launcher:
    """The launcher the settings ask for: local unless a Ray cluster is configured."""
    if ray_address:
        from modelcycle.tune.ray_launcher import RayLauncher  # it imports this module

        return RayLauncher(ray_address, num_cpus=ray_num_cpus, num_gpus=ray_num_gpus)
    return LocalLauncher()
