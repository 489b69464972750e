"""``POST /v1/traces``: spans from any OTLP/HTTP exporter land in the spans table, mapped.

What a user relies on: an OpenTelemetry, OpenLLMetry or OpenInference exporter
pointed at the server stores its spans, with the GenAI facts (model, tokens,
prompt, answer, user, session) in their columns whatever dialect named them; a
malformed export is refused whole with a clear 4xx and leaves nothing behind.
"""

from __future__ import annotations

import base64
import gzip
import re
from collections.abc import AsyncIterator, Iterator, Mapping
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import schemathesis
from google.protobuf import json_format
from google.rpc.status_pb2 import Status as RpcStatus
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import (
    AnyValue,
    ArrayValue,
    InstrumentationScope,
    KeyValue,
    KeyValueList,
)
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, Status
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from sqlalchemy import select

from e2e.live import LiveServer
from modelcycle.api import create_app
from modelcycle.errors import InvalidInput, PayloadTooLarge
from modelcycle.monitor import SpanRecord, otlp
from modelcycle.services import Services
from modelcycle.store.tables import SpanRow
from modelcycle.testing import make_key, make_project, make_services, make_settings
from modelcycle.types import Role
from postgres_schema import database_url

TRACE = bytes.fromhex("5b8efff798038103d269b633813fc60c")
ROOT = bytes.fromhex("eee19b7ec3c1b174")
CHILD = bytes.fromhex("eee19b7ec3c1b175")
T0 = 1_760_000_000_000_000_000  # 2025-10-09, in nanoseconds
FUZZ_CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
PROTOBUF = {"Content-Type": "application/x-protobuf"}
JSON = {"Content-Type": "application/json"}


# -- building exports with the real opentelemetry-proto classes -------------------------


def any_value(value: Any) -> AnyValue:
    if isinstance(value, bool):
        return AnyValue(bool_value=value)
    if isinstance(value, int):
        return AnyValue(int_value=value)
    if isinstance(value, float):
        return AnyValue(double_value=value)
    if isinstance(value, list):
        return AnyValue(array_value=ArrayValue(values=[any_value(v) for v in value]))
    if isinstance(value, dict):
        return AnyValue(kvlist_value=KeyValueList(values=key_values(value)))
    return AnyValue(string_value=value)


def key_values(attributes: Mapping[str, Any]) -> list[KeyValue]:
    return [KeyValue(key=k, value=any_value(v)) for k, v in attributes.items()]


def span(
    name: str = "step",
    *,
    span_id: bytes = ROOT,
    parent: bytes = b"",
    trace_id: bytes = TRACE,
    start: int = T0,
    duration_ns: int = 250_000_000,
    attributes: Mapping[str, Any] | None = None,
    error: str | None = None,
    events: list[Span.Event] | None = None,
) -> Span:
    return Span(
        trace_id=trace_id,
        span_id=span_id,
        parent_span_id=parent,
        name=name,
        kind=Span.SPAN_KIND_CLIENT,
        start_time_unix_nano=start,
        end_time_unix_nano=start + duration_ns,
        attributes=key_values(attributes or {}),
        status=Status(code=Status.STATUS_CODE_ERROR, message=error)
        if error is not None
        else Status(code=Status.STATUS_CODE_OK),
        events=events or [],
    )


def export(*spans: Span, service: str = "shop") -> ExportTraceServiceRequest:
    return ExportTraceServiceRequest(
        resource_spans=[
            ResourceSpans(
                resource=Resource(attributes=key_values({"service.name": service})),
                scope_spans=[
                    ScopeSpans(scope=InstrumentationScope(name="test.scope"), spans=list(spans))
                ],
            )
        ]
    )


def otlp_json(request: ExportTraceServiceRequest, *, snake_case: bool = False) -> dict[str, Any]:
    """The OTLP/JSON form: protobuf's JSON mapping with ids in hex, as the spec says."""
    document = json_format.MessageToDict(request, preserving_proto_field_name=snake_case)
    names = (
        ("trace_id", "span_id", "parent_span_id")
        if snake_case
        else (
            "traceId",
            "spanId",
            "parentSpanId",
        )
    )
    resources = document["resource_spans" if snake_case else "resourceSpans"]
    for resource in resources:
        for scope in resource["scope_spans" if snake_case else "scopeSpans"]:
            for item in scope["spans"]:
                for name in names:
                    if name in item:
                        item[name] = base64.b64decode(item[name]).hex()
    return document


