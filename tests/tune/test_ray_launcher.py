"""Tuning jobs on a Ray cluster (``MODELCYCLE_RAY_ADDRESS``): a local Ray head started here.

The cluster tests need ``ray[default]`` (the Ray Jobs API lives in the dashboard)
and skip, saying so, without it; the log-stream and outcome tests run anyway.
"""

from __future__ import annotations

import collections
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from tune_jobs_env import capital_samples, fast_hyperparameters, register_base, write_dataset
from tune_toy import Events, hyperparameters

from modelcycle.jobs import JobState
from modelcycle.services import Services, build_worker
from modelcycle.settings import Settings
from modelcycle.testing import admin_of, make_services, make_settings
from modelcycle.tune.engine import TrainSpec
from modelcycle.tune.ray_launcher import RayLauncher, _Follower
from modelcycle.tune.runner import LocalLauncher, TrainingFailed, launcher_for
from modelcycle.tune.schemas import TuneJobCreate

# Ray's log tail calls aiohttp with ssl=None, which aiohttp deprecates (a warning, not a fault)
pytestmark = pytest.mark.filterwarnings("ignore:ssl=None is deprecated:DeprecationWarning")

DEADLINE_S = 180.0
RAY_START_S = 90.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[str]:
    """A one-node Ray cluster with its dashboard; its address (``http://127.0.0.1:PORT``)."""
    pytest.importorskip("peft", reason="the [hf] extra is not installed")
    sdk = pytest.importorskip(
        "ray.job_submission", reason="Ray is not installed (pip install 'modelcycle[ray]')"
    )
    temp = tempfile.mkdtemp(prefix="mc-ray-", dir="/tmp")  # Ray's socket paths must stay short
    dashboard = _free_port()
    command = [
        sys.executable, "-m", "ray.scripts.scripts", "start", "--head", "--block",
        "--node-ip-address=127.0.0.1", f"--port={_free_port()}", "--num-cpus=2",
        "--include-dashboard=true", "--dashboard-host=127.0.0.1", f"--dashboard-port={dashboard}",
        f"--ray-client-server-port={_free_port()}", f"--dashboard-agent-listen-port={_free_port()}",
        f"--object-store-memory={100 * 2**20}", f"--temp-dir={temp}", "--disable-usage-stats",
    ]  # fmt: skip
    head_log = open(f"{temp}/head.log", "wb")  # noqa: SIM115 - closed in the finally below
    head = subprocess.Popen(
        command, stdout=head_log, stderr=subprocess.STDOUT, start_new_session=True
    )
    address = f"http://127.0.0.1:{dashboard}"
    try:
        deadline = time.monotonic() + RAY_START_S
        while True:
            try:
                sdk.JobSubmissionClient(address).list_jobs()
                break
            except Exception:
                if head.poll() is not None or time.monotonic() > deadline:
                    log = Path(temp, "head.log").read_text(errors="replace")[-3000:]
                    pytest.fail(f"the local Ray head did not start:\n{log}")
                time.sleep(1)
        yield address
    finally:
        head.send_signal(signal.SIGTERM)  # --block: Ray's processes go down with it
        try:
            head.wait(timeout=30)
        except subprocess.TimeoutExpired:
            head.kill()
            head.wait()
        head_log.close()
        shutil.rmtree(temp, ignore_errors=True)


def _status(address: str, job_id: str) -> str:
    from ray.job_submission import JobSubmissionClient

    return str(JobSubmissionClient(address).get_job_status(job_id))


def _ray_job_of(services: Services, admin: Any, job_id: str) -> str:
    for event in services.tune.events(admin, job_id):
        if event.message.startswith("running as Ray job "):
            return event.message.split()[4]
    raise AssertionError("the job never said which Ray job runs it")


@pytest.fixture
def ray_services(tmp_path: Path, ray_cluster: str) -> Iterator[Services]:
    """Services whose tuning jobs go to ``ray_cluster``, as ``MODELCYCLE_RAY_ADDRESS`` says."""
    settings: Settings = make_settings(tmp_path, ray_address=ray_cluster, ray_num_cpus=1)
    services = make_services(settings)
    launcher = services.tune.launcher
    assert isinstance(launcher, RayLauncher)
    assert (launcher.address, launcher.num_cpus) == (ray_cluster, 1)
    launcher.python = sys.executable  # the test's venv plays the cluster's Python
    yield services
    services.close()


