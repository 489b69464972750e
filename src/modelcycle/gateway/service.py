"""The request path of ``/v1``: deployment -> route -> version -> backend -> fallbacks -> event.

Every request ends with exactly one ``RequestFinished`` event, whether it was
served, failed or cancelled by the client; a shadow copy emits its own event
with ``route="shadow"``.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

from modelcycle import events
from modelcycle.access import Principal
from modelcycle.backends import Backend, BackendPool, Chunk, Completion, Usage
from modelcycle.backends.base import CallScope, call_scope
from modelcycle.backends.capabilities import Tokenizing
from modelcycle.deploy import Deployment, Deployments, ResolvedVersion
from modelcycle.errors import (
    InvalidInput,
    ModelcycleError,
    RateLimited,
    UpstreamError,
    UpstreamTimeout,
)
from modelcycle.gateway.cache import Resolver
from modelcycle.gateway.choices import Choice, call_whole, count, open_stream, requires
from modelcycle.gateway.guarding import Detokenizer, PolicySource, RequestGuard, request_guard
from modelcycle.gateway.limits import Limits, Ticket
from modelcycle.gateway.routing import Attempt, RouteKind, plan
from modelcycle.gateway.schemas import InferenceRequest
from modelcycle.plugins import EventBus
from modelcycle.store.tables import utcnow

log = logging.getLogger(__name__)

T = TypeVar("T")
Call = Callable[[Backend, InferenceRequest], Awaitable[T]]

CANCELLED = 499  # the client went away (the nginx convention)


@dataclass
class _Trace:
    """Bookkeeping of one request, turned into its ``RequestFinished`` event."""

    request_id: str
    principal: Principal
    request: InferenceRequest
    started: float
    attempts: int = 0
    served: ResolvedVersion | None = None
    route: RouteKind | None = None
    ttft_ms: float | None = None
    ticket: Ticket | None = None
    """Admission (limits, cache, breakers) of a client request; ``None`` for shadow copies."""
    tried: ResolvedVersion | None = None
    """The last version called, whether it answered or not (a failed request's trace
    is counted against it, so error rates per version include total failures)."""
    tried_route: RouteKind | None = None
    guard: RequestGuard | None = None
    """The deployment's guard policy at work on this request; ``None``: it has none."""


@dataclass(frozen=True, slots=True)
class Served:
    """A whole answer and who served it."""

    request_id: str
    created: int
    deployment: str
    model: str
    version: int
    route: RouteKind
    completion: Completion
    headers: dict[str, str] = field(default_factory=dict)
    """``x-ratelimit-*`` and ``X-Modelcycle-Cache`` headers of the answer."""
    choices: tuple[Choice, ...] = ()
    """Every answer (``n`` > 1, several prompts), ``completion`` first; empty: just it."""
    usage: Usage | None = None
    """Of every answer together (prompts counted once); ``None``: ``completion.usage``."""
    trace_id: str = ""
    """The trace the request is recorded under (``X-Modelcycle-Trace-Id``)."""


