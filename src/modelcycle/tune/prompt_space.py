"""What a prompt search tries: system prompts x few-shot example sets x sampling parameters.

A *candidate* is one combination. ``None`` in a dimension means "as the base
version has it" (its own system prompt, examples, temperature), so the base
itself is the candidate with every dimension ``None``. The space comes from a
tuning job's ``hyperparameters.candidates``::

    {"system_prompts": [null, "Answer in one short sentence."],
     "few_shot": [[], [{"role": "user", "content": "2+2?"},
                       {"role": "assistant", "content": "4"}]],
     "few_shot_from_dataset": {"k": 3, "sets": 2},
     "temperature": [0.0, 0.7],
     "max_tokens": [64],
     "scorer": "exact_match", "scorer_options": {}}

``few_shot_from_dataset`` draws ``sets`` example sets of ``k`` question/answer
pairs each from the training dataset (seeded); when ``few_shot`` is not given,
"no examples" competes with the drawn sets.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from modelcycle.errors import InvalidInput
from modelcycle.store.datasets import EvalSample

MAX_OPTIONS = 64
"""Most values one dimension may list."""
MAX_CANDIDATES = 10_000
MAX_SYSTEM_PROMPT_CHARS = 8_000
MAX_EXAMPLE_MESSAGES = 32
SPACE_KEYS = frozenset(
    {
        "system_prompts",
        "few_shot",
        "few_shot_from_dataset",
        "temperature",
        "max_tokens",
        "scorer",
        "scorer_options",
    }
)

Example = tuple[tuple[str, str], ...]
"""A few-shot set: (role, content) pairs, user and assistant alternating."""


@dataclass(frozen=True, slots=True)
class Candidate:
    """One combination the search tries; ``None``: as the base version has it."""

    system_prompt: str | None = None
    few_shot: Example | None = None
    temperature: float | None = None
    max_tokens: int | None = None

    def overlay(self) -> dict[str, Any]:
        """The version params this candidate sets (JSON), for ``params_for_version``."""
        out: dict[str, Any] = {}
        if self.system_prompt is not None:
            out["system_prompt"] = self.system_prompt
        if self.few_shot:
            out["few_shot"] = [{"role": role, "content": text} for role, text in self.few_shot]
        if self.temperature is not None:
            out["temperature"] = self.temperature
        if self.max_tokens is not None:
            out["max_tokens"] = self.max_tokens
        return out

    def label(self) -> str:
        """A short description for logs."""
        parts = []
        if self.system_prompt is not None:
            shown = self.system_prompt if len(self.system_prompt) <= 40 else self.system_prompt[:37]
            parts.append(f"system={shown!r}" + ("..." if shown != self.system_prompt else ""))
        if self.few_shot:
            parts.append(f"{len(self.few_shot) // 2} examples")
        if self.temperature is not None:
            parts.append(f"temperature={self.temperature:g}")
        if self.max_tokens is not None:
            parts.append(f"max_tokens={self.max_tokens}")
        return ", ".join(parts) or "the base version as it is"


@dataclass(frozen=True, slots=True)
class SearchSpace:
    """The values of each dimension; the candidates are their product, in a fixed order."""

    system_prompts: tuple[str | None, ...] = (None,)
    few_shot: tuple[Example | None, ...] = (None,)
    temperature: tuple[float | None, ...] = (None,)
    max_tokens: tuple[int | None, ...] = (None,)
    drawn_from: tuple[str, ...] = field(default=())
    """Content hashes of the training samples drawn as examples (kept out of scoring)."""

    def candidates(self) -> list[Candidate]:
        """Every combination, system prompts varying slowest."""
        return [
            Candidate(system, examples, temperature, tokens)
            for system, examples, temperature, tokens in itertools.product(
                self.system_prompts, self.few_shot, self.temperature, self.max_tokens
            )
        ]


def parse_space(
    raw: Mapping[str, Any] | None, *, training: Sequence[EvalSample] = (), seed: int = 0
) -> SearchSpace:
    """The space a job's ``candidates`` describe; ``InvalidInput`` naming what is wrong."""
    raw = dict(raw or {})
    unknown = sorted(set(raw) - SPACE_KEYS)
    if unknown:
        raise _bad(f"unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(SPACE_KEYS))}")
    systems = [_system(value, i) for i, value in enumerate(_options(raw, "system_prompts"))]
    if "few_shot" in raw and not isinstance(raw["few_shot"], list):
        raise _bad("few_shot must be a list of example sets (each a list of messages)")
    given = [_example_set(v, f"few_shot[{i}]") for i, v in enumerate(raw.get("few_shot") or [])]
    temperatures = [_number(v, "temperature", 0, 2, float) for v in _options(raw, "temperature")]
    max_tokens = [_number(v, "max_tokens", 1, 1_000_000, int) for v in _options(raw, "max_tokens")]
    drawn, hashes = _drawn(raw.get("few_shot_from_dataset"), training, seed)
    sets: list[Example | None] = [*given, *drawn] if "few_shot" in raw else [None, *drawn]
    space = SearchSpace(
        system_prompts=tuple(dict.fromkeys(systems)) or (None,),
        few_shot=tuple(dict.fromkeys(sets)) or (None,),
        temperature=tuple(dict.fromkeys(temperatures)) or (None,),
        max_tokens=tuple(dict.fromkeys(max_tokens)) or (None,),
        drawn_from=hashes,
    )
    if len(space.few_shot) > MAX_OPTIONS:
        raise _bad(f"few_shot: at most {MAX_OPTIONS} example sets in all")
    count = len(space.system_prompts) * len(space.few_shot)
    count *= len(space.temperature) * len(space.max_tokens)
    if count > MAX_CANDIDATES:
        raise _bad(f"{count} combinations; at most {MAX_CANDIDATES}")
    return space


