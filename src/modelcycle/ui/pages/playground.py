"""Playground: chat with one or two deployments or versions, side by side.

Every call goes through the in-process gateway as the signed-in key (the
browser never holds an API key), so it gets the deployment's routes, guard,
limits and a trace like any other request. With JavaScript each pane streams
from ``POST /playground/stream`` (server-sent events, see :func:`sse`); without
it, ``POST /playground`` answers with the page and both whole answers.

A target is a deployment name or a version, ``NAME@VERSION`` / ``NAME@alias``
(served by a one-route deployment, as evaluations do: no guard, no limits). A key
limited to some deployments may call only those, and no version directly.
"""

from __future__ import annotations

import asyncio
import math
import re
import time
from collections.abc import AsyncGenerator, Mapping
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import Annotated, Any
from urllib.parse import urlencode

import orjson
from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import RedirectResponse, Response, StreamingResponse
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from modelcycle.access import Principal
from modelcycle.backends import Chunk, GenerationParams, Message
from modelcycle.deploy import Deployment, single_route
from modelcycle.errors import InvalidInput, ModelcycleError, PermissionDenied
from modelcycle.evaluate.caller import is_version_target
from modelcycle.gateway import ChatCompletionRequest, DeploymentNotFound, Gateway
from modelcycle.gateway.schemas import CallContext, InferenceRequest
from modelcycle.types import Role
from modelcycle.ui.auth import FormChecked, Viewer, ViewerDep
from modelcycle.ui.render import renderer
from modelcycle.ui.routing import UiRoute

router = APIRouter(route_class=UiRoute)

MAX_TEXT = 32_000
"""The longest system prompt, message or answer the forms take (characters)."""
MAX_TARGET = 256
TARGET_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._\-]*(@[A-Za-z0-9._\-]+)?$")
TRACE_ID_RE = re.compile(r"^[0-9a-fA-F]{1,32}$")
PLAYGROUND_METADATA = {"source": "playground"}
"""Trace metadata of the playground's calls: traced like any request, and findable."""
PARAM_FIELDS = ("temperature", "max_tokens", "top_p", "seed", "stop")
FORM_FIELDS = ("target_a", "target_b", "system", "message", *PARAM_FIELDS)
_SSE_HEADERS = {
    "Cache-Control": "no-store",
    "X-Accel-Buffering": "no",
    "X-Content-Type-Options": "nosniff",
}


# -- what the form asks ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Prompt:
    """The conversation and parameters sent to every target of one "Send"."""

    system: str
    message: str
    params: GenerationParams

    @property
    def messages(self) -> list[dict[str, str]]:
        """The chat messages: the system prompt (when given), then the user's message."""
        first = [{"role": "system", "content": self.system}] if self.system.strip() else []
        return [*first, {"role": "user", "content": self.message}]


def _number(fields: Mapping[str, str], name: str, kind: type[int] | type[float]) -> Any:
    text = fields.get(name, "").strip()
    if not text:
        return None
    try:
        value = kind(text)
    except ValueError:
        what = "a whole number" if kind is int else "a number"
        raise InvalidInput(f"{name} must be {what}, got {text[:40]!r}", param=name) from None
    if isinstance(value, float) and not math.isfinite(value):
        raise InvalidInput(f"{name} must be a finite number", param=name)
    return value


def _stops(text: str) -> list[str] | None:
    r"""One stop sequence a line; ``\n`` written out stands for a line break."""
    stops = [line.rstrip("\r").replace("\\n", "\n") for line in text.split("\n")]
    return [stop for stop in stops if stop] or None


def _text(fields: Mapping[str, str], name: str) -> str:
    value = fields.get(name, "")
    if len(value) > MAX_TEXT:
        raise InvalidInput(f"{name} is longer than {MAX_TEXT:,} characters", param=name)
    return value


def parse_prompt(fields: Mapping[str, str]) -> Prompt:
    """The prompt of a form; ``InvalidInput`` naming the field when a value is wrong.

    Parameters are checked with the ranges of ``/v1/chat/completions``.
    """
    system, message = _text(fields, "system"), _text(fields, "message")
    if not message.strip():
        raise InvalidInput("write a message to send", param="message")
    body: dict[str, Any] = {
        "model": "playground",
        "messages": Prompt(system, message, GenerationParams()).messages,
        "temperature": _number(fields, "temperature", float),
        "max_tokens": _number(fields, "max_tokens", int),
        "top_p": _number(fields, "top_p", float),
        "seed": _number(fields, "seed", int),
        "stop": _stops(fields.get("stop", "")),
    }
    try:
        request = ChatCompletionRequest.model_validate(body)
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(part) for part in error.get("loc", ()))
        raise InvalidInput(f"{where}: {error.get('msg', 'invalid')}", param=where) from None
    return Prompt(system, message, request.to_inference().params)