def decode(request: ExportTraceServiceRequest, *, content: bool = True) -> list[SpanRecord]:
    return otlp.decode(
        request.SerializeToString(),
        "protobuf",
        project_id=1,
        max_bytes=8_000_000,
        content=content,
    )


# -- fixtures ---------------------------------------------------------------------------


@pytest.fixture
async def api(modelcycle_services: Services) -> AsyncIterator[httpx.AsyncClient]:
    app_key = make_key(modelcycle_services, Role.APP)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=create_app(modelcycle_services)),
        base_url="http://modelcycle.test",
        headers={"Authorization": f"Bearer {app_key.key}"},
    ) as client:
        yield client


def stored(services: Services) -> list[SpanRow]:
    services.recorder.flush()
    with services.store.read() as session:
        return list(session.execute(select(SpanRow).order_by(SpanRow.span_id)).scalars())


# -- stored through the API -------------------------------------------------------------

GENAI = {
    "gen_ai.operation.name": "chat",
    "gen_ai.provider.name": "openai",
    "gen_ai.request.model": "gpt-4o",
    "gen_ai.response.model": "gpt-4o-2024-08-06",
    "gen_ai.response.id": "chatcmpl-123",
    "gen_ai.response.finish_reasons": ["stop"],
    "gen_ai.request.temperature": 0.2,
    "gen_ai.request.max_tokens": 64,
    "gen_ai.usage.input_tokens": 120,
    "gen_ai.usage.output_tokens": 30,
    "gen_ai.usage.cache_read.input_tokens": 100,
    "gen_ai.usage.reasoning.output_tokens": 12,
    "gen_ai.input.messages": orjson.dumps(
        [{"role": "user", "parts": [{"type": "text", "content": "What is 2+2?"}]}]
    ).decode(),
    "gen_ai.output.messages": orjson.dumps(
        [
            {
                "role": "assistant",
                "parts": [{"type": "text", "content": "4"}],
                "finish_reason": "stop",
            }
        ]
    ).decode(),
    "user.id": "u-42",
    "session.id": "s-7",
    "server.address": "api.openai.com",
}


async def test_a_protobuf_export_is_stored_with_the_genai_attributes_in_columns(
    api: httpx.AsyncClient, modelcycle_services: Services
) -> None:
    request = export(
        span("agent run", attributes={"openinference.span.kind": "AGENT"}),
        span("chat gpt-4o", span_id=CHILD, parent=ROOT, attributes=GENAI),
    )

    response = await api.post("/v1/traces", content=request.SerializeToString(), headers=PROTOBUF)

    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/x-protobuf"
    answer = ExportTraceServiceResponse.FromString(response.content)
    assert not answer.HasField("partial_success")
    root, llm = stored(modelcycle_services)
    assert (root.kind, root.parent_span_id, root.source) == ("agent", None, "otlp")
    assert (llm.trace_id, llm.parent_span_id) == (TRACE.hex(), ROOT.hex())
    assert llm.kind == "llm"
    assert llm.model == "gpt-4o-2024-08-06"
    assert llm.params == {"model": "gpt-4o", "temperature": 0.2, "max_tokens": 64}
    assert (llm.input_tokens, llm.output_tokens) == (120, 30)
    assert (llm.cached_tokens, llm.reasoning_tokens) == (100, 12)
    assert orjson.loads(llm.input or "") == [{"role": "user", "content": "What is 2+2?"}]
    assert llm.output == "4"
    assert (llm.finish_reason, llm.request_id, llm.endpoint) == (
        "stop",
        "chatcmpl-123",
        "chat.completions",
    )
    assert (llm.user_id, llm.session_id) == ("u-42", "s-7")
    assert root.user_id == "u-42", "a trace's user is copied onto its other spans"
    assert llm.duration_ms == pytest.approx(250.0)
    assert llm.start_time.timestamp() == pytest.approx(T0 / 1e9)
    assert llm.status == "ok"
    assert llm.attributes is not None
    assert llm.attributes["service.name"] == "shop"
    assert llm.attributes["gen_ai.provider.name"] == "openai"
    assert llm.attributes["server.address"] == "api.openai.com"
    assert "gen_ai.input.messages" not in llm.attributes
    assert (
        llm.project_id
        == modelcycle_services.access.authenticate(
            api.headers["Authorization"].split()[1]
        ).project_id
    )