class ServedStream:
    """A stream whose first chunk has arrived; iterate ``chunks()`` once."""

    def __init__(
        self,
        gateway: Gateway,
        trace: _Trace,
        iterator: AsyncIterator[Chunk],
        first: Chunk,
        idle_timeout_s: float,
    ):
        assert trace.served is not None
        assert trace.route is not None
        self.request_id = trace.request_id
        self.trace_id = trace.request.context.trace_id or trace.request_id
        self.created = int(time.time())
        self.deployment = trace.request.deployment
        self.model, self.version = trace.served.model, trace.served.version
        self.route: RouteKind = trace.route
        self.headers: dict[str, str] = trace.ticket.headers if trace.ticket else {}
        self._gateway, self._trace = gateway, trace
        self._iterator, self._first, self._idle = iterator, first, idle_timeout_s
        self._final = count(trace.request) - 1  # the index of the last choice to finish
        self._last, self._read = first, 1  # the newest chunk from upstream, chunks read

    async def chunks(self) -> AsyncGenerator[Chunk, None]:
        """The chunks, the first included; a failure mid-way raises ``UpstreamError``.

        ``timeout_s`` bounds each wait for the next chunk. With an output guard the
        chunks are those it releases (``guarding.GuardedChunks``).
        """
        trace = self._trace
        guarded = trace.guard.output_stream(trace.request, self._final) if trace.guard else None
        upstream = self._upstream()
        relayed = upstream if guarded is None else guarded.relay(upstream)
        sent = self._first
        outcome: BaseException | None = None
        texts: list[str] = []  # the recorded answer (first choice), as sent
        try:
            async for sent in relayed:
                if sent.index == 0:
                    texts.append(sent.text)
                yield sent
        except (GeneratorExit, asyncio.CancelledError) as exc:
            outcome = exc
            raise
        except ModelcycleError as exc:
            outcome = exc
            raise
        except Exception as exc:
            outcome = UpstreamError(f"the stream broke: {type(exc).__name__}: {exc}")
            raise outcome from exc
        finally:
            await relayed.aclose()
            await upstream.aclose()
            await _aclose(self._iterator)
            last = self._last
            self._gateway.finish(
                trace,
                outcome=outcome,
                usage=sent.usage or last.usage or Usage(0, self._read),
                finish_reason=sent.finish_reason or last.finish_reason,
                output="".join(texts),
            )

    async def _upstream(self) -> AsyncGenerator[Chunk, None]:
        """The backend's chunks, the first included, until the last choice finishes."""
        last = self._first
        yield last
        while last.finish_reason is None or last.index < self._final:
            try:
                async with asyncio.timeout(self._idle):
                    last = await anext(self._iterator)
            except StopAsyncIteration:
                return
            except TimeoutError:
                raise UpstreamTimeout(
                    f"no output for {self._idle:g} s; the stream was stopped"
                ) from None
            self._last = last
            self._read += 1
            yield last


