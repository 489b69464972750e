"""docs/upstreams.md cannot drift: its registration commands run against a live server."""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from e2e.live import LiveServer, serve
from modelcycle.cli.main import app
from modelcycle.services import Services
from modelcycle.testing import KeyPair

DOC = Path(__file__).resolve().parents[2] / "docs" / "upstreams.md"
PIPED = re.compile(r'^printf %s "\$\w+" \| (modelcycle secrets set .+)$')


@pytest.fixture
def modelcycle_database_url() -> str | None:
    return None


@pytest.fixture
def live(modelcycle_services: Services, modelcycle_admin: KeyPair) -> Iterator[LiveServer]:
    with serve(modelcycle_services, modelcycle_admin.key) as server:
        yield server


def commands() -> list[tuple[str, str | None]]:
    """Each modelcycle command of the page's console blocks (and the stdin it is given)."""
    blocks = re.findall(r"```console\n(.*?)```", DOC.read_text(encoding="utf-8"), re.DOTALL)
    found: list[tuple[str, str | None]] = []
    for line in (line.strip() for block in blocks for line in block.splitlines()):
        piped = PIPED.match(line)
        if piped:
            found.append((piped.group(1), "sk-doc-example-value"))
        elif line.startswith(("modelcycle models register", "modelcycle deploy")):
            found.append((line, None))
    return found


def test_the_pages_commands_register_and_deploy_every_upstream(live: LiveServer) -> None:
    env = {"MODELCYCLE_SERVER": live.url, "MODELCYCLE_API_KEY": live.admin_key}
    ran = []
    for command, stdin in commands():
        argv = shlex.split(command, comments=True)[1:]
        result = CliRunner().invoke(app, argv, env=env, input=stdin)
        assert result.exit_code == 0, f"{command}\n{result.output}"
        ran.append(argv[:2])

    assert ran.count(["models", "register"]) == 5  # vLLM, Ollama, llama.cpp, TGI, OpenAI
    assert ran.count(["secrets", "set"]) == 3
    deployment = live.services.deployments.get(
        live.services.access.authenticate(live.admin_key), "assistant"
    )
    assert deployment.spec.fallbacks == ["gpt@1"]
