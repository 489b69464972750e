"""Deployments: what clients call, routed to model versions (canary, shadow, fallbacks)."""

from modelcycle.deploy.references import DeploymentReferences
from modelcycle.deploy.schemas import (
    TARGET_PATTERN,
    BreakerPolicy,
    CachePolicy,
    Deployment,
    DeploymentConfig,
    DeploymentLimits,
    DeploymentRevision,
    DeploymentSpec,
    Route,
    single_route,
)
from modelcycle.deploy.service import Deployments, canary_of
from modelcycle.deploy.targets import ResolvedVersion, Target, parse_target, resolve, resolve_active

__all__ = [
    "TARGET_PATTERN",
    "BreakerPolicy",
    "CachePolicy",
    "Deployment",
    "DeploymentConfig",
    "DeploymentLimits",
    "DeploymentReferences",
    "DeploymentRevision",
    "DeploymentSpec",
    "Deployments",
    "ResolvedVersion",
    "Route",
    "Target",
    "canary_of",
    "parse_target",
    "resolve",
    "resolve_active",
    "single_route",
]