class Gateway:
    """Serves OpenAI-style requests for deployments; see the module docstring."""

    def __init__(
        self,
        deployments: Deployments,
        resolver: Resolver,
        backends: BackendPool,
        bus: EventBus,
        *,
        rng: random.Random | None = None,
        retry_backoff_s: float = 0.05,
        limits: Limits | None = None,
        guard: PolicySource | None = None,
    ):
        self._deployments = deployments
        self.guard = guard
        """Where deployments' guard policies come from (``None``: none configured)."""
        self.limits = limits or Limits()
        self.resolver = resolver
        self.backends = backends
        self._bus = bus
        self.rng = rng or random.Random()  # noqa: S311 - traffic splitting, not security
        self._backoff = retry_backoff_s
        self._tasks: set[asyncio.Task[None]] = set()
        # Request ids are not secrets: a seeded generator, no system call per request.
        self._id_bits = random.Random().getrandbits  # noqa: S311

    async def models(self, principal: Principal) -> list[Deployment]:
        """The deployments the key may call (every deployment of its project)."""
        return await asyncio.to_thread(self._deployments.names, principal.project_id)

    async def generate(
        self,
        principal: Principal,
        request: InferenceRequest,
        *,
        deployment: Deployment | None = None,
    ) -> Served:
        """A whole answer, from the chosen route or, when it fails, a fallback.

        ``deployment``: serve with this configuration instead of the stored one
        named by ``request.deployment`` (an evaluation of a version that no
        deployment serves: one route to it, no guard, no limits).
        """
        trace = self._start(principal, request)
        try:
            if deployment is None:
                deployment = await self.resolver.deployment(
                    principal.project_id, request.deployment
                )
            ticket = await self._admit(trace, deployment)
            choices = await self._attempts(trace, deployment, call_whole)
            if trace.guard is not None:
                choices = await trace.guard.check_output(choices)
        except BaseException as exc:
            self.finish(trace, outcome=exc)
            raise
        completion = choices.first
        self.finish(
            trace,
            usage=choices.usage,
            finish_reason=completion.finish_reason,
            output=_output(choices.items) if len(choices.items) > 1 else completion.text,
        )
        self._shadow(trace, deployment)
        assert trace.served is not None
        assert trace.route is not None
        return Served(
            request_id=trace.request_id,
            created=int(time.time()),
            deployment=deployment.name,
            model=trace.served.model,
            version=trace.served.version,
            route=trace.route,
            completion=completion,
            headers=ticket.headers,
            choices=choices.items,
            usage=choices.usage,
            trace_id=request.context.trace_id or trace.request_id,
        )

    async def stream(
        self,
        principal: Principal,
        request: InferenceRequest,
        *,
        deployment: Deployment | None = None,
    ) -> ServedStream:
        """A stream whose first chunk has arrived (routes that fail before it fall back).

        ``deployment``: as for :meth:`generate` (a version that no deployment serves).
        """
        trace = self._start(principal, request)
        try:
            if deployment is None:
                deployment = await self.resolver.deployment(
                    principal.project_id, request.deployment
                )
            await self._admit(trace, deployment)
            several = request.n > 1 or request.prompts is not None or request.params.echo
            opener = open_stream if several else _open_stream
            iterator, first = await self._attempts(trace, deployment, opener)
        except BaseException as exc:
            self.finish(trace, outcome=exc)
            raise
        trace.ttft_ms = (time.perf_counter() - trace.started) * 1000
        self._shadow(trace, deployment)
        return ServedStream(self, trace, iterator, first, deployment.spec.timeout_s)

    async def serve(
        self,
        principal: Principal,
        request: InferenceRequest,
        call: Call[T],
        usage: Callable[[T], Usage],
    ) -> tuple[T, ResolvedVersion, dict[str, str]]:
        """Any other call (embeddings) down the same path: limits, routes, one event.

        Returns the result, the version that served and the answer's headers.
        """
        trace = self._start(principal, request)
        try:
            deployment = await self.resolver.deployment(principal.project_id, request.deployment)
            ticket = await self._admit(trace, deployment)
            result = await self._attempts(trace, deployment, call)
        except BaseException as exc:
            self.finish(trace, outcome=exc)
            raise
        self.finish(trace, usage=usage(result))
        assert trace.served is not None
        return result, trace.served, ticket.headers

    async def aclose(self) -> None:
        """Cancel shadow calls in flight and close every backend."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.backends.aclose()
        await self.limits.aclose()

    # -- admission ---------------------------------------------------------------------

    async def _admit(self, trace: _Trace, deployment: Deployment) -> Ticket:
        """Guard the input, then admit the request (see ``gateway.guarding`` for the order).

        The ticket sees the request as the model will (redacted); a refused one is
        charged to the budgets first, so it counts against rate limits like any other.
        """
        name = deployment.spec.guard
        if name is not None:
            principal = trace.principal
            guard = await request_guard(self.guard, principal.project_id, deployment.name, name)
            trace.guard = guard
            trace.request = await guard.check_input(
                trace.request, self._detokenizer(trace, deployment)
            )
        ticket = trace.ticket = await self.limits.admit(trace.principal, deployment, trace.request)
        if trace.guard is not None and (refusal := trace.guard.refusal()) is not None:
            await ticket.usable((), self.resolver)  # charges the budgets (a 429 comes first)
            raise refusal
        return ticket

    def _detokenizer(self, trace: _Trace, deployment: Deployment) -> Detokenizer:
        """Token ids -> text with the primary route's tokenizer (resolved only when used)."""

        async def detokenize(tokens: Sequence[int]) -> str:
            target = deployment.spec.routes[0].target
            version = await self.resolver.version(trace.principal.project_id, target)
            backend = self.backends.get(version.backend, version.source, version.params)
            if not isinstance(backend, Tokenizing):
                raise InvalidInput(
                    f"deployment '{deployment.name}' checks its inputs with a guard policy, and "
                    f"{version.model}@{version.version} cannot turn token ids back into text; "
                    "send the prompt as text",
                    param="prompt",
                )
            return await backend.detokenize(tokens)

        return detokenize

    # -- attempts ----------------------------------------------------------------------

    async def _attempts(self, trace: _Trace, deployment: Deployment, call: Call[T]) -> T:
        spec = deployment.spec
        last: ModelcycleError | None = None
        attempts = plan(spec, deployment.name, trace.request.user, self.rng)
        if trace.ticket is not None:  # budgets charged (429), open circuits left out
            attempts = await trace.ticket.usable(attempts, self.resolver)
        for attempt in attempts:
            for retry in range(spec.retries + 1):
                if retry:
                    await asyncio.sleep(
                        self._backoff * 2 ** (retry - 1) * (0.5 + self.rng.random())
                    )
                trace.attempts += 1
                try:
                    return await self._try(trace, attempt, spec.timeout_s, call)
                except (InvalidInput, RateLimited):
                    raise  # the request is wrong, or over a limit: no other target helps
                except ModelcycleError as exc:
                    last = exc
                    if trace.ticket is not None:
                        trace.ticket.failed(exc)
                    if not _retryable(exc):
                        break
        raise _exhausted(deployment.name, trace.attempts, last)

    async def _try(self, trace: _Trace, attempt: Attempt, timeout_s: float, call: Call[T]) -> T:
        version = await self.resolver.version(trace.principal.project_id, attempt.target)
        trace.tried, trace.tried_route = version, attempt.kind
        try:
            backend = self.backends.get(version.backend, version.source, version.params)
        except InvalidInput as exc:
            raise UpstreamError(exc.message, code="target_unavailable") from exc
        requires(backend, version.backend, trace.request)  # a 400 naming the kind
        if trace.ticket is not None:  # a cached answer, or the backend within its slot
            backend = await trace.ticket.backend(version, backend)
        # Backends shared between projects read per-project state (secrets) from here.
        scope = call_scope.set(CallScope(trace.principal.project_id, trace.principal.project))
        try:
            async with asyncio.timeout(timeout_s):
                result = await call(backend, trace.request)
        except TimeoutError:
            raise UpstreamTimeout(
                f"{version.model}@{version.version} did not answer within {timeout_s:g} s",
                code="timeout",
            ) from None
        except ModelcycleError:
            raise
        except Exception as exc:
            log.exception("backend %s@%s failed", version.model, version.version)
            raise UpstreamError(
                f"{version.model}@{version.version} failed: {type(exc).__name__}"
            ) from exc
        finally:
            call_scope.reset(scope)
        trace.served, trace.route = version, attempt.kind
        return result

    # -- shadow traffic ----------------------------------------------------------------

    def _shadow(self, served: _Trace, deployment: Deployment) -> None:
        target = deployment.spec.shadow
        if not target:
            return
        # The request as the model saw it (redacted); its answer is guarded for the record.
        trace = self._start(served.principal, replace(served.request, stream=False))
        if served.guard is not None:
            trace.guard = RequestGuard(served.guard.policy, deployment.name)
        task = asyncio.create_task(self._run_shadow(trace, target, deployment.spec.timeout_s))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run_shadow(self, trace: _Trace, target: str, timeout_s: float) -> None:
        trace.attempts = 1
        try:
            choices = await self._try(trace, Attempt(target, "shadow"), timeout_s, call_whole)
            if trace.guard is not None:
                choices = await trace.guard.check_output(choices)
        except BaseException as exc:
            trace.route = "shadow"
            self.finish(trace, outcome=exc)
            if not isinstance(exc, Exception):
                raise
            return
        self.finish(
            trace,
            usage=choices.usage,
            finish_reason=choices.first.finish_reason,
            output=_output(choices.items) if len(choices.items) > 1 else choices.first.text,
        )

    # -- events ------------------------------------------------------------------------

    def _start(self, principal: Principal, request: InferenceRequest) -> _Trace:
        return _Trace(request_id(self._id_bits), principal, request, time.perf_counter())

    def finish(
        self,
        trace: _Trace,
        *,
        outcome: BaseException | None = None,
        usage: Usage | None = None,
        finish_reason: str | None = None,
        output: str | tuple[str, ...] | None = None,
    ) -> None:
        """Emit the request's ``RequestFinished`` event."""
        status, code, error_type = _status(outcome)
        usage = usage or Usage(0, 0)
        request = trace.request
        context = request.context
        if trace.ticket is not None:
            trace.ticket.close(outcome, usage, trace.served)
        served = trace.served or trace.tried
        guard = trace.guard
        self._bus.emit(
            events.RequestFinished(
                request_id=trace.request_id,
                project=trace.principal.project,
                deployment=trace.request.deployment,
                key_id=trace.principal.key_id,
                endpoint=trace.request.endpoint,
                model=served.model if served else None,
                version=served.version if served else None,
                route=trace.route or trace.tried_route,
                status=status,
                status_code=code,
                error_type=error_type,
                latency_ms=(time.perf_counter() - trace.started) * 1000,
                ttft_ms=trace.ttft_ms,
                prompt_tokens=usage.prompt_tokens,
                completion_tokens=usage.completion_tokens,
                stream=trace.request.stream,
                attempts=trace.attempts,
                finish_reason=finish_reason,
                at=utcnow(),
                cache_hit=trace.ticket.cache_hit if trace.ticket else False,
                project_id=trace.principal.project_id,
                trace_id=context.trace_id,
                parent_span_id=context.parent_span_id,
                user=request.user or context.user,
                session=context.session,
                metadata=context.metadata,
                input=request.messages or request.prompts or request.prompt,
                output=output,
                params=request.params,
                error_message=_message(outcome),
                guard=guard.action() if guard else None,
                guard_findings=guard.findings() if guard else (),
                guard_ms=guard.milliseconds() if guard else None,
            )
        )