def check_target(target: str, param: str = "target") -> str:
    """A deployment name or ``NAME@VERSION`` / ``NAME@alias``, stripped; else a 400."""
    target = target.strip()
    if not target:
        raise InvalidInput("choose a deployment or a version (NAME@VERSION)", param=param)
    if len(target) > MAX_TARGET or not TARGET_RE.match(target):
        raise InvalidInput(
            f"{param} {target[:60]!r} is neither a deployment name nor NAME@VERSION / NAME@alias",
            param=param,
        )
    return target


def parse_targets(fields: Mapping[str, str]) -> tuple[str, ...]:
    """Target A (required) and, to compare, target B."""
    first = check_target(fields.get("target_a", ""), "target_a")
    second = fields.get("target_b", "").strip()
    return (first,) if not second else (first, check_target(second, "target_b"))


async def form_fields(request: Request) -> dict[str, str]:
    """The body as text fields: a form (url-encoded or multipart) or a JSON object."""
    if request.headers.get("content-type", "").startswith("application/json"):
        try:
            body = orjson.loads(await request.body())
        except orjson.JSONDecodeError:
            raise InvalidInput("the body is not valid JSON") from None
        if not isinstance(body, dict):
            raise InvalidInput("the body must be a JSON object")
        return {str(key): _field_text(key, value) for key, value in body.items()}
    form = await request.form()
    return {key: value for key, value in form.items() if isinstance(value, str)}


