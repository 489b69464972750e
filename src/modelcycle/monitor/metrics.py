"""Prometheus metrics of one server process, served at ``GET /metrics``.

Gateway traffic is measured with the OpenTelemetry GenAI metric names
translated the Prometheus way (dots to underscores, the unit as a suffix):
``gen_ai_client_operation_duration_seconds``, ``gen_ai_client_token_usage``
and ``gen_ai_server_time_to_first_token_seconds``, plus
``modelcycle_requests_total`` and ``modelcycle_guard_findings_total``.
``Metrics.observe`` is a ``Recorder`` observer: it counts gateway requests a few at
a time as they finish, on the request path (under a µs each:
``modelcycle.monitor.request_series``), and before each scrape, so that requests
dropped by a full trace queue are counted too.
Labels are bounded on purpose (operation, deployment, version, route, status;
the guard's detectors and finding types): user, session and trace ids never
become labels, because each new value is a new time series held forever.

The rest is read at scrape time: the recorder's counters, the process's CPU
and memory, the models the backends hold, and each GPU's memory and
utilisation through NVML (``nvidia-ml-py``, the ``[gpu]`` extra; without it,
or without a GPU, there are simply no GPU series).
"""

from __future__ import annotations

import importlib
import logging
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from operator import attrgetter
from typing import Any, Protocol

