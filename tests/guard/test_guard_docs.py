"""docs/guard.md cannot drift: its policies compile and its check example answers as shown."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from modelcycle.guard import GuardPolicySpec
from modelcycle.services import Services
from modelcycle.testing import KeyPair, register

DOC = (Path(__file__).parents[2] / "docs" / "guard.md").read_text(encoding="utf-8")


def blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", DOC, re.DOTALL)


@pytest.mark.parametrize("example", blocks("yaml"))
def test_every_yaml_example_compiles(modelcycle_services: Services, example: str) -> None:
    loaded: Any = yaml.safe_load(example)
    spec = {"input": loaded} if isinstance(loaded, list) else loaded

    modelcycle_services.detectors.compile(GuardPolicySpec.model_validate(spec))


async def test_the_check_example_answers_as_documented(
    modelcycle_services: Services, modelcycle_admin: KeyPair, modelcycle_api: httpx.AsyncClient
) -> None:
    policy = next(b for b in blocks("yaml") if b.startswith("# support-policy.yaml"))
    request = re.search(r"-d '(\{.*?\})'", DOC)
    assert request is not None
    body = json.loads(request.group(1))
    documented = json.loads(blocks("json")[0])
    created = await modelcycle_api.post(
        "/api/v1/guard/policies", json={"name": "support", **yaml.safe_load(policy)}
    )
    assert created.status_code == 201, created.text
    register(modelcycle_services, modelcycle_admin.principal, "support")
    deployment = {"name": body["deployment"], "routes": [{"target": "support@1", "weight": 100}]}
    await modelcycle_api.post("/api/v1/deployments", json={**deployment, "guard": "support"})

    answer = await modelcycle_api.post("/api/v1/guard/check", json=body)

    assert answer.json() == documented
