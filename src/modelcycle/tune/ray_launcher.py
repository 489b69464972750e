"""Running training attempts as Ray jobs, when ``MODELCYCLE_RAY_ADDRESS`` names a cluster.

:class:`RayLauncher` submits ``python -m modelcycle.tune.train_main spec.json``
through the Ray Jobs API with the CPUs (and GPUs) it asks for, follows the job's
log and relays the same JSON-line events :class:`~modelcycle.tune.runner.LocalLauncher`
does. A stop request becomes ``stop_job``: Ray sends the trainer SIGTERM, the
trainer checkpoints and ends ``interrupted``.

What crosses to the cluster: the spec and, when they are small, the training and
validation files, uploaded as the job's ``working_dir`` (no shared storage needed
for them). The base model, the model cache and the output directory are paths the
cluster's nodes must see at the same place as the worker (a shared file system):
the adapter is written there and registered from there. ``modelcycle[tune]``
must be installed on every node.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import importlib
import logging
import math
import queue
import shutil
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from modelcycle.errors import MissingExtra
from modelcycle.tune.engine import TrainSpec
from modelcycle.tune.runner import (
    POLL_S,
    STDERR_TAIL_LINES,
    STOP_GRACE_S,
    EventSink,
    TrainerCrashed,
    TrainingFailed,
    _parse,
    _with_tail,
)

log = logging.getLogger(__name__)

SHIP_LIMIT_BYTES = 64 * 2**20
"""Training files up to this size (together) travel with the job; larger ones are read
in place, so they must be on storage the cluster's nodes share."""
JOB_KEY = "modelcycle_output_dir"
"""Job metadata naming the attempt's output directory: finds an earlier attempt's job."""
TAIL_RETRIES = 5
"""How often a dropped log stream is reopened before the attempt counts as crashed."""
STOPPED_WAIT_S = 30.0
"""How long a left-over job of an earlier attempt may take to stop."""


def _job_submission() -> Any:
    """``ray.job_submission``; untyped here so type checking never needs Ray installed."""
    try:
        return importlib.import_module("ray.job_submission")
    except ImportError:
        raise MissingExtra("ray", "ray") from None


