"""Endpoints beyond chat and completions: embeddings, and the tokenizer of a deployment.

Embeddings take the path of every inference request (limits, routes and
fallbacks, retries, one ``RequestFinished`` with ``endpoint="embeddings"``):
a deployment that mixes versions of different embedding models mixes vector
spaces, which is the operator's choice to make, as with any canary.

``/tokenize``, ``/detokenize`` and ``/tokenizer_info`` describe the version on
the deployment's primary route (the first route, whatever its weight): they
are answered by that version's engine, not routed, and are not inference, so
they emit no event and count against no token budget.
"""

from __future__ import annotations

from collections.abc import Sequence

from modelcycle.access import Principal
from modelcycle.backends import Backend, GenerationParams, Message, Usage
from modelcycle.backends.capabilities import (
    DIMENSIONS,
    Embedder,
    Embeddings,
    TokenizerInfo,
    Tokenizing,
)
from modelcycle.deploy import ResolvedVersion
from modelcycle.errors import InvalidInput, UpstreamError
from modelcycle.gateway.schemas import NO_CONTEXT, CallContext, InferenceRequest, PromptInput
from modelcycle.gateway.service import Gateway

_EMBEDDING_PARAMS = GenerationParams()  # sampling does not apply; never cached (not text)


async def embed(
    gateway: Gateway,
    principal: Principal,
    deployment: str,
    inputs: Sequence[PromptInput],
    *,
    dimensions: int | None,
    user: str | None,
    context: CallContext = NO_CONTEXT,
) -> tuple[Embeddings, ResolvedVersion, dict[str, str]]:
    """One vector per input, the version that computed them, and the answer's headers."""
    request = InferenceRequest(
        endpoint="embeddings",
        deployment=deployment,
        messages=None,
        prompt=None,
        params=_EMBEDDING_PARAMS,
        user=user,
        stream=False,
        prompts=tuple(inputs),
        features=frozenset({DIMENSIONS}) if dimensions is not None else frozenset(),
        context=context,
    )

    async def call(backend: Backend, request: InferenceRequest) -> Embeddings:
        assert isinstance(backend, Embedder)  # checked by ``choices.requires``
        result = await backend.embed(list(request.prompts or ()), dimensions=dimensions)
        if len(result.vectors) != len(inputs):
            raise UpstreamError(
                f"the backend returned {len(result.vectors)} vectors for {len(inputs)} inputs"
            )
        return result

    return await gateway.serve(principal, request, call, lambda r: Usage(r.prompt_tokens, 0))


async def _primary(
    gateway: Gateway, principal: Principal, deployment: str
) -> tuple[Tokenizing, ResolvedVersion]:
    found = await gateway.resolver.deployment(principal.project_id, deployment)
    version = await gateway.resolver.version(principal.project_id, found.spec.routes[0].target)
    try:
        backend = gateway.backends.get(version.backend, version.source, version.params)
    except InvalidInput as exc:
        raise UpstreamError(exc.message, code="target_unavailable") from exc
    if not isinstance(backend, Tokenizing):
        raise InvalidInput(
            f"the tokenizer of this deployment's backend (kind '{version.backend}') is not "
            "available; tokenizer endpoints serve local backends",
            param="model",
            code="unsupported_parameter",
        )
    return backend, version


async def tokenize(
    gateway: Gateway,
    principal: Principal,
    deployment: str,
    *,
    text: str | None,
    messages: Sequence[Message] | None,
    add_special: bool,
) -> tuple[list[int], int]:
    """Token ids of a prompt, or of a chat request's prompt; and the context size."""
    backend, _ = await _primary(gateway, principal, deployment)
    if messages is not None:
        ids = await backend.tokenize_chat(messages)
    else:
        ids = await backend.tokenize(text or "", add_special=add_special)
    info = await backend.tokenizer_info()
    return ids, info.max_model_len


async def detokenize(
    gateway: Gateway, principal: Principal, deployment: str, tokens: Sequence[int]
) -> str:
    """The text of token ids."""
    backend, _ = await _primary(gateway, principal, deployment)
    return await backend.detokenize(tokens)


async def tokenizer_info(gateway: Gateway, principal: Principal, deployment: str) -> TokenizerInfo:
    """The tokenizer configuration of the deployment's primary version."""
    backend, _ = await _primary(gateway, principal, deployment)
    return await backend.tokenizer_info()
