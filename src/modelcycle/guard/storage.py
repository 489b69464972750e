"""The redactor of stored traces: the ``pii`` and ``secrets`` detectors, action redact.

Traces are stored with personal data and secrets replaced by ``[TYPE]``
placeholders unless a project turns ``store_raw_text`` on (docs/privacy.md).
The monitor stage runs this on its writer thread; it receives it as a plain
``str -> str`` callable, since guard and monitor do not import each other.
"""

from __future__ import annotations

from collections.abc import Callable

from modelcycle.errors import ModelcycleError
from modelcycle.guard.engine import DetectorRegistry
from modelcycle.guard.schemas import GuardPolicySpec, GuardRule

STORAGE_DETECTORS = ("pii", "secrets")
"""The detectors every stored trace passes through."""


class RedactionFailed(RuntimeError):
    """A detector raised on a text: the caller must not store the text as it is."""


def storage_policy() -> GuardPolicySpec:
    """Redact what ``STORAGE_DETECTORS`` find (one stage: stored text has no direction)."""
    return GuardPolicySpec(
        description="Redaction of stored traces.",
        input=[GuardRule(detector=name, action="redact") for name in STORAGE_DETECTORS],
    )


def storage_redactor(registry: DetectorRegistry) -> Callable[[str], str]:
    """A thread-safe ``text -> redacted text``; raises at start-up when a detector is missing.

    Failing here, loudly, is the point: a server whose detectors are not
    registered would otherwise store every prompt raw without anyone noticing.
    """
    missing = [name for name in STORAGE_DETECTORS if name not in registry.factories]
    if missing:
        raise ModelcycleError(
            f"detector(s) {', '.join(missing)} not registered, so traces cannot be stored "
            "redacted; reinstall modelcycle (the built-in detectors provide them) or check "
            "that no plugin removed them",
            code="storage_redaction_unavailable",
        )
    policy = registry.compile(storage_policy(), name="storage")

    def redact(text: str) -> str:
        decision = policy.check(text, "input")
        if decision.errors:
            raise RedactionFailed(", ".join(decision.errors))
        return decision.redacted_text

    return redact