@pytest.mark.slow  # a local Ray head (~12 s once) and a Ray job (~8 s of overhead)
def test_a_tuning_job_trains_on_ray_and_registers_its_version(
    ray_services: Services, ray_cluster: str, tiny_base: Path
) -> None:
    services = ray_services
    admin = admin_of(services).principal
    base = register_base(services, admin, tiny_base)
    write_dataset(services, admin, "capitals", capital_samples())
    body = TuneJobCreate.model_validate(
        {
            "base": base,
            "dataset": "capitals",
            "hyperparameters": fast_hyperparameters(checkpoint_every_steps=20),
        }
    )
    job = services.tune.create(admin, body)

    assert build_worker(services, run_schedules=False).run_once()

    done = services.tune.get(admin, job.id)
    assert done.status == "succeeded", done.error
    assert (done.result_model, done.result_version) == ("toy", 2)
    assert done.metrics["train_loss"] < 0.5
    version = services.registry.get_version(admin, "toy", 2)
    assert Path(version.params["adapter"], "adapter_model.safetensors").is_file()
    # The trainer's events came back through the Ray job's log.
    events = services.tune.events(admin, job.id)
    assert any(e.level == "metric" and "train_loss" in (e.data or {}) for e in events)
    assert services.tune.checkpoints(admin, job.id), "checkpoint events were relayed"
    assert services.jobs.get(done.job_id or 0).progress == 1.0
    ray_job = _ray_job_of(services, admin, job.id)
    assert ray_job.startswith(f"modelcycle-{job.id}-")
    assert _status(ray_cluster, ray_job) == "SUCCEEDED"
    # The data travelled with the job: the spec Ray ran names it relative to its working dir.
    package = Path(services.settings.home, "tune", job.id, "ray-package")
    spec = TrainSpec.from_json((package / "spec.json").read_text())
    assert (spec.train_path, (package / "train.jsonl").is_file()) == ("train.jsonl", True)


@pytest.mark.slow  # a local Ray head (~12 s once) and a Ray job (~8 s of overhead)
def test_cancelling_a_job_stops_its_ray_job_at_a_checkpoint(
    ray_services: Services, ray_cluster: str, tiny_base: Path
) -> None:
    services = ray_services
    admin = admin_of(services).principal
    base = register_base(services, admin, tiny_base)
    # 4,000 steps (40 distinct pairs, 100 epochs): the tiny model trains a few hundred a
    # second and Ray's log arrives in bursts up to seconds late, so fewer steps could all
    # be done before the test sees training begin; the cancel stops the job early, so the
    # margin costs nothing when it works.
    pairs = [(f"country {i}", f"city {i}") for i in range(40)]
    write_dataset(services, admin, "capitals", capital_samples(pairs))
    hp = fast_hyperparameters(epochs=100, batch_size=1)
    body = TuneJobCreate.model_validate(
        {"base": base, "dataset": "capitals", "hyperparameters": hp}
    )
    running = services.tune.create(admin, body)
    worker = build_worker(services, run_schedules=False)
    thread = threading.Thread(target=worker.run_once)
    thread.start()
    deadline = time.monotonic() + DEADLINE_S
    while not any(
        e.message.startswith("training on") for e in services.tune.events(admin, running.id)
    ):
        assert time.monotonic() < deadline, "training on Ray never started"
        time.sleep(0.2)

    assert services.tune.cancel(admin, running.id).status == "running"
    thread.join(DEADLINE_S)
    assert not thread.is_alive()

    stopped = services.tune.get(admin, running.id)
    assert stopped.status == "cancelled"
    assert services.registry.get_model(admin, "toy").latest_version == 1
    assert services.tune.checkpoints(admin, running.id), "the trainer saved where it stopped"
    assert services.jobs.get(stopped.job_id or 0).state == JobState.CANCELLED
    assert _status(ray_cluster, _ray_job_of(services, admin, running.id)) == "STOPPED"


