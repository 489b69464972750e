"""Registry changes reach plugins as typed events, after they are committed."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from modelcycle import events
from modelcycle.api import create_app
from modelcycle.hookspecs import hookimpl
from modelcycle.services import Services
from modelcycle.settings import Settings
from modelcycle.testing import admin_of, make_services


@dataclass
class Recorder:
    """Keeps every event it receives, and checks each change is already visible."""

    services: Services | None = None
    seen: list[object] = field(default_factory=list)
    committed: list[bool] = field(default_factory=list)

    @hookimpl
    def modelcycle_version_registered(self, event: events.VersionRegistered) -> None:
        self.seen.append(event)
        assert self.services is not None
        principal = admin_of(self.services).principal
        found = self.services.registry.get_version(principal, event.model, event.version)
        self.committed.append(found.source == event.source)

    @hookimpl
    def modelcycle_alias_moved(self, event: events.AliasMoved) -> None:
        self.seen.append(event)

    @hookimpl
    def modelcycle_version_archived(self, event: events.VersionArchived) -> None:
        self.seen.append(event)

    @hookimpl
    def modelcycle_version_deleted(self, event: events.VersionDeleted) -> None:
        self.seen.append(event)


class Broken:
    @hookimpl
    def modelcycle_alias_moved(self, event: events.AliasMoved) -> None:
        raise RuntimeError("plugin bug")


@pytest.fixture
async def recorded(
    modelcycle_settings: Settings,
) -> AsyncIterator[tuple[httpx.AsyncClient, Recorder, str]]:
    recorder = Recorder()
    services = make_services(modelcycle_settings, plugins=(Broken(), recorder))
    recorder.services = services
    admin = admin_of(services)
    transport = httpx.ASGITransport(app=create_app(services))
    async with httpx.AsyncClient(
        transport=transport,
        base_url="http://modelcycle.test",
        headers={"Authorization": f"Bearer {admin.key}"},
    ) as client:
        yield client, recorder, f"key:{admin.principal.prefix}"
    services.close()


def close_to_now(at: datetime) -> bool:
    return at.tzinfo is not None and abs(datetime.now(UTC) - at) < timedelta(minutes=1)


async def test_version_and_alias_events_carry_the_right_fields(
    recorded: tuple[httpx.AsyncClient, Recorder, str], caplog: pytest.LogCaptureFixture
) -> None:
    api, recorder, actor = recorded
    first = await api.post(
        "/api/v1/models/bot/versions", json={"source": "/w/a.gguf", "backend": "llamacpp"}
    )
    assert first.status_code == 201
    second = await api.post(
        "/api/v1/models/bot/versions",
        json={"source": "mock://b", "backend": "mock", "parent": {"model": "bot", "version": 1}},
    )
    assert second.status_code == 201
    with caplog.at_level(logging.ERROR):
        for version in (1, 2):
            moved = await api.put(
                "/api/v1/models/bot/aliases/production", json={"version": version}
            )
            # A plugin that raises never undoes or fails a committed change.
            assert moved.status_code == 200
    assert "plugin bug" in caplog.text
    assert (await api.delete("/api/v1/models/bot/aliases/production")).status_code == 204
    assert (await api.post("/api/v1/models/bot/versions/1/archive")).status_code == 200
    assert (await api.delete("/api/v1/models/bot/versions/2")).status_code == 204

    registered = [e for e in recorder.seen if isinstance(e, events.VersionRegistered)]
    assert [
        (e.project, e.model, e.version, e.backend, e.source, e.parent_version, e.actor)
        for e in registered
    ] == [
        ("default", "bot", 1, "llamacpp", "/w/a.gguf", None, actor),
        ("default", "bot", 2, "mock", "mock://b", 1, actor),
    ]
    assert recorder.committed == [True, True]

    moves = [e for e in recorder.seen if isinstance(e, events.AliasMoved)]
    assert [
        (e.project, e.model, e.alias, e.from_version, e.to_version, e.actor) for e in moves
    ] == [
        ("default", "bot", "production", None, 1, actor),
        ("default", "bot", "production", 1, 2, actor),
        ("default", "bot", "production", 2, None, actor),
    ]

    archived = [e for e in recorder.seen if isinstance(e, events.VersionArchived)]
    assert [(e.model, e.version, e.actor) for e in archived] == [("bot", 1, actor)]
    deleted = [e for e in recorder.seen if isinstance(e, events.VersionDeleted)]
    assert [(e.model, e.version, e.actor) for e in deleted] == [("bot", 2, actor)]
    assert all(close_to_now(e.at) for e in recorder.seen)  # type: ignore[attr-defined]


async def test_a_refused_change_emits_no_event(
    recorded: tuple[httpx.AsyncClient, Recorder, str],
) -> None:
    api, recorder, _ = recorded
    refused = await api.post(
        "/api/v1/models/bot/versions",
        json={"source": "mock://b", "backend": "mock", "parent": {"model": "bot", "version": 4}},
    )
    assert refused.status_code == 400
    missing = await api.put("/api/v1/models/bot/aliases/production", json={"version": 1})
    assert missing.status_code == 404
    assert recorder.seen == []
