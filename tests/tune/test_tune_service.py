"""Tuning jobs end to end on the queue: create, train in a subprocess, register, serve."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select
from tune_jobs_env import (
    capital_samples,
    fast_hyperparameters,
    listen,
    register_base,
    write_dataset,
)

from modelcycle.deploy import DeploymentSpec, Route
from modelcycle.errors import InvalidInput
from modelcycle.jobs import JobState
from modelcycle.services import Services, build_worker
from modelcycle.store.datasets import SampleIn
from modelcycle.store.tables import AuditEntryRow, JobRow, TuneJobRow
from modelcycle.testing import admin_of, register
from modelcycle.tune.schemas import TuneJobCreate

DEADLINE_S = 120.0


def _count(services: Services, table: type[JobRow] | type[TuneJobRow]) -> int:
    with services.store.read() as session:
        return int(session.execute(select(func.count()).select_from(table)).scalar_one())


async def test_an_sft_job_registers_version_2_with_lineage_which_serves_and_is_compared(
    modelcycle_services: Services, modelcycle_api: httpx.AsyncClient, tiny_base: Path
) -> None:
    services = modelcycle_services
    admin = admin_of(services).principal
    base = register_base(services, admin, tiny_base)
    dataset = write_dataset(services, admin, "capitals", capital_samples())
    # The evaluation set repeats one training question: that example must not be trained on.
    held_out = write_dataset(services, admin, "capitals-eval", capital_samples([("peru", "lima")]))
    finished = listen(services)

    job = services.tune.create(
        admin,
        TuneJobCreate.model_validate(
            {
                "base": base,
                "dataset": "capitals",
                "hyperparameters": fast_hyperparameters(),
                "eval_datasets": ["capitals-eval"],
                "suffix": "capitals",
            }
        ),
    )
    assert job.id.startswith("ftjob-")
    assert len(job.id) == 30
    assert (job.status, job.dataset, job.eval_datasets) == ("queued", dataset, [held_out])

    worker = build_worker(services, run_schedules=False)
    assert worker.run_once()  # trains in a subprocess, registers, starts the comparison

    done = services.tune.get(admin, job.id)
    assert done.status == "succeeded", done.error
    assert (done.result_model, done.result_version) == ("toy", 2)
    assert done.metrics["train_loss"] < 0.5
    assert done.trained_tokens
    report = done.artifacts["decontamination"]
    assert report["dropped"] == ["sample 6"]
    assert report["dropped_count"] == 1
    assert report["overlaps"][0]["eval_dataset"] == held_out
    assert done.artifacts["data"]["examples"] == 7

    version = services.registry.get_version(admin, "toy", 2)
    assert version.backend.value == "transformers"
    assert version.source == str(tiny_base)
    assert Path(version.params["adapter"], "adapter_config.json").is_file()
    assert version.params["prompt_template"].endswith("question : {prompt} ? answer :")
    assert version.metadata["tune_job"] == job.id
    assert "capitals" in version.metadata["description"]
    lineage = services.aliases.lineage(admin, "toy", 2)
    edges = {(e.relation, e.target_ref) for e in lineage.edges}
    assert {("parent", "toy@1"), ("trained_on", dataset), ("produced_by", job.id)} <= edges
    assert [(e.status, e.version, e.parent_version) for e in finished.finished] == [
        ("succeeded", 2, 1)
    ]

    # The tuned version serves through the gateway and knows what it was taught.
    services.deployments.create(
        admin, DeploymentSpec(name="capitals", routes=[Route(target="toy@2", weight=100)])
    )
    answer = await modelcycle_api.post(
        "/v1/chat/completions",
        json={"model": "capitals", "messages": [{"role": "user", "content": "capital of france"}]},
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["choices"][0]["message"]["content"].strip() == "paris"

    # The comparison with the parent runs on the queue like any evaluation.
    assert done.eval_run_id is not None
    assert worker.run_once()
    run = services.evals.get(admin, done.eval_run_id)
    assert run.status == "succeeded"
    assert run.targets == ["toy@1", "toy@2"]
    # Two workers never run the same job: nothing is left to claim.
    assert not worker.run_once()
    with services.store.read() as session:
        attempts = session.execute(select(JobRow.attempts).where(JobRow.id == done.job_id))
        assert attempts.scalar_one() == 1
        actions = session.execute(select(AuditEntryRow.action)).scalars().all()
    assert "tune.create" in actions
    assert "version.register" in actions


def test_a_bad_sample_is_a_400_naming_it_and_nothing_is_stored(
    modelcycle_services: Services, tiny_base: Path
) -> None:
    services = modelcycle_services
    admin = admin_of(services).principal
    base = register_base(services, admin, tiny_base)
    samples = capital_samples()
    samples[3] = SampleIn({"messages": [{"role": "user", "content": "capital of spain"}]})
    write_dataset(services, admin, "no-answer", samples)
    jobs_before = _count(services, JobRow)

    with pytest.raises(InvalidInput, match=r"dataset no-answer@1, sample 3 .*needs 'expected'"):
        services.tune.create(admin, TuneJobCreate(base=base, dataset="no-answer"))
    dpo = TuneJobCreate(base=base, dataset="no-answer", method="dpo")
    with pytest.raises(InvalidInput, match=r"sample 0 .*DPO sample needs metadata 'chosen'"):
        services.tune.create(admin, dpo)
    assert _count(services, JobRow) == jobs_before
    assert _count(services, TuneJobRow) == 0


def test_a_base_that_cannot_be_tuned_is_refused_naming_the_backends(
    modelcycle_services: Services, tmp_path: Path
) -> None:
    services = modelcycle_services
    admin = admin_of(services).principal
    register(services, admin, "echo")  # kind mock
    write_dataset(services, admin, "capitals", capital_samples())
    with pytest.raises(
        InvalidInput, match=r"backend 'mock', which cannot be tuned.*'transformers'"
    ):
        services.tune.create(admin, TuneJobCreate(base="echo@1", dataset="capitals"))
    missing = register_base(services, admin, tmp_path / "gone", name="gone")
    with pytest.raises(InvalidInput, match=r"not a Hugging Face checkpoint directory or a \.gguf"):
        services.tune.create(admin, TuneJobCreate(base=missing, dataset="capitals"))
    with pytest.raises(InvalidInput, match="NAME@VERSION or NAME@alias"):
        services.tune.create(admin, TuneJobCreate(base="echo", dataset="capitals"))
    assert _count(services, TuneJobRow) == 0


def test_failed_training_keeps_its_events_and_leaves_the_registry_alone(
    modelcycle_services: Services, tiny_base: Path
) -> None:
    services = modelcycle_services
    admin = admin_of(services).principal
    base = register_base(services, admin, tiny_base)
    write_dataset(services, admin, "capitals", capital_samples())
    finished = listen(services)
    hyperparameters = fast_hyperparameters(target_modules=["no_such_module"])
    body = TuneJobCreate.model_validate(
        {"base": base, "dataset": "capitals", "hyperparameters": hyperparameters}
    )
    job = services.tune.create(admin, body)

    assert build_worker(services, run_schedules=False).run_once()

    failed = services.tune.get(admin, job.id)
    assert failed.status == "failed"
    assert failed.error
    assert "no_such_module" in failed.error
    messages = [event.message for event in services.tune.events(admin, job.id)]
    assert any(message.startswith("training data: 8 examples") for message in messages)
    assert any("no_such_module" in message for message in messages)
    assert services.registry.get_model(admin, "toy").latest_version == 1
    assert [(e.status, e.version) for e in finished.finished] == [("failed", None)]
    with services.store.read() as session:
        attempts = session.execute(select(JobRow.attempts).where(JobRow.id == failed.job_id))
        assert attempts.scalar_one() == 1  # a trainer's error is not retried


def test_cancelling_a_queued_job_and_a_running_one(
    modelcycle_services: Services, tiny_base: Path
) -> None:
    services = modelcycle_services
    admin = admin_of(services).principal
    base = register_base(services, admin, tiny_base)
    write_dataset(services, admin, "capitals", capital_samples())
    queued = services.tune.create(admin, TuneJobCreate(base=base, dataset="capitals"))
    assert services.tune.cancel(admin, queued.id).status == "cancelled"

    body = TuneJobCreate.model_validate(
        # 800 steps: long enough that the cancel lands mid-training even on a loaded machine
        # (a job that finished its work first would rightly end succeeded).
        {
            "base": base,
            "dataset": "capitals",
            "hyperparameters": fast_hyperparameters(epochs=100, batch_size=1),
        }
    )
    running = services.tune.create(admin, body)
    worker = build_worker(services, run_schedules=False)
    thread = threading.Thread(target=worker.run_once)
    thread.start()
    deadline = time.monotonic() + DEADLINE_S
    while not any(e.level == "metric" for e in services.tune.events(admin, running.id)):
        assert time.monotonic() < deadline, "training never reported a metric"
        time.sleep(0.1)
    asked = services.tune.cancel(admin, running.id)
    assert asked.status == "running"
    thread.join(DEADLINE_S)
    assert not thread.is_alive()

    stopped = services.tune.get(admin, running.id)
    assert stopped.status == "cancelled"
    assert stopped.result_version is None
    assert services.registry.get_model(admin, "toy").latest_version == 1
    assert services.tune.checkpoints(admin, running.id), "the trainer saved where it stopped"
    assert services.jobs.get(stopped.job_id or 0).state == JobState.CANCELLED