@pytest.mark.slow  # a local Ray head (~12 s once) and a Ray job (~8 s of overhead)
def test_a_bad_training_file_fails_naming_the_line_after_stopping_a_left_over_job(
    tmp_path: Path, ray_cluster: str, tiny_base: Path
) -> None:
    from ray.job_submission import JobSubmissionClient

    bad = tmp_path / "t.jsonl"
    bad.write_text('{"prompt": "a", "completion": "b"}\n{"prompt": "a", "completion": \n')
    spec = TrainSpec("sft-lora", str(tiny_base), str(bad), str(tmp_path / "out"), hyperparameters())
    # A Ray job of an earlier attempt, whose worker died, still writes to the same output.
    left_over = JobSubmissionClient(ray_cluster).submit_job(
        entrypoint="sleep 600", metadata={"modelcycle_output_dir": spec.output_dir}
    )
    launcher = RayLauncher(ray_cluster, num_cpus=1, python=sys.executable)

    with pytest.raises(TrainingFailed) as failed:
        launcher.run(spec, tmp_path / "work", Events().append, lambda: False)

    message = failed.value.message
    assert message.startswith("training file train.jsonl, line 2: not valid JSON")
    assert "(Ray job modelcycle-work-" in message
    assert _status(ray_cluster, left_over) == "STOPPED"


@pytest.mark.slow  # a Ray job (~8 s of overhead)
def test_a_cluster_without_modelcycle_fails_with_the_install_command(
    tmp_path: Path, ray_cluster: str, tiny_base: Path
) -> None:
    spec = TrainSpec(
        "sft-lora", str(tiny_base), str(tmp_path / "t.jsonl"), str(tmp_path / "out"), {}
    )
    bare = Path(sys.base_prefix, "bin", "python3")  # the interpreter under the venv: no modelcycle
    launcher = RayLauncher(ray_cluster, num_cpus=1, python=str(bare))

    with pytest.raises(TrainingFailed) as failed:
        launcher.run(spec, tmp_path / "work", Events().append, lambda: False)

    assert "run pip install 'modelcycle[tune]' on every Ray node" in failed.value.message
    assert "No module named" in failed.value.message  # the log's last lines come along


# -- without a cluster ---------------------------------------------------------------


def test_launcher_for_picks_ray_only_when_an_address_is_set() -> None:
    assert isinstance(launcher_for(None), LocalLauncher)
    ray = launcher_for("http://head:8265", ray_num_cpus=4, ray_num_gpus=1)
    assert isinstance(ray, RayLauncher)
    assert (ray.address, ray.num_cpus, ray.num_gpus) == ("http://head:8265", 4, 1)
    assert ray._env_vars()["MODELCYCLE_TRAIN_THREADS"] == "4"


class _DroppingClient:
    """A job log that drops mid-line once; every reconnect replays it from the top."""

    LOG = 'Running entrypoint\n{"event": "progress", "fraction": 0.5}\n{"event": "done", "x": 1}\n'

    def __init__(self) -> None:
        self.connects = 0

    async def tail_job_logs(self, job_id: str) -> AsyncIterator[str]:
        self.connects += 1
        if self.connects == 1:
            yield self.LOG[:50]
            raise RuntimeError("WebSocket connection closed unexpectedly")
        yield self.LOG

    def get_job_status(self, job_id: str) -> Any:
        class Status:
            @staticmethod
            def is_terminal() -> bool:
                return self.connects > 1

        return Status()


def test_a_dropped_log_stream_is_reopened_and_no_event_is_relayed_twice() -> None:
    client = _DroppingClient()
    follower = _Follower(client, "job-1")
    relayed = Events()

    final = follower.follow(relayed.append, lambda: False, grace_s=1, client=client)
    follower.close()

    assert client.connects == 2
    assert final == {"event": "done", "x": 1}
    assert relayed.of("progress") == [{"event": "progress", "fraction": 0.5}]
    assert [e["message"] for e in relayed.of("log")] == ["Running entrypoint"]
    assert list(follower.tail) == ["Running entrypoint"]


def test_an_adapter_this_worker_cannot_see_fails_the_job(tmp_path: Path) -> None:
    final = {
        "event": "done",
        "adapter_path": str(tmp_path / "on-the-cluster"),
        "interrupted": False,
    }
    with pytest.raises(TrainingFailed, match="storage every Ray node mounts"):
        RayLauncher._outcome(None, "job-1", final, collections.deque())
