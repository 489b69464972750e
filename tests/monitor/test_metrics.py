"""``GET /metrics``: what a Prometheus scraper reads after some gateway traffic.

The families carry the OpenTelemetry GenAI names translated the Prometheus way, counted
per operation, deployment, version, route and status; never per user or trace.
"""

from __future__ import annotations

import re
import sys
import types
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from gateway.harness import Env
from modelcycle.monitor import SpanRecord
from modelcycle.monitor.metrics import Metrics
from modelcycle.testing import make_key
from modelcycle.types import Role
from monitor.recording import gateway, settings_for

Samples = list[Sample]


def parse(body: str) -> dict[str, Samples]:
    """Samples by family name (a histogram's buckets, count and sum under its family)."""
    return {family.name: family.samples for family in text_string_to_metric_families(body)}


def value(samples: Samples, name: str, /, **labels: str) -> float:
    """The one sample called ``name`` whose labels include ``labels``."""
    [found] = [s for s in samples if s.name == name and labels.items() <= s.labels.items()] or [
        None
    ]
    assert found is not None, f"no {name} with {labels}"
    return found.value


async def get_metrics(env: Env, **headers: str) -> httpx.Response:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=env.app), base_url="http://modelcycle.test"
    ) as client:
        return await client.get("/metrics", headers=headers)


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[Env]:
    async with gateway(settings_for(tmp_path)) as built:
        yield built


async def test_requests_are_counted_and_timed_by_deployment_version_route_and_status(
    env: Env,
) -> None:
    env.deploy("chat", (env.version("bot", "mock://script?reply=a+b+c", chunk_delay_ms=5), 100))
    env.deploy("broken", (env.version("bad", "mock://fail"), 100))
    http = env.http()
    user = {"X-Modelcycle-User": "alice-the-user", "X-Modelcycle-Session": "session-42"}
    usage = {"input": 0, "output": 0}
    ids = []
    for _ in range(3):
        answer = await http.post(
            "/v1/chat/completions",
            json={"model": "chat", "messages": [{"role": "user", "content": "one two"}]},
            headers=user,
        )
        ids.append(answer.json()["id"])
        usage["input"] += answer.json()["usage"]["prompt_tokens"]
        usage["output"] += answer.json()["usage"]["completion_tokens"]
    for _ in range(2):
        stream = await env.openai().completions.create(model="chat", prompt="x y", stream=True)
        async for _ in stream:
            pass
    embedded = await http.post("/v1/embeddings", json={"model": "chat", "input": "a b c d"})
    assert embedded.status_code == 200
    failed = await http.post(
        "/v1/chat/completions",
        json={"model": "broken", "messages": [{"role": "user", "content": "x"}]},
    )
    assert failed.status_code >= 500
    env.services.recorder.flush()

    response = await get_metrics(env)

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    families = parse(response.text)
    requests = families["modelcycle_requests"]
    chat = {"deployment": "chat", "version": "bot@1", "route": "primary", "status": "ok"}
    assert value(requests, "modelcycle_requests_total", gen_ai_operation_name="chat", **chat) == 3
    completions = {"gen_ai_operation_name": "text_completion", **chat}
    assert value(requests, "modelcycle_requests_total", **completions) == 2
    embeddings = {"gen_ai_operation_name": "embeddings", **chat}
    assert value(requests, "modelcycle_requests_total", **embeddings) == 1
    # A request no version could serve has no version (RequestFinished.model is None).
    # A request every route failed counts against the last version tried.
    broken = {"deployment": "broken", "version": "bad@1", "status": "error"}
    assert value(requests, "modelcycle_requests_total", **broken) == 1
    assert sum(s.value for s in requests if s.name == "modelcycle_requests_total") == 7

    duration = families["gen_ai_client_operation_duration_seconds"]
    count = "gen_ai_client_operation_duration_seconds_count"
    assert value(duration, count, gen_ai_operation_name="chat", **chat) == 3
    assert value(duration, count, **broken) == 1
    streamed = value(duration, "gen_ai_client_operation_duration_seconds_sum", **completions)
    assert streamed >= 2 * 2 * 0.005  # two streams of three words, 5 ms between chunks

    tokens = families["gen_ai_client_token_usage"]
    chat_tokens = {"gen_ai_operation_name": "chat", **chat}
    total = "gen_ai_client_token_usage_sum"
    assert value(tokens, total, gen_ai_token_type="input", **chat_tokens) == usage["input"]
    assert value(tokens, total, gen_ai_token_type="output", **chat_tokens) == usage["output"]
    assert value(tokens, total, gen_ai_token_type="input", **embeddings) == 4
    assert not [s for s in tokens if s.labels.get("status") == "error"], "usage of a failure"
    assert not [
        s
        for s in tokens
        if s.labels.get("gen_ai_operation_name") == "embeddings"
        and s.labels.get("gen_ai_token_type") == "output"
    ]

    ttft = families["gen_ai_server_time_to_first_token_seconds"]
    ttft_count = "gen_ai_server_time_to_first_token_seconds_count"
    assert value(ttft, ttft_count, **completions) == 2
    assert not [s for s in ttft if s.labels.get("gen_ai_operation_name") == "chat"]

    # Label values stay bounded: nothing per user, session or request.
    for leaked in ("alice-the-user", "session-42", *ids):
        assert leaked not in response.text
    assert value(families["modelcycle_traces_written"], "modelcycle_traces_written_total") == 7
    assert value(families["modelcycle_traces_dropped"], "modelcycle_traces_dropped_total") == 0
    assert value(families["modelcycle_trace_queue_depth"], "modelcycle_trace_queue_depth") == 0
    assert value(families["process_resident_memory_bytes"], "process_resident_memory_bytes") > 0
    assert "process_cpu_seconds" in families


