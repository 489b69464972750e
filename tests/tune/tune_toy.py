"""The toy task of the training engine's tests (helpers; fixtures are in conftest.py).

The task: "question : capital of X ? answer :" -> " Y" for 8 made-up pairs,
which a rank-8 LoRA on the attention projections learns in a few dozen steps.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from modelcycle.tune.schemas import Hyperparameters

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


def prompt_of(country: str) -> str:
    return f"question : capital of {country} ? answer :"


def sft_rows(repeat: int = 4) -> list[dict[str, str]]:
    return [
        {"prompt": prompt_of(country), "completion": f" {capital}"}
        for country, capital in CAPITALS * repeat
    ]


def write_jsonl(path: Path, rows: Iterable[dict[str, Any]]) -> str:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return str(path)


def hyperparameters(**overrides: Any) -> dict[str, Any]:
    """Settings that learn the toy task fast: a high learning rate, no dropout, small batches."""
    values: dict[str, Any] = {
        "epochs": 6,
        "learning_rate": 2e-2,
        "lora_r": 8,
        "lora_alpha": 16,
        "lora_dropout": 0.0,
        "batch_size": 4,
        "max_length": 32,
        "eval_every_steps": 4,
        "checkpoint_every_steps": 1000,
    }
    values.update(overrides)
    return Hyperparameters(**values).model_dump()


class Events(list[dict[str, Any]]):
    """Collects the engine's events; ``of(kind)`` filters them."""

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [event for event in self if event["event"] == kind]


def after_steps(steps: int) -> Callable[[], bool]:
    """A ``should_stop`` true after ``steps`` optimizer steps (it is asked once a step)."""
    calls = itertools.count(1)
    return lambda: next(calls) >= steps
