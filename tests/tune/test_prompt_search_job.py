"""A ``prompt-search`` tuning job on the queue: created, run by a worker, winner registered.

The base is the quiz backend of ``test_prompt_search`` (right only when asked
for concise answers). The job scores candidates with evaluation's
``exact_match`` through the same scorer registry runs use, registers the
winner as a new version on the same weights with lineage, and that version,
called through a deployment like any other, answers right.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import select
from test_prompt_search import CAPITALS, CONCISE, QuizKind, base_version

from modelcycle.backends import GenerationParams, Message
from modelcycle.deploy import DeploymentSpec, Route
from modelcycle.errors import InvalidInput
from modelcycle.gateway import InferenceRequest
from modelcycle.services import Services, build_worker
from modelcycle.settings import Settings
from modelcycle.store.datasets import SampleIn, write_version
from modelcycle.store.tables import LineageEdgeRow, ModelVersionRow
from modelcycle.testing import KeyPair, admin_of, make_services
from modelcycle.tune.schemas import Hyperparameters, TuneJobCreate


@pytest.fixture
def modelcycle_database_url() -> str | None:
    """The job path is the same on both databases (the tuning service tests cover both)."""
    return None


@pytest.fixture
def services(modelcycle_settings: Settings) -> Iterator[Services]:
    built = make_services(modelcycle_settings, plugins=(QuizKind(),))
    yield built
    asyncio.run(built.gateway.aclose())
    built.close()


@pytest.fixture
def admin(services: Services) -> KeyPair:
    return admin_of(services)


def quiz_dataset(services: Services, admin: KeyPair) -> None:
    samples = [
        SampleIn(
            {"messages": [{"role": "user", "content": f"What is the capital of {country}?"}]},
            capital,
        )
        for country, capital in CAPITALS.items()
    ]
    with services.store.write() as session:
        write_version(session, admin.principal.project_id, "quiz", samples, source="import",
                      actor="test")  # fmt: skip


def search(base: str, **candidates: Any) -> TuneJobCreate:
    space = {"system_prompts": [None, "Answer at length.", CONCISE], **candidates}
    return TuneJobCreate(
        method="prompt-search",
        base=base,
        dataset="quiz",
        hyperparameters=Hyperparameters(budget=60, seed=1, candidates=space),
    )


def test_the_winner_is_registered_on_the_same_weights_and_serves_right(
    services: Services, admin: KeyPair
) -> None:
    base = base_version(services, admin, temperature=0.0)
    quiz_dataset(services, admin)
    created = services.tune.create(admin.principal, search(base))
    assert created.status == "queued"
    assert build_worker(services, run_schedules=False).run_once()

    job = services.tune.get(admin.principal, created.id)
    assert job.status == "succeeded", job.error
    assert (job.result_model, job.result_version) == ("quiz", 2)
    assert job.metrics["score"] == 1.0
    assert job.metrics["calls"] <= 60
    assert job.artifacts["search"]["best_params"]["system_prompt"] == CONCISE

    with services.store.read() as session:
        tuned = session.execute(
            select(ModelVersionRow).where(ModelVersionRow.version == 2)
        ).scalar_one()
        edges = session.execute(
            select(LineageEdgeRow).where(LineageEdgeRow.version_id == tuned.id)
        ).scalars()
        relations = {(e.relation, e.target_ref) for e in edges}
    assert (tuned.source, tuned.backend) == ("quiz://capitals", "ray")  # same weights
    assert tuned.params["system_prompt"] == CONCISE
    assert ("produced_by", created.id) in relations
    assert ("trained_on", "quiz@1") in relations

    services.deployments.create(
        admin.principal,
        DeploymentSpec(name="quiz-dep", routes=[Route(target="quiz@2", weight=100)]),
    )
    question = Message("user", "What is the capital of Peru?")
    request = InferenceRequest("chat.completions", "quiz-dep", (question,), None,
                               GenerationParams(), None, False)  # fmt: skip
    served = asyncio.run(services.gateway.generate(admin.principal, request))
    assert served.completion.text == "Lima"


def test_a_bad_search_space_or_a_missing_dataset_is_refused_before_queueing(
    services: Services, admin: KeyPair
) -> None:
    base = base_version(services, admin)
    quiz_dataset(services, admin)
    with pytest.raises(InvalidInput, match="temperature"):
        services.tune.create(admin.principal, search(base, temperature=[9.0]))
    with pytest.raises(InvalidInput, match="dataset"):
        services.tune.create(
            admin.principal,
            TuneJobCreate(method="prompt-search", base=base, training_file="file-x"),
        )
    assert services.tune.list(admin.principal).items == []
