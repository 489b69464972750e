"""``client.guard``: check a text against a policy; manage named policies; list detectors."""

from __future__ import annotations

import builtins
from typing import TYPE_CHECKING, Any

from pydantic import TypeAdapter

from modelcycle.client.calls import API, Call, PageCall
from modelcycle.errors import NotFound
from modelcycle.guard.schemas import (
    DetectorInfo,
    GuardCheckRequest,
    GuardCheckResponse,
    GuardPolicy,
    GuardPolicySpec,
)
from modelcycle.guard.types import Stage

if TYPE_CHECKING:
    from modelcycle.client.asyncio import AsyncClient
    from modelcycle.client.sync import Client

_DETECTORS = TypeAdapter(list[DetectorInfo])


def check_call(
    text: str, stage: Stage, deployment: str | None, policy: str | None
) -> Call[GuardCheckResponse]:
    """``POST /api/v1/guard/check``."""
    body = GuardCheckRequest(text=text, stage=stage, deployment=deployment, policy=policy)
    return Call(
        "POST",
        f"{API}/guard/check",
        GuardCheckResponse.model_validate,
        json=body.model_dump(mode="json", exclude_none=True),
    )


def detectors_call() -> Call[list[DetectorInfo]]:
    """``GET /api/v1/guard/detectors``."""
    return Call("GET", f"{API}/guard/detectors", _DETECTORS.validate_python)


def _policy_path(name: str) -> str:
    return f"{API}/guard/policies/{name}"


def _spec_json(spec: GuardPolicySpec | dict[str, Any]) -> dict[str, Any]:
    """The spec as JSON, validated here so a typo fails before any request."""
    checked = spec if isinstance(spec, GuardPolicySpec) else GuardPolicySpec.model_validate(spec)
    return checked.model_dump(mode="json", exclude_unset=True)


def create_policy_call(name: str, spec: GuardPolicySpec | dict[str, Any]) -> Call[GuardPolicy]:
    """``POST /api/v1/guard/policies``."""
    body = {**_spec_json(spec), "name": name}
    return Call("POST", f"{API}/guard/policies", GuardPolicy.model_validate, json=body)


def list_policies_call() -> PageCall[GuardPolicy]:
    """``GET /api/v1/guard/policies`` (every page)."""
    return PageCall(f"{API}/guard/policies", GuardPolicy.model_validate)


def get_policy_call(name: str) -> Call[GuardPolicy]:
    """``GET /api/v1/guard/policies/{name}``."""
    return Call("GET", _policy_path(name), GuardPolicy.model_validate)


def update_policy_call(
    name: str, spec: GuardPolicySpec | dict[str, Any], expected_revision: int | None
) -> Call[GuardPolicy]:
    """``PUT /api/v1/guard/policies/{name}``."""
    params = {"expected_revision": expected_revision} if expected_revision is not None else {}
    return Call(
        "PUT",
        _policy_path(name),
        GuardPolicy.model_validate,
        json=_spec_json(spec),
        params=params,
    )


def delete_policy_call(name: str) -> Call[None]:
    """``DELETE /api/v1/guard/policies/{name}``."""
    return Call("DELETE", _policy_path(name), lambda _body: None)


class GuardPolicies:
    """Named guard policies of the project (maintainers change them, viewers read)."""

    def __init__(self, client: Client):
        self._c = client

    def list(self) -> builtins.list[GuardPolicy]:
        """Every policy of the project."""
        return self._c.collect(list_policies_call())

    def get(self, name: str) -> GuardPolicy:
        """One policy."""
        return self._c.run(get_policy_call(name))

    def create(self, name: str, spec: GuardPolicySpec | dict[str, Any]) -> GuardPolicy:
        """Create a policy; ``InvalidInput`` naming the rule when a detector or option is wrong."""
        return self._c.run(create_policy_call(name, spec))

    def update(
        self,
        name: str,
        spec: GuardPolicySpec | dict[str, Any],
        *,
        expected_revision: int | None = None,
    ) -> GuardPolicy:
        """Replace a policy; ``Conflict`` when ``expected_revision`` is not the one in force."""
        return self._c.run(update_policy_call(name, spec, expected_revision))

    def set(self, name: str, spec: GuardPolicySpec | dict[str, Any]) -> GuardPolicy:
        """Replace the policy, or create it when the project has none of that name."""
        try:
            return self.update(name, spec)
        except NotFound:
            return self.create(name, spec)

    def delete(self, name: str) -> None:
        """Delete a policy; ``Conflict`` while a deployment names it."""
        self._c.run(delete_policy_call(name))


class Guard:
    """The guard stage: ``check`` a text, ``policies``, ``detectors``."""

    def __init__(self, client: Client):
        self._c = client
        self.policies = GuardPolicies(client)

    def check(
        self,
        text: str,
        *,
        stage: Stage = "input",
        deployment: str | None = None,
        policy: str | None = None,
    ) -> GuardCheckResponse:
        """What a policy makes of ``text``: the deployment's, the named one, or the default."""
        return self._c.run(check_call(text, stage, deployment, policy))

    def detectors(self) -> builtins.list[DetectorInfo]:
        """The detectors a policy rule may name."""
        return self._c.run(detectors_call())


class AsyncGuardPolicies:
    """Named guard policies of the project (maintainers change them, viewers read)."""

    def __init__(self, client: AsyncClient):
        self._c = client

    async def list(self) -> builtins.list[GuardPolicy]:
        """Every policy of the project."""
        return await self._c.collect(list_policies_call())

    async def get(self, name: str) -> GuardPolicy:
        """One policy."""
        return await self._c.run(get_policy_call(name))

    async def create(self, name: str, spec: GuardPolicySpec | dict[str, Any]) -> GuardPolicy:
        """Create a policy; ``InvalidInput`` naming the rule when a detector or option is wrong."""
        return await self._c.run(create_policy_call(name, spec))

    async def update(
        self,
        name: str,
        spec: GuardPolicySpec | dict[str, Any],
        *,
        expected_revision: int | None = None,
    ) -> GuardPolicy:
        """Replace a policy; ``Conflict`` when ``expected_revision`` is not the one in force."""
        return await self._c.run(update_policy_call(name, spec, expected_revision))

    async def set(self, name: str, spec: GuardPolicySpec | dict[str, Any]) -> GuardPolicy:
        """Replace the policy, or create it when the project has none of that name."""
        try:
            return await self.update(name, spec)
        except NotFound:
            return await self.create(name, spec)

    async def delete(self, name: str) -> None:
        """Delete a policy; ``Conflict`` while a deployment names it."""
        await self._c.run(delete_policy_call(name))


class AsyncGuard:
    """The guard stage: ``check`` a text, ``policies``, ``detectors``."""

    def __init__(self, client: AsyncClient):
        self._c = client
        self.policies = AsyncGuardPolicies(client)

    async def check(
        self,
        text: str,
        *,
        stage: Stage = "input",
        deployment: str | None = None,
        policy: str | None = None,
    ) -> GuardCheckResponse:
        """What a policy makes of ``text``: the deployment's, the named one, or the default."""
        return await self._c.run(check_call(text, stage, deployment, policy))

    async def detectors(self) -> builtins.list[DetectorInfo]:
        """The detectors a policy rule may name."""
        return await self._c.run(detectors_call())