async def _open_stream(
    backend: Backend, request: InferenceRequest
) -> tuple[AsyncIterator[Chunk], Chunk]:
    if request.messages is not None:
        iterator = backend.stream_chat(request.messages, request.params)
    else:
        iterator = backend.stream_complete(request.prompt or "", request.params)
    try:
        first = await anext(iterator)
    except StopAsyncIteration:
        raise UpstreamError("the backend ended the stream before any output") from None
    except BaseException:
        await _aclose(iterator)
        raise
    return iterator, first


async def _aclose(iterator: AsyncIterator[Any]) -> None:
    close = getattr(iterator, "aclose", None)
    if close is not None:
        await close()


def _retryable(exc: ModelcycleError) -> bool:
    return isinstance(exc, UpstreamError) and exc.code != "target_unavailable"


def _exhausted(deployment: str, attempts: int, last: ModelcycleError | None) -> ModelcycleError:
    if last is None:
        return UpstreamError(f"deployment '{deployment}' has no route that can serve")
    message = f"deployment '{deployment}' failed after {attempts} attempt(s): {last.message}"
    if isinstance(last, UpstreamTimeout):
        return UpstreamTimeout(message, code=last.code)
    return UpstreamError(message, code=last.code)


def request_id(random_bits: Callable[[int], int]) -> str:
    """A new request id, also the request's trace id: 128 bits in hex, time-ordered.

    The first 48 bits are the Unix time in milliseconds (as in UUIDv7), so ids
    made one after another land next to each other in the trace store's indexes
    instead of at random places; the other 80 bits are random.
    """
    return f"{time.time_ns() // 1_000_000:012x}{random_bits(80):020x}"


def _output(choices: tuple[Choice, ...]) -> tuple[str, ...]:
    return tuple(choice.completion.text for choice in choices)


def _message(outcome: BaseException | None) -> str | None:
    if outcome is None or isinstance(outcome, GeneratorExit | asyncio.CancelledError):
        return None
    if isinstance(outcome, ModelcycleError):
        return outcome.message
    return f"{type(outcome).__name__}: {outcome}"


def _status(outcome: BaseException | None) -> tuple[str, int, str | None]:
    if outcome is None:
        return "ok", 200, None
    if isinstance(outcome, GeneratorExit | asyncio.CancelledError):
        return "cancelled", CANCELLED, "cancelled"
    if isinstance(outcome, ModelcycleError):
        return "error", outcome.status_code, outcome.code or outcome.error_type
    return "error", 500, type(outcome).__name__