async def test_spans_that_are_not_gateway_requests_do_not_count_as_requests(env: Env) -> None:
    now = datetime.now(UTC)
    span = SpanRecord(
        project_id=1,
        trace_id="ab" * 16,
        span_id="cd" * 8,
        name="retrieve",
        kind="llm",
        source="sdk",
        start_time=now,
        end_time=now,
        duration_ms=1.0,
        status="ok",
        deployment="chat",
        endpoint="chat.completions",
    )
    env.services.recorder.submit(span)
    env.services.recorder.flush()

    families = parse((await get_metrics(env)).text)

    assert value(families["modelcycle_traces_written"], "modelcycle_traces_written_total") == 1
    assert not [s for s in families["modelcycle_requests"] if s.name.endswith("_total")]


async def test_openmetrics_when_the_scraper_asks_for_it(env: Env) -> None:
    response = await get_metrics(
        env, accept="application/openmetrics-text; version=1.0.0,text/plain;q=0.5"
    )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/openmetrics-text")
    assert response.text.endswith("# EOF\n")


async def test_a_key_can_be_required_to_scrape(tmp_path: Path) -> None:
    async with gateway(settings_for(tmp_path, metrics_require_key=True)) as env:
        viewer = make_key(env.services, Role.VIEWER)

        anonymous = await get_metrics(env)
        app_key = await get_metrics(env, authorization=f"Bearer {env.app_key.key}")
        allowed = await get_metrics(env, authorization=f"Bearer {viewer.key}")

    assert anonymous.status_code == 401
    assert anonymous.json()["error"]["type"] == "authentication_error"
    assert app_key.status_code == 403
    assert app_key.json()["error"]["type"] == "permission_error"
    assert allowed.status_code == 200
    assert "modelcycle_traces_dropped_total" in allowed.text


# -- readings taken at scrape time -----------------------------------------------------


