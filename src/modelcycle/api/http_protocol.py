"""uvicorn's HTTP protocol (httptools), writing each whole answer in one system call.

uvicorn writes an answer's status line and headers as soon as the app sends
``http.response.start``, and its body when ``http.response.body`` follows: two
``send`` calls, and two wake-ups of the client, for every whole answer. Under
load those writes cost the gateway more than the Python around them
(docs/performance.md). ``CoalescingTransport`` holds a write until the next
write or the loop's next turn, whichever comes first: the headers and body of a
whole answer (sent one after the other, without yielding to the loop) leave as
one write, at once; a write that nothing follows (the headers of a stream whose
first chunk is not ready yet, a streamed chunk) leaves on the loop's next turn.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


class CoalescingTransport:
    """An ``asyncio.Transport`` that joins a held write with the next one."""

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop):
        self._transport = transport
        self._loop = loop
        self._held: bytes | None = None
        # Called for every request (flow control): bound once, not looked up each time.
        self.pause_reading = transport.pause_reading
        self.resume_reading = transport.resume_reading
        self.is_closing = transport.is_closing
        self.get_extra_info = transport.get_extra_info

    def write(self, data: bytes | bytearray | memoryview) -> None:
        """Hold ``data`` until the next write or the loop's next turn."""
        held = self._held
        if held is None:
            self._held = bytes(data)
            self._loop.call_soon(self.flush)
            return
        self._held = None
        self._transport.write(held + data)

    def writelines(self, lines: Any) -> None:
        """Write the lines as one write."""
        self.write(b"".join(lines))

    def flush(self) -> None:
        """Write what is held now."""
        held, self._held = self._held, None
        if held is not None and not self._transport.is_closing():
            self._transport.write(held)

    def close(self) -> None:
        """Write what is held, then close."""
        self.flush()
        self._transport.close()

    def write_eof(self) -> None:
        """Write what is held, then close the writing side."""
        self.flush()
        self._transport.write_eof()

    def abort(self) -> None:
        """Close at once; what is held is dropped with the rest of the buffer."""
        self._held = None
        self._transport.abort()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class CoalescingHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol over a ``CoalescingTransport``."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        """Hand uvicorn the coalescing transport instead of the socket's own."""
        coalescing = CoalescingTransport(transport, asyncio.get_running_loop())
        super().connection_made(coalescing)  # type: ignore[arg-type]
