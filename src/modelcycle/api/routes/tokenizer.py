"""vLLM's tokenizer endpoints at the server root: ``/tokenize``, ``/detokenize``, and more.

Shaped as vLLM serves them (so clients written for vLLM, such as evaluation
harnesses that count or truncate tokens, work unchanged), authenticated like
``/v1`` (any key of the deployment's project, within its allowlist), and
answered by the engine of the deployment's primary version. A server hosts many deployments, so
``/tokenizer_info`` takes the deployment as ``?model=`` (default ``default``).
"""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter, Query
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field, model_validator

from modelcycle.api.allowlist import require_deployment
from modelcycle.api.deps import InferencePrincipalDep, ServicesDep
from modelcycle.api.errors import ErrorResponse
from modelcycle.backends import Message
from modelcycle.errors import InvalidInput
from modelcycle.gateway import ChatMessage, endpoints
from modelcycle.types import MAX_INT32

router = APIRouter(tags=["tokenizer"])

RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {
        "model": ErrorResponse,
        "description": "Bad input, or a backend without a tokenizer (a remote upstream).",
    },
    404: {"model": ErrorResponse, "description": "Unknown deployment (code model_not_found)."},
    502: {"model": ErrorResponse, "description": "The version's engine could not be loaded."},
}


class _Body(BaseModel):
    model_config = ConfigDict(extra="ignore")

    model: str = Field(
        default="default", min_length=1, max_length=256, description="The deployment."
    )

    @model_validator(mode="before")
    @classmethod
    def _valid_unicode(cls, data: Any) -> Any:
        # JSON may carry lone surrogates ("\\ud800"); no tokenizer can encode them.
        try:
            orjson.dumps(data)
        except orjson.JSONEncodeError:
            raise ValueError("the body holds text that is not valid Unicode") from None
        return data


class TokenizeRequest(_Body):
    """``POST /tokenize``: a ``prompt``, or chat ``messages`` (as vLLM takes them)."""

    prompt: str | None = None
    messages: list[ChatMessage] | None = Field(default=None, min_length=1)
    add_special_tokens: bool | None = None
    """Prompt: add BOS (default true). Messages: ignored (the chat prompt is tokenized
    exactly as a chat request evaluates it)."""


class TokenizeResponse(BaseModel):
    """The token ids, their count and the context size of the version."""

    count: int
    max_model_len: int
    tokens: list[int]
    token_strs: list[str] | None = None


class DetokenizeRequest(_Body):
    """``POST /detokenize``."""

    tokens: list[int]


class DetokenizeResponse(BaseModel):
    """The text of the tokens."""

    prompt: str


class TokenizerInfoResponse(BaseModel):
    """The tokenizer's configuration, in vLLM's (and Hugging Face's) field names."""

    model_config = ConfigDict(extra="allow")
    tokenizer_class: str
    model_max_length: int
    vocab_size: int
    bos_token: str | None = None
    eos_token: str | None = None
    pad_token: str | None = None
    add_bos_token: bool = False
    add_eos_token: bool = False
    chat_template: str | None = None


def _json(value: BaseModel) -> Response:
    return Response(orjson.dumps(value.model_dump()), media_type="application/json")


@router.post("/tokenize", response_model=TokenizeResponse, responses=RESPONSES)
async def tokenize(
    body: TokenizeRequest, principal: InferencePrincipalDep, services: ServicesDep
) -> Response:
    """Token ids of a prompt, or of the prompt a chat request with ``messages`` evaluates."""
    require_deployment(principal, body.model)
    if (body.prompt is None) == (body.messages is None):
        raise InvalidInput("send either prompt or messages", param="prompt")
    messages = None
    if body.messages is not None:
        messages = [
            Message("system" if m.role == "developer" else m.role, m.text()) for m in body.messages
        ]
    ids, max_len = await endpoints.tokenize(
        services.gateway,
        principal,
        body.model,
        text=body.prompt,
        messages=messages,
        add_special=body.add_special_tokens is not False,
    )
    return _json(TokenizeResponse(count=len(ids), max_model_len=max_len, tokens=ids))


@router.post("/detokenize", response_model=DetokenizeResponse, responses=RESPONSES)
async def detokenize(
    body: DetokenizeRequest, principal: InferencePrincipalDep, services: ServicesDep
) -> Response:
    """The text of token ids."""
    require_deployment(principal, body.model)
    for token in body.tokens:
        if not 0 <= token <= MAX_INT32:
            raise InvalidInput(f"token id {token} is out of range", param="tokens")
    text = await endpoints.detokenize(services.gateway, principal, body.model, body.tokens)
    return _json(DetokenizeResponse(prompt=text))


@router.get("/tokenizer_info", response_model=TokenizerInfoResponse, responses=RESPONSES)
async def tokenizer_info(
    principal: InferencePrincipalDep,
    services: ServicesDep,
    model: str = Query(default="default", min_length=1, max_length=256),
) -> Response:
    """The tokenizer configuration of the deployment's primary version."""
    require_deployment(principal, model)
    info = await endpoints.tokenizer_info(services.gateway, principal, model)
    return _json(
        TokenizerInfoResponse(
            tokenizer_class=info.tokenizer_class,
            model_max_length=info.max_model_len,
            vocab_size=info.vocab_size,
            bos_token=info.bos_token,
            eos_token=info.eos_token,
            pad_token=info.pad_token,
            add_bos_token=info.add_bos_token,
            add_eos_token=info.add_eos_token,
            chat_template=info.chat_template,
        )
    )