@pytest.mark.parametrize("snake_case", [False, True], ids=["camelCase", "snake_case"])
async def test_an_otlp_json_export_with_hex_ids_and_string_integers_is_stored(
    api: httpx.AsyncClient, modelcycle_services: Services, snake_case: bool
) -> None:
    request = export(
        span("retrieve", attributes={"openinference.span.kind": "RETRIEVER"}),
        span(
            "tool", span_id=CHILD, parent=ROOT, attributes={"gen_ai.operation.name": "execute_tool"}
        ),
    )
    document = otlp_json(request, snake_case=snake_case)
    assert isinstance(
        document["resource_spans" if snake_case else "resourceSpans"][0][
            "scope_spans" if snake_case else "scopeSpans"
        ][0]["spans"][0]["start_time_unix_nano" if snake_case else "startTimeUnixNano"],
        str,
    ), "int64 travels as a string in OTLP/JSON"

    response = await api.post("/v1/traces", content=orjson.dumps(document), headers=JSON)

    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {}
    root, child = stored(modelcycle_services)
    assert (root.span_id, root.kind) == (ROOT.hex(), "retriever")
    assert (child.span_id, child.parent_span_id, child.kind) == (CHILD.hex(), ROOT.hex(), "tool")


async def test_a_gzipped_export_is_stored_and_a_resent_one_is_stored_once(
    api: httpx.AsyncClient, modelcycle_services: Services
) -> None:
    body = gzip.compress(export(span()).SerializeToString())
    headers = {**PROTOBUF, "Content-Encoding": "gzip"}

    first = await api.post("/v1/traces", content=body, headers=headers)
    again = await api.post("/v1/traces", content=body, headers=headers)  # an exporter's retry

    assert (first.status_code, again.status_code) == (200, 200)
    assert [row.span_id for row in stored(modelcycle_services)] == [ROOT.hex()]


async def test_an_export_larger_than_the_management_api_limit_is_accepted(
    api: httpx.AsyncClient, modelcycle_services: Services
) -> None:
    big = "x" * 3_000
    spans = [
        span(
            f"s{i}", span_id=(i + 1).to_bytes(8, "big"), attributes={f"k{j}": big for j in range(5)}
        )
        for i in range(100)
    ]
    body = export(*spans).SerializeToString()
    assert len(body) > modelcycle_services.settings.max_body_bytes

    response = await api.post("/v1/traces", content=body, headers=PROTOBUF)

    assert response.status_code == 200, response.text
    assert len(stored(modelcycle_services)) == 100


async def test_a_failed_span_keeps_its_error(
    api: httpx.AsyncClient, modelcycle_services: Services
) -> None:
    exception = Span.Event(
        name="exception",
        time_unix_nano=T0 + 1,
        attributes=key_values({"exception.type": "TimeoutError", "exception.message": "slow"}),
    )
    request = export(span("call", error="upstream timed out", events=[exception]))

    response = await api.post("/v1/traces", content=request.SerializeToString(), headers=PROTOBUF)

    assert response.status_code == 200
    (row,) = stored(modelcycle_services)
    assert (row.status, row.error_type, row.error_message) == (
        "error",
        "TimeoutError",
        "upstream timed out",
    )


