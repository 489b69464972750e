"""The policy ``modelcycle up`` gives the embedded default deployment on first start.

Input: personal data and secrets are redacted before the model sees them;
prompt injection and jailbreak attempts are refused. Output: personal data and
secrets are redacted before the answer reaches the caller (streams included).
"""

from __future__ import annotations

from modelcycle.guard.schemas import GuardPolicySpec, GuardRule

DEFAULT_POLICY_NAME = "default"


def default_policy() -> GuardPolicySpec:
    """The default policy (a new object each time: callers may change it)."""
    return GuardPolicySpec(
        description="modelcycle's default: redact PII and secrets both ways, block injection.",
        input=[
            GuardRule(detector="pii", action="redact"),
            GuardRule(detector="secrets", action="redact"),
            GuardRule(detector="injection", action="block"),
        ],
        output=[
            GuardRule(detector="pii", action="redact"),
            GuardRule(detector="secrets", action="redact"),
        ],
    )
