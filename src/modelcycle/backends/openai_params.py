"""The parameters of an ``openai`` version, and the checks made when one is registered.

A version of kind ``openai`` names its upstream in ``source`` (a base URL such as
``http://127.0.0.1:8001/v1``, fixed by whoever registers the version; callers of
``/v1`` never choose it) and says in ``params`` how to call it::

    {"model": "Qwen/Qwen2.5-7B-Instruct",     # the upstream's model name
     "api_key_env": "VLLM_API_KEY",           # or "api_key_secret": "vllm-prod"
     "headers": {"OpenAI-Organization": "org-123"},
     "timeout_s": 120,
     "temperature": 0.2}                      # sampling defaults, as for every kind

A credential is only ever a *reference*: the name of an environment variable of
the server process, or of a secret stored encrypted by modelcycle. A credential
written into params in plain text is refused at registration, for every kind.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Literal
from urllib.parse import parse_qsl, urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from modelcycle.types import NAME_PATTERN

KIND = "openai"

ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
RESERVED_ENV_PREFIX = "MODELCYCLE_"
"""Environment variables of modelcycle itself (the admin key, the secret key, the
database URL) may never be sent to an upstream."""

_CREDENTIAL_WORDS = frozenset(
    {
        "apikey",
        "api_key",
        "secret",
        "secret_key",
        "client_secret",
        "password",
        "passwd",
        "token",
        "access_token",
        "auth_token",
        "bearer",
        "authorization",
    }
)
_CREDENTIAL_HEADERS = frozenset(
    {
        "authorization",
        "proxy-authorization",
        "api-key",
        "x-api-key",
        "cookie",
        "x-goog-api-key",
        "openai-api-key",
    }
)
_SAMPLING = ("max_tokens", "temperature", "top_p", "stop", "seed")


class OpenAIParams(BaseModel):
    """Params of an ``openai`` version; unknown keys are refused (they are usually typos)."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    model: str | None = Field(default=None, min_length=1, max_length=512)
    """The upstream's name of the model (vLLM's ``--served-model-name``, Ollama's tag,
    OpenAI's model id). When unset, requests carry no ``model``: only for servers that
    serve one model and do not ask for it (llama.cpp's server)."""
    api_key_env: str | None = None
    """Name of an environment variable of the server that holds the credential."""
    api_key_secret: str | None = Field(default=None, pattern=NAME_PATTERN)
    """Name of a secret of the version's project (``modelcycle secrets set NAME``)."""
    api_key_header: str = Field(default="Authorization", min_length=1, max_length=64)
    """Header carrying the credential: ``Authorization`` sends ``Bearer <credential>``;
    any other (``api-key`` for Azure) sends the credential alone."""
    headers: dict[str, str] = Field(default_factory=dict, max_length=32)
    """Extra, non-secret headers sent with every request."""
    timeout_s: float | None = Field(default=None, gt=0, le=3600)
    """Longest wait for the upstream's next bytes (the deployment's ``timeout_s``
    bounds each call in any case)."""
    connect_timeout_s: float = Field(default=10.0, gt=0, le=300)
    """Longest wait to open a connection."""
    max_connections: int = Field(default=100, ge=1, le=10_000)
    """Most connections open to the upstream at once (requests beyond wait)."""
    keepalive_s: float = Field(default=4.0, ge=0, le=3600)
    """How long an idle connection is kept for reuse. Keep it under the upstream's own
    idle timeout (5 s for uvicorn-based servers such as vLLM); raise it for remote APIs."""
    max_tokens_field: Literal["max_tokens", "max_completion_tokens"] = "max_tokens"
    """Name under which the token limit is sent (OpenAI's reasoning models want
    ``max_completion_tokens``)."""
    stream_usage: bool = True
    """Ask for token usage at the end of streams (``stream_options.include_usage``)."""
    extra_fields: list[str] = Field(default_factory=list, max_length=64)
    """Request fields beyond OpenAI's own that clients may pass to this upstream, e.g.
    vLLM's ``top_k``, ``min_p``, ``guided_json`` or ``chat_template_kwargs``."""
    max_tokens: int | None = Field(default=None, ge=1)
    """Default token limit of an answer."""
    temperature: float | None = Field(default=None, ge=0, le=2)
    """Default sampling temperature."""
    top_p: float | None = Field(default=None, ge=0, le=1)
    """Default nucleus sampling mass."""
    stop: str | list[str] | None = None
    """Default stop sequences."""
    seed: int | None = None
    """Default sampling seed."""
    system_prompt: str | None = None
    """System message for requests that have none (``modelcycle.backends.prompting``)."""
    few_shot: list[dict[str, str]] | None = Field(default=None, max_length=64)
    """Example messages placed before each request's conversation."""

    @field_validator("api_key_env")
    @classmethod
    def _env_name(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not ENV_NAME.match(value):
            raise ValueError("api_key_env must be the name of an environment variable")
        if value.upper().startswith(RESERVED_ENV_PREFIX):
            raise ValueError(
                f"api_key_env may not name modelcycle's own {RESERVED_ENV_PREFIX}* variables"
            )
        return value

    @field_validator("headers")
    @classmethod
    def _no_credential_headers(cls, value: dict[str, str]) -> dict[str, str]:
        for name, header in value.items():
            if name.lower() in _CREDENTIAL_HEADERS:
                raise ValueError(
                    f"headers.{name} would hold a credential in plain text; "
                    "use api_key_env or api_key_secret (and api_key_header)"
                )
            if any(char in name + header for char in "\r\n"):
                raise ValueError(f"headers.{name} contains a line break")
        return value

    def prompt_params(self) -> dict[str, Any]:
        """``system_prompt`` and ``few_shot``, in the shape ``with_prompt_params`` reads."""
        return {"system_prompt": self.system_prompt, "few_shot": self.few_shot}

    def defaults(self) -> dict[str, Any]:
        """The sampling defaults, in the shape ``merge_params`` reads."""
        return {name: getattr(self, name) for name in _SAMPLING if getattr(self, name) is not None}


def parse_params(params: Mapping[str, Any]) -> OpenAIParams:
    """Validated params; ``ValueError`` with one line per problem."""
    try:
        return OpenAIParams.model_validate(dict(params))
    except ValidationError as exc:
        raise ValueError("; ".join(_problems(exc))) from None


def _problems(exc: ValidationError) -> list[str]:
    out = []
    for error in exc.errors(include_input=False):
        where = ".".join(str(part) for part in error["loc"])
        message = str(error["msg"]).removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            message = "unknown parameter of an openai version; known: " + ", ".join(
                sorted(OpenAIParams.model_fields)
            )
        out.append(f"params.{where}: {message}" if where else message)
    return out


def check_source(source: str) -> list[str]:
    """What is wrong with an upstream base URL (empty when nothing is)."""
    parts = urlsplit(source)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return [
            "source of an openai version must be the upstream's base URL, "
            "e.g. http://127.0.0.1:8001/v1"
        ]
    problems = []
    if parts.username or parts.password:
        problems.append(
            "source must not carry credentials (user:password@); "
            "use params.api_key_env or params.api_key_secret"
        )
    for name, _ in parse_qsl(parts.query, keep_blank_values=True):
        if _is_credential_name(name):
            problems.append(
                f"source query parameter '{name}' looks like a credential; "
                "use params.api_key_env or params.api_key_secret"
            )
    if parts.fragment:
        problems.append("source must not have a #fragment")
    return problems


def check_version(backend: str, source: str, params: Mapping[str, Any]) -> list[str]:
    """Problems of a version about to be registered (every kind: plain-text credentials)."""
    problems = plaintext_credentials(params)
    if backend != KIND:
        return problems
    problems.extend(check_source(source))
    try:
        parsed = parse_params(params)
    except ValueError as exc:
        problems.append(str(exc))
        return problems
    if parsed.api_key_env and parsed.api_key_secret:
        problems.append("give params.api_key_env or params.api_key_secret, not both")
    return problems


def plaintext_credentials(params: Mapping[str, Any], path: str = "params") -> list[str]:
    """A message for each key of ``params`` (at any depth) that would hold a credential."""
    problems = []
    for key, value in params.items():
        where = f"{path}.{key}"
        if _is_credential_name(str(key)) and isinstance(value, str) and value:
            problems.append(
                f"{where} would store a credential in plain text; store it with "
                "`modelcycle secrets set NAME` and give params.api_key_secret, or name an "
                "environment variable of the server in params.api_key_env"
            )
        elif isinstance(value, Mapping):
            problems.extend(plaintext_credentials(value, where))
    return problems


def _is_credential_name(name: str) -> bool:
    normal = name.lower().replace("-", "_")
    return normal in _CREDENTIAL_WORDS or normal.endswith(("_api_key", "_apikey", "_password"))
