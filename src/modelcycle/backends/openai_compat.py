"""Kind ``openai``: any OpenAI-compatible upstream (vLLM, llama.cpp server, Ollama, TGI, OpenAI).

One instance serves every version with the same upstream URL and params. It
keeps pooled keep-alive connections, closed by ``close()``, so a busy deployment
reuses a handful of connections instead of opening one per request: whole
answers through pyqwest (``openai_http``: the HTTP work runs off the event
loop's thread), streams through an ``aiohttp`` session created on the first
stream in the running event loop.

The credential is read at call time, never stored on the instance: from the
environment variable ``api_key_env`` names, or by decrypting the secret
``api_key_secret`` names *in the project of the calling key* (the gateway puts
it in ``call_scope``; a cached decryption lives a few seconds). It travels only
in a request header; error messages that reach clients are scrubbed of it.

Requests carry the client's own fields where OpenAI defines them (``tools``,
``tool_choice``, ``response_format``...), plus the version's ``extra_fields``;
answers come back with their ``tool_calls``. See ``openai_wire`` for the error
mapping and ``openai_params`` for the params.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

import orjson

from modelcycle.backends.base import (
    Chunk,
    Completion,
    GenerationParams,
    Message,
    call_scope,
    merge_params,
)
from modelcycle.backends.capabilities import FEATURES, Embeddings
from modelcycle.backends.openai_http import (
    WholeAnswers,
    environment_proxy,
    plain_failure,
    pyqwest_failure,
    required,
)
from modelcycle.backends.openai_params import check_source, parse_params
from modelcycle.backends.openai_wire import (
    OPENAI_CHAT_FIELDS,
    OPENAI_COMPLETION_FIELDS,
    StreamReader,
    chat_messages,
    parse_answer,
    parse_embeddings,
    response_format_json,
    sse_data,
    status_error,
)
from modelcycle.backends.plain_http import DROPPED
from modelcycle.backends.prompting import apply_prompt_params, with_prompt_params
from modelcycle.errors import (
    InvalidInput,
    ModelcycleError,
    NotFound,
    UpstreamError,
    UpstreamTimeout,
)
from modelcycle.version import __version__

if TYPE_CHECKING:
    import aiohttp

log = logging.getLogger(__name__)

CHAT_PATH = "/chat/completions"
COMPLETIONS_PATH = "/completions"
EMBEDDINGS_PATH = "/embeddings"
_DRAIN_TIMEOUT_S = 1.0  # the end of a body sent with [DONE] arrives at once


class SecretReader(Protocol):
    """Where ``api_key_secret`` values come from (``modelcycle.access.secrets.Secrets``)."""

    async def reveal(self, project_id: int, name: str) -> str:
        """The value of the project's secret ``name``; ``NotFound`` when there is none."""
        ...


def _wire_message(message: Message) -> dict[str, str]:
    return {"role": message.role, "content": message.content}


