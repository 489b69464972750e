"""With ``otlp_endpoint`` set, traces and request metrics reach an OpenTelemetry collector.

The collector here is a small HTTP server that keeps every OTLP/HTTP POST; the bodies are
decoded with the OTLP protobuf definitions, as a real collector would.
"""

from __future__ import annotations

import gzip
import sys
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from modelcycle.errors import MissingExtra
from modelcycle.testing import make_services
from monitor.recording import gateway, settings_for


class Collector(ThreadingHTTPServer):
    """Keeps (path, body) of every POST and answers 200, as an OTLP/HTTP receiver does."""

    def __init__(self) -> None:
        self.posts: list[tuple[str, bytes]] = []
        super().__init__(("127.0.0.1", 0), _Receiver)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def spans(self) -> list[Span]:
        found = []
        for path, body in self.posts:
            if path == "/v1/traces":
                request = trace_service_pb2.ExportTraceServiceRequest.FromString(body)
                for resource in request.resource_spans:
                    assert attrs(resource.resource.attributes)["service.name"] == "modelcycle"
                    for scope in resource.scope_spans:
                        found.extend(scope.spans)
        return found

    def metrics(self) -> dict[str, Any]:
        """The last exported value of each metric (cumulative), by name."""
        found = {}
        for path, body in self.posts:
            if path == "/v1/metrics":
                request = metrics_service_pb2.ExportMetricsServiceRequest.FromString(body)
                for resource in request.resource_metrics:
                    for scope in resource.scope_metrics:
                        found.update({metric.name: metric for metric in scope.metrics})
        return found


class _Receiver(BaseHTTPRequestHandler):
    server: Collector

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if self.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        self.server.posts.append((self.path, body))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def collector() -> Iterator[Collector]:
    server = Collector()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def attrs(values: Any) -> dict[str, Any]:
    return {kv.key: plain(kv.value) for kv in values}


def plain(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return [plain(v) for v in value.array_value.values]
    return getattr(value, kind) if kind else None


async def test_spans_and_metrics_reach_the_collector_by_shutdown(
    tmp_path: Path, collector: Collector
) -> None:
    trace, parent = uuid.uuid4().hex, "00f067aa0ba902b7"
    async with gateway(settings_for(tmp_path, otlp_endpoint=collector.url)) as env:
        env.deploy("chat", (env.version("bot", "mock://script?reply=a+b+c"), 100))
        env.deploy("broken", (env.version("bad", "mock://fail"), 100))
        http = env.http()
        ok = await http.post(
            "/v1/chat/completions",
            json={"model": "chat", "messages": [{"role": "user", "content": "one two"}]},
            headers={"X-Modelcycle-User": "alice", "traceparent": f"00-{trace}-{parent}-01"},
        )
        stream = await env.openai().completions.create(model="chat", prompt="x y", stream=True)
        async for _ in stream:
            pass
        failed = await http.post(
            "/v1/chat/completions",
            json={"model": "broken", "messages": [{"role": "user", "content": "x"}]},
        )
        assert (ok.status_code, failed.status_code >= 500) == (200, True)
    # Leaving the block closed the services: the last batches must have been sent.

    spans = {attrs(s.attributes)["gen_ai.response.id"]: s for s in collector.spans()}
    assert len(spans) == 3
    served = spans[ok.json()["id"].split("-", 1)[1]]
    attributes = attrs(served.attributes)
    assert served.name == "chat chat"
    assert served.kind == Span.SpanKind.SPAN_KIND_SERVER
    assert served.trace_id.hex() == trace
    assert served.parent_span_id.hex() == parent
    assert served.end_time_unix_nano > served.start_time_unix_nano > 0
    assert attributes["gen_ai.operation.name"] == "chat"
    assert attributes["gen_ai.provider.name"] == "modelcycle"
    assert attributes["gen_ai.request.model"] == "chat"
    assert attributes["gen_ai.response.model"] == "bot@1"
    assert attributes["gen_ai.usage.input_tokens"] == 2
    assert attributes["gen_ai.usage.output_tokens"] == 3
    assert attributes["gen_ai.response.finish_reasons"] == ["stop"]
    assert attributes["user.id"] == "alice"
    assert attributes["modelcycle.route"] == "primary"
    assert '"content":"one two"' in attributes["gen_ai.input.messages"]
    assert '"content":"a b c"' in attributes["gen_ai.output.messages"]
    streamed = next(s for s in spans.values() if attrs(s.attributes)["gen_ai.request.stream"])
    assert attrs(streamed.attributes)["gen_ai.operation.name"] == "text_completion"
    assert attrs(streamed.attributes)["gen_ai.response.time_to_first_chunk"] > 0
    error = next(s for s in spans.values() if s.status.code == Status.STATUS_CODE_ERROR)
    assert attrs(error.attributes)["error.type"]
    assert "gen_ai.usage.input_tokens" not in attrs(error.attributes)

    metrics = collector.metrics()
    requests = metrics["modelcycle.requests"].sum.data_points
    assert sum(point.as_int for point in requests) == 3
    duration = metrics["gen_ai.client.operation.duration"]
    assert duration.unit == "s"
    assert sum(point.count for point in duration.histogram.data_points) == 3
    tokens = metrics["gen_ai.client.token.usage"].histogram.data_points
    by_type = {
        attrs(p.attributes)["gen_ai.token.type"]: p.sum
        for p in tokens
        if attrs(p.attributes)["gen_ai.operation.name"] == "chat"
    }
    assert by_type == {"input": 2, "output": 3}
    first_token = metrics["gen_ai.server.time_to_first_token"].histogram.data_points
    assert sum(point.count for point in first_token) == 1


def test_without_the_otel_extra_start_up_names_the_install_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in [*sys.modules, "opentelemetry.sdk", "opentelemetry.exporter"]:
        if name.startswith(("opentelemetry.sdk", "opentelemetry.exporter")):
            monkeypatch.setitem(sys.modules, name, None)  # as if the extra were not installed
    monkeypatch.delitem(sys.modules, "modelcycle.monitor.otel_export", raising=False)
    monkeypatch.delitem(sys.modules, "modelcycle.monitor.otel_metrics", raising=False)

    with pytest.raises(MissingExtra) as raised:
        make_services(settings_for(tmp_path, otlp_endpoint="http://127.0.0.1:4318"))

    assert "pip install 'modelcycle[otel]'" in raised.value.message


def test_an_endpoint_must_be_an_http_url(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="otlp_endpoint"):
        settings_for(tmp_path, otlp_endpoint="collector:4318")
