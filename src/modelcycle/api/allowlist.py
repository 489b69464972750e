"""Per-key deployment allowlists on the OpenAI-compatible and tokenizer routes.

A key created with ``deployments`` may call only those. Any other deployment
answers exactly as one that does not exist (OpenAI's 404 ``model_not_found``),
so a limited key learns nothing of the rest, and ``GET /v1/models`` lists only
what the key may call. The allowlist restricts what a key may *call*; the
management API (``/api/v1``) is governed by the key's role alone.
"""

from __future__ import annotations

from modelcycle.access import Principal
from modelcycle.deploy import Deployment
from modelcycle.gateway import DeploymentNotFound


def require_deployment(principal: Principal, deployment: str) -> None:
    """404 ``model_not_found`` unless the key may call ``deployment``."""
    if principal.deployments is not None and deployment not in principal.deployments:
        raise DeploymentNotFound(deployment)


def callable_deployments(principal: Principal, deployments: list[Deployment]) -> list[Deployment]:
    """The deployments of ``deployments`` the key may call."""
    allowed = principal.deployments
    if allowed is None:
        return deployments
    return [deployment for deployment in deployments if deployment.name in allowed]
