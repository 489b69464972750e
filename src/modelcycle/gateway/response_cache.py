"""The exact-match response cache of a deployment (opt-in: ``cache.ttl_s`` > 0).

Key: a SHA-256 of the project id, the deployment, the version that would serve
(model, number, source and params), and the normalised request: endpoint,
messages or prompt, sampling parameters and every other field an upstream
would receive, except ``user`` and the streaming options. The project id in
the key means a key of one project can never read another project's answer.

Only deterministic-enough requests are cached: ``temperature`` 0 (the
request's, else the version's default) or an explicit ``seed``; and only
chat or completions requests for one answer to one prompt without
log-probabilities. Answers that call tools are not stored. A cached answer
is served whole or replayed as a stream of word-sized chunks, so streaming
clients see an ordinary SSE stream.

In-process: an LRU bounded by entries and bytes. With Redis
(``ratelimit_redis.RedisStore``): ``SET ... PX``, shared by every gateway
process, written and read in the rate limiter's round trip; a Redis failure is
a miss, never an error.
Expiry is checked against the gateway's clock as well, so tests can move time.
"""

from __future__ import annotations

import hashlib
import re
from collections import OrderedDict
from collections.abc import AsyncIterator, Sequence
from typing import Any, Protocol

import orjson
from pydantic import BaseModel

from modelcycle.backends import Backend, Chunk, Completion, GenerationParams, Message, Usage
from modelcycle.deploy import ResolvedVersion
from modelcycle.gateway.schemas import InferenceRequest

NOT_IN_KEY = frozenset({"user", "stream", "stream_options"})
"""Request fields that never change the answer."""

_PIECES = re.compile(r"\s*\S+|\s+$")


class ResponseCache(Protocol):
    """Where cached answers live."""

    async def get(self, key: str, now: float) -> Completion | None:
        """The answer stored under ``key`` if it has not expired."""
        ...

    async def put(self, key: str, completion: Completion, ttl_s: float, now: float) -> None:
        """Store an answer for ``ttl_s`` seconds."""
        ...

    def location(self, key: str) -> str:
        """Where ``key`` is stored (the Redis key a rate-limit round trip may read)."""
        ...

    async def flush(self) -> None:
        """Finish writes in progress."""
        ...

    async def aclose(self) -> None:
        """Release connections."""
        ...


def cacheable(request: InferenceRequest, version: ResolvedVersion) -> bool:
    """Whether the answer is deterministic enough to reuse (temperature 0 or a seed).

    Only one answer to one prompt, without log-probabilities, is cached.
    """
    params = request.params
    if (
        request.endpoint == "embeddings"
        or request.n != 1
        or request.prompts is not None
        or request.features
        or params.logprobs is not None
    ):
        return False
    if params.seed is not None:
        return True
    temperature = params.temperature
    if temperature is None:
        default = version.params.get("temperature")
        temperature = default if isinstance(default, int | float) else None
    return temperature == 0


def cache_key(
    project_id: int, deployment: str, version: ResolvedVersion, request: InferenceRequest
) -> str:
    """The cache key of a request served by ``version`` (see the module docstring).

    It starts with the project id as a Redis hash tag (``{12}:``) so that the
    entry lives in the same Redis Cluster slot as the project's rate limits.
    """
    params = request.params
    extra = {
        name: value
        for name, value in (params.passthrough or {}).items()
        if name not in NOT_IN_KEY and name != "messages"
    }
    raw_messages = (params.passthrough or {}).get("messages")
    material = [
        project_id,
        deployment,
        version.model,
        version.version,
        version.source,
        version.params,
        request.endpoint,
        raw_messages or [[m.role, m.content] for m in request.messages or ()],
        request.prompt,
        [params.max_tokens, params.temperature, params.top_p, params.stop, params.seed],
        [params.echo, params.response_format],
        extra,
    ]
    encoded = orjson.dumps(material, option=orjson.OPT_SORT_KEYS, default=_plain)
    return f"{{{project_id}}}:{hashlib.sha256(encoded).hexdigest()}"


