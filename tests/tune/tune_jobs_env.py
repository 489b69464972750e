"""Helpers of the tuning job tests: a tunable tiny base, the capitals datasets, event capture.

The base is the engine tests' tiny Llama (``tiny_base``) registered with kind
``transformers`` and a completion frame, so a chat question is rendered the
same way for training and for serving: ``<s> question : capital of X ? answer :``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tune_toy import CAPITALS

from modelcycle import events
from modelcycle.access import Principal
from modelcycle.hookspecs import hookimpl
from modelcycle.services import Services
from modelcycle.store.datasets import SampleIn, write_version
from modelcycle.testing import register
from modelcycle.types import BackendKind

BASE_PARAMS: dict[str, Any] = {
    "prompt_format": "completion",
    # The word tokenizer adds no BOS when serving; the frame writes it, as training does.
    "prompt_template": "<s> question : {prompt} ? answer :",
    "temperature": 0,
    "max_tokens": 2,
    "batch_wait_ms": 0,
}


def register_base(services: Services, principal: Principal, source: Path, name: str = "toy") -> str:
    """Register ``source`` as version 1 of ``name`` (kind transformers); ``NAME@1``."""
    register(
        services,
        principal,
        name,
        source=str(source),
        backend=BackendKind.TRANSFORMERS,
        params=BASE_PARAMS,
    )
    return f"{name}@1"


def capital_samples(pairs: list[tuple[str, str]] = CAPITALS) -> list[SampleIn]:
    """One chat question per pair: "capital of X" -> "Y"."""
    return [
        SampleIn({"messages": [{"role": "user", "content": f"capital of {country}"}]}, capital)
        for country, capital in pairs
    ]


def write_dataset(
    services: Services, principal: Principal, name: str, samples: list[SampleIn]
) -> str:
    """A new version of dataset ``name``; ``NAME@N``."""
    with services.store.write() as session:
        version = write_version(
            session, principal.project_id, name, samples, source="test", actor=principal.actor
        )
        number = version.version
    return f"{name}@{number}"


def fast_hyperparameters(**overrides: Any) -> dict[str, Any]:
    """Settings that learn the capitals in a few seconds on the tiny model."""
    values: dict[str, Any] = {
        "epochs": 24,
        "learning_rate": 2e-2,
        "lora_r": 8,
        "lora_alpha": 16,
        "lora_dropout": 0.0,
        "batch_size": 4,
        "max_length": 32,
        "eval_every_steps": 1000,
        "checkpoint_every_steps": 1000,
    }
    values.update(overrides)
    return values


class TuneEvents:
    """A plugin recording every ``TuneFinished``."""

    def __init__(self) -> None:
        self.finished: list[events.TuneFinished] = []

    @hookimpl
    def modelcycle_tune_finished(self, event: events.TuneFinished) -> None:
        self.finished.append(event)


def listen(services: Services) -> TuneEvents:
    """Record the ``TuneFinished`` events of ``services`` from now on."""
    recorder = TuneEvents()
    services.bus.manager.register(recorder)
    return recorder
