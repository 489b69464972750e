"""Secrets: encrypted credentials of upstream APIs, named by ``openai`` versions.

Admins set and delete them; maintainers may list their names (to register a
version that names one). No response ever carries a value, and the audit log
records names only.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Response, status

from modelcycle.access.secrets import SecretInfo, SecretSet
from modelcycle.api.deps import PrincipalDep, ServicesDep
from modelcycle.types import NAME_PATTERN

router = APIRouter(prefix="/api/v1/secrets", tags=["secrets"])

SecretName = Annotated[
    str, Path(pattern=NAME_PATTERN, description="Secret name, e.g. openai-prod.")
]


@router.put("/{name}", response_model=SecretInfo)
def set_secret(
    name: SecretName, body: SecretSet, principal: PrincipalDep, services: ServicesDep
) -> SecretInfo:
    """Create or replace a secret (admins). The answer never holds the value."""
    return services.secrets.put(principal, name, body.value.get_secret_value())


@router.get("", response_model=list[SecretInfo])
def list_secrets(principal: PrincipalDep, services: ServicesDep) -> list[SecretInfo]:
    """The secrets of the caller's project: names and fingerprints, never values."""
    return services.secrets.list_secrets(principal)


@router.get("/{name}", response_model=SecretInfo)
def get_secret(name: SecretName, principal: PrincipalDep, services: ServicesDep) -> SecretInfo:
    """One secret's metadata."""
    return services.secrets.get(principal, name)


@router.delete("/{name}", status_code=status.HTTP_204_NO_CONTENT)
def delete_secret(name: SecretName, principal: PrincipalDep, services: ServicesDep) -> Response:
    """Delete a secret (admins); versions naming it fail at request time until it is set."""
    services.secrets.delete(principal, name)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
