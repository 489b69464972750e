"""Calling targets the way production traffic does: through the gateway, in process.

A target is a deployment name (its routes, guard, limits, cache and traces, as
for any client) or a version, ``NAME@VERSION`` / ``NAME@alias``, served by a
one-route deployment built for the call (no guard, no limits). Every call is
traced like any other request, with the run in ``X-Modelcycle-Metadata``-style
metadata, so an evaluation's answers link to their traces.

Scorers run in worker threads; a scorer that needs a model's answer (the LLM
judge) calls :func:`current_caller` there and gets a synchronous bridge onto
the run's event loop.
"""

from __future__ import annotations

import asyncio
import contextvars
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from modelcycle.access import Principal
from modelcycle.backends import GenerationParams, Message
from modelcycle.deploy import Deployment, single_route
from modelcycle.errors import InvalidInput, ModelcycleError, RateLimited
from modelcycle.gateway import Gateway
from modelcycle.gateway.schemas import CallContext, InferenceRequest

EVAL_RUN_MARKER = "eval_run"
"""Trace metadata of an evaluation run's calls (the run id): not production traffic."""


@dataclass(frozen=True, slots=True)
class Answer:
    """A target's answer to one sample, or the error that stopped it."""

    output: str | None
    error: str | None = None
    trace_id: str | None = None
    model: str | None = None
    version: int | None = None
    latency_ms: float | None = None
    tokens_in: int | None = None
    tokens_out: int | None = None
    finish_reason: str | None = None


GUARD_BLOCK_CODE = "content_filter"
"""The error code of a request a deployment's guard policy refused (``GuardBlocked``)."""


def is_guard_block(error: str | None) -> bool:
    """Whether a failed answer's error (``code: message``) is a guard policy's refusal."""
    return error is not None and error.startswith(f"{GUARD_BLOCK_CODE}:")


def is_version_target(target: str) -> bool:
    """``NAME@VERSION`` / ``NAME@alias`` address a version; a bare name a deployment."""
    return "@" in target


def _messages(input: Mapping[str, Any]) -> tuple[tuple[Message, ...] | None, str | None]:
    messages = input.get("messages")
    if isinstance(messages, list):
        return tuple(
            Message(str(m.get("role", "user")), str(m.get("content") or "")) for m in messages
        ), None
    prompt = input.get("prompt")
    if isinstance(prompt, str):
        return None, prompt
    raise InvalidInput("a sample's input needs 'messages' (chat) or 'prompt' (completion)")


class TargetCaller:
    """Sends samples to targets through ``gateway`` as ``principal``."""

    def __init__(
        self,
        gateway: Gateway,
        principal: Principal,
        *,
        metadata: Mapping[str, Any] | None = None,
        rate_limit_retries: int = 8,
    ):
        self.gateway = gateway
        self.principal = principal
        self.metadata = dict(metadata or {})
        self.rate_limit_retries = rate_limit_retries
        self._ad_hoc: dict[str, Deployment] = {}

    async def answer(
        self,
        target: str,
        input: Mapping[str, Any],
        params: GenerationParams | None = None,
        *,
        user: str | None = None,
    ) -> Answer:
        """One whole answer (never raises for a failed call: the error is in the answer)."""
        messages, prompt = _messages(input)
        deployment = None
        if is_version_target(target):
            deployment = self._ad_hoc.get(target)
            if deployment is None:
                deployment = self._ad_hoc[target] = single_route(target, actor="evaluation")
        request = InferenceRequest(
            endpoint="chat.completions" if messages is not None else "completions",
            deployment=target,
            messages=messages,
            prompt=prompt,
            params=params or GenerationParams(),
            user=user,
            stream=False,
            context=CallContext(user=user, metadata=self.metadata or None),
        )
        started = time.perf_counter()
        for attempt in range(self.rate_limit_retries + 1):
            started = time.perf_counter()
            try:
                served = await self.gateway.generate(self.principal, request, deployment=deployment)
                break
            except RateLimited as exc:
                # A deployment's limits hold for evaluations too: wait as told, then retry.
                if attempt == self.rate_limit_retries:
                    return Answer(None, error=_described(exc), latency_ms=_ms(started))
                await asyncio.sleep(_retry_after_s(exc, attempt))
            except ModelcycleError as exc:
                return Answer(None, error=_described(exc), latency_ms=_ms(started))
        completion = served.completion
        usage = served.usage or completion.usage
        return Answer(
            output=completion.text,
            trace_id=served.trace_id,
            model=served.model,
            version=served.version,
            latency_ms=_ms(started),
            tokens_in=usage.prompt_tokens,
            tokens_out=usage.completion_tokens,
            finish_reason=completion.finish_reason,
        )


def _described(exc: ModelcycleError) -> str:
    return f"{exc.code or exc.error_type}: {exc.message}"


def _retry_after_s(exc: RateLimited, attempt: int) -> float:
    """The error's ``Retry-After`` (bounded), else exponential backoff from 0.1 s."""
    try:
        told = float(exc.headers.get("Retry-After", ""))
    except ValueError:
        told = 0.0
    return min(max(told, 0.1 * 2.0**attempt), 30.0)


def _ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000


class SyncCaller:
    """A blocking bridge for scorers in worker threads onto the run's event loop."""

    def __init__(self, caller: TargetCaller, loop: asyncio.AbstractEventLoop):
        self._caller, self._loop = caller, loop

    def complete(
        self,
        target: str,
        messages: Sequence[Mapping[str, Any]],
        params: GenerationParams | None = None,
        *,
        timeout_s: float = 120.0,
    ) -> Answer:
        """``target``'s answer to chat ``messages`` (call from a thread, not the loop)."""
        future = asyncio.run_coroutine_threadsafe(
            self._caller.answer(target, {"messages": list(messages)}, params), self._loop
        )
        try:
            return future.result(timeout=timeout_s)
        except TimeoutError:
            future.cancel()  # the call must not keep running on the loop after we gave up
            return Answer(None, error=f"timeout: {target} did not answer in {timeout_s:g} s")


_current: contextvars.ContextVar[SyncCaller | None] = contextvars.ContextVar(
    "modelcycle_eval_caller", default=None
)


@contextmanager
def calling(caller: SyncCaller) -> Iterator[None]:
    """Make ``caller`` what :func:`current_caller` returns in this context.

    Threads started with ``asyncio.to_thread`` from it see it too: they copy the context.
    """
    token = _current.set(caller)
    try:
        yield
    finally:
        _current.reset(token)


def current_caller() -> SyncCaller | None:
    """The caller of the run or online evaluation in progress; ``None`` outside one."""
    return _current.get()
