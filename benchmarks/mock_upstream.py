"""A fast, dependency-free OpenAI-compatible upstream for the gateway benchmarks.

The same server as ``shared/bench/upstream.py`` (a fixed chat completion, a
short SSE stream when the body asks for ``"stream": true``, embeddings, models;
HTTP/1.1 keep-alive, pure asyncio), plus failure knobs for the reliability
benchmark: ``--fail-rate P`` makes a fraction P of POSTs fail, cycling through
a 500 answer, a hang (the caller's timeout must fire), a dropped connection and
a response cut mid-way (a stream stops after its first event).

    python benchmarks/mock_upstream.py --port 9100 [--delay-ms 0] [--fail-rate 0.3]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import random
from collections.abc import Iterator

BODY = json.dumps(
    {
        "id": "chatcmpl-bench",
        "object": "chat.completion",
        "created": 0,
        "model": "bench",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "Hello from the bench upstream."},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 12, "completion_tokens": 7, "total_tokens": 19},
    }
).encode()
MODELS = json.dumps(
    {"object": "list", "data": [{"id": "bench", "object": "model", "owned_by": "bench"}]}
).encode()
EMB = json.dumps(
    {
        "object": "list",
        "data": [{"object": "embedding", "index": 0, "embedding": [0.1] * 8}],
        "model": "bench",
        "usage": {"prompt_tokens": 3, "total_tokens": 3},
    }
).encode()
ERROR = json.dumps(
    {"error": {"message": "injected failure", "type": "server_error", "param": None, "code": None}}
).encode()


def chunk(delta: dict[str, str], finish: str | None = None, usage: bool = False) -> bytes:
    body: dict[str, object] = {
        "id": "chatcmpl-bench",
        "object": "chat.completion.chunk",
        "created": 0,
        "model": "bench",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    if usage:
        body["usage"] = {"prompt_tokens": 12, "completion_tokens": 7, "total_tokens": 19}
    return b"data: " + json.dumps(body).encode() + b"\n\n"


FIRST = chunk({"role": "assistant", "content": "Hello"})
STREAM = (
    FIRST
    + chunk({"content": " from the bench upstream."})
    + chunk({}, "stop", usage=True)
    + b"data: [DONE]\n\n"
)
FAILURES = ("500", "hang", "drop", "cut")


def head(status: bytes, ctype: bytes, length: int) -> bytes:
    return (
        b"HTTP/1.1 "
        + status
        + b"\r\nContent-Type: "
        + ctype
        + b"\r\nContent-Length: "
        + str(length).encode()
        + b"\r\n\r\n"
    )


def answer(method: str, path: str, stream: bool) -> tuple[bytes, bytes]:
    """The body and content type of a successful answer."""
    if method == "GET":
        return MODELS, b"application/json"
    if path.endswith("/embeddings"):
        return EMB, b"application/json"
    if stream:
        return STREAM, b"text/event-stream"
    return BODY, b"application/json"


class Upstream:
    """Answers requests; a seeded share of them fails (see the module docstring)."""

    def __init__(self, delay_s: float, fail_rate: float, hang_s: float, seed: int):
        self.delay_s, self.fail_rate, self.hang_s = delay_s, fail_rate, hang_s
        self.rng = random.Random(seed)  # fault injection, not security
        self.failures: Iterator[str] = itertools.cycle(FAILURES)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                header = await reader.readuntil(b"\r\n\r\n")
                lines = header.decode("latin1").split("\r\n")
                method, path, _ = lines[0].split(" ", 2)
                length = 0
                for line in lines[1:]:
                    if line.lower().startswith("content-length:"):
                        length = int(line.split(":", 1)[1])
                body = await reader.readexactly(length) if length else b""
                if self.delay_s:
                    await asyncio.sleep(self.delay_s)
                stream = b'"stream": true' in body or b'"stream":true' in body
                if method == "POST" and self.fail_rate and self.rng.random() < self.fail_rate:
                    if not await self.fail(next(self.failures), writer, stream):
                        return
                    continue
                payload, ctype = answer(method, path, stream)
                writer.write(head(b"200 OK", ctype, len(payload)) + payload)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def fail(self, how: str, writer: asyncio.StreamWriter, stream: bool) -> bool:
        """Inject one failure; ``False`` when the connection is gone afterwards."""
        if how == "500":
            writer.write(head(b"500 Internal Server Error", b"application/json", len(ERROR)))
            writer.write(ERROR)
            await writer.drain()
            return True
        if how == "hang":
            await asyncio.sleep(self.hang_s)
            return False
        if how == "cut":
            payload, ctype = (
                (STREAM, b"text/event-stream") if stream else (BODY, b"application/json")
            )
            # Promise the whole answer, send its first part, then hang up.
            writer.write(head(b"200 OK", ctype, len(payload)) + payload[: len(FIRST)])
            await writer.drain()
        return False  # "drop": close without a word


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=9100)
    parser.add_argument("--delay-ms", type=float, default=0.0)
    parser.add_argument("--fail-rate", type=float, default=0.0)
    parser.add_argument("--hang-s", type=float, default=30.0)
    parser.add_argument("--seed", type=int, default=3)
    args = parser.parse_args()
    upstream = Upstream(args.delay_ms / 1000, args.fail_rate, args.hang_s, args.seed)
    server = await asyncio.start_server(upstream.handle, "127.0.0.1", args.port)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main())
