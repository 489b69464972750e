import httpx


async def test_register_version_then_move_alias_is_audited(
    modelcycle_api: httpx.AsyncClient,
) -> None:
    created = await modelcycle_api.post(
        "/api/v1/models/support-bot/versions",
        json={"source": "mock://echo", "backend": "mock", "params": {"temperature": 0}},
    )
    assert created.status_code == 201, created.text
    assert created.json()["version"] == 1
    moved = await modelcycle_api.put(
        "/api/v1/models/support-bot/aliases/production", json={"version": 1}
    )
    assert moved.status_code == 200, moved.text
    audit = (await modelcycle_api.get("/api/v1/audit", params={"action": "alias.set"})).json()
    assert [entry["target"] for entry in audit["data"]] == ["model:support-bot/alias:production"]
    assert (await modelcycle_api.get("/api/v1/audit/verify")).json()["ok"] is True