class RayLauncher:
    """Runs the engine as a Ray job on the cluster at ``address``."""

    def __init__(
        self,
        address: str,
        *,
        num_cpus: float = 1.0,
        num_gpus: float = 0.0,
        python: str = "python",
        env: Mapping[str, str] | None = None,
        stop_grace_s: float = STOP_GRACE_S,
        ship_limit_bytes: int = SHIP_LIMIT_BYTES,
    ):
        self.address = address
        """The cluster's dashboard (``http://head:8265``), ``auto``, or a ``ray://`` address."""
        self.num_cpus, self.num_gpus = num_cpus, num_gpus
        self.python = python
        """The interpreter on the nodes' PATH that has ``modelcycle[tune]``."""
        self.env = dict(env or {})
        self.stop_grace_s = stop_grace_s
        self.ship_limit_bytes = ship_limit_bytes

    def run(
        self, spec: TrainSpec, workdir: Path, on_event: EventSink, should_stop: Callable[[], bool]
    ) -> dict[str, Any]:
        """See :meth:`modelcycle.tune.runner.Launcher.run`."""
        sdk = _job_submission()
        package, shipped = self._stage(spec, workdir / "ray-package")
        try:
            client = sdk.JobSubmissionClient(self.address)
            self._stop_leftovers(client, spec.output_dir)
            job_id = client.submit_job(
                entrypoint=f"{self.python} -m modelcycle.tune.train_main spec.json",
                submission_id=f"modelcycle-{workdir.name}-{uuid.uuid4().hex[:8]}",
                runtime_env={"working_dir": str(package), "env_vars": self._env_vars()},
                entrypoint_num_cpus=self.num_cpus,
                entrypoint_num_gpus=self.num_gpus or None,
                metadata={JOB_KEY: spec.output_dir},
            )
        except (ConnectionError, RuntimeError, ValueError, OSError) as exc:
            raise TrainerCrashed(
                f"cannot submit to the Ray cluster at {self.address}: {exc}"
            ) from None
        where = "shipped with the job" if shipped else "read in place (shared storage)"
        message = f"running as Ray job {job_id} on {self.address}; training data {where}"
        follower = _Follower(client, job_id)  # its requests and the tail share no state
        try:
            on_event({"event": "log", "level": "info", "message": message})
            final = follower.follow(on_event, should_stop, self.stop_grace_s, client)
        except BaseException:  # our side failed: leave no job writing checkpoints behind
            _stop_quietly(client, job_id)
            raise
        finally:
            follower.close()
        return self._outcome(client, job_id, final, follower.tail)

    # -- submitting ----------------------------------------------------------------------

    def _stage(self, spec: TrainSpec, package: Path) -> tuple[Path, bool]:
        """A ``working_dir`` with ``spec.json`` and, when small enough, the data files."""
        shutil.rmtree(package, ignore_errors=True)
        package.mkdir(parents=True)
        inputs = {"train.jsonl": spec.train_path}
        if spec.validation_path:
            inputs["validation.jsonl"] = spec.validation_path
        files = [Path(path) for path in inputs.values()]
        # a missing file stays a path: the trainer reports it by name
        shipped = all(f.is_file() for f in files) and (
            sum(f.stat().st_size for f in files) <= self.ship_limit_bytes
        )
        if shipped:
            for name, path in inputs.items():
                shutil.copyfile(path, package / name)
            spec = replace(
                spec,
                train_path="train.jsonl",
                validation_path="validation.jsonl" if spec.validation_path else None,
            )
        (package / "spec.json").write_text(spec.to_json(), encoding="utf-8")
        return package, shipped

    def _env_vars(self) -> dict[str, str]:
        return {
            "HF_HUB_OFFLINE": "1",
            "TOKENIZERS_PARALLELISM": "false",
            # torch uses the CPUs the job reserved, not every core of the node
            "MODELCYCLE_TRAIN_THREADS": str(max(1, math.floor(self.num_cpus))),
            # Ray's grace between SIGTERM and SIGKILL when the job is stopped (default 3 s)
            "RAY_JOB_STOP_WAIT_TIME_S": str(math.ceil(self.stop_grace_s)),
            **self.env,
        }

    def _stop_leftovers(self, client: Any, output_dir: str) -> None:
        """Stop a job an earlier attempt (whose worker died) left training into the same place."""
        running = [
            job.submission_id
            for job in client.list_jobs()
            if (job.metadata or {}).get(JOB_KEY) == output_dir and not job.status.is_terminal()
        ]
        for job_id in running:
            log.warning("stopping Ray job %s left by an earlier attempt", job_id)
            client.stop_job(job_id)
        deadline = time.monotonic() + STOPPED_WAIT_S
        while running and time.monotonic() < deadline:
            running = [j for j in running if not client.get_job_status(j).is_terminal()]
            time.sleep(POLL_S)

    # -- the result ----------------------------------------------------------------------

    @staticmethod
    def _outcome(
        client: Any, job_id: str, final: Mapping[str, Any] | None, tail: collections.deque[str]
    ) -> dict[str, Any]:
        lines = "\n".join(tail)
        if final is not None and final.get("event") == "done":
            adapter = Path(str(final.get("adapter_path", "")))
            if not final.get("interrupted") and not adapter.is_dir():
                raise TrainingFailed(
                    f"Ray job {job_id} wrote the adapter to {adapter}, which this worker "
                    "cannot see: put MODELCYCLE_HOME on storage every Ray node mounts at "
                    "the same path"
                )
            return dict(final)
        if final is not None:
            message = str(final.get("message") or "training failed")
            raise TrainingFailed(_with_tail(f"{message} (Ray job {job_id})", lines))
        if "No module named 'modelcycle" in lines or "No module named modelcycle" in lines:
            raise TrainingFailed(
                _with_tail(
                    f"Ray job {job_id}: modelcycle is not installed on the cluster; "
                    "run pip install 'modelcycle[tune]' on every Ray node",
                    lines,
                )
            )
        info = client.get_job_info(job_id)
        if not info.status.is_terminal():  # we lost its log: do not leave it training unseen
            _stop_quietly(client, job_id)
            raise TrainerCrashed(_with_tail(f"lost the log of Ray job {job_id}; stopped it", lines))
        why = f": {info.message}" if info.message else ""
        raise TrainerCrashed(
            _with_tail(f"Ray job {job_id} ended {info.status} without a result{why}", lines)
        )