from prometheus_client import (
    CollectorRegistry,
    Counter,
    GCCollector,
    PlatformCollector,
    ProcessCollector,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector

from modelcycle.events import RequestFinished
from modelcycle.monitor.recorder import Recorder
from modelcycle.monitor.request_series import HistogramChild, LabelledCounter, LabelledHistogram

log = logging.getLogger(__name__)

# OTel GenAI advisory buckets; two finer ones first for cache hits and local models
# answering in milliseconds, which would otherwise all land in the first bucket.
DURATION_BUCKETS = (
    0.001,
    0.005,
    0.01,
    0.02,
    0.04,
    0.08,
    0.16,
    0.32,
    0.64,
    1.28,
    2.56,
    5.12,
    10.24,
    20.48,
    40.96,
    81.92,
)
TTFT_BUCKETS = (
    0.001,
    0.005,
    0.01,
    0.02,
    0.04,
    0.06,
    0.08,
    0.1,
    0.25,
    0.5,
    0.75,
    1,
    2.5,
    5,
    7.5,
    10,
)
TOKEN_BUCKETS = tuple(float(4**i) for i in range(14))
"""1, 4, 16 ... 67,108,864 tokens, as the GenAI conventions advise."""

OPERATIONS = {
    "chat.completions": "chat",
    "completions": "text_completion",
    "embeddings": "embeddings",
}
"""Gateway endpoint -> ``gen_ai.operation.name``."""

LABELS = ("gen_ai_operation_name", "deployment", "version", "route", "status")
GUARD_LABELS = ("deployment", "stage", "detector", "type", "action")


class Served(Protocol):
    """What labels a gateway request: a ``RequestFinished`` or its ``SpanRecord``."""

    @property
    def endpoint(self) -> str | None:
        """``chat.completions``, ``completions`` or ``embeddings``."""

    @property
    def deployment(self) -> str | None:
        """The deployment called."""

    @property
    def model(self) -> str | None:
        """The registry model that served it."""

    @property
    def version(self) -> int | None:
        """Its version."""

    @property
    def route(self) -> str | None:
        """``primary``, ``canary``, ``fallback``..."""

    @property
    def status(self) -> str:
        """``ok`` or ``error``."""


def operation_name(served: Served) -> str:
    """The request's ``gen_ai.operation.name`` (``_OTHER`` for an endpoint it has none for)."""
    return OPERATIONS.get(served.endpoint or "", "_OTHER")


def version_label(served: Served) -> str:
    """``model@N`` of the version that served the request, ``""`` when none did."""
    if served.model is None or served.version is None:
        return ""
    return f"{served.model}@{served.version}"


_SERVED = attrgetter("endpoint", "deployment", "model", "version", "route", "status")
"""What ``label_values`` reads."""


def label_values(served: Served) -> tuple[str, str, str, str, str]:
    """The values of ``LABELS`` for a gateway request."""
    return (
        operation_name(served),
        served.deployment or "",
        version_label(served),
        served.route or "",
        served.status,
    )


class ResidentModelInfo(Protocol):
    """A model a backend holds in this process (what ``ModelInventory`` reports)."""

    @property
    def kind(self) -> str:
        """The backend kind: ``llamacpp``, ``transformers``..."""

    @property
    def size_bytes(self) -> int | None:
        """Bytes of weights held, where the backend knows them; ``None`` otherwise."""


ModelInventory = Callable[[], Iterable[ResidentModelInfo]]
"""Lists the models the backends of this process have loaded, at scrape time."""


class Metrics:
    """The process's Prometheus registry (its own, never the global one)."""

    def __init__(
        self,
        recorder: Recorder | None = None,
        *,
        inventory: ModelInventory | None = None,
        gpus: bool = True,
    ):
        self.registry = CollectorRegistry()
        # The request path's series: plain lists, built into families when scraped.
        self.requests = LabelledCounter(
            "modelcycle_requests",
            "Gateway requests, by operation, deployment, version served, route and status.",
            LABELS,
        )
        self.duration = LabelledHistogram(
            "gen_ai_client_operation_duration_seconds",
            "Duration of gateway requests (OTel gen_ai.client.operation.duration).",
            LABELS,
            DURATION_BUCKETS,
        )
        self.tokens = LabelledHistogram(
            "gen_ai_client_token_usage",
            "Tokens per gateway request (OTel gen_ai.client.token.usage).",
            (*LABELS, "gen_ai_token_type"),
            TOKEN_BUCKETS,
        )
        self.ttft = LabelledHistogram(
            "gen_ai_server_time_to_first_token_seconds",
            "Time to the first token of streamed answers (OTel gen_ai.server.time_to_first_token).",
            LABELS,
            TTFT_BUCKETS,
        )
        for family in (self.requests, self.duration, self.tokens, self.ttft):
            self.registry.register(family)
        self.guard_findings = Counter(
            "modelcycle_guard_findings",
            "Guard findings on gateway requests, by deployment, stage (input or output), "
            "detector, finding type and the action taken (refused requests also show in "
            "modelcycle_requests_total with status error).",
            GUARD_LABELS,
            registry=self.registry,
        )
        self._children: dict[tuple[Counter, tuple[str, ...]], Any] = {}
        self._series: dict[tuple[str, ...], _Series] = {}
        self._served: dict[tuple[Any, ...], _Series] = {}
        """The series by the ``RequestFinished`` fields their labels are made of
        (``_SERVED``): reading them costs less than making the labels."""
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        GCCollector(registry=self.registry)
        self.recorder = recorder
        if recorder is not None:
            self.registry.register(RecorderCollector(recorder))
        if inventory is not None:
            self.registry.register(BackendCollector(inventory))
        if gpus:
            self.registry.register(GpuCollector())

    def observe(self, requests: Sequence[RequestFinished]) -> None:
        """Count a batch of gateway requests (a ``Recorder`` observer)."""
        known = self._served
        for request in requests:
            served = _SERVED(request)
            series = known.get(served)
            if series is None:
                series = known[served] = self._series_of(label_values(request))
            series.requests.value += 1
            series.duration.observe(request.latency_ms / 1000)
            if request.guard is not None:
                self._count_findings(request.deployment, request.guard_findings)
            if series.input_tokens is None:
                continue  # the conventions: no usage or first-token time for failed requests
            if request.ttft_ms is not None:
                series.first_token().observe(request.ttft_ms / 1000)
            series.input_tokens.observe(request.prompt_tokens)
            if series.output_tokens is not None:
                series.output_tokens.observe(request.completion_tokens)

    def _series_of(self, labels: tuple[str, ...]) -> _Series:
        series = self._series.get(labels)
        if series is None:
            series = self._series[labels] = _Series(self, labels)
        return series

    def _count_findings(self, deployment: str, findings: Iterable[Any]) -> None:
        """Count a request's guard findings (detector and type names are bounded: registered)."""
        for finding in findings:
            if isinstance(finding, Mapping):
                labels = (
                    deployment,
                    str(finding.get("stage", "")),
                    str(finding.get("detector", "")),
                    str(finding.get("type", "")),
                    str(finding.get("action", "")),
                )
                self._child(self.guard_findings, labels).inc()

    def _child(self, metric: Counter, labels: tuple[str, ...]) -> Any:
        """``metric.labels(*labels)``, kept: the lookup costs more than the observation."""
        child = self._children.get((metric, labels))
        if child is None:
            child = self._children[(metric, labels)] = metric.labels(*labels)
        return child

    def exposition(self, accept: str | None) -> tuple[bytes, str]:
        """The registry in the format ``accept`` asks for (OpenMetrics or Prometheus text).

        The recorder settles the requests it has taken first, so that every request
        answered so far is counted.
        """
        if self.recorder is not None:
            self.recorder.settle()
        encoder, content_type = choose_encoder(accept or "")
        return encoder(self.registry), content_type


class _Series:
    """The children of one label set in each request family (first-token time once used)."""

    __slots__ = (
        "duration",
        "input_tokens",
        "labels",
        "metrics",
        "output_tokens",
        "requests",
        "ttft",
    )

    def __init__(self, metrics: Metrics, labels: tuple[str, ...]):
        self.metrics, self.labels = metrics, labels
        self.requests = metrics.requests.child(labels)
        self.duration = metrics.duration.child(labels)
        # Failed requests have no usage; embeddings produce no tokens (the conventions).
        ok = labels[-1] == "ok"
        tokens = metrics.tokens
        self.input_tokens = tokens.child((*labels, "input")) if ok else None
        outputs = ok and labels[0] != OPERATIONS["embeddings"]
        self.output_tokens = tokens.child((*labels, "output")) if outputs else None
        self.ttft: HistogramChild | None = None

    def first_token(self) -> HistogramChild:
        """The time-to-first-token histogram, created when a request first has one."""
        if self.ttft is None:
            self.ttft = self.metrics.ttft.child(self.labels)
        return self.ttft


class RecorderCollector(Collector):
    """The trace recorder's counters, read at scrape time."""

    def __init__(self, recorder: Recorder):
        self._recorder = recorder

    def collect(self) -> Iterator[Metric]:
        """Yield the recorder's counters and queue depth."""
        recorder = self._recorder
        counters = (
            ("dropped", recorder.dropped, "Traces dropped because the queue was full."),
            ("written", recorder.written, "Spans stored in the database."),
            ("spilled", recorder.spilled, "Spans spilled to disk while the database failed."),
        )
        for name, value, text in counters:
            yield CounterMetricFamily(f"modelcycle_traces_{name}", text, value=value)
        yield CounterMetricFamily(
            "modelcycle_trace_write_failures",
            "Batches the database refused (each was spilled to disk).",
            value=recorder.failed_writes,
        )
        yield GaugeMetricFamily(
            "modelcycle_trace_queue_depth",
            "Traces queued, not yet written.",
            value=recorder.pending,
        )
        yield GaugeMetricFamily(
            "modelcycle_trace_queue_capacity",
            "Traces the queue holds at most (trace_queue_size).",
            value=recorder.queue_size,
        )
        yield GaugeMetricFamily(
            "modelcycle_trace_spill_files",
            "Spill files waiting to be replayed into the database.",
            value=len(recorder.spill_files()),
        )


class BackendCollector(Collector):
    """Models loaded by this process's backends, and their weights' size where known."""

    def __init__(self, inventory: ModelInventory):
        self._inventory = inventory

    def collect(self) -> Iterator[Metric]:
        """Yield a count per backend kind and the known sizes."""
        loaded = GaugeMetricFamily(
            "modelcycle_backend_loaded",
            "Models loaded in this process, by backend kind.",
            labels=["kind"],
        )
        size = GaugeMetricFamily(
            "modelcycle_backend_model_bytes",
            "Bytes of model weights held in this process, by backend kind "
            "(only models whose backend reports a size).",
            labels=["kind"],
        )
        counts: dict[str, int] = {}
        sizes: dict[str, int] = {}
        for model in self._inventory():
            counts[model.kind] = counts.get(model.kind, 0) + 1
            if model.size_bytes is not None:
                sizes[model.kind] = sizes.get(model.kind, 0) + model.size_bytes
        for kind, count in sorted(counts.items()):
            loaded.add_metric([kind], count)
        for kind, total in sorted(sizes.items()):
            size.add_metric([kind], total)
        yield loaded
        if sizes:
            yield size


@dataclass(frozen=True, slots=True)
class GpuReading:
    """One GPU at one scrape."""

    index: int
    name: str
    memory_used: int
    memory_total: int
    utilization: float
    """Fraction of the last sample period a kernel ran (0..1)."""


class GpuCollector(Collector):
    """Memory and utilisation per GPU through NVML; nothing at all where NVML is not there."""

    def __init__(self) -> None:
        self._nvml: Any = None
        self._tried = False
        self._lock = threading.Lock()

    def _library(self) -> Any:
        """``pynvml`` initialised once, or ``None`` (not installed, no driver, no GPU)."""
        with self._lock:
            if not self._tried:
                self._tried = True
                try:
                    nvml = importlib.import_module("pynvml")
                    nvml.nvmlInit()
                    self._nvml = nvml
                except Exception as exc:  # ImportError, NVMLError: both mean "no GPU series"
                    log.debug("no GPU metrics: %s", exc)
            return self._nvml

    def readings(self) -> list[GpuReading]:
        """Every GPU NVML sees now (empty without NVML; a failing GPU is skipped)."""
        nvml = self._library()
        if nvml is None:
            return []
        found = []
        try:
            count = int(nvml.nvmlDeviceGetCount())
        except Exception as exc:  # the driver went away
            log.debug("NVML device count failed: %s", exc)
            return []
        for index in range(count):
            try:
                handle = nvml.nvmlDeviceGetHandleByIndex(index)
                memory = nvml.nvmlDeviceGetMemoryInfo(handle)
                rates = nvml.nvmlDeviceGetUtilizationRates(handle)
                name = nvml.nvmlDeviceGetName(handle)
            except Exception as exc:  # e.g. a MIG or lost device: skip it, keep the rest
                log.debug("NVML reading of GPU %d failed: %s", index, exc)
                continue
            found.append(
                GpuReading(
                    index=index,
                    name=name.decode() if isinstance(name, bytes) else str(name),
                    memory_used=int(memory.used),
                    memory_total=int(memory.total),
                    utilization=float(rates.gpu) / 100,
                )
            )
        return found

    def collect(self) -> Iterator[Metric]:
        """Yield the GPU gauges (none without GPUs)."""
        readings = self.readings()
        if not readings:
            return
        labels = ["gpu", "name"]
        used = GaugeMetricFamily(
            "modelcycle_gpu_memory_used_bytes", "GPU memory in use (all processes).", labels=labels
        )
        total = GaugeMetricFamily(
            "modelcycle_gpu_memory_total_bytes", "GPU memory installed.", labels=labels
        )
        busy = GaugeMetricFamily(
            "modelcycle_gpu_utilization_ratio",
            "Fraction of the last sample period in which a GPU kernel ran.",
            labels=labels,
        )
        for gpu in readings:
            values = [str(gpu.index), gpu.name]
            used.add_metric(values, gpu.memory_used)
            total.add_metric(values, gpu.memory_total)
            busy.add_metric(values, gpu.utilization)
        yield used
        yield total
        yield busy
