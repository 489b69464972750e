"""Runs a policy on texts: detectors, thresholds, actions, redaction, failures.

A ``CompiledPolicy`` is built once per policy revision (detectors constructed,
options checked) and is then safe to share between threads and requests.
"""

from __future__ import annotations

import concurrent.futures
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import orjson

from modelcycle.errors import InvalidInput
from modelcycle.guard.schemas import GuardPolicySpec, GuardRule
from modelcycle.guard.types import (
    Action,
    Detector,
    DetectorFactory,
    Finding,
    GuardDecision,
    Stage,
    strongest,
)

log = logging.getLogger(__name__)

DETECTOR_ERROR = "DETECTOR_ERROR"

Scope = Literal["all", "windowed", "whole"]

# Rules with a timeout run here so the caller can stop waiting; one pool per process.
_timeouts = concurrent.futures.ThreadPoolExecutor(max_workers=4, thread_name_prefix="guard")


@dataclass(frozen=True, slots=True)
class _Rule:
    rule: GuardRule
    detector: Detector
    types: frozenset[str] | None


class DetectorRegistry:
    """Name -> factory, and the detectors built from rules (one per name and options)."""

    def __init__(self, factories: Mapping[str, DetectorFactory]):
        self.factories = dict(factories)
        self._built: dict[tuple[str, bytes], Detector] = {}

    def names(self) -> list[str]:
        """Every registered detector name, sorted."""
        return sorted(self.factories)

    def build(self, rule: GuardRule, where: str) -> Detector:
        """The detector a rule names, built with its options (cached)."""
        factory = self.factories.get(rule.detector)
        if factory is None:
            known = ", ".join(self.names()) or "none"
            raise InvalidInput(
                f"{where}: unknown detector '{rule.detector}' (known: {known})",
                param=f"{where}.detector",
            )
        key = (rule.detector, orjson.dumps(rule.options, option=orjson.OPT_SORT_KEYS))
        detector = self._built.get(key)
        if detector is None:
            try:
                detector = factory(rule.options)
            except InvalidInput as exc:
                raise InvalidInput(f"{where}.options: {exc.message}", param=where) from None
            except (TypeError, ValueError) as exc:
                raise InvalidInput(f"{where}.options: {exc}", param=where) from None
            self._built[key] = detector
        return detector

    def compile(self, spec: GuardPolicySpec, name: str | None = None) -> CompiledPolicy:
        """A policy ready to run; a 400 naming the rule when a detector or option is wrong."""
        stages: dict[Stage, tuple[_Rule, ...]] = {}
        for stage in ("input", "output"):
            rules = []
            for index, rule in enumerate(spec.rules(stage)):
                detector = self.build(rule, f"{stage}[{index}]")
                types = frozenset(rule.types) if rule.types is not None else None
                rules.append(_Rule(rule, detector, types))
            stages[stage] = tuple(rules)
        return CompiledPolicy(spec, stages["input"], stages["output"], name)


