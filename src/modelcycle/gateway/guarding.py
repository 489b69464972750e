"""The guard stage of the request path: a deployment's policy on its input and its output.

Order: auth -> deployment -> guard(in) -> limits -> route -> backend -> guard(out) -> event.
The input is checked *before* the budgets are charged, because the token
estimate, the response cache key and a shadow copy must all see the request
the model will see (redacted); its verdict is applied *after* them, so a
refused request is charged like any other (its tokens are given back: no
model ran) and a request over a limit is a 429 whatever it says.

Input: every chat message whose role a rule covers (``CompiledPolicy.roles``;
user and tool messages by default), each completions prompt, each embeddings
input. ``block`` refuses the request with ``GuardBlocked`` (400,
``content_filter``); ``redact`` rewrites the texts (chat content parts become
one string); ``flag`` only records. Token-id prompts cannot be read, so a
deployment with input rules refuses them.

Output, whole answers: each choice is checked; ``redact`` rewrites its text,
``block`` empties it with ``finish_reason`` ``content_filter`` (Azure OpenAI's
convention for a filtered completion). A rewritten or emptied choice carries
no log-probabilities (they hold the raw tokens). Streams: see
``GuardedChunks`` and ``modelcycle.guard.stream``.

A deployment without a policy pays one attribute test; the policy's
detectors run on the event loop, or in a worker thread for texts over
``THREAD_CHARS``. Tool-call arguments are not checked.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import replace
from typing import Any, Protocol

from modelcycle.backends import Chunk, Completion, Message, Usage
from modelcycle.errors import GuardBlocked, GuardUnavailable, InvalidInput, ModelcycleError
from modelcycle.gateway.choices import Choices
from modelcycle.gateway.ratelimit_openai import estimate_tokens
from modelcycle.gateway.schemas import InferenceRequest
from modelcycle.guard.engine import DETECTOR_ERROR, CompiledPolicy
from modelcycle.guard.stream import Release, StreamGuard
from modelcycle.guard.types import Action, Finding, GuardDecision, Stage, strongest

THREAD_CHARS = 32_768
"""Texts longer than this (all of a request's together) are checked off the event loop."""
CONTENT_FILTER = "content_filter"

_HINTS = {
    "injection": "instructions that try to override the model's own instructions",
    "pii": "personal data",
    "secrets": "credentials, keys or tokens",
    "toxicity": "abusive language",
    "topics": "the topics this deployment does not discuss",
    "max_size": "so much text",
}


Detokenizer = Callable[[Sequence[int]], Awaitable[str]]
"""Token ids -> text, by the tokenizer of the model the deployment routes to first."""


class PolicySource(Protocol):
    """Where the gateway finds a deployment's compiled guard policy (``GuardPolicies``).

    ``policy`` is awaited on every request to a guarded deployment: it must answer
    from a cache when it can and keep any database read off the event loop.
    """

    async def policy(self, project_id: int, name: str) -> CompiledPolicy:
        """The policy ``name`` of the project; any ``ModelcycleError`` when it cannot be had."""
        ...


async def request_guard(
    source: PolicySource | None, project_id: int, deployment: str, name: str
) -> RequestGuard:
    """The guard of one request to ``deployment``, whose spec names policy ``name``.

    Fails closed: a policy that cannot be loaded refuses the request (503).
    """
    if source is None:
        raise GuardUnavailable(
            f"deployment '{deployment}' names guard policy '{name}' but this server has no "
            "guard policies configured; ask the operator"
        )
    try:
        policy = await source.policy(project_id, name)
    except ModelcycleError as exc:
        raise GuardUnavailable(
            f"the guard policy '{name}' of deployment '{deployment}' cannot be loaded "
            f"({exc.message}); its requests are refused until it can: create the policy or "
            "change the deployment's guard"
        ) from exc
    return RequestGuard(policy, deployment)


class RequestGuard:
    """One request's guard: its policy, what it found in each stage, the time it took."""

    def __init__(self, policy: CompiledPolicy, deployment: str):
        self.policy = policy
        self.deployment = deployment
        self.found: list[tuple[Stage, int, Finding]] = []
        """(stage, message/prompt/input or choice index, finding)."""
        self.seconds = 0.0
        self._stream: StreamGuard | None = None
        self._refusal: GuardBlocked | None = None

    # -- input ---------------------------------------------------------------------------

    async def check_input(
        self, request: InferenceRequest, detokenize: Detokenizer | None = None
    ) -> InferenceRequest:
        """The request the model may see: redacted; ``refusal()`` says whether it is refused.

        Prompts sent as token ids (lm-evaluation-harness does) are checked as the text
        ``detokenize`` turns them into; they cannot be rewritten, so one holding text
        the policy redacts is refused with a 400 asking for text instead.
        """
        if not self.policy.active("input"):
            return request
        texts, as_ids = await _inputs(request, self.policy.roles("input"), detokenize)
        decisions = await self._check([(role, text) for _, role, text in texts], "input")
        changes: dict[int, str] = {}
        blocking: list[Finding] = []
        for (index, _, text), decision in zip(texts, decisions, strict=True):
            self.found.extend(("input", index, finding) for finding in decision.findings)
            blocking.extend(f for f in decision.findings if f.action == "block")
            if decision.redacted_text != text:
                if index in as_ids and not blocking:
                    raise _ids_to_redact(request, decision)
                changes[index] = decision.redacted_text
        if blocking:
            self._refusal = _refusal(self.deployment, blocking, _param(request))
        return _redacted(request, changes) if changes else request

    def refusal(self) -> GuardBlocked | None:
        """The error refusing the request, when an input rule blocked it."""
        return self._refusal

    # -- output --------------------------------------------------------------------------

    async def check_output(self, choices: Choices) -> Choices:
        """The answers the caller may see: redacted, or emptied when blocked."""
        if not self.policy.active("output"):
            return choices
        texts = [(None, item.completion.text) for item in choices.items]
        decisions = await self._check(texts, "output")
        items = []
        for item, decision in zip(choices.items, decisions, strict=True):
            self.found.extend(("output", item.index, finding) for finding in decision.findings)
            items.append(replace(item, completion=_guarded(item.completion, decision)))
        return Choices(tuple(items), choices.usage)

    def output_stream(self, request: InferenceRequest, final: int) -> GuardedChunks | None:
        """The filter of a streamed answer; ``None`` when the policy has no output rule."""
        if not self.policy.active("output"):
            return None
        self._stream = StreamGuard(self.policy)
        return GuardedChunks(self._stream, request, final)

    # -- recording -----------------------------------------------------------------------

    def findings(self) -> tuple[dict[str, Any], ...]:
        """Every finding as recorded on the trace: where, what, what it led to; no text."""
        found = list(self.found)
        if self._stream is not None:
            found.extend(("output", index, finding) for index, finding in self._stream.findings)
        return tuple({"stage": s, "index": i, **f.as_dict()} for s, i, f in found)

    def action(self) -> Action:
        """The strongest action over both stages (``allow`` when nothing was found)."""
        actions: list[Action] = [f.action for _, _, f in self.found]
        if self._stream is not None:
            actions.extend(f.action for _, f in self._stream.findings)
        return strongest(actions)

    def milliseconds(self) -> float:
        """Time spent in detectors, both stages."""
        stream = self._stream.seconds if self._stream is not None else 0.0
        return (self.seconds + stream) * 1000

    async def _check(
        self, texts: Sequence[tuple[str | None, str]], stage: Stage
    ) -> list[GuardDecision]:
        def run() -> tuple[list[GuardDecision], float]:
            started = time.perf_counter()
            policy = self.policy
            found = [policy.check(text, stage, role=role) for role, text in texts]
            return found, time.perf_counter() - started

        if sum(len(text) for _, text in texts) > THREAD_CHARS:
            decisions, seconds = await asyncio.to_thread(run)
        else:
            decisions, seconds = run()
        self.seconds += seconds
        return decisions


class GuardedChunks:
    """A stream's chunks through the output policy: held back, redacted, or cut short.

    Each upstream chunk goes in (``push``); out come the chunks the caller may
    see, each an upstream chunk released whole (text rewritten, log-probabilities
    dropped, where a span was redacted). A blocked choice ends with a chunk of
    ``finish_reason`` ``content_filter``; when it is the last choice the stream
    stops reading (``stopped``) and that chunk carries the usage, estimated.
    """

    def __init__(self, guard: StreamGuard, request: InferenceRequest, final: int):
        self._guard = guard
        self._request = request
        self._final = final
        self._pending: dict[int, deque[Chunk]] = {}
        self._read = 0
        self.stopped = False
        """The last choice was blocked: read no more from upstream."""

    async def relay(self, upstream: AsyncIterator[Chunk]) -> AsyncGenerator[Chunk, None]:
        """The chunks of ``upstream`` as the caller may see them."""
        async for chunk in upstream:
            for out in self.push(chunk):
                yield out
            if self.stopped:
                return
        for out in self.flush():
            yield out

    def push(self, chunk: Chunk) -> list[Chunk]:
        """The chunks to send now for ``chunk`` (often none: held back)."""
        index = chunk.index
        self._read += 1
        if self._guard.blocked(index):
            return []  # the rest of a blocked choice is read (later choices follow) and dropped
        pending = self._pending.setdefault(index, deque())
        pending.append(chunk)
        out = self._emit(index, self._guard.feed(index, chunk.text), chunk.usage)
        if chunk.finish_reason is not None and not self._guard.blocked(index):
            out.extend(self._emit(index, self._guard.finish(index), chunk.usage))
        return out

    def flush(self) -> list[Chunk]:
        """The upstream ended without finishing some choice: release what they hold."""
        out: list[Chunk] = []
        for index in self._guard.open_choices():
            out.extend(self._emit(index, self._guard.finish(index), None))
        return out

    def _emit(self, index: int, release: Release, usage: Usage | None) -> list[Chunk]:
        pending = self._pending.get(index)
        if release.blocked:
            self._pending.pop(index, None)
            if index != self._final:
                return [Chunk("", CONTENT_FILTER, index=index)]
            self.stopped = True
            usage = usage or Usage(estimate_tokens(self._request), self._read)
            return [Chunk("", CONTENT_FILTER, usage, index=index)]
        out = []
        for text, changed in zip(release.pieces, release.changed, strict=True):
            assert pending is not None
            chunk = pending.popleft()
            out.append(replace(chunk, text=text, logprobs=None) if changed else chunk)
        return out


async def _inputs(
    request: InferenceRequest, roles: frozenset[str], detokenize: Detokenizer | None
) -> tuple[list[tuple[int, str | None, str]], set[int]]:
    """Every input the policy checks, as (index, chat role or ``None``, text).

    Also the indexes of prompts that came as token ids (checked as their text).
    """
    if request.messages is not None:
        texts: list[tuple[int, str | None, str]] = [
            (i, m.role, m.content) for i, m in enumerate(request.messages) if m.role in roles
        ]
        return texts, set()
    prompts = request.prompts if request.prompts is not None else (request.prompt or "",)
    found: list[tuple[int, str | None, str]] = []
    as_ids: set[int] = set()
    for index, prompt in enumerate(prompts):
        if isinstance(prompt, str):
            found.append((index, None, prompt))
            continue
        if detokenize is None:
            param = _param(request)
            raise InvalidInput(
                f"deployment '{request.deployment}' checks its inputs with a guard policy, "
                f"and its model cannot turn token ids back into text; send the {param} as text",
                param=param,
            )
        found.append((index, None, await detokenize(prompt)))
        as_ids.add(index)
    return found, as_ids


def _ids_to_redact(request: InferenceRequest, decision: GuardDecision) -> InvalidInput:
    kinds = ", ".join(dict.fromkeys(f.type for f in decision.findings if f.action == "redact"))
    param = _param(request)
    return InvalidInput(
        f"a {param} sent as token ids holds text the guard policy of deployment "
        f"'{request.deployment}' redacts ({kinds}); token ids cannot be rewritten, so send "
        f"the {param} as text",
        param=param,
        code="content_filter",
    )


def _param(request: InferenceRequest) -> str:
    if request.messages is not None:
        return "messages"
    return "input" if request.endpoint == "embeddings" else "prompt"


def _redacted(request: InferenceRequest, changes: dict[int, str]) -> InferenceRequest:
    """``request`` with the texts at ``changes``' indexes replaced, everywhere it carries them."""
    if request.messages is not None:
        messages = tuple(
            Message(m.role, changes[i]) if i in changes else m
            for i, m in enumerate(request.messages)
        )
        params = request.params
        passed = params.passthrough or {}
        raw = passed.get("messages")
        if isinstance(raw, list):  # sent as is to upstreams: rewritten there too
            rewritten = [
                {**m, "content": changes[i]} if i in changes and isinstance(m, dict) else m
                for i, m in enumerate(raw)
            ]
            params = replace(params, passthrough={**passed, "messages": rewritten})
        return replace(request, messages=messages, params=params)
    if request.prompts is not None:
        prompts = tuple(changes.get(i, p) for i, p in enumerate(request.prompts))
        first = prompts[0]
        prompt = first if request.prompt is not None and isinstance(first, str) else request.prompt
        return replace(request, prompts=prompts, prompt=prompt)
    return replace(request, prompt=changes.get(0, request.prompt))


def _guarded(completion: Completion, decision: GuardDecision) -> Completion:
    if decision.blocked:
        return replace(
            completion, text="", finish_reason=CONTENT_FILTER, logprobs=None, tool_calls=None
        )
    if decision.redacted_text != completion.text:
        return replace(completion, text=decision.redacted_text, logprobs=None)
    return completion


def _refusal(deployment: str, blocking: list[Finding], param: str) -> GuardBlocked:
    """The refusal's message: the deployment and the kinds found, never the text."""
    kinds = ", ".join(dict.fromkeys(f.type for f in blocking))
    checked = [f for f in blocking if f.type != DETECTOR_ERROR]
    if not checked:
        failed = ", ".join(dict.fromkeys(f.detector for f in blocking))
        return GuardBlocked(
            f"The request could not be checked by the guard policy of deployment "
            f"'{deployment}' (detector {failed} failed) and the policy refuses what it "
            "cannot check; try again, or ask the deployment's operator.",
            param=param,
        )
    hints = dict.fromkeys(_HINTS.get(f.detector, "the content it refuses") for f in checked)
    return GuardBlocked(
        f"The request was refused by the guard policy of deployment '{deployment}' ({kinds}). "
        f"Rephrase it without {' or '.join(hints)}.",
        param=param,
    )
