"""Public shapes of the guard stage: policies and the check endpoint."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field, model_validator

from modelcycle.guard.types import Action, RuleAction, Stage
from modelcycle.types import NAME_PATTERN, RequestBody

MAX_RULES = 32
MAX_CHECK_CHARS = 1_000_000

MessageRole = Literal["system", "developer", "user", "assistant", "tool"]


class GuardRule(RequestBody):
    """One detector in a policy stage and what its findings lead to."""

    detector: str = Field(
        pattern=NAME_PATTERN,
        max_length=64,
        description="A registered detector: pii, secrets, injection, toxicity, topics, "
        "max_size, json_schema, or one a plugin adds.",
    )
    action: RuleAction = Field(
        description="block: refuse with a 400; redact: rewrite the span as [TYPE]; "
        "flag: record only."
    )
    min_score: float = Field(
        default=0.5, ge=0, le=1, description="Findings scored below this are ignored."
    )
    types: list[str] | None = Field(
        default=None,
        max_length=64,
        description="Only these finding types (e.g. EMAIL_ADDRESS, ES_DNI); None: all.",
    )
    options: dict[str, Any] = Field(
        default_factory=dict, description="Detector-specific settings (see docs/guard.md)."
    )
    roles: list[MessageRole] | None = Field(
        default=None,
        description="Input stage, chat requests: the message roles checked. None: user and "
        "tool messages (the application's own system prompt is trusted).",
    )
    on_error: Literal["closed", "open"] | None = Field(
        default=None,
        description="When the detector raises or times out: closed blocks the request, open "
        "lets it through. None: closed for block rules, open otherwise. Either way the "
        "failure is recorded.",
    )
    timeout_ms: float | None = Field(
        default=None,
        gt=0,
        le=60_000,
        description="Longest time the detector may take on one text; None: no limit "
        "(rule-based detectors are linear-time).",
    )

    def fails_closed(self) -> bool:
        """Whether a failure of this rule's detector blocks the request."""
        if self.on_error is None:
            return self.action == "block"
        return self.on_error == "closed"


class GuardPolicySpec(RequestBody):
    """Which detectors run on a deployment's input and output, and what they do."""

    description: str = Field(default="", max_length=1000)
    input: list[GuardRule] = Field(
        default_factory=list, max_length=MAX_RULES, description="Run on the prompt or messages."
    )
    output: list[GuardRule] = Field(
        default_factory=list, max_length=MAX_RULES, description="Run on the answer."
    )
    stream_hold_back_chars: int = Field(
        default=64,
        ge=0,
        le=4096,
        description="Streamed answers: characters held back until the detectors have seen "
        "what follows them, so a match split across chunks is still caught. A match still "
        "open at the window's edge is held until it closes.",
    )
    placeholder: str = Field(
        default="[{type}]",
        max_length=64,
        description="What a redacted span becomes; {type} is the finding type.",
    )

    @model_validator(mode="after")
    def _placeholder_formats(self) -> GuardPolicySpec:
        try:
            self.placeholder.format(type="EMAIL_ADDRESS")
        except (KeyError, IndexError, ValueError) as exc:
            raise ValueError(
                f"placeholder may use only {{type}}: {type(exc).__name__}: {exc}"
            ) from None
        return self

    def rules(self, stage: Stage) -> list[GuardRule]:
        """The rules of one stage."""
        return self.input if stage == "input" else self.output


class GuardPolicyCreate(GuardPolicySpec):
    """A new named policy: the body of ``POST /api/v1/guard/policies``."""

    name: str = Field(pattern=NAME_PATTERN, max_length=64)

    def spec(self) -> GuardPolicySpec:
        """The policy without its name."""
        return GuardPolicySpec.model_validate(self.model_dump(exclude={"name"}))


class GuardPolicy(BaseModel):
    """A named policy and its configuration in force."""

    name: str
    revision: int
    spec: GuardPolicySpec
    created_by: str
    created_at: datetime
    updated_by: str
    updated_at: datetime


class DetectorInfo(BaseModel):
    """A detector a policy rule may name (``GET /api/v1/guard/detectors``)."""

    name: str
    description: str = Field(description="What it finds, in one line.")


class FindingOut(BaseModel):
    """One finding: where it is, never the text found."""

    detector: str
    type: str
    start: int
    end: int
    score: float
    action: Action


class GuardCheckRequest(RequestBody):
    """The body of ``POST /api/v1/guard/check``."""

    text: str = Field(max_length=MAX_CHECK_CHARS)
    stage: Stage = "input"
    deployment: str | None = Field(
        default=None,
        pattern=NAME_PATTERN,
        max_length=64,
        description="Use this deployment's policy; None: the project's policy named 'default'.",
    )
    policy: str | None = Field(
        default=None,
        pattern=NAME_PATTERN,
        max_length=64,
        description="Use this named policy instead (not together with deployment).",
    )

    @model_validator(mode="after")
    def _one_source(self) -> GuardCheckRequest:
        if self.deployment is not None and self.policy is not None:
            raise ValueError("give deployment or policy, not both")
        return self


class GuardCheckResponse(BaseModel):
    """The decision of a policy on a text."""

    action: Action
    findings: list[FindingOut]
    redacted_text: str
    errors: list[str] = Field(default_factory=list)
    policy: str | None = Field(default=None, description="The policy that ran.")
