"""``modelcycle online-eval``: set, list, show, scores and delete against a live server."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import httpx
import pytest

from cli.runner import Cli
from e2e.live import LiveServer
from modelcycle.deploy import DeploymentSpec, Route
from modelcycle.services import Services
from modelcycle.store.tables import utcnow
from modelcycle.testing import KeyPair, register

pytestmark = pytest.mark.e2e


@pytest.fixture
def chat(modelcycle_services: Services, modelcycle_admin: KeyPair) -> str:
    register(modelcycle_services, modelcycle_admin.principal, "bot", source="mock://echo")
    spec = DeploymentSpec(name="chat", routes=[Route(target="bot@1", weight=100)])
    modelcycle_services.deployments.create(modelcycle_admin.principal, spec)
    return "chat"


def test_set_list_show_scores_and_delete(
    cli: Cli, chat: str, live_server: LiveServer, modelcycle_services: Services
) -> None:
    created = cli.json(
        "online-eval",
        "set",
        chat,
        "--rate",
        "100%",
        "--scorer",
        "json_valid",
        "--scorer",
        'regex={"pattern": "^\\\\{"}',
    )
    assert created["sample_rate"] == 1.0
    assert created["scorers"][1] == {"name": "regex", "options": {"pattern": "^\\{"}}
    listed = cli("online-eval", "list")
    assert listed.exit_code == 0
    assert "chat" in listed.stdout
    assert "100%" in listed.stdout
    assert 'regex={"pattern":"^\\\\{"}' in listed.stdout

    with httpx.Client(base_url=live_server.url) as http:
        for content in ('{"a": 1}', "plain"):
            response = http.post(
                "/v1/chat/completions",
                headers={"Authorization": f"Bearer {live_server.admin_key}"},
                json={"model": chat, "messages": [{"role": "user", "content": content}]},
            )
            assert response.status_code == 200, response.text
    modelcycle_services.recorder.flush()
    later = utcnow() + timedelta(minutes=10)
    asyncio.run(modelcycle_services.online_eval.scoring.score_pending(now=later))

    result = cli.json("online-eval", "scores", chat, "--since", "1h", "--bucket", "5m")
    assert result["bucket_s"] == 300
    means = {s["scorer"]: (s["count"], s["mean"]) for s in result["series"]}
    assert means == {"json_valid": (2, 0.5), "regex": (2, 0.5)}
    table = cli("online-eval", "scores", chat)
    assert table.exit_code == 0
    assert "json_valid" in table.stdout
    assert "0.500" in table.stdout

    shown = cli("online-eval", "show", chat)
    assert shown.exit_code == 0
    assert "scored until" in shown.stdout
    deleted = cli("online-eval", "delete", chat)
    assert deleted.exit_code == 0
    assert "online evaluation of chat deleted" in deleted.stdout
    cli.fails("online-eval", "show", chat, naming=("has no online evaluation",))


def test_bad_input_is_one_line_with_the_fix(cli: Cli, chat: str) -> None:
    cli.fails(
        "online-eval",
        "set",
        chat,
        "--rate",
        "150%",
        "--scorer",
        "json_valid",
        naming=("more than 1", "'10%'"),
    )
    cli.fails(
        "online-eval",
        "set",
        chat,
        "--rate",
        "10%",
        "--scorer",
        "rouge_l",
        naming=("rouge_l compares with an expected answer", "json_valid"),
    )
    cli.fails(
        "online-eval",
        "set",
        chat,
        "--rate",
        "10%",
        "--scorer",
        "regex=[1]",
        naming=("options must be a JSON object",),
    )
    cli.fails(
        "online-eval",
        "set",
        "absent",
        "--rate",
        "10%",
        "--scorer",
        "json_valid",
        naming=("deployment 'absent' not found",),
    )
    cli.fails(
        "online-eval",
        "scores",
        chat,
        "--bucket",
        "often",
        naming=("--bucket 'often' is not a duration",),
    )
