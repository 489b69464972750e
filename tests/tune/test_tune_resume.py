"""A worker killed mid-training (SIGKILL): the job resumes elsewhere from its last checkpoint."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tune_jobs_env import capital_samples, fast_hyperparameters, register_base, write_dataset

from modelcycle.jobs import Worker
from modelcycle.services import Services, job_handlers
from modelcycle.testing import admin_of
from modelcycle.tune.schemas import TuneJobCreate

SCRIPT = Path(__file__).with_name("tune_worker_process.py")
LEASE_S = 2.0
DEADLINE_S = 180.0
CHECKPOINT_EVERY = 10


def _trainers_of(spec: Path) -> list[int]:
    """Processes whose command line names ``spec`` (the job's trainers still alive)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if str(spec) in (entry / "cmdline").read_bytes().decode(errors="replace"):
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def test_a_killed_workers_tuning_job_resumes_from_its_checkpoint_and_finishes(
    modelcycle_services: Services, tiny_base: Path
) -> None:
    services = modelcycle_services
    admin = admin_of(services).principal
    base = register_base(services, admin, tiny_base)
    write_dataset(services, admin, "capitals", capital_samples())
    hyperparameters = fast_hyperparameters(epochs=60, checkpoint_every_steps=CHECKPOINT_EVERY)
    body = TuneJobCreate.model_validate(
        {"base": base, "dataset": "capitals", "hyperparameters": hyperparameters}
    )
    job = services.tune.create(admin, body)
    assert job.job_id is not None
    home = services.settings.home
    doomed = subprocess.Popen(
        [sys.executable, str(SCRIPT), str(home), services.store.url, str(LEASE_S)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + DEADLINE_S
        while services.jobs.get(job.job_id).checkpoint is None:
            assert doomed.poll() is None, "the worker process died on its own"
            assert time.monotonic() < deadline, "training never saved a checkpoint"
            time.sleep(0.05)
        doomed.send_signal(signal.SIGKILL)
        doomed.wait(DEADLINE_S)
    finally:
        if doomed.poll() is None:
            doomed.kill()
            doomed.wait()
    saved = services.jobs.get(job.job_id).checkpoint
    assert saved is not None
    killed_at = int(saved["step"])
    assert services.tune.get(admin, job.id).status == "running"  # nobody told the queue

    # The trainer died with its worker: no orphan keeps writing checkpoints.
    spec = home / "tune" / job.id / "spec.json"
    deadline = time.monotonic() + 10
    while _trainers_of(spec):
        assert time.monotonic() < deadline, "the trainer outlived its killed worker"
        time.sleep(0.1)

    rescuer = Worker(services.jobs, job_handlers(services), owner="rescuer", lease_s=LEASE_S)
    deadline = time.monotonic() + DEADLINE_S
    while not rescuer.run_once():  # claimable once the dead worker's lease ran out
        assert time.monotonic() < deadline, "the killed worker's job was never resumed"
        time.sleep(0.1)

    done = services.tune.get(admin, job.id)
    assert done.status == "succeeded", done.error
    assert services.jobs.get(job.job_id).attempts == 2
    assert done.metrics["steps"] == 60 * 2  # 8 examples in batches of 4, 60 epochs
    messages = [event.message for event in services.tune.events(admin, job.id, limit=500)]
    assert any(m.startswith(f"resumed from step {killed_at} ") for m in messages)
    assert any(f"at step {killed_at}" in m for m in messages if m.startswith("resumed from /"))
    steps = [c.step for c in services.tune.checkpoints(admin, job.id)]
    assert steps[0] > killed_at
    assert killed_at in steps
    assert os.path.isdir(done.artifacts["adapter"])
    assert services.registry.get_version(admin, "toy", 2).metadata["tune_job"] == job.id