async def test_values_a_database_would_refuse_are_cleaned_not_spilled(
    api: httpx.AsyncClient, modelcycle_services: Services
) -> None:
    """NUL characters, NaN, and counts past 32 bits: stored cleaned, never a failed batch."""
    odd = {
        "gen_ai.request.model": "m\x00odel",
        "gen_ai.usage.input_tokens": 2**40,
        "gen_ai.usage.output_tokens": -3,
        "note": "a\x00b",
        "ratio": float("nan"),
        "nested": {"deep": ["x\x00", 1.5]},
        "modelcycle.user": "u" * 500,
    }
    request = export(span("n\x00ame", attributes=odd))

    response = await api.post("/v1/traces", content=request.SerializeToString(), headers=PROTOBUF)

    assert response.status_code == 200
    (row,) = stored(modelcycle_services)
    assert modelcycle_services.recorder.spilled == 0
    assert (row.name, row.model, row.user_id) == ("name", "model", "u" * 128)
    assert (row.input_tokens, row.output_tokens) == (0, 0)
    assert row.attributes is not None
    assert row.attributes["note"] == "ab"
    assert row.attributes["ratio"] is None
    assert row.attributes["nested"] == {"deep": ["x", 1.5]}
    assert row.attributes["gen_ai.usage.input_tokens"] == 2**40, "kept, but not as a count"


# -- dialects -----------------------------------------------------------------------------


def test_old_genai_names_and_openllmetry_indexed_prompts_are_mapped() -> None:
    (record,) = decode(
        export(
            span(
                "openai.chat",
                attributes={
                    "gen_ai.system": "OpenAI",
                    "llm.request.type": "chat",
                    "gen_ai.request.model": "gpt-3.5-turbo",
                    "gen_ai.usage.prompt_tokens": 9,
                    "gen_ai.usage.completion_tokens": 3,
                    "gen_ai.usage.cache_read_input_tokens": 4,
                    "gen_ai.prompt.0.role": "system",
                    "gen_ai.prompt.0.content": "Be brief.",
                    "gen_ai.prompt.1.role": "user",
                    "gen_ai.prompt.1.content": "Hi",
                    "gen_ai.completion.0.role": "assistant",
                    "gen_ai.completion.0.content": "Hello!",
                    "gen_ai.completion.0.finish_reason": "stop",
                    "traceloop.association.properties.user_id": "alice",
                    "traceloop.association.properties.tenant": "acme",
                },
            )
        )
    )
    assert (record.kind, record.model, record.input_tokens, record.output_tokens) == (
        "llm",
        "gpt-3.5-turbo",
        9,
        3,
    )
    assert record.cached_tokens == 4
    assert orjson.loads(record.input or "") == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi"},
    ]
    assert (record.output, record.finish_reason) == ("Hello!", "stop")
    assert record.user_id == "alice"
    assert record.attributes == {
        "service.name": "shop",
        "otel.scope.name": "test.scope",
        "tenant": "acme",
        "gen_ai.provider.name": "OpenAI",
        "llm.request.type": "chat",
    }


def test_openinference_names_are_mapped() -> None:
    (record,) = decode(
        export(
            span(
                "ChatOpenAI",
                attributes={
                    "openinference.span.kind": "LLM",
                    "llm.model_name": "gpt-4o-mini",
                    "llm.provider": "openai",
                    "llm.token_count.prompt": 50,
                    "llm.token_count.completion": 8,
                    "llm.token_count.total": 58,
                    "llm.token_count.prompt_details.cache_read": 32,
                    "llm.token_count.completion_details.reasoning": 2,
                    "llm.input_messages.0.message.role": "user",
                    "llm.input_messages.0.message.content": "Name a colour",
                    "llm.output_messages.0.message.role": "assistant",
                    "llm.output_messages.0.message.content": "Teal",
                    "llm.invocation_parameters": '{"temperature": 0.7, "top_p": 0.9}',
                    "input.value": '{"messages": []}',
                    "input.mime_type": "application/json",
                    "output.value": "Teal",
                    "session.id": "conv-1",
                    "user.id": "bob",
                    "metadata": '{"feature": "palette"}',
                },
            )
        )
    )
    assert (record.kind, record.model) == ("llm", "gpt-4o-mini")
    assert (record.input_tokens, record.output_tokens) == (50, 8)
    assert (record.cached_tokens, record.reasoning_tokens) == (32, 2)
    assert orjson.loads(record.input or "") == [{"role": "user", "content": "Name a colour"}]
    assert record.output == "Teal"
    assert record.params == {"temperature": 0.7, "top_p": 0.9}
    assert (record.user_id, record.session_id) == ("bob", "conv-1")
    assert record.attributes == {
        "service.name": "shop",
        "otel.scope.name": "test.scope",
        "feature": "palette",
        "openinference.span.kind": "LLM",
        "gen_ai.provider.name": "openai",
    }