class CompiledPolicy:
    """A policy with its detectors built; ``check`` is thread-safe."""

    def __init__(
        self,
        spec: GuardPolicySpec,
        input_rules: tuple[_Rule, ...],
        output_rules: tuple[_Rule, ...],
        name: str | None = None,
    ):
        self.spec = spec
        self.name = name
        self._stages: dict[Stage, tuple[_Rule, ...]] = {
            "input": input_rules,
            "output": output_rules,
        }

    def active(self, stage: Stage) -> bool:
        """Whether the stage has any rule (no rule: nothing to run, nothing to hold back)."""
        return bool(self._stages[stage])

    def roles(self, stage: Stage) -> frozenset[str]:
        """Message roles any rule of the stage checks (chat input)."""
        out: set[str] = set()
        for compiled in self._stages[stage]:
            out.update(compiled.rule.roles or ("user", "tool"))
        return frozenset(out)

    def has_whole_text(self, stage: Stage) -> bool:
        """Whether a rule of the stage judges a text only as a whole (JSON validity, size)."""
        return any(_whole(compiled.detector) for compiled in self._stages[stage])

    def check(
        self, text: str, stage: Stage, *, role: str | None = None, scope: Scope = "all"
    ) -> GuardDecision:
        """Run the stage's rules on ``text``; ``role``: the chat role it came from, if any.

        ``scope``: ``windowed`` runs only the rules that can judge part of a text (a
        stream's window), ``whole`` only those that need all of it (at the stream's end).
        """
        findings: list[Finding] = []
        errors: list[str] = []
        for compiled in self._stages[stage]:
            rule = compiled.rule
            if role is not None and role not in (rule.roles or ("user", "tool")):
                continue
            if scope != "all" and _whole(compiled.detector) != (scope == "whole"):
                continue
            try:
                found = _run(compiled.detector, text, rule.timeout_ms)
            except Exception as exc:  # a detector must never break the request path
                errors.append(f"{rule.detector}: {type(exc).__name__}")
                log.warning("guard detector %s failed: %s", rule.detector, type(exc).__name__)
                action: Action = "block" if rule.fails_closed() else "flag"
                findings.append(Finding(rule.detector, DETECTOR_ERROR, 0, 0, 1.0, action))
                continue
            for finding in found:
                if finding.score < rule.min_score:
                    continue
                if compiled.types is not None and finding.type not in compiled.types:
                    continue
                findings.append(_with_action(finding, rule.action))
        return decide(text, findings, errors, self.spec.placeholder)


def _whole(detector: Detector) -> bool:
    # Detectors that judge a text as a whole say so with ``whole_text = True``.
    return bool(getattr(detector, "whole_text", False))


def _run(detector: Detector, text: str, timeout_ms: float | None) -> list[Finding]:
    if timeout_ms is None:
        return detector.detect(text)
    future = _timeouts.submit(detector.detect, text)
    return future.result(timeout=timeout_ms / 1000)


def _with_action(finding: Finding, action: Action) -> Finding:
    return Finding(
        finding.detector, finding.type, finding.start, finding.end, finding.score, action
    )


def decide(
    text: str, findings: Sequence[Finding], errors: Sequence[str], placeholder: str
) -> GuardDecision:
    """The decision for ``findings`` on ``text``: strongest action, redacted text."""
    if not findings:  # the common case, on every message of every request: keep it cheap
        return GuardDecision("allow", (), text, tuple(errors))
    ordered = tuple(sorted(findings, key=lambda f: (f.start, f.end, f.detector, f.type)))
    action = strongest([finding.action for finding in ordered])
    redacted = redact(text, [f for f in ordered if f.action == "redact"], placeholder)
    blocked_by = tuple(dict.fromkeys(f.type for f in ordered if f.action == "block"))
    return GuardDecision(action, ordered, redacted, tuple(errors), blocked_by)


def redact(text: str, findings: Sequence[Finding], placeholder: str = "[{type}]") -> str:
    """``text`` with each finding's span replaced by the placeholder; overlaps merged.

    Where spans overlap, the merged span takes the type of the highest-scored one.
    Findings covering nothing (start == end) are ignored.
    """
    spans = sorted(
        (f for f in findings if 0 <= f.start < f.end <= len(text)), key=lambda f: f.start
    )
    if not spans:
        return text
    merged: list[list[Any]] = []  # [start, end, type, score]
    for f in spans:
        if merged and f.start < merged[-1][1]:
            last = merged[-1]
            last[1] = max(last[1], f.end)
            if f.score > last[3]:
                last[2], last[3] = f.type, f.score
        else:
            merged.append([f.start, f.end, f.type, f.score])
    out: list[str] = []
    cursor = 0
    for start, end, kind, _ in merged:
        out.append(text[cursor:start])
        out.append(placeholder.format(type=kind))
        cursor = end
    out.append(text[cursor:])
    return "".join(out)
