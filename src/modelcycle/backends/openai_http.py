"""Whole answers from an OpenAI-compatible upstream, through pyqwest (hyper on tokio threads).

A whole answer is one POST and one buffered body. With aiohttp the event loop's
thread spent 85-105 µs of CPU on each (its Python request and response
machinery); with pyqwest it spends ~27 µs, and the HTTP work runs on tokio's
threads, off the core that runs the gateway's Python (measured side by side:
``benchmarks/upstream_clients.py``). A call that is cancelled (a client went
away, a deadline passed) closes its connection at once, so the upstream stops
generating. Streams stay on aiohttp, which relays their events as they come.

A plain ``http://`` upstream with no proxy (vLLM or a llama.cpp server on the
cluster's network) is called on the event loop itself instead
(``modelcycle.backends.plain_http``): one write and one parsed read per answer
cost that thread ~23 µs and no other thread anything, against pyqwest's ~31 µs
plus ~100 µs on tokio's threads.

Redirects are not followed; connections are pooled per upstream address (at
most ``max_connections``, idle ones kept ``keepalive_s``); the system's CA
certificates are trusted next to the bundled ones; ``HTTP(S)_PROXY`` and
``NO_PROXY`` apply, as for any HTTP client (to streams too: ``environment_proxy``).
"""

from __future__ import annotations

import asyncio
import importlib
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit
from urllib.request import getproxies_environment, proxy_bypass

from modelcycle.backends.openai_params import OpenAIParams
from modelcycle.backends.plain_http import (
    DROPPED,
    CannotConnect,
    PlainHTTPError,
    PlainHTTPPool,
    Target,
    UpstreamClosed,
    plain_target,
)
from modelcycle.errors import MissingExtra, UpstreamError

if TYPE_CHECKING:
    import pyqwest


def required(module: str) -> Any:
    """A base dependency, imported when first needed; only a broken install lacks it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingExtra(module, "all") from exc


class WholeAnswers:
    """POSTs whose answer is read whole, over one pool of keep-alive connections."""

    def __init__(self, options: OpenAIParams):
        self._options = options
        self._transport: pyqwest.HTTPTransport | None = None
        self._client: pyqwest.Client | None = None
        self._slots: asyncio.Semaphore | None = None
        self._slots_loop: asyncio.AbstractEventLoop | None = None
        self._plain = PlainHTTPPool(options)
        self._targets: dict[str, Target | None] = {}
        """URL -> where ``plain_http`` sends it; ``None``: through pyqwest."""

    async def post(self, url: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
        """The status and body of the answer to ``body`` POSTed to ``url``.

        At most ``max_connections`` calls are in flight; the others wait for a slot
        (pyqwest itself does not bound its HTTP/1 connections).
        """
        try:
            target = self._targets[url]
        except KeyError:
            target = self._targets[url] = _plain_target(url)
        async with self._in_flight():
            if target is not None:
                return await self._plain.post(target, body, headers)
            answer = await self._pool().post(url, headers=headers, content=body)
        return answer.status, answer.content

    def _in_flight(self) -> asyncio.Semaphore:
        loop = asyncio.get_running_loop()
        if self._slots is None or self._slots_loop is not loop:  # a semaphore serves one loop
            self._slots = asyncio.Semaphore(self._options.max_connections)
            self._slots_loop = loop
        return self._slots

    def _pool(self) -> pyqwest.Client:
        if self._client is not None:
            return self._client
        pyqwest = required("pyqwest")
        options = self._options
        keepalive = options.keepalive_s
        self._transport = pyqwest.HTTPTransport(
            connect_timeout=options.connect_timeout_s,
            read_timeout=options.timeout_s,
            pool_idle_timeout=keepalive or None,
            pool_max_idle_per_host=0 if keepalive == 0 else None,
            max_connections_per_address=options.max_connections,
            tls_include_system_certs=True,
            follow_redirects=False,
            enable_otel=False,  # the gateway records every call itself
        )
        self._client = pyqwest.Client(self._transport)
        return self._client

    async def close(self) -> None:
        """Close the pooled connections."""
        await self._plain.close()
        transport, self._transport, self._client = self._transport, None, None
        if transport is not None:
            await transport.aclose()


def _plain_target(url: str) -> Target | None:
    """Where ``plain_http`` sends ``url``: ``None`` for TLS or a proxy (pyqwest's)."""
    return None if environment_proxy(url) else plain_target(url)


def environment_proxy(url: str) -> str | None:
    """The proxy ``HTTP(S)_PROXY`` names for ``url``, unless ``NO_PROXY`` exempts its host."""
    parts = urlsplit(url)
    proxies = getproxies_environment()
    if not parts.hostname or proxy_bypass(parts.hostname):
        return None
    return proxies.get(parts.scheme)


def plain_failure(exc: BaseException) -> UpstreamError | None:
    """What a failure of ``plain_http``'s tells the client; ``None`` for anything else."""
    if isinstance(exc, CannotConnect):
        return UpstreamError(f"cannot connect to the upstream: {exc}")
    if isinstance(exc, UpstreamClosed):
        return UpstreamError(DROPPED, code="upstream_dropped")
    if isinstance(exc, PlainHTTPError):
        return UpstreamError(str(exc))
    return None


def pyqwest_failure(exc: BaseException) -> UpstreamError | None:
    """What a failure of pyqwest's tells the client; ``None`` for anything else.

    pyqwest raises the built-in ``ConnectionError`` when it cannot connect, with a
    message naming the URL and then each cause: only the last (the operating
    system's reason) is kept.
    """
    if type(exc) is ConnectionError:
        reason = str(exc).rsplit(": ", 1)[-1] or "connection failed"
        return UpstreamError(f"cannot connect to the upstream: {reason}")
    if not type(exc).__module__.startswith("pyqwest"):
        return None
    pyqwest = required("pyqwest")
    if isinstance(exc, pyqwest.ReadError | pyqwest.RemoteProtocolError):
        return UpstreamError(DROPPED, code="upstream_dropped")
    return UpstreamError(f"the upstream connection failed: {type(exc).__name__}")