def _plain(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    return str(value)


def encode(completion: Completion, expires_at: float) -> bytes:
    """A stored answer."""
    usage = completion.usage
    fields = [completion.text, completion.finish_reason, usage.prompt_tokens]
    return orjson.dumps([*fields, usage.completion_tokens, expires_at])


def decode(payload: bytes, now: float) -> Completion | None:
    """The answer in ``payload``, or ``None`` when it has expired."""
    text, finish, prompt_tokens, completion_tokens, expires_at = orjson.loads(payload)
    if expires_at <= now:
        return None
    return Completion(text, finish, Usage(prompt_tokens, completion_tokens))


class MemoryCache:
    """An LRU of answers in this process, bounded by entries and bytes."""

    def __init__(self, *, max_entries: int = 10_000, max_bytes: int = 64 * 1024 * 1024):
        self.max_entries, self.max_bytes = max_entries, max_bytes
        self._entries: OrderedDict[str, bytes] = OrderedDict()
        self.bytes = 0

    def __len__(self) -> int:
        return len(self._entries)

    async def get(self, key: str, now: float) -> Completion | None:
        """The live answer under ``key`` (an expired one is dropped)."""
        payload = self._entries.get(key)
        if payload is None:
            return None
        found = decode(payload, now)
        if found is None:
            self._drop(key)
            return None
        self._entries.move_to_end(key)
        return found

    async def put(self, key: str, completion: Completion, ttl_s: float, now: float) -> None:
        """Store, evicting the least recently used answers past the bounds."""
        payload = encode(completion, now + ttl_s)
        if len(payload) > self.max_bytes:
            return
        self._drop(key)
        self._entries[key] = payload
        self.bytes += len(payload)
        while len(self._entries) > self.max_entries or self.bytes > self.max_bytes:
            self._drop(next(iter(self._entries)))

    def location(self, key: str) -> str:
        """The key itself (nothing reads it elsewhere)."""
        return key

    async def flush(self) -> None:
        """Writes are immediate."""

    async def aclose(self) -> None:
        """Nothing to release."""

    def _drop(self, key: str) -> None:
        payload = self._entries.pop(key, None)
        if payload is not None:
            self.bytes -= len(payload)


class ReplayBackend:
    """Serves one cached answer, whole or as a stream of word-sized chunks."""

    def __init__(self, completion: Completion):
        self.completion = completion

    async def chat(self, messages: Sequence[Message], params: GenerationParams) -> Completion:
        """The cached answer."""
        return self.completion

    async def complete(self, prompt: str, params: GenerationParams) -> Completion:
        """The cached answer."""
        return self.completion

    def stream_chat(
        self, messages: Sequence[Message], params: GenerationParams
    ) -> AsyncIterator[Chunk]:
        """The cached answer, piece by piece."""
        return self._replay()

    def stream_complete(self, prompt: str, params: GenerationParams) -> AsyncIterator[Chunk]:
        """The cached answer, piece by piece."""
        return self._replay()

    async def close(self) -> None:
        """Nothing to release."""

    async def _replay(self) -> AsyncIterator[Chunk]:
        for piece in _PIECES.findall(self.completion.text):
            yield Chunk(piece)
        yield Chunk("", self.completion.finish_reason, self.completion.usage)


class StoringBackend:
    """Calls ``inner`` and stores a complete answer (before its last chunk goes out)."""

    def __init__(
        self, inner: Backend, cache: ResponseCache, key: str, ttl_s: float, now: float
    ) -> None:
        self._inner, self._cache, self._key = inner, cache, key
        self._ttl, self._now = ttl_s, now

    async def chat(self, messages: Sequence[Message], params: GenerationParams) -> Completion:
        """The backend's answer, stored."""
        return await self._store(await self._inner.chat(messages, params))

    async def complete(self, prompt: str, params: GenerationParams) -> Completion:
        """The backend's answer, stored."""
        return await self._store(await self._inner.complete(prompt, params))

    def stream_chat(
        self, messages: Sequence[Message], params: GenerationParams
    ) -> AsyncIterator[Chunk]:
        """The backend's stream; the whole answer is stored when it finishes."""
        return self._record(self._inner.stream_chat(messages, params))

    def stream_complete(self, prompt: str, params: GenerationParams) -> AsyncIterator[Chunk]:
        """The backend's stream; the whole answer is stored when it finishes."""
        return self._record(self._inner.stream_complete(prompt, params))

    async def close(self) -> None:
        """The inner backend is shared: it is closed by the pool, not here."""

    def __getattr__(self, name: str) -> Any:
        # Anything else (capabilities, tokenizers) is the inner backend's.
        return getattr(self._inner, name)

    async def _store(self, completion: Completion) -> Completion:
        if getattr(completion, "tool_calls", None) is None:
            await self._cache.put(self._key, completion, self._ttl, self._now)
        return completion

    async def _record(self, chunks: AsyncIterator[Chunk]) -> AsyncIterator[Chunk]:
        texts: list[str] = []
        tools = False
        try:
            async for chunk in chunks:
                texts.append(chunk.text)
                tools = tools or getattr(chunk, "tool_calls", None) is not None
                if chunk.finish_reason is not None and not tools:
                    usage = chunk.usage or Usage(0, len(texts))
                    whole = Completion("".join(texts), chunk.finish_reason, usage)
                    await self._cache.put(self._key, whole, self._ttl, self._now)
                yield chunk
        finally:
            close = getattr(chunks, "aclose", None)
            if close is not None:
                await close()