def test_traceloop_workflow_spans_keep_their_entity_input_and_output() -> None:
    (record,) = decode(
        export(
            span(
                "joke.workflow",
                attributes={
                    "traceloop.span.kind": "workflow",
                    "traceloop.workflow.name": "joke",
                    "traceloop.entity.input": '{"args": ["cats"], "kwargs": {}}',
                    "traceloop.entity.output": '"a joke about cats"',
                    "traceloop.association.properties.session_id": "chat-9",
                },
            )
        )
    )
    assert (record.kind, record.session_id) == ("chain", "chat-9")
    assert orjson.loads(record.input or "") == {"args": ["cats"], "kwargs": {}}
    assert record.output == '"a joke about cats"'
    assert record.input_tokens == 0
    assert record.attributes is not None
    assert record.attributes["traceloop.workflow.name"] == "joke"


def test_content_off_keeps_no_prompt_anywhere() -> None:
    (record,) = decode(export(span("chat", attributes=GENAI)), content=False)
    assert (record.input, record.output) == (None, None)
    assert "What is 2+2?" not in orjson.dumps(record.attributes).decode()
    assert record.input_tokens == 120, "counts are kept"


def test_attributes_are_bounded_and_what_is_left_out_is_counted() -> None:
    many = {f"custom.{i:03d}": "v" * 10 for i in range(100)}
    many["custom.long"] = "y" * 100_000
    (record,) = decode(export(span(attributes=many)))
    assert record.attributes is not None
    assert len(record.attributes) <= otlp.MAX_ATTRIBUTES + 1
    assert record.attributes[otlp.DROPPED_ATTRIBUTES] == 101 + 2 - otlp.MAX_ATTRIBUTES
    assert len(orjson.dumps(record.attributes)) < 2 * otlp.MAX_ATTRIBUTES_CHARS


def test_nul_characters_and_non_finite_numbers_never_reach_the_database() -> None:
    (record,) = decode(export(span("a\x00b", attributes={"note": "x\x00y", "score": float("nan")})))
    assert record.name == "ab"
    assert record.attributes is not None
    assert (record.attributes["note"], record.attributes["score"]) == ("xy", None)


# -- refused whole: 4xx, nothing stored ---------------------------------------------------

ZERO_TRACE = bytes(16)


def bad_json(**changes: Any) -> bytes:
    document = otlp_json(export(span(), span("b", span_id=CHILD, parent=ROOT)))
    document["resourceSpans"][0]["scopeSpans"][0]["spans"][1].update(changes)
    return orjson.dumps(document)


MALFORMED = [
    pytest.param(PROTOBUF, b"\xff\xff\xff\xff", 400, id="garbage protobuf"),
    pytest.param(JSON, b"{not json", 400, id="garbage json"),
    pytest.param(JSON, b"[1, 2]", 400, id="json array"),
    pytest.param(JSON, bad_json(traceId=12), 400, id="trace id of the wrong type"),
    pytest.param(JSON, bad_json(name={"a": 1}), 400, id="name of the wrong type"),
    pytest.param(JSON, bad_json(spanId="xyz"), 400, id="span id not hex"),
    pytest.param(JSON, bad_json(traceId="00" * 16), 400, id="all-zero trace id"),
    pytest.param(JSON, bad_json(spanId=""), 400, id="missing span id"),
    pytest.param(JSON, bad_json(endTimeUnixNano=str(T0 - 1)), 400, id="end before start"),
    pytest.param(JSON, bad_json(startTimeUnixNano="0"), 400, id="no start time"),
    pytest.param(JSON, bad_json(startTimeUnixNano="-5"), 400, id="negative time"),
    pytest.param(
        PROTOBUF,
        export(span(), span(trace_id=ZERO_TRACE, span_id=CHILD)).SerializeToString(),
        400,
        id="protobuf all-zero trace id",
    ),
    pytest.param(
        {**PROTOBUF, "Content-Encoding": "gzip"}, b"\x1f\x8b not gzip", 400, id="bad gzip"
    ),
    pytest.param(
        {**PROTOBUF, "Content-Encoding": "gzip"},
        gzip.compress(export(span()).SerializeToString())[:-12],
        400,
        id="truncated gzip",
    ),
    pytest.param({"Content-Type": "text/plain"}, b"hello", 415, id="wrong content type"),
    pytest.param(
        {**PROTOBUF, "Content-Encoding": "br"}, b"\x00", 415, id="unsupported content encoding"
    ),
]


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
)
def refusing(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Services, str]]:
    """Services shared by the refusal tests (they must store nothing), and an app key."""
    with database_url(request.param) as url:
        services = make_services(make_settings(tmp_path_factory.mktemp("otlp") / "home", url))
        yield services, make_key(services, Role.APP).key
        services.close()