def _field_text(name: str, value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    raise InvalidInput(f"{name} must be a string or a number", param=name)


# -- calling targets ---------------------------------------------------------------------


def ad_hoc_deployment(principal: Principal, target: str) -> Deployment | None:
    """The one-route deployment of a version target; ``None`` for a deployment name.

    Refuses what ``/v1`` would refuse this key: a deployment outside its allowlist
    (as a 404, like an unknown one) and, for a limited key, any version.
    """
    if is_version_target(target):
        if principal.deployments is not None:
            raise PermissionDenied(
                "this key may call only some deployments "
                f"({', '.join(sorted(principal.deployments))}); it cannot call a version directly"
            )
        return single_route(target, actor="playground")
    if not principal.may_call(target):
        raise DeploymentNotFound(target)
    return None


def inference_request(target: str, prompt: Prompt, *, stream: bool) -> InferenceRequest:
    """The gateway's request for ``target``, marked as playground traffic in its trace."""
    return InferenceRequest(
        endpoint="chat.completions",
        deployment=target,
        messages=tuple(Message(m["role"], m["content"]) for m in prompt.messages),
        prompt=None,
        params=prompt.params,
        user=None,
        stream=stream,
        context=CallContext(metadata=PLAYGROUND_METADATA),
    )


@dataclass(frozen=True, slots=True)
class Pane:
    """One target's answer, or why there is none."""

    target: str
    text: str = ""
    error: str | None = None
    trace_id: str | None = None
    served_by: str | None = None
    latency_ms: float | None = None
    tokens_out: int | None = None
    finish_reason: str | None = None


def _refusal(exc: ModelcycleError) -> str:
    return f"{exc.message} (HTTP {exc.status_code}, {exc.code or exc.error_type})"


async def answer_of(gateway: Gateway, principal: Principal, target: str, prompt: Prompt) -> Pane:
    """``target``'s whole answer; raises the gateway's refusal or failure."""
    started = time.perf_counter()
    deployment = ad_hoc_deployment(principal, target)
    request = inference_request(target, prompt, stream=False)
    served = await gateway.generate(principal, request, deployment=deployment)
    usage = served.usage or served.completion.usage
    return Pane(
        target,
        text=served.completion.text,
        trace_id=served.trace_id,
        served_by=f"{served.model}@{served.version}",
        latency_ms=(time.perf_counter() - started) * 1000,
        tokens_out=usage.completion_tokens,
        finish_reason=served.completion.finish_reason,
    )


async def whole_answer(gateway: Gateway, principal: Principal, target: str, prompt: Prompt) -> Pane:
    """``target``'s whole answer; a refusal or failure is the pane's error, never raised."""
    try:
        return await answer_of(gateway, principal, target, prompt)
    except ModelcycleError as exc:
        return Pane(target, error=_refusal(exc))


def sse(event: str | None, data: Mapping[str, Any]) -> bytes:
    """One server-sent event: ``event: NAME`` (none for answer text) and a JSON ``data:``."""
    head = f"event: {event}\n".encode() if event else b""
    return head + b"data: " + orjson.dumps(data) + b"\n\n"


def _error_event(exc: ModelcycleError) -> bytes:
    code = exc.code or exc.error_type
    return sse("error", {"status": exc.status_code, "code": code, "message": exc.message})


async def _relay(
    chunks: AsyncGenerator[Chunk, None], done: dict[str, Any], started: float
) -> AsyncGenerator[bytes, None]:
    """The answer's text events, then ``done`` (or ``error`` when the stream breaks)."""
    last = None
    try:
        async with aclosing(chunks) as pieces:
            async for chunk in pieces:
                if chunk.index != 0:
                    continue
                if chunk.text:
                    yield sse(None, {"text": chunk.text})
                last = chunk
    except ModelcycleError as exc:
        yield _error_event(exc)
        return
    usage = last.usage if last is not None else None
    yield sse(
        "done",
        {
            **done,
            "finish_reason": last.finish_reason if last is not None else None,
            "tokens_out": usage.completion_tokens if usage is not None else None,
            "latency_ms": round((time.perf_counter() - started) * 1000, 1),
        },
    )


async def open_events(
    gateway: Gateway, principal: Principal, target: str, prompt: Prompt
) -> AsyncGenerator[bytes, None]:
    """The events of ``target``'s answer; raises a refusal before the first one is sent."""
    deployment = ad_hoc_deployment(principal, target)
    started = time.perf_counter()
    request = inference_request(target, prompt, stream=True)
    stream = await gateway.stream(principal, request, deployment=deployment)
    head = sse(
        "meta",
        {"target": target, "served_by": f"{stream.model}@{stream.version}"},
    )
    body = _relay(stream.chunks(), {"trace_id": stream.trace_id}, started)
    return _prefixed(head, body)


async def _prefixed(head: bytes, body: AsyncGenerator[bytes, None]) -> AsyncGenerator[bytes, None]:
    yield head
    async with aclosing(body) as events:
        async for event in events:
            yield event


# -- the page ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Choices:
    """What the pickers suggest: deployments, then versions by alias and latest number."""

    deployments: list[str]
    versions: list[str]
    datasets: list[str] = field(default_factory=list)


def choices(viewer: Viewer) -> Choices:
    """The targets and datasets the viewer may pick (sync: reads the database)."""
    services, principal = viewer.services, viewer.principal
    names = [d.name for d in services.deployments.list(principal, limit=100).items]
    deployments = [name for name in names if principal.may_call(name)]
    versions: list[str] = []
    if principal.deployments is None:
        for model in services.registry.list_models(principal, cursor=None, limit=50).items:
            versions += [f"{model.name}@{alias}" for alias in sorted(model.aliases)]
            if model.latest_version is not None:
                versions.append(f"{model.name}@{model.latest_version}")
    datasets: list[str] = []
    if principal.role.allows(Role.MAINTAINER):
        datasets = [d.name for d in services.datasets.list(principal, limit=100).items]
    return Choices(deployments, versions, datasets)


def _page(
    request: Request,
    viewer: Viewer,
    form: Mapping[str, str],
    *,
    panes: list[Pane] | None = None,
    error: str | None = None,
    status_code: int = 200,
    notice: str | None = None,
    added: str | None = None,
) -> Response:
    return renderer(request).page(
        request,
        "playground.html",
        {
            "title": "Playground",
            "form": {name: form.get(name, "") for name in FORM_FIELDS},
            "choices": choices(viewer),
            "panes": panes or [],
            "error": error,
            "notice": notice,
            "added": added,
        },
        status_code=status_code,
    )


TextQuery = Annotated[str, Query(max_length=MAX_TEXT)]
ShortQuery = Annotated[str, Query(max_length=MAX_TARGET)]


@router.get("/playground")
def playground(
    request: Request,
    viewer: ViewerDep,
    target_a: ShortQuery = "",
    target_b: ShortQuery = "",
    system: TextQuery = "",
    message: TextQuery = "",
    notice: Annotated[str, Query(max_length=1000)] = "",
    added: ShortQuery = "",
) -> Response:
    """The form; the query fills it in (links such as "open in playground" use it)."""
    form = {"target_a": target_a, "target_b": target_b, "system": system, "message": message}
    return _page(request, viewer, form, notice=notice or None, added=added or None)


@router.post("/playground", dependencies=[FormChecked])
async def send(request: Request, viewer: ViewerDep) -> Response:
    """Without JavaScript: ask every target at once and show the whole answers."""
    fields = await form_fields(request)
    try:
        targets = parse_targets(fields)
        prompt = parse_prompt(fields)
    except InvalidInput as exc:
        return await run_in_threadpool(
            _page, request, viewer, fields, error=exc.message, status_code=exc.status_code
        )
    gateway = viewer.services.gateway
    panes = await asyncio.gather(
        *(whole_answer(gateway, viewer.principal, target, prompt) for target in targets)
    )
    return await run_in_threadpool(_page, request, viewer, fields, panes=list(panes))


@router.post("/playground/stream", dependencies=[FormChecked])
async def stream(request: Request, viewer: ViewerDep) -> Response:
    """One target's answer as server-sent events: ``meta``, text pieces, ``done``.

    Text pieces have no event name and ``data: {"text": ...}``; a refusal before
    the answer begins is a single ``error`` event with the refusal's status code,
    a failure mid-way an ``error`` event after the text sent so far.
    """
    try:
        fields = await form_fields(request)
        target = check_target(fields.get("target", ""))
        prompt = parse_prompt(fields)
        events = await open_events(viewer.services.gateway, viewer.principal, target, prompt)
    except ModelcycleError as exc:
        return Response(
            _error_event(exc),
            status_code=exc.status_code,
            media_type="text/event-stream",
            headers=_SSE_HEADERS,
        )
    return StreamingResponse(events, media_type="text/event-stream", headers=_SSE_HEADERS)


# -- send to dataset ---------------------------------------------------------------------


def sample_record(
    target: str, system: str, message: str, answer: str, expected: str, trace_id: str
) -> dict[str, Any]:
    """The exchange as a dataset sample (JSONL record): the corrected answer, else the model's."""
    if not message.strip():
        raise InvalidInput("the exchange has no message to save", param="message")
    kept = expected if expected.strip() else answer
    if not kept.strip():
        raise InvalidInput(
            "the answer is empty: write the expected answer to save this exchange",
            param="expected",
        )
    metadata: dict[str, Any] = {"source": "playground", "target": target}
    if kept != answer:
        metadata["model_answer"] = answer
    record: dict[str, Any] = {
        "messages": Prompt(system, message, GenerationParams()).messages,
        "expected": kept,
        "metadata": metadata,
    }
    if trace_id:
        if not TRACE_ID_RE.match(trace_id):
            raise InvalidInput("trace_id must be the answer's trace id (hex)", param="trace_id")
        record["trace_id"] = trace_id.lower()
    return record


TextForm = Annotated[str, Form(max_length=MAX_TEXT)]


@router.post("/playground/dataset", dependencies=[FormChecked])
def send_to_dataset(
    viewer: ViewerDep,
    dataset: Annotated[str, Form(min_length=1, max_length=64)],
    target: Annotated[str, Form(max_length=MAX_TARGET)],
    message: TextForm,
    system: TextForm = "",
    answer: TextForm = "",
    expected: TextForm = "",
    trace_id: Annotated[str, Form(max_length=32)] = "",
) -> Response:
    """Append the exchange to a dataset as a new version, then back to the playground."""
    target = check_target(target)
    record = sample_record(target, system, message, answer, expected, trace_id.strip())
    version = viewer.services.datasets.append(
        viewer.principal, dataset.strip(), record, source="playground"
    )
    notice = (
        f"Added the exchange with {target} to dataset {version.dataset}: "
        f"version {version.ref}, {version.sample_count} samples."
    )
    query = {"target_a": target, "notice": notice, "added": version.ref}
    return RedirectResponse(f"/playground?{urlencode(query)}", 303)
