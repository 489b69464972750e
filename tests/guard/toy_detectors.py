"""Tiny detectors and policies for tests of the code that runs guard policies.

Imported as ``guard.toy_detectors`` (``tests/`` is on ``sys.path``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from modelcycle.errors import NotFound
from modelcycle.guard import (
    CompiledPolicy,
    DetectorRegistry,
    Finding,
    GuardPolicySpec,
    GuardRule,
)
from modelcycle.hookspecs import hookimpl

EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")


class Emails:
    """E-mail addresses (type ``EMAIL_ADDRESS``)."""

    name = "emails"

    def detect(self, text: str) -> list[Finding]:
        return [
            Finding(self.name, "EMAIL_ADDRESS", m.start(), m.end(), 0.9)
            for m in EMAIL.finditer(text)
        ]


class Phrase:
    """The phrase "ignore previous", any case (type ``PROMPT_INJECTION``)."""

    name = "phrase"
    PHRASE = re.compile(r"ignore previous", re.IGNORECASE)

    def detect(self, text: str) -> list[Finding]:
        return [
            Finding(self.name, "PROMPT_INJECTION", m.start(), m.end(), 0.95)
            for m in self.PHRASE.finditer(text)
        ]


class Quoted:
    """A passage in <<...>>, open to the end of the text while unclosed."""

    name = "quoted"
    QUOTE = re.compile(r"<<[^>]*(?:>>)?")

    def detect(self, text: str) -> list[Finding]:
        return [
            Finding(self.name, "QUOTE", m.start(), m.end(), 0.9) for m in self.QUOTE.finditer(text)
        ]


class Broken:
    """Always raises."""

    name = "broken"

    def detect(self, text: str) -> list[Finding]:
        raise RuntimeError("model file vanished")


class Recording:
    """Finds nothing; keeps the length of every text it was given."""

    name = "recording"

    def __init__(self) -> None:
        self.lengths: list[int] = []

    def detect(self, text: str) -> list[Finding]:
        self.lengths.append(len(text))
        return []


def _factories(recording: Recording | None = None) -> dict[str, Callable[..., Any]]:
    seen = recording or Recording()

    def build(cls: Any) -> Callable[..., Any]:
        return lambda options: cls()

    return {
        "emails": build(Emails),
        "phrase": build(Phrase),
        "quoted": build(Quoted),
        "broken": build(Broken),
        "recording": lambda options: seen,
    }


def registry(recording: Recording | None = None) -> DetectorRegistry:
    """The toy detectors by name."""
    return DetectorRegistry(_factories(recording))


class ToyDetectors:
    """A plugin offering the toy detectors (none overrides a built-in one)."""

    @hookimpl
    def modelcycle_guard_detectors(self) -> Mapping[str, Callable[..., Any]]:
        return _factories()


def rule(detector: str, action: str, **extra: Any) -> GuardRule:
    """A rule, validated as the API would."""
    return GuardRule.model_validate({"detector": detector, "action": action, **extra})


def compile_policy(
    name: str = "test",
    *,
    input: list[GuardRule] | None = None,
    output: list[GuardRule] | None = None,
    hold_back: int = 64,
    recording: Recording | None = None,
) -> CompiledPolicy:
    """A compiled policy over the toy detectors."""
    spec = GuardPolicySpec(input=input or [], output=output or [], stream_hold_back_chars=hold_back)
    return registry(recording).compile(spec, name)


class Policies:
    """A ``PolicySource`` holding compiled policies by name (any project)."""

    def __init__(self, **policies: CompiledPolicy):
        self.policies = dict(policies)
        self.calls = 0

    async def policy(self, project_id: int, name: str) -> CompiledPolicy:
        self.calls += 1
        found = self.policies.get(name)
        if found is None:
            raise NotFound(f"guard policy '{name}' does not exist")
        return found


def redacted(text: str) -> str:
    """``text`` with every e-mail address replaced as the default placeholder does."""
    return EMAIL.sub("[EMAIL_ADDRESS]", text)
