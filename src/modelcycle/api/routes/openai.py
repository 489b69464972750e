"""The OpenAI-compatible API under ``/v1``: any OpenAI client can call a deployment.

Authentication is a Bearer API key of any role (``app`` is enough); the
request's ``model`` names a deployment of the key's project (and of the key's
allowlist, when it has one: ``modelcycle.api.allowlist``). Errors are OpenAI
error objects; a failure after a stream began ends it with an error event.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response, StreamingResponse

from modelcycle.api.allowlist import callable_deployments, require_deployment
from modelcycle.api.call_context import call_context
from modelcycle.api.deps import InferencePrincipalDep, PrincipalDep, ServicesDep
from modelcycle.api.errors import ERROR_RESPONSES, ErrorResponse
from modelcycle.api.inference_route import InferenceRoute
from modelcycle.gateway import ChatCompletionRequest, CompletionRequest, endpoints
from modelcycle.gateway.schemas import EmbeddingRequest, InferenceRequest
from modelcycle.gateway.wire import completion_body, embeddings_body, models_body, sse_events

# InferenceRoute: the common case skips FastAPI's per-request machinery (same API).
router = APIRouter(prefix="/v1", tags=["openai"], route_class=InferenceRoute)

RESPONSES = {
    **ERROR_RESPONSES,
    404: {"model": ErrorResponse, "description": "Unknown deployment (code model_not_found)."},
    429: {
        "model": ErrorResponse,
        "description": "A rate or concurrency limit was reached (`Retry-After` says when).",
    },
    502: {"model": ErrorResponse, "description": "Every route and fallback failed."},
    503: {
        "model": ErrorResponse,
        "description": "Every version that could serve is out of routing (circuit open).",
    },
    504: {"model": ErrorResponse, "description": "The backend did not answer in time."},
}

_SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def _served_headers(model: str, version: int, route: str, trace_id: str) -> dict[str, str]:
    return {
        "X-Modelcycle-Version": f"{model}@{version}",
        "X-Modelcycle-Route": route,
        "X-Modelcycle-Trace-Id": trace_id,
    }


async def _answer(
    services: ServicesDep,
    principal: PrincipalDep,
    request: InferenceRequest,
    *,
    include_usage: bool,
    echo_prompt: str | None,
) -> Response:
    gateway = services.gateway
    if request.stream:
        stream = await gateway.stream(principal, request)
        return StreamingResponse(
            sse_events(
                stream, request.endpoint, include_usage=include_usage, echo_prompt=echo_prompt
            ),
            media_type="text/event-stream",
            headers={
                **_SSE_HEADERS,
                **_served_headers(stream.model, stream.version, stream.route, stream.trace_id),
                **stream.headers,
            },
        )
    served = await gateway.generate(principal, request)
    return Response(
        completion_body(served, request.endpoint, echo_prompt=echo_prompt),
        media_type="application/json",
        headers={
            **_served_headers(served.model, served.version, served.route, served.trace_id),
            **served.headers,
        },
    )


@router.post("/chat/completions", response_class=Response)
async def chat_completions(
    body: ChatCompletionRequest,
    principal: InferencePrincipalDep,
    services: ServicesDep,
    http: Request,
) -> Response:
    """Answer a conversation with a deployment (``stream: true`` for server-sent events).

    ``X-Modelcycle-User``, ``X-Modelcycle-Session``, ``X-Modelcycle-Metadata`` (a JSON
    object) and a W3C ``traceparent`` are recorded on the request's trace.
    """
    require_deployment(principal, body.model)
    return await _answer(
        services,
        principal,
        body.to_inference(call_context(http)),
        include_usage=body.include_usage,
        echo_prompt=None,
    )


@router.post("/completions", response_class=Response)
async def completions(
    body: CompletionRequest,
    principal: InferencePrincipalDep,
    services: ServicesDep,
    http: Request,
) -> Response:
    """Continue a prompt with a deployment (legacy completions; ``echo`` supported).

    Trace headers as for chat completions.
    """
    require_deployment(principal, body.model)
    request = body.to_inference(call_context(http))
    return await _answer(
        services,
        principal,
        request,
        include_usage=body.include_usage,
        echo_prompt=None,  # each choice carries its echo (``modelcycle.gateway.choices``)
    )


@router.post("/embeddings", response_class=Response)
async def embeddings(
    body: EmbeddingRequest,
    principal: InferencePrincipalDep,
    services: ServicesDep,
    http: Request,
) -> Response:
    """Embed text or token ids with a deployment (``encoding_format``: float or base64)."""
    require_deployment(principal, body.model)
    result, version, headers = await endpoints.embed(
        services.gateway,
        principal,
        body.model,
        body.inputs(),
        dimensions=body.dimensions,
        user=body.user,
        context=call_context(http),
    )
    return Response(
        embeddings_body(result, body.model, body.encoding_format),
        media_type="application/json",
        headers={"X-Modelcycle-Version": f"{version.model}@{version.version}", **headers},
    )


@router.get("/models", response_class=Response)
async def list_models(principal: InferencePrincipalDep, services: ServicesDep) -> Response:
    """The deployments this key may call, as OpenAI models."""
    deployments = callable_deployments(principal, await services.gateway.models(principal))
    return Response(models_body(deployments), media_type="application/json")