async def post(
    refusing: tuple[Services, str], body: bytes, headers: dict[str, str]
) -> httpx.Response:
    services, key = refusing
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=create_app(services)),
        base_url="http://modelcycle.test",
        headers={"Authorization": f"Bearer {key}"},
    ) as client:
        return await client.post("/v1/traces", content=body, headers=headers)


@pytest.mark.parametrize(("headers", "body", "status"), MALFORMED)
async def test_a_malformed_export_is_refused_and_nothing_is_stored(
    refusing: tuple[Services, str], headers: dict[str, str], body: bytes, status: int
) -> None:
    response = await post(refusing, body, headers)

    assert response.status_code == status, response.text
    if headers["Content-Type"] == PROTOBUF["Content-Type"] and status == 400:
        assert response.headers["content-type"] == "application/x-protobuf"
        rpc = RpcStatus.FromString(response.content)
        assert rpc.code == 3, "INVALID_ARGUMENT"
        assert rpc.message
    else:
        error = response.json()["error"]
        assert error["type"] == "invalid_request_error"
        assert error["message"]
    assert stored(refusing[0]) == []


async def test_too_many_spans_are_refused(refusing: tuple[Services, str]) -> None:
    one = otlp_json(export(span()))
    template = one["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
    one["resourceSpans"][0]["scopeSpans"][0]["spans"] = [
        {**template, "spanId": f"{i + 1:016x}"} for i in range(otlp.MAX_SPANS + 1)
    ]

    response = await post(refusing, orjson.dumps(one), JSON)

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "too_many_spans"
    assert stored(refusing[0]) == []


async def test_without_a_key_the_export_is_refused(refusing: tuple[Services, str]) -> None:
    response = await post(
        refusing, export(span()).SerializeToString(), {**PROTOBUF, "Authorization": ""}
    )
    assert response.status_code == 401
    assert stored(refusing[0]) == []


async def test_spans_belong_to_the_project_of_the_key(
    modelcycle_services: Services, api: httpx.AsyncClient
) -> None:
    team = make_project(modelcycle_services)
    team_key = make_key(modelcycle_services, Role.APP, team)

    response = await api.post(
        "/v1/traces",
        content=export(span()).SerializeToString(),
        headers={**PROTOBUF, "Authorization": f"Bearer {team_key.key}"},
    )

    assert response.status_code == 200
    (row,) = stored(modelcycle_services)
    assert row.project_id == team_key.principal.project_id
    assert row.key_id == team_key.principal.key_id


# -- limits of the server ------------------------------------------------------------------


@pytest.fixture
def small_services(tmp_path: Path) -> Iterator[Services]:
    """A recorder that holds 3 spans and does not write on its own; a 64 KiB OTLP limit."""
    services = make_services(
        make_settings(
            tmp_path / "home",
            trace_queue_size=3,
            trace_flush_interval_s=60,
            otlp_max_body_bytes=65_536,
        )
    )
    yield services
    services.close()


async def small_api(services: Services) -> httpx.AsyncClient:
    key = make_key(services, Role.APP)
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=create_app(services)),
        base_url="http://modelcycle.test",
        headers={"Authorization": f"Bearer {key.key}"},
    )


