"""``/v1/fine_tuning/jobs`` through the official ``openai`` SDK against a live server."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
from openai.types.fine_tuning import FineTuningJob, FineTuningJobEvent
from openai.types.fine_tuning.jobs import FineTuningJobCheckpoint

from e2e.live import LiveServer
from modelcycle.deploy import DeploymentSpec
from modelcycle.services import Services, build_worker
from modelcycle.testing import admin_of, make_key, make_project, register
from modelcycle.types import ROOT_PROJECT, BackendKind, Role

CAPITALS = [
    ("france", "paris"),
    ("italy", "rome"),
    ("spain", "madrid"),
    ("germany", "berlin"),
    ("japan", "tokyo"),
    ("egypt", "cairo"),
    ("peru", "lima"),
    ("kenya", "nairobi"),
]
WORDS = ["question", ":", "capital", "of", "?", "answer", *(w for pair in CAPITALS for w in pair)]
BASE_PARAMS: dict[str, Any] = {
    "prompt_format": "completion",
    "prompt_template": "question : {prompt} ? answer :",
    "temperature": 0,
    "max_tokens": 2,
}


def jsonl(rows: list[dict[str, Any]]) -> bytes:
    return "".join(json.dumps(row) + "\n" for row in rows).encode()


CHAT = jsonl(
    [
        {
            "messages": [
                {"role": "user", "content": f"capital of {country}"},
                {"role": "assistant", "content": capital},
            ]
        }
        for country, capital in CAPITALS
    ]
)
PAIRS = jsonl(
    [
        {
            "input": {"messages": [{"role": "user", "content": f"capital of {country}"}]},
            "preferred_output": [{"role": "assistant", "content": capital}],
            "non_preferred_output": [{"role": "assistant", "content": "rome"}],
        }
        for country, capital in CAPITALS[2:]
    ]
)


def sdk(server: LiveServer, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key=key, max_retries=0, timeout=30)


def register_base(services: Services, source: Path) -> str:
    register(
        services,
        admin_of(services).principal,
        "toy",
        source=str(source),
        backend=BackendKind.TRANSFORMERS,
        params=BASE_PARAMS,
    )
    return "toy@1"


@pytest.fixture
def client(live_server: LiveServer, tmp_path: Path) -> Iterator[openai.OpenAI]:
    """An admin SDK client; ``toy@1`` is a (never trained here) checkpoint directory."""
    source = tmp_path / "base"
    source.mkdir()
    register_base(live_server.services, source)
    with sdk(live_server, live_server.admin_key) as api:
        yield api


def upload(client: openai.OpenAI, content: bytes = CHAT) -> str:
    return client.files.create(file=("train.jsonl", content), purpose="fine-tune").id


def test_create_read_list_and_cancel_a_job_with_the_sdk(
    client: openai.OpenAI, modelcycle_services: Services
) -> None:
    training = upload(client)

    job = client.fine_tuning.jobs.create(
        model="toy@1",
        training_file=training,
        hyperparameters={"n_epochs": 5, "batch_size": 2, "learning_rate_multiplier": 10},
        suffix="capitals",
        seed=42,
    )

    assert isinstance(job, FineTuningJob)
    assert job.id.startswith("ftjob-")
    assert (job.object, job.status, job.model, job.training_file) == (
        "fine_tuning.job", "queued", "toy@1", training,
    )  # fmt: skip
    assert (job.fine_tuned_model, job.finished_at, job.error, job.seed) == (None, None, None, 42)
    assert job.organization_id == ROOT_PROJECT  # the key's project
    assert job.hyperparameters.n_epochs == 5
    assert job.hyperparameters.batch_size == 2
    assert job.hyperparameters.learning_rate_multiplier == 10
    assert job.method is not None
    assert job.method.type == "supervised"
    # The same job on our own API: learning_rate = 2e-4 x multiplier.
    admin = modelcycle_services.access.authenticate(client.api_key)
    ours = modelcycle_services.tune.get(admin, job.id)
    assert ours.hyperparameters.learning_rate == pytest.approx(2e-3)
    assert (ours.hyperparameters.epochs, ours.hyperparameters.seed, ours.method) == (
        5,
        42,
        "sft-lora",
    )

    assert client.fine_tuning.jobs.retrieve(job.id) == job
    assert [j.id for j in client.fine_tuning.jobs.list()] == [job.id]
    events = client.fine_tuning.jobs.list_events(job.id).data
    assert events
    assert all(isinstance(e, FineTuningJobEvent) for e in events)
    assert events[0].object == "fine_tuning.job.event"
    assert events[0].type == "message"
    assert client.fine_tuning.jobs.checkpoints.list(job.id).data == []

    # A file a waiting job uses cannot be deleted.
    with pytest.raises(openai.ConflictError, match=job.id):
        client.files.delete(training)

    cancelled = client.fine_tuning.jobs.cancel(job.id)
    assert cancelled.status == "cancelled"
    assert cancelled.finished_at is not None
    newest = client.fine_tuning.jobs.list_events(job.id).data
    assert len(newest) > len(events)
    assert newest[0].created_at >= newest[-1].created_at
    assert "cancel" in " ".join(e.message for e in newest[: len(newest) - len(events)])
    assert client.files.delete(training).deleted


def test_dpo_method_and_a_deployment_name_as_the_model(
    client: openai.OpenAI, modelcycle_services: Services
) -> None:
    admin = modelcycle_services.access.authenticate(client.api_key)
    modelcycle_services.deployments.create(
        admin,
        DeploymentSpec.model_validate(
            {"name": "chat", "routes": [{"target": "toy@1", "weight": 100}]}
        ),
    )
    job = client.fine_tuning.jobs.create(
        model="chat",
        training_file=upload(client, PAIRS),
        method={"type": "dpo", "dpo": {"hyperparameters": {"beta": 0.25, "n_epochs": "auto"}}},
    )
    assert job.model == "toy@1"  # the deployment's primary version
    assert job.method is not None
    assert job.method.type == "dpo"
    assert job.method.dpo is not None
    assert job.method.dpo.hyperparameters is not None
    assert job.method.dpo.hyperparameters.beta == 0.25
    ours = modelcycle_services.tune.get(admin, job.id)
    assert (ours.method, ours.hyperparameters.beta, ours.hyperparameters.epochs) == ("dpo", 0.25, 3)


def test_pages_of_jobs_and_events_follow_after(client: openai.OpenAI) -> None:
    training = upload(client)
    ids = [
        client.fine_tuning.jobs.create(model="toy@1", training_file=training).id for _ in range(3)
    ]
    first = client.fine_tuning.jobs.list(limit=2)
    assert [j.id for j in first.data] == ids[::-1][:2]
    assert first.has_more
    assert [j.id for j in client.fine_tuning.jobs.list(limit=2)] == ids[::-1]
    client.fine_tuning.jobs.cancel(ids[0])
    events = client.fine_tuning.jobs.list_events(ids[0], limit=100).data
    paged = list(client.fine_tuning.jobs.list_events(ids[0], limit=1))
    assert [e.id for e in paged] == [e.id for e in events]
    assert len(events) >= 2


@pytest.mark.parametrize(
    ("kwargs", "error", "expected"),
    [
        ({"model": "nothing@1"}, openai.NotFoundError, r"model 'nothing@1' does not exist"),
        ({"model": "no-such-deployment"}, openai.NotFoundError, r"no-such-deployment"),
        ({"model": "toy@7"}, openai.NotFoundError, r"toy@7"),
        ({"training_file": "file-" + "0" * 24}, openai.NotFoundError, r"invalid training_file"),
        ({"method": {"type": "reinforcement"}}, openai.BadRequestError, r"'reinforcement'"),
        ({"method": {"type": "dpo"}}, openai.BadRequestError, r"line 1: a DPO line needs"),
        ({"hyperparameters": {"n_epochs": 0}}, openai.BadRequestError, r"n_epochs"),
        (
            {"integrations": [{"type": "wandb", "wandb": {"project": "p"}}]},
            openai.BadRequestError,
            r"integrations",
        ),
    ],
    ids=[
        "unknown-model",
        "unknown-deployment",
        "unknown-version",
        "unknown-file",
        "reinforcement",
        "chat-file-for-dpo",
        "bad-epochs",
        "integrations",
    ],
)
def test_bad_requests_are_openai_errors_and_nothing_is_queued(
    client: openai.OpenAI,
    modelcycle_services: Services,
    kwargs: dict[str, Any],
    error: type[openai.APIStatusError],
    expected: str,
) -> None:
    body: dict[str, Any] = {"model": "toy@1", "training_file": upload(client), **kwargs}
    with pytest.raises(error, match=expected) as caught:
        client.fine_tuning.jobs.create(**body)
    if error is openai.NotFoundError:
        assert caught.value.code in ("model_not_found", "invalid_training_file")
    assert client.fine_tuning.jobs.list().data == []


def test_another_projects_job_is_a_404_and_viewers_cannot_create(
    live_server: LiveServer, client: openai.OpenAI
) -> None:
    job = client.fine_tuning.jobs.create(model="toy@1", training_file=upload(client))
    services = live_server.services
    outsider = make_key(services, Role.ADMIN, make_project(services, "team-x"))
    with sdk(live_server, outsider.key) as them:
        for call in (
            lambda: them.fine_tuning.jobs.retrieve(job.id),
            lambda: them.fine_tuning.jobs.cancel(job.id),
            lambda: them.fine_tuning.jobs.list_events(job.id),
            lambda: them.fine_tuning.jobs.checkpoints.list(job.id),
        ):
            with pytest.raises(openai.NotFoundError):
                call()
        assert them.fine_tuning.jobs.list().data == []
    with sdk(live_server, make_key(services, Role.VIEWER).key) as viewer:
        assert viewer.fine_tuning.jobs.retrieve(job.id).id == job.id
        with pytest.raises(openai.PermissionDeniedError):
            viewer.fine_tuning.jobs.create(model="toy@1", training_file=job.training_file)
        with pytest.raises(openai.PermissionDeniedError):
            viewer.fine_tuning.jobs.cancel(job.id)


def test_a_job_runs_to_a_tuned_version_with_events_and_checkpoints(
    live_server: LiveServer, tmp_path: Path
) -> None:
    pytest.importorskip("torch", reason="the [hf] extra is not installed")
    pytest.importorskip("peft", reason="the [hf] extra is not installed")
    from modelcycle.testing.tiny_lm import save_tiny_lm

    os.environ.setdefault("MODELCYCLE_TRAIN_THREADS", "1")
    services = live_server.services
    register_base(services, save_tiny_lm(tmp_path / "tiny", WORDS, initializer_range=0.3, seed=3))
    with sdk(live_server, live_server.admin_key) as client:
        job = client.fine_tuning.jobs.create(
            model="toy@1",
            training_file=upload(client),
            validation_file=upload(client),
            # 8 examples in batches of 4: 2 steps an epoch, 52 in all (a checkpoint at 50).
            hyperparameters={"n_epochs": 26, "batch_size": 4, "learning_rate_multiplier": 100},
            suffix="capitals",
        )

        assert build_worker(services, run_schedules=False).run_once()

        done = client.fine_tuning.jobs.retrieve(job.id)
        assert done.status == "succeeded", done.error
        assert done.fine_tuned_model == "toy@2"
        assert done.trained_tokens
        assert done.finished_at is not None
        assert done.error is None
        admin = services.access.authenticate(client.api_key)
        assert services.registry.get_version(admin, "toy", 2).metadata["tune_job"] == job.id

        events = list(client.fine_tuning.jobs.list_events(job.id, limit=50))
        metrics = [e for e in events if e.type == "metrics"]
        assert metrics
        assert all(isinstance(e.data, dict) for e in metrics)
        losses = [e.data["train_loss"] for e in metrics if "train_loss" in e.data]  # type: ignore[index,operator]
        assert losses[0] < losses[-1]  # newest first: the loss fell during training
        assert any("registered toy@2" in e.message for e in events)

        checkpoints = client.fine_tuning.jobs.checkpoints.list(job.id).data
        assert checkpoints
        assert all(isinstance(c, FineTuningJobCheckpoint) for c in checkpoints)
        at_50 = next(c for c in checkpoints if c.step_number == 50)
        assert at_50.metrics.train_loss is not None
        assert at_50.metrics.step == 50
        assert at_50.metrics.valid_loss is not None  # OpenAI's name for our val_loss
        assert checkpoints[0].fine_tuning_job_id == job.id
        assert checkpoints[0].fine_tuned_model_checkpoint.startswith(f"{job.id}:ckpt-step-")
