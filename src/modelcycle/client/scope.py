"""What ``trace(...)`` returns: a decorator and a sync or async context manager.

The current span lives in one ``ContextVar`` shared by every ``Tracer``: a span
opened by any tracer is the parent of the next, whichever tracer opens it.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Mapping
from contextvars import ContextVar, Token
from types import TracebackType
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar, cast

from modelcycle.client.span import KINDS, Span
from modelcycle.errors import InvalidInput

if TYPE_CHECKING:
    from modelcycle.client.tracing import Tracer

P = ParamSpec("P")
R = TypeVar("R")

current: ContextVar[Span | None] = ContextVar("modelcycle_current_span", default=None)
"""The span the calling code runs in (``None`` outside any)."""


class SpanScope:
    """What ``trace(...)`` returns: a decorator, and a sync or async context manager."""

    def __init__(
        self,
        tracer: Tracer,
        name: str | None,
        kind: str,
        capture: bool,
        attributes: Mapping[str, Any],
    ):
        if kind not in KINDS:
            raise InvalidInput(f"span kind {kind!r}: use one of {', '.join(sorted(KINDS))}")
        self._tracer = tracer
        self._name = name
        self._kind = kind
        self._capture = capture
        self._attributes = dict(attributes)
        self._given: dict[str, Any] | None = None
        """A decorated call's arguments: the span's input."""
        self._entered: list[tuple[Span, Token[Span | None]]] = []

    # -- context manager ---------------------------------------------------------------

    def __enter__(self) -> Span:
        span = self._tracer.start(self._name or "span", kind=self._kind, **self._attributes)
        if self._given is not None:
            span.set(input=self._given)
        self._entered.append((span, current.set(span)))
        return span

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        span, token = self._entered.pop()
        if exc is not None and not isinstance(exc, GeneratorExit):  # a consumer stopping early
            span.record_exception(exc)
        try:
            current.reset(token)
        except ValueError:  # left in another context (a generator finished elsewhere)
            current.set(span.parent)
        self._tracer.end(span)

    async def __aenter__(self) -> Span:
        return self.__enter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.__exit__(exc_type, exc, tb)

    # -- decorator ---------------------------------------------------------------------

    def __call__(self, func: Callable[P, R]) -> Callable[P, R]:
        """``func`` recorded as a span per call (its arguments and result when ``capture``)."""
        name = self._name or func.__qualname__
        signature = _signature(func) if self._capture else None
        capture = self._capture

        def begin(args: tuple[Any, ...], kwargs: dict[str, Any]) -> SpanScope:
            # A scope per call: concurrent calls must not share one scope's stack.
            scope = SpanScope(self._tracer, name, self._kind, capture, self._attributes)
            scope._given = _arguments(signature, args, kwargs) if signature else None
            return scope

        return _wrap(func, begin, capture)


Begin = Callable[[tuple[Any, ...], dict[str, Any]], "SpanScope"]


def _wrap(func: Callable[P, R], begin: Begin, capture: bool) -> Callable[P, R]:
    """``func`` run inside ``begin(args, kwargs)``: one wrapper per kind of function."""
    if inspect.isasyncgenfunction(func) or inspect.isgeneratorfunction(func):
        return cast(Callable[P, R], _wrap_generator(func, begin))
    call_any: Any = func  # the wrappers keep func's signature through functools.wraps
    if inspect.iscoroutinefunction(func):

        async def coroutine(*args: Any, **kwargs: Any) -> Any:
            async with begin(args, kwargs) as span:
                result = await call_any(*args, **kwargs)
                if capture:
                    span.set(output=result)
                return result

        return cast(Callable[P, R], functools.wraps(func)(coroutine))

    @functools.wraps(func)
    def call(*args: P.args, **kwargs: P.kwargs) -> R:
        with begin(args, kwargs) as span:
            result = func(*args, **kwargs)
            if capture:
                span.set(output=result)
            return result

    return call


def _wrap_generator(func: Callable[..., Any], begin: Begin) -> Callable[..., Any]:
    """A generator function whose span lasts from the first item to the last."""
    call_any: Any = func
    if inspect.isasyncgenfunction(func):

        async def agen(*args: Any, **kwargs: Any) -> Any:
            async with begin(args, kwargs):
                async for item in call_any(*args, **kwargs):
                    yield item

        return functools.wraps(func)(agen)

    def gen(*args: Any, **kwargs: Any) -> Any:
        with begin(args, kwargs):
            return (yield from call_any(*args, **kwargs))

    return functools.wraps(func)(gen)


def _signature(func: Callable[..., Any]) -> inspect.Signature | None:
    try:
        return inspect.signature(func)
    except (TypeError, ValueError):
        return None


def _arguments(
    signature: inspect.Signature, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> dict[str, Any]:
    try:
        bound = signature.bind_partial(*args, **kwargs)
    except TypeError:
        return {}
    return {k: v for k, v in bound.arguments.items() if k not in {"self", "cls"}}