@pytest.mark.parametrize("encoding", ["protobuf", "json"])
async def test_spans_a_full_queue_refuses_are_reported_as_a_partial_success(
    small_services: Services, encoding: str
) -> None:
    request = export(*(span(span_id=(i + 1).to_bytes(8, "big")) for i in range(5)))
    body, headers = (
        (request.SerializeToString(), PROTOBUF)
        if encoding == "protobuf"
        else (orjson.dumps(otlp_json(request)), JSON)
    )
    async with await small_api(small_services) as api:
        response = await api.post("/v1/traces", content=body, headers=headers)

    assert response.status_code == 200
    if encoding == "protobuf":
        partial = ExportTraceServiceResponse.FromString(response.content).partial_success
        assert partial.rejected_spans == 2
        assert partial.error_message
    else:
        assert response.json()["partialSuccess"]["rejectedSpans"] == 2
    assert small_services.recorder.dropped == 2
    assert len(stored(small_services)) == 3


async def test_bodies_over_the_otlp_limit_are_refused(small_services: Services) -> None:
    body = export(span(attributes={"big": "x" * 70_000})).SerializeToString()
    bomb = gzip.compress(export(span(attributes={"big": "x" * 300_000})).SerializeToString())
    assert len(bomb) < 65_536
    async with await small_api(small_services) as api:
        plain = await api.post("/v1/traces", content=body, headers=PROTOBUF)
        inflated = await api.post(
            "/v1/traces", content=bomb, headers={**JSON, "Content-Encoding": "gzip"}
        )

    assert plain.status_code == 413
    assert inflated.status_code == 413
    assert "inflates" in inflated.json()["error"]["message"]
    assert stored(small_services) == []


# -- the documented contract ------------------------------------------------------------


def test_the_openapi_document_describes_both_encodings(tmp_path: Path) -> None:
    services = make_services(make_settings(tmp_path / "home"))
    try:
        operation = create_app(services).openapi()["paths"]["/v1/traces"]["post"]
    finally:
        services.close()
    body = operation["requestBody"]["content"]
    assert set(body) == {"application/x-protobuf", "application/json"}
    assert "resourceSpans" in body["application/json"]["schema"]["properties"]
    assert {"200", "400", "401", "413", "415"} <= set(operation["responses"])


@pytest.mark.slow  # schemathesis: ~1 s per negative example
def test_the_endpoint_answers_fuzzed_requests_as_documented(tmp_path: Path) -> None:
    services = make_services(make_settings(tmp_path / "home"))
    key = make_key(services, Role.APP)
    try:
        schema = schemathesis.openapi.from_asgi("/openapi.json", create_app(services))
        (operation,) = [
            result.ok()
            for result in schema.get_all_operations()
            if result.ok().path == "/v1/traces"
        ]
        for mode, examples in ((GenerationMode.POSITIVE, 15), (GenerationMode.NEGATIVE, 10)):

            @given(case=operation.as_strategy(generation_mode=mode))
            @settings(
                max_examples=examples,
                deadline=None,
                derandomize=True,
                database=None,
                suppress_health_check=list(HealthCheck),
            )
            def check(case: Any) -> None:
                case.call_and_validate(
                    headers={"Authorization": f"Bearer {key.key}"}, checks=FUZZ_CHECKS
                )

            check()
    finally:
        services.close()


VALID = export(span(attributes=GENAI), span(span_id=CHILD, parent=ROOT)).SerializeToString()


@given(
    body=st.one_of(
        st.binary(max_size=512),
        st.lists(st.tuples(st.integers(0, len(VALID) - 1), st.integers(0, 255)), max_size=8).map(
            lambda edits: _edited(VALID, edits)
        ),
    ),
    gzipped=st.booleans(),
)
@settings(max_examples=400, deadline=None, derandomize=True, database=None)
def test_any_protobuf_body_is_decoded_or_refused_cleanly(body: bytes, gzipped: bool) -> None:
    """Random and corrupted bodies never escape as anything but a 4xx error."""
    try:
        records = otlp.decode(body, "protobuf", project_id=1, max_bytes=65_536, gzipped=gzipped)
    except (InvalidInput, PayloadTooLarge):
        return
    for record in records:
        assert len(record.trace_id) == 32
        assert len(record.span_id) == 16
        assert record.end_time >= record.start_time


