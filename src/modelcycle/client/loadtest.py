"""A closed-loop load generator for a deployment, through the gateway's OpenAI API.

``concurrency`` workers each send one chat completion at a time, back to back,
for ``duration_s`` seconds; a request in flight when the time is up is waited
for and counted. Every request ends as a success or an error, so
``requests == successes + errors``. Streamed requests are timed to their first
token (the first chunk carrying content) and a stream that ends with an error
event or without ``[DONE]`` is an error, never a success.

The generator itself costs CPU (httpx, JSON): run it from another machine when
measuring a server that answers thousands of requests per second.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from modelcycle.client.transport import connection_error, headers, raise_for_error, resolve_server
from modelcycle.errors import NotFound

DEFAULT_PROMPT = "Say hello in one short sentence."
Messages = list[dict[str, Any]]


@dataclass(frozen=True, slots=True)
class LoadTestConfig:
    """What to send, how hard and for how long."""

    deployment: str
    concurrency: int
    duration_s: float
    prompts: Sequence[Messages] = ()
    """Conversations sent in turn (a default one-line question when empty)."""
    max_tokens: int | None = None
    stream: bool = False
    timeout_s: float = 60.0
    """Longest wait for one answer; a slower one counts as a ``timeout`` error."""


@dataclass(frozen=True, slots=True)
class Percentiles:
    """Nearest-rank percentiles, in milliseconds."""

    p50: float
    p95: float
    p99: float
    max: float


@dataclass(frozen=True, slots=True)
class LoadTestReport:
    """What a load test measured; ``requests == successes + errors``."""

    deployment: str
    concurrency: int
    stream: bool
    duration_s: float
    """Wall time from the first request to the last answer."""
    requests: int
    successes: int
    errors: int
    errors_by_kind: dict[str, int]
    """HTTP status (``"429"``, ``"502"``), ``timeout``, ``connection``, ``stream`` (an
    error event or no ``[DONE]``) or ``invalid_response``."""
    throughput_rps: float
    latency_ms: Percentiles | None
    """Of successful requests, to the last byte."""
    ttft_ms: Percentiles | None
    """Time to first token of successful streams (``None`` without ``stream``)."""
    prompt_tokens: int
    completion_tokens: int
    tokens_per_s: float
    """Completion tokens of successful requests per second of the run."""


@dataclass(frozen=True, slots=True)
class _Sample:
    ok: bool
    latency_s: float
    ttft_s: float | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    error: str | None = None


@dataclass
class _Run:
    config: LoadTestConfig
    prompts: Iterator[Messages]
    deadline: float
    samples: list[_Sample] = field(default_factory=list)


def percentiles(values_ms: Sequence[float]) -> Percentiles | None:
    """p50, p95, p99 and max by the nearest-rank method (so p50 <= p95 <= p99 <= max)."""
    if not values_ms:
        return None
    ordered = sorted(values_ms)

    def rank(q: float) -> float:
        index = max(0, min(len(ordered) - 1, int(-(-q * len(ordered) // 100)) - 1))
        return ordered[index]

    return Percentiles(rank(50), rank(95), rank(99), ordered[-1])


def read_prompts(text: str) -> list[Messages]:
    """Prompts from a file's text: one per line, blank lines skipped.

    A line holding a JSON object with ``messages`` (OpenAI chat messages) is sent
    as that conversation; any other line is one user message.
    """
    prompts: list[Messages] = []
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped:
            continue
        if stripped.startswith("{"):
            try:
                parsed = json.loads(stripped)
            except ValueError:
                parsed = None
            if isinstance(parsed, dict) and isinstance(parsed.get("messages"), list):
                prompts.append(parsed["messages"])
                continue
        prompts.append([{"role": "user", "content": stripped}])
    return prompts


async def run_loadtest(
    config: LoadTestConfig,
    *,
    server: str | None = None,
    api_key: str | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
) -> LoadTestReport:
    """Drive ``config.deployment`` and measure it; see the module docstring.

    Raises ``NotFound`` before sending load when the key cannot call the
    deployment, and ``ServerError`` when the server cannot be reached.
    """
    base = resolve_server(server)
    limits = httpx.Limits(
        max_connections=config.concurrency, max_keepalive_connections=config.concurrency
    )
    async with httpx.AsyncClient(
        base_url=base,
        headers=headers(api_key),
        timeout=config.timeout_s,
        limits=limits,
        transport=transport,
    ) as http:
        await _check_deployment(http, base, config.deployment)
        prompts = list(config.prompts) or [[{"role": "user", "content": DEFAULT_PROMPT}]]
        started = time.perf_counter()
        run = _Run(config, itertools.cycle(prompts), started + config.duration_s)
        await asyncio.gather(*(_worker(http, run) for _ in range(config.concurrency)))
        elapsed = time.perf_counter() - started
    return _report(config, run.samples, elapsed)


async def _check_deployment(http: httpx.AsyncClient, base: str, deployment: str) -> None:
    try:
        response = await http.get("/v1/models")
    except httpx.HTTPError as exc:
        raise connection_error(base, exc) from exc
    raise_for_error(response)
    names = {item.get("id") for item in response.json().get("data", [])}
    if deployment not in names:
        raise NotFound(
            f"deployment '{deployment}' not found for this key; "
            "list them with: modelcycle deploy list"
        )


async def _worker(http: httpx.AsyncClient, run: _Run) -> None:
    while time.perf_counter() < run.deadline:
        body: dict[str, Any] = {"model": run.config.deployment, "messages": next(run.prompts)}
        if run.config.max_tokens is not None:
            body["max_tokens"] = run.config.max_tokens
        started = time.perf_counter()
        try:
            if run.config.stream:
                sample = await _streamed(http, body, started)
            else:
                sample = await _whole(http, body, started)
        except httpx.TimeoutException:
            sample = _Sample(False, time.perf_counter() - started, error="timeout")
        except httpx.HTTPError:
            sample = _Sample(False, time.perf_counter() - started, error="connection")
        except ValueError:  # an answer that is not the JSON it should be
            sample = _Sample(False, time.perf_counter() - started, error="invalid_response")
        run.samples.append(sample)


async def _whole(http: httpx.AsyncClient, body: dict[str, Any], started: float) -> _Sample:
    response = await http.post("/v1/chat/completions", json=body)
    elapsed = time.perf_counter() - started
    if response.status_code != 200:
        return _Sample(False, elapsed, error=str(response.status_code))
    usage = response.json().get("usage") or {}
    return _Sample(
        True,
        elapsed,
        prompt_tokens=int(usage.get("prompt_tokens", 0)),
        completion_tokens=int(usage.get("completion_tokens", 0)),
    )


async def _streamed(http: httpx.AsyncClient, body: dict[str, Any], started: float) -> _Sample:
    body = {**body, "stream": True, "stream_options": {"include_usage": True}}
    first: float | None = None
    pieces = 0
    usage: dict[str, Any] = {}
    done = False
    async with http.stream("POST", "/v1/chat/completions", json=body) as response:
        if response.status_code != 200:
            await response.aread()
            return _Sample(False, time.perf_counter() - started, error=str(response.status_code))
        async for line in response.aiter_lines():
            if not line.startswith("data: "):
                continue
            data = line[6:]
            if data == "[DONE]":
                done = True
                break
            event = json.loads(data)
            if "error" in event:
                return _Sample(False, time.perf_counter() - started, error="stream")
            usage = event.get("usage") or usage
            if any(_has_content(choice) for choice in event.get("choices") or ()):
                pieces += 1
                first = first if first is not None else time.perf_counter()
    elapsed = time.perf_counter() - started
    if not done:
        return _Sample(False, elapsed, error="stream")
    return _Sample(
        True,
        elapsed,
        ttft_s=(first - started) if first is not None else None,
        prompt_tokens=int(usage.get("prompt_tokens", 0)),
        completion_tokens=int(usage.get("completion_tokens", pieces)),
    )


def _has_content(choice: dict[str, Any]) -> bool:
    delta = choice.get("delta") or {}
    return bool(delta.get("content") or delta.get("tool_calls"))


def _report(config: LoadTestConfig, samples: list[_Sample], elapsed: float) -> LoadTestReport:
    good = [s for s in samples if s.ok]
    kinds = Counter(s.error for s in samples if not s.ok and s.error is not None)
    completion = sum(s.completion_tokens for s in good)
    elapsed = max(elapsed, 1e-9)
    return LoadTestReport(
        deployment=config.deployment,
        concurrency=config.concurrency,
        stream=config.stream,
        duration_s=elapsed,
        requests=len(samples),
        successes=len(good),
        errors=len(samples) - len(good),
        errors_by_kind=dict(sorted(kinds.items())),
        throughput_rps=len(samples) / elapsed,
        latency_ms=percentiles([s.latency_s * 1000 for s in good]),
        ttft_ms=percentiles([s.ttft_s * 1000 for s in good if s.ttft_s is not None])
        if config.stream
        else None,
        prompt_tokens=sum(s.prompt_tokens for s in good),
        completion_tokens=completion,
        tokens_per_s=completion / elapsed,
    )
