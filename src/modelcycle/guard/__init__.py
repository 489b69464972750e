"""The guard stage: detectors, policies and decisions on a request's input and output."""

from modelcycle.guard.engine import CompiledPolicy, DetectorRegistry, decide, redact
from modelcycle.guard.schemas import (
    DetectorInfo,
    GuardCheckRequest,
    GuardCheckResponse,
    GuardPolicy,
    GuardPolicyCreate,
    GuardPolicySpec,
    GuardRule,
)
from modelcycle.guard.types import (
    Action,
    Detector,
    DetectorFactory,
    Finding,
    GuardDecision,
    Stage,
    strongest,
)

__all__ = [
    "Action",
    "CompiledPolicy",
    "Detector",
    "DetectorFactory",
    "DetectorInfo",
    "DetectorRegistry",
    "Finding",
    "GuardCheckRequest",
    "GuardCheckResponse",
    "GuardDecision",
    "GuardPolicy",
    "GuardPolicyCreate",
    "GuardPolicySpec",
    "GuardRule",
    "Stage",
    "decide",
    "redact",
    "strongest",
]