def _edited(body: bytes, edits: list[tuple[int, int]]) -> bytes:
    edited = bytearray(body)
    for index, value in edits:
        edited[index] = value
    return bytes(edited)


# -- a real OpenTelemetry SDK --------------------------------------------------------------


@pytest.mark.e2e
@pytest.mark.parametrize("compression", ["none", "gzip"])
def test_the_opentelemetry_sdk_exporter_delivers_genai_spans(
    live_server: LiveServer, compression: str
) -> None:
    from opentelemetry.exporter.otlp.proto.http import Compression
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource as SdkResource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    key = make_key(live_server.services, Role.APP)
    exporter = OTLPSpanExporter(
        endpoint=f"{live_server.url}/v1/traces",
        headers={"Authorization": f"Bearer {key.key}"},
        compression=Compression.Gzip if compression == "gzip" else Compression.NoCompression,
    )
    provider = TracerProvider(resource=SdkResource.create({"service.name": "otel-app"}))
    provider.add_span_processor(BatchSpanProcessor(exporter))
    tracer = provider.get_tracer("test.otel")
    with tracer.start_as_current_span("invoke_agent helper") as agent:
        agent.set_attribute("gen_ai.operation.name", "invoke_agent")
        with tracer.start_as_current_span("chat gpt-4o") as llm:
            llm.set_attributes({k: v for k, v in GENAI.items() if k != "gen_ai.response.model"})
    assert provider.force_flush(10_000)
    provider.shutdown()

    agent_row, llm_row = sorted(stored(live_server.services), key=lambda row: row.start_time)
    context = agent.get_span_context()
    assert agent_row.trace_id == f"{context.trace_id:032x}"
    assert agent_row.span_id == f"{context.span_id:016x}"
    assert (agent_row.kind, llm_row.kind) == ("agent", "llm")
    assert llm_row.parent_span_id == agent_row.span_id
    assert (llm_row.model, llm_row.input_tokens, llm_row.output_tokens) == ("gpt-4o", 120, 30)
    assert llm_row.output == "4"
    assert llm_row.attributes is not None
    assert llm_row.attributes["service.name"] == "otel-app"
    assert llm_row.project_id == key.principal.project_id


# -- docs/tracing.md cannot drift ---------------------------------------------------------

DOC = Path(__file__).resolve().parents[2] / "docs" / "tracing.md"
SAMPLES: dict[str, tuple[Any, Any]] = {
    # column: (attribute value sent, column value expected)
    "model": ("m-1", "m-1"),
    "input_tokens": (7, 7),
    "output_tokens": (7, 7),
    "cached_tokens": (7, 7),
    "reasoning_tokens": (7, 7),
    "user_id": ("u-1", "u-1"),
    "session_id": ("s-1", "s-1"),
    "deployment": ("d-1", "d-1"),
    "request_id": ("r-1", "r-1"),
    "cost": (0.5, 0.5),
    "stream": (True, True),
    "status_code": (429, 429),
    "ttft_ms": (0.25, 250.0),
}


def documented_attributes() -> list[tuple[str, str]]:
    """(column, attribute) for each attribute the page's mapping table lists for a column."""
    found = []
    for line in DOC.read_text(encoding="utf-8").splitlines():
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        if len(cells) == 2 and cells[0] in SAMPLES:
            found += [(cells[0], name) for name in re.findall(r"`([a-z_.]+)`", cells[1])]
    return found


def test_every_attribute_the_mapping_table_lists_fills_its_column() -> None:
    pairs = documented_attributes()
    assert {column for column, _ in pairs} == set(SAMPLES), "a documented column is missing"
    wrong = []
    for column, attribute in pairs:
        sent, expected = SAMPLES[column]
        (record,) = decode(export(span(attributes={attribute: sent})))
        if getattr(record, column) != expected:
            wrong.append(f"{attribute} -> {column}: {getattr(record, column)!r}")
    assert not wrong, wrong