class _Follower:
    """Streams a job's log lines from a thread of its own; the caller reads them off a queue."""

    def __init__(self, client: Any, job_id: str):
        self.client, self.job_id = client, job_id
        self.tail: collections.deque[str] = collections.deque(maxlen=STDERR_TAIL_LINES)
        """The last lines that were not events (stderr and stdout are one stream on Ray)."""
        self._lines: queue.SimpleQueue[str | None] = queue.SimpleQueue()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self._thread = threading.Thread(target=self._stream, daemon=True, name=f"tail-{job_id}")
        self._thread.start()

    def follow(
        self, on_event: EventSink, should_stop: Callable[[], bool], grace_s: float, client: Any
    ) -> dict[str, Any] | None:
        """Relay events until the log ends; the final ``done``/``error`` event, if any."""
        final: dict[str, Any] | None = None
        stop_sent_at: float | None = None
        while True:
            try:
                line = self._lines.get(timeout=POLL_S)
            except queue.Empty:
                line = ""
            if line is None:
                return final
            if line.startswith("{"):  # the trainer's events are JSON objects, one a line
                event = _parse(line)
                if event is not None and event.get("event") in ("done", "error"):
                    final = event
                elif event is not None:
                    on_event(event)
            elif line.strip():
                self.tail.append(line)
                on_event({"event": "log", "level": "debug", "message": line[:2000]})
            if stop_sent_at is None and should_stop():
                log.info("asking Ray job %s to checkpoint and stop", self.job_id)
                client.stop_job(self.job_id)
                stop_sent_at = time.monotonic()
            elif stop_sent_at is not None and time.monotonic() - stop_sent_at > grace_s + 60:
                return final  # Ray has killed it by now; the log stream hangs

    def close(self) -> None:
        """Stop streaming (the job may still run: stopping it is the caller's decision)."""
        if self._loop is not None and self._task is not None:
            # a closed loop raises RuntimeError: the stream has already ended by itself
            with contextlib.suppress(RuntimeError):
                self._loop.call_soon_threadsafe(self._task.cancel)
        self._thread.join(timeout=5)

    def _stream(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            self._task = loop.create_task(self._read())
            loop.run_until_complete(self._task)
        except asyncio.CancelledError:
            pass
        except Exception as exc:  # the cluster stopped answering: the caller sees no result
            log.warning("cannot follow Ray job %s: %s", self.job_id, exc)
        finally:
            loop.close()
            self._lines.put(None)

    async def _read(self) -> None:
        """Every line once, reopening the stream (which restarts at the top) when it drops."""
        seen = 0
        for attempt in range(TAIL_RETRIES + 1):
            count, partial = 0, ""
            try:
                async for chunk in self.client.tail_job_logs(self.job_id):
                    *complete, partial = (partial + chunk).split("\n")
                    for line in complete:
                        count += 1
                        if count > seen:
                            self._lines.put(line)
                    seen = max(seen, count)
            except Exception as exc:  # whatever broke the stream, reopen it
                log.warning("log stream of Ray job %s dropped: %s", self.job_id, exc)
            else:  # the stream ends when the job does; a last line may lack its newline
                status = await asyncio.to_thread(self.client.get_job_status, self.job_id)
                if status.is_terminal():
                    if partial and count >= seen:
                        self._lines.put(partial)
                    return
            await asyncio.sleep(min(2**attempt, 10))


def _stop_quietly(client: Any, job_id: str) -> None:
    try:
        client.stop_job(job_id)
    except Exception as exc:  # the cluster may be the reason we are failing
        log.warning("could not stop Ray job %s: %s", job_id, exc)