def fake_nvml(gpus: Iterable[tuple[str, int, int, int]]) -> types.ModuleType:
    """A ``pynvml`` stand-in reporting ``(name, used bytes, total bytes, utilisation %)``."""
    readings = list(gpus)
    module = types.ModuleType("pynvml")

    def memory(index: int) -> Any:
        return types.SimpleNamespace(used=readings[index][1], total=readings[index][2])

    module.nvmlInit = lambda: None  # type: ignore[attr-defined]
    module.nvmlDeviceGetCount = lambda: len(readings)  # type: ignore[attr-defined]
    module.nvmlDeviceGetHandleByIndex = lambda index: index  # type: ignore[attr-defined]
    module.nvmlDeviceGetMemoryInfo = memory  # type: ignore[attr-defined]
    module.nvmlDeviceGetUtilizationRates = lambda index: types.SimpleNamespace(  # type: ignore[attr-defined]
        gpu=readings[index][3]
    )
    module.nvmlDeviceGetName = lambda index: readings[index][0].encode()  # type: ignore[attr-defined]
    return module


def exposition(metrics: Metrics) -> dict[str, Samples]:
    body, _ = metrics.exposition(None)
    return parse(body.decode())


def test_each_gpu_reports_its_memory_and_utilisation(monkeypatch: pytest.MonkeyPatch) -> None:
    gib = 1 << 30
    nvml = fake_nvml([("NVIDIA H200", 3 * gib, 141 * gib, 37), ("NVIDIA H200", 0, 141 * gib, 0)])
    monkeypatch.setitem(sys.modules, "pynvml", nvml)

    families = exposition(Metrics())

    used = families["modelcycle_gpu_memory_used_bytes"]
    assert value(used, "modelcycle_gpu_memory_used_bytes", gpu="0", name="NVIDIA H200") == 3 * gib
    assert value(used, "modelcycle_gpu_memory_used_bytes", gpu="1") == 0
    total = families["modelcycle_gpu_memory_total_bytes"]
    assert value(total, "modelcycle_gpu_memory_total_bytes", gpu="1") == 141 * gib
    busy = families["modelcycle_gpu_utilization_ratio"]
    assert value(busy, "modelcycle_gpu_utilization_ratio", gpu="0") == pytest.approx(0.37)


def test_without_nvml_there_are_no_gpu_series_and_no_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", None)  # import fails

    families = exposition(Metrics())

    assert not [name for name in families if "gpu" in name]
    assert "process_resident_memory_bytes" in families


@dataclass(frozen=True)
class Loaded:
    kind: str
    size_bytes: int | None


def test_loaded_models_are_counted_per_backend_kind_with_known_sizes_only() -> None:
    loaded = [Loaded("llamacpp", 250_000_000), Loaded("llamacpp", 100), Loaded("openai", None)]

    families = exposition(Metrics(inventory=lambda: loaded, gpus=False))

    count = families["modelcycle_backend_loaded"]
    assert value(count, "modelcycle_backend_loaded", kind="llamacpp") == 2
    assert value(count, "modelcycle_backend_loaded", kind="openai") == 1
    size = families["modelcycle_backend_model_bytes"]
    assert value(size, "modelcycle_backend_model_bytes", kind="llamacpp") == 250_000_100
    assert not [s for s in size if s.labels["kind"] == "openai"], "a size nobody measured"


async def test_every_metric_the_docs_list_is_served(env: Env) -> None:
    doc = (Path(__file__).parents[2] / "docs" / "metrics.md").read_text()
    documented = set(re.findall(r"^\| `((?:modelcycle|gen_ai)_[a-z_]+)`", doc, re.MULTILINE))
    env.deploy("chat", (env.version("bot", "mock://script?reply=a+b"), 100))
    stream = await env.openai().completions.create(model="chat", prompt="x", stream=True)
    async for _ in stream:
        pass
    env.services.recorder.flush()

    families = parse((await get_metrics(env)).text)
    served = set(families) | {s.name for samples in families.values() for s in samples}

    assert len(documented) >= 10
    assert documented <= served, f"documented but not served: {documented - served}"
    undocumented = {
        name
        for name in families
        if name.startswith(("modelcycle_", "gen_ai_"))
        and not name.endswith("_created")  # each counter's and histogram's start time
        and not {name, f"{name}_total"} & documented
    }
    assert not undocumented, f"served but not in docs/metrics.md: {undocumented}"