class OpenAICompatBackend:
    """A version served by an OpenAI-compatible HTTP API; see the module docstring."""

    def __init__(self, source: str, params: Mapping[str, Any], secrets: SecretReader | None = None):
        problems = check_source(source)
        try:
            self.options = parse_params(params)
        except ValueError as exc:
            problems.append(str(exc))
        if problems:
            raise InvalidInput(f"openai version: {'; '.join(problems)}")
        self.base_url = source.rstrip("/")
        self._secrets = secrets
        self._defaults = self.options.defaults()
        self._prompt = self.options.prompt_params()
        extra = set(self.options.extra_fields)
        self._chat_fields = OPENAI_CHAT_FIELDS | extra
        self._completion_fields = OPENAI_COMPLETION_FIELDS | extra
        self._headers: dict[str, str] = {
            "Content-Type": "application/json",
            "User-Agent": f"modelcycle/{__version__}",
            **self.options.headers,
        }
        self._session: aiohttp.ClientSession | None = None  # streams
        self._loop: asyncio.AbstractEventLoop | None = None
        self._whole = WholeAnswers(self.options)  # whole answers

    # -- Backend -----------------------------------------------------------------------

    async def chat(self, messages: Sequence[Message], params: GenerationParams) -> Completion:
        """Answer a conversation through the upstream's ``/chat/completions``."""
        body = self._chat_body(messages, params, stream=False)
        return parse_answer(await self._post(CHAT_PATH, body), chat=True)

    async def complete(self, prompt: str, params: GenerationParams) -> Completion:
        """Continue a prompt through the upstream's ``/completions`` (``echo`` scores it)."""
        body = self._completion_body(prompt, params, stream=False)
        echoed = prompt if body.get("echo") else None
        return parse_answer(await self._post(COMPLETIONS_PATH, body), chat=False, echoed=echoed)

    def stream_chat(
        self, messages: Sequence[Message], params: GenerationParams
    ) -> AsyncIterator[Chunk]:
        """Stream an answer to a conversation (the upstream's server-sent events)."""
        return self._stream(CHAT_PATH, self._chat_body(messages, params, stream=True), chat=True)

    def stream_complete(self, prompt: str, params: GenerationParams) -> AsyncIterator[Chunk]:
        """Stream the continuation of a prompt."""
        body = self._completion_body(prompt, params, stream=True)
        return self._stream(COMPLETIONS_PATH, body, chat=False)

    def supports(self, feature: str) -> bool:
        """Every optional feature: the upstream enforces it (or refuses with a 400)."""
        return feature in FEATURES

    async def embed(
        self, inputs: Sequence[str | Sequence[int]], *, dimensions: int | None
    ) -> Embeddings:
        """One vector per input, from the upstream's ``/embeddings``."""
        body = self._model(
            {
                "input": [item if isinstance(item, str) else list(item) for item in inputs],
                "encoding_format": "float",
            }
        )
        if dimensions is not None:
            body["dimensions"] = dimensions
        return parse_embeddings(await self._post(EMBEDDINGS_PATH, body), len(inputs))

    async def close(self) -> None:
        """Close the pooled connections."""
        await self._whole.close()
        session, loop, self._session, self._loop = self._session, self._loop, None, None
        if session is None or session.closed:
            return
        if loop is asyncio.get_running_loop():
            await session.close()
        elif loop is not None and loop.is_running():
            closing = asyncio.run_coroutine_threadsafe(session.close(), loop)
            await asyncio.wait_for(asyncio.wrap_future(closing), timeout=5)
        else:
            session.detach()  # its loop is gone: nothing left to close on it

    # -- request bodies ----------------------------------------------------------------

    def _model(self, body: dict[str, Any]) -> dict[str, Any]:
        if self.options.model is not None:
            body["model"] = self.options.model
        return body

    def _sampling(self, body: dict[str, Any], params: GenerationParams, stream: bool) -> None:
        passed = params.passthrough or {}
        if params.response_format is not None and "response_format" not in passed:
            body["response_format"] = response_format_json(params.response_format)
        if params.max_tokens is not None:
            body[self.options.max_tokens_field] = params.max_tokens
        if params.temperature is not None:
            body["temperature"] = params.temperature
        if params.top_p is not None:
            body["top_p"] = params.top_p
        if params.stop:
            body["stop"] = list(params.stop)
        if params.seed is not None:
            body["seed"] = params.seed
        if stream:
            body["stream"] = True
            if self.options.stream_usage:
                body["stream_options"] = {"include_usage": True}

    def _chat_body(
        self, messages: Sequence[Message], params: GenerationParams, *, stream: bool
    ) -> dict[str, Any]:
        merged = merge_params(self._defaults, params)
        body = self._model({})
        passed = merged.passthrough or {}
        body.update((k, v) for k, v in passed.items() if k in self._chat_fields)
        raw = passed.get("messages")
        if isinstance(raw, list):  # the client's own messages (tool calls): prompt params too
            roles = [str(m.get("role")) if isinstance(m, dict) else "" for m in raw]
            body["messages"] = apply_prompt_params(raw, roles, self._prompt, _wire_message)
        else:
            body["messages"] = chat_messages(with_prompt_params(messages, self._prompt))
        if merged.logprobs is not None:
            body["logprobs"] = True
            body["top_logprobs"] = merged.logprobs
        self._sampling(body, merged, stream)
        return body

    def _completion_body(
        self, prompt: str, params: GenerationParams, *, stream: bool
    ) -> dict[str, Any]:
        merged = merge_params(self._defaults, params)
        body = self._model({"prompt": prompt})
        passed = merged.passthrough or {}
        body.update((k, v) for k, v in passed.items() if k in self._completion_fields)
        if merged.logprobs is not None:
            body["logprobs"] = merged.logprobs
            # Scoring the prompt: whole answers only (a stream has no place for it).
            if merged.echo and not stream:
                body["echo"] = True
        self._sampling(body, merged, stream)
        return body

    # -- HTTP ------------------------------------------------------------------------

    def _client(self) -> aiohttp.ClientSession:
        loop = asyncio.get_running_loop()
        session = self._session
        if session is not None and not session.closed and self._loop is loop:
            return session
        http = required("aiohttp")
        keepalive = self.options.keepalive_s
        connector = http.TCPConnector(
            limit=self.options.max_connections,
            limit_per_host=0,
            force_close=keepalive == 0,
            **({"keepalive_timeout": keepalive} if keepalive else {}),
        )
        timeout = http.ClientTimeout(
            total=None,
            sock_connect=self.options.connect_timeout_s,
            sock_read=self.options.timeout_s,
        )
        # HTTP(S)_PROXY and NO_PROXY apply, as they do to whole answers (pyqwest). Read
        # once here: aiohttp's trust_env reads them (and ~/.netrc) on every request,
        # which cost a stream's first byte 0.5 ms (benchmarks/streaming_ttfb.py).
        created: aiohttp.ClientSession = http.ClientSession(
            connector=connector,
            timeout=timeout,
            raise_for_status=False,
            proxy=environment_proxy(self.base_url),
        )
        # A session made on another (finished) loop cannot be reused here.
        self._session, self._loop = created, loop
        return created

    async def _credential(self) -> str | None:
        options = self.options
        if options.api_key_env:
            # The one environment read below the edge: a reference resolved per call,
            # so a rotated variable (in a restarted process) applies without re-registering.
            value = os.environ.get(options.api_key_env)
            if not value:
                raise UpstreamError(
                    f"the environment variable {options.api_key_env} (the version's "
                    "api_key_env) is not set in the server's environment",
                    code="target_unavailable",
                )
            return value
        if options.api_key_secret:
            return await self._secret(options.api_key_secret)
        return None

    async def _secret(self, name: str) -> str:
        scope = call_scope.get()
        if scope is None or self._secrets is None:
            raise UpstreamError(
                f"the version's api_key_secret '{name}' can only be read for a request "
                "through the gateway",
                code="target_unavailable",
            )
        try:
            return await self._secrets.reveal(scope.project_id, name)
        except NotFound:
            raise UpstreamError(
                f"the version's api_key_secret '{name}' does not exist in project "
                f"'{scope.project}'; an admin sets it with: modelcycle secrets set {name}",
                code="target_unavailable",
            ) from None

    async def _request_headers(self) -> tuple[dict[str, str], str | None]:
        credential = await self._credential()
        if credential is None:
            return self._headers, None
        header = self.options.api_key_header
        value = f"Bearer {credential}" if header.lower() == "authorization" else credential
        return {**self._headers, header: value}, credential

    async def _post(self, path: str, body: dict[str, Any]) -> bytes:
        headers, credential = await self._request_headers()
        try:
            status, payload = await self._whole.post(
                self.base_url + path, orjson.dumps(body), headers
            )
        except Exception as exc:
            raise self._transport_error(exc) from None
        if status >= 300:  # redirects are not followed
            raise self._status_error(status, payload, credential)
        return payload

    async def _stream(self, path: str, body: dict[str, Any], *, chat: bool) -> AsyncIterator[Chunk]:
        headers, credential = await self._request_headers()
        reader = StreamReader(chat)
        response: aiohttp.ClientResponse | None = None
        finished = False
        try:
            response = await self._client().post(
                self.base_url + path,
                data=orjson.dumps(body),
                headers=headers,
                allow_redirects=False,
            )
            if response.status >= 300:
                raise self._status_error(response.status, await response.read(), credential)
            if response.content_type == "application/json":
                # The upstream ignored "stream": one whole answer is a stream of one piece.
                whole = parse_answer(await response.read(), chat)
                finished = True
                yield Chunk(whole.text, tool_calls=whole.tool_calls)
                yield Chunk("", whole.finish_reason, whole.usage)
                return
            async for chunk in _events(response, reader):
                yield chunk
            last = reader.last()
            finished = True
            yield last
        except ModelcycleError:
            raise
        except Exception as exc:
            raise self._transport_error(exc) from None
        finally:
            if response is not None:
                # An unfinished stream closes its connection: the upstream stops generating.
                if finished:
                    response.release()
                else:
                    response.close()

    def _status_error(self, status: int, payload: bytes, credential: str | None) -> Exception:
        log.warning("openai upstream %s answered %s", self.base_url, status)
        return status_error(status, payload, credential)

    def _transport_error(self, exc: Exception) -> ModelcycleError:
        aiohttp = required("aiohttp")
        log.warning("openai upstream %s failed: %s", self.base_url, type(exc).__name__)
        if isinstance(exc, TimeoutError):
            limit = self.options.timeout_s
            within = f" within {limit:g} s" if limit else " in time"
            return UpstreamTimeout(f"the upstream did not answer{within}", code="timeout")
        if (failure := plain_failure(exc) or pyqwest_failure(exc)) is not None:  # whole answers
            return failure
        if isinstance(exc, aiohttp.ClientConnectorError):
            reason = exc.os_error.strerror or type(exc.os_error).__name__
            return UpstreamError(f"cannot connect to the upstream: {reason}")
        if isinstance(exc, aiohttp.ServerDisconnectedError | aiohttp.ClientPayloadError):
            return UpstreamError(DROPPED, code="upstream_dropped")
        if isinstance(exc, aiohttp.ClientError | OSError):
            return UpstreamError(f"the upstream connection failed: {type(exc).__name__}")
        raise exc


def make_factory(
    secrets: SecretReader | None,
) -> Callable[[str, Mapping[str, Any]], OpenAICompatBackend]:
    """The factory of kind ``openai``, reading ``api_key_secret`` values from ``secrets``."""

    def factory(source: str, params: Mapping[str, Any]) -> OpenAICompatBackend:
        return OpenAICompatBackend(source, params, secrets)

    return factory


async def _events(response: aiohttp.ClientResponse, reader: StreamReader) -> AsyncIterator[Chunk]:
    """The chunks of an SSE body, up to ``[DONE]`` (then the body is read to its end)."""
    async for data in sse_data(response.content.iter_any()):
        for chunk in reader.feed(data):
            yield chunk
        if reader.done:
            await _drain(response)
            return


async def _drain(response: aiohttp.ClientResponse) -> None:
    """Read the body to its end so aiohttp returns the connection to the pool.

    ``[DONE]`` arrives just before the end of the chunked body; releasing the
    response before reading that end makes aiohttp close a reusable connection.
    """
    with contextlib.suppress(Exception):
        async with asyncio.timeout(_DRAIN_TIMEOUT_S):
            await response.content.read()
