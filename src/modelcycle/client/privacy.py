"""``client.privacy``: erase or export an end user's data, switch raw-text storage (admins)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from modelcycle.client.calls import API, Call
from modelcycle.monitor.privacy_schemas import Erasure, ErasureRequest, UserExport
from modelcycle.monitor.trace_schemas import MonitorPolicy, MonitorPolicyUpdate

if TYPE_CHECKING:
    from modelcycle.client.asyncio import AsyncClient
    from modelcycle.client.sync import Client


def erase_call(user: str, dry_run: bool) -> Call[Erasure]:
    """``POST /api/v1/privacy/erase``."""
    body = ErasureRequest(user=user, dry_run=dry_run)
    return Call("POST", f"{API}/privacy/erase", Erasure.model_validate, json=body.model_dump())


def export_call(user: str) -> Call[UserExport]:
    """``GET /api/v1/privacy/export``."""
    return Call("GET", f"{API}/privacy/export", UserExport.model_validate, params={"user": user})


def raw_text_call(enabled: bool) -> Call[MonitorPolicy]:
    """``PUT /api/v1/monitor/policy`` changing ``store_raw_text`` only."""
    body = MonitorPolicyUpdate(store_raw_text=enabled)
    return Call(
        "PUT",
        f"{API}/monitor/policy",
        MonitorPolicy.model_validate,
        json=body.model_dump(mode="json", exclude_unset=True),
    )


class Privacy:
    """End users' data in the project: erase, export; raw-text storage (admins)."""

    def __init__(self, client: Client):
        self._c = client

    def erase(self, user: str, *, dry_run: bool = False) -> Erasure:
        """Delete the user's traces, feedback and derived data; ``dry_run`` only counts."""
        return self._c.run(erase_call(user, dry_run))

    def export(self, user: str) -> UserExport:
        """Everything held about the user: traces as stored, feedback, derived data."""
        return self._c.run(export_call(user))

    def set_raw_text(self, enabled: bool) -> MonitorPolicy:
        """Store prompts and answers unredacted (``True``) or redacted (``False``, the default)."""
        return self._c.run(raw_text_call(enabled))


class AsyncPrivacy:
    """End users' data in the project: erase, export; raw-text storage (admins)."""

    def __init__(self, client: AsyncClient):
        self._c = client

    async def erase(self, user: str, *, dry_run: bool = False) -> Erasure:
        """Delete the user's traces, feedback and derived data; ``dry_run`` only counts."""
        return await self._c.run(erase_call(user, dry_run))

    async def export(self, user: str) -> UserExport:
        """Everything held about the user: traces as stored, feedback, derived data."""
        return await self._c.run(export_call(user))

    async def set_raw_text(self, enabled: bool) -> MonitorPolicy:
        """Store prompts and answers unredacted (``True``) or redacted (``False``, the default)."""
        return await self._c.run(raw_text_call(enabled))
