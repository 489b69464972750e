"""The SDK clients against a real server on a socket."""

from __future__ import annotations

import pytest

from e2e.live import LiveServer
from modelcycle.client import AsyncClient, Client
from modelcycle.errors import AuthenticationError, NotFound

pytestmark = pytest.mark.e2e


def test_client_registers_moves_an_alias_and_reads_the_audit_log(live_server: LiveServer) -> None:
    with Client(live_server.url, live_server.admin_key) as client:
        client.models.register("chat", source="mock://echo", backend="mock")
        second = client.models.register(
            "chat", source="mock://echo", backend="mock", params={"temperature": 0.5}
        )
        client.aliases.set("chat", "production", 1)
        moved = client.aliases.set("chat", "production", second.version)
        entries = client.audit.list(action="alias.set")
        with pytest.raises(NotFound):
            client.models.get("missing")

    assert moved.version == 2
    assert [(e.before, e.after) for e in entries] == [
        (None, {"version": 1}),
        ({"version": 1}, {"version": 2}),
    ]


async def test_async_client_matches_the_sync_one(live_server: LiveServer) -> None:
    async with AsyncClient(live_server.url, live_server.admin_key) as client:
        await client.models.register("chat", source="mock://echo", backend="mock")
        await client.aliases.set("chat", "staging", 1)
        history = await client.aliases.history("chat")
        entries = await client.audit.list(target="model:chat")

    assert [(m.alias, m.from_version, m.to_version) for m in history] == [("staging", None, 1)]
    assert {e.action for e in entries} >= {"version.register", "alias.set"}


def test_client_without_a_valid_key_is_refused(live_server: LiveServer) -> None:
    with (
        Client(live_server.url, "mc_aaaaaaaa_" + "a" * 32) as client,
        pytest.raises(AuthenticationError),
    ):
        client.whoami()