def user_text(input: Mapping[str, Any]) -> str | None:
    """The question of a sample: its last user message, or its completion prompt."""
    messages = input.get("messages")
    if isinstance(messages, list):
        for message in reversed(messages):
            if isinstance(message, Mapping) and message.get("role") == "user":
                return str(message.get("content") or "")
        return None
    prompt = input.get("prompt")
    return prompt if isinstance(prompt, str) else None


def draw_examples(
    samples: Sequence[EvalSample], k: int, sets: int, seed: int
) -> tuple[list[Example], tuple[str, ...]]:
    """``sets`` example sets of ``k`` question/answer pairs from ``samples`` (seeded)."""
    usable = [s for s in samples if s.expected and user_text(s.input)]
    if len(usable) < k:
        raise _bad(
            f"few_shot_from_dataset: the training dataset has {len(usable)} samples with a "
            f"question and an expected answer; k={k} needs at least {k}"
        )
    rng = random.Random(seed)  # noqa: S311 - reproducible draws, not secrets
    drawn: list[Example] = []
    used: dict[str, None] = {}
    for _ in range(sets):
        chosen = rng.sample(usable, k)
        pairs: list[tuple[str, str]] = []
        for sample in chosen:
            used[sample.content_hash] = None
            pairs += [("user", str(user_text(sample.input))), ("assistant", str(sample.expected))]
        drawn.append(tuple(pairs))
    return drawn, tuple(used)


# -- parsing helpers -------------------------------------------------------------------


def _bad(message: str) -> InvalidInput:
    return InvalidInput(f"hyperparameters.candidates: {message}", param="hyperparameters")


def _options(raw: Mapping[str, Any], key: str) -> list[Any]:
    value = raw.get(key)
    if value is None:
        return []
    if not isinstance(value, list) or len(value) > MAX_OPTIONS:
        raise _bad(f"{key} must be a list of at most {MAX_OPTIONS} values")
    return list(value)


def _system(value: Any, index: int) -> str | None:
    if value is not None and not isinstance(value, str):
        raise _bad(f"system_prompts[{index}] must be a string or null")
    if isinstance(value, str) and len(value) > MAX_SYSTEM_PROMPT_CHARS:
        raise _bad(f"system_prompts[{index}] is longer than {MAX_SYSTEM_PROMPT_CHARS} characters")
    return value


def _number(value: Any, key: str, low: float, high: float, kind: type) -> Any:
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    if kind is int:
        ok = ok and float(value).is_integer()
    if not ok or not low <= value <= high:
        what = "an integer" if kind is int else "a number"
        raise _bad(f"{key} values must be {what} from {low:g} to {high:g}, not {value!r}")
    return kind(value)


def _example_set(value: Any, where: str) -> Example | None:
    if not isinstance(value, list) or len(value) > MAX_EXAMPLE_MESSAGES:
        raise _bad(f"{where} must be a list of at most {MAX_EXAMPLE_MESSAGES} messages")
    pairs = []
    for index, message in enumerate(value):
        ok = (
            isinstance(message, Mapping)
            and message.get("role") in ("user", "assistant")
            and isinstance(message.get("content"), str)
        )
        if not ok:
            raise _bad(
                f'{where}[{index}] must be {{"role": "user" or "assistant", "content": "..."}}'
            )
        pairs.append((str(message["role"]), str(message["content"])))
    return tuple(pairs) or None


def _drawn(
    spec: Any, training: Sequence[EvalSample], seed: int
) -> tuple[list[Example], tuple[str, ...]]:
    if spec is None:
        return [], ()
    if not isinstance(spec, Mapping) or set(spec) - {"k", "sets"}:
        raise _bad('few_shot_from_dataset must look like {"k": 3, "sets": 2}')
    k, sets = spec.get("k", 3), spec.get("sets", 1)
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in (k, sets)):
        raise _bad("few_shot_from_dataset: k and sets must be integers")
    if not 1 <= k <= MAX_EXAMPLE_MESSAGES // 2 or not 1 <= sets <= MAX_OPTIONS:
        raise _bad(
            f"few_shot_from_dataset: k must be 1 to {MAX_EXAMPLE_MESSAGES // 2} "
            f"and sets 1 to {MAX_OPTIONS}"
        )
    if not training:
        raise _bad("few_shot_from_dataset needs a training dataset to draw examples from")
    return draw_examples(training, k, sets, seed)
