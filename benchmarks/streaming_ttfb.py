"""Streaming: time to first byte through the gateway vs the pass-through, in one run.

Issue 3 asks that the first SSE event through the gateway arrive at most 1 ms
later than through the bare pass-through (which relays the upstream's stream
chunk by chunk). One keep-alive connection per target sends a streamed chat
request at a time; the clock runs from the request's last byte to the first
byte of the first ``data:`` event. Targets are measured in interleaved rounds.

    .venv/bin/python benchmarks/streaming_ttfb.py [--requests 400] [--rounds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from urllib.parse import urlsplit

import harness


class Connection:
    """One HTTP/1.1 keep-alive connection that times streamed answers."""

    def __init__(self, url: str, key: str):
        parts = urlsplit(url)
        self.host, self.port, self.path = parts.hostname or "", parts.port or 80, parts.path
        body = harness.STREAM_BODY.encode()
        self.request = (
            f"POST {self.path} HTTP/1.1\r\nHost: {self.host}\r\n"
            f"Authorization: Bearer {key}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode() + body

    async def open(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)

    async def ttfb_ms(self) -> tuple[float, bytes]:
        """Time to the first ``data:`` event, and the whole answer body."""
        self.writer.write(self.request)
        await self.writer.drain()
        started = time.perf_counter()
        head = await self.reader.readuntil(b"\r\n\r\n")
        first: float | None = None
        status = head.split(b" ", 2)[1]
        if status != b"200":
            raise RuntimeError(f"{self.path} answered {head.decode(errors='replace')}")
        body = bytearray()
        if b"content-length:" in head.lower():
            length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
            body += await self.reader.readexactly(length)
            return (time.perf_counter() - started) * 1000, bytes(body)
        while not body.endswith(b"\r\n0\r\n\r\n"):  # chunked: the last chunk is empty
            piece = await self.reader.read(65536)
            if not piece:
                raise RuntimeError("connection closed mid-answer")
            if first is None and b"data:" in piece:
                first = time.perf_counter()
            body += piece
        assert first is not None, body
        return (first - started) * 1000, bytes(body)

    def close(self) -> None:
        self.writer.close()


async def measure(
    targets: dict[str, str], key: str, requests: int, rounds: int
) -> dict[str, list[float]]:
    connections = {name: Connection(url, key) for name, url in targets.items()}
    for connection in connections.values():
        await connection.open()
        for _ in range(50):  # warm-up
            _, body = await connection.ttfb_ms()
        assert b"[DONE]" in body, body
    found: dict[str, list[float]] = {name: [] for name in targets}
    for _ in range(rounds):
        for name, connection in connections.items():
            for _ in range(requests // rounds):
                ttfb, body = await connection.ttfb_ms()
                found[name].append(ttfb)
    for connection in connections.values():
        connection.close()
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=2000, help="streams per target")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--backend", choices=("openai", "mock"), default=None)
    args = parser.parse_args()

    with harness.servers() as stack:
        upstream = harness.start_upstream(stack)
        passthrough = harness.start_passthrough(stack, upstream)
        gateway = harness.start_gateway(stack, upstream, backend=args.backend)
        targets = {
            "upstream": f"{upstream.url}/v1/chat/completions",
            "passthrough": f"{passthrough.url}/v1/chat/completions",
            "gateway": f"{gateway.url}/v1/chat/completions",
        }
        found = asyncio.run(measure(targets, gateway.key, args.requests, args.rounds))

    print(f"gateway backend: {gateway.backend} (deployment 'bench'); {args.requests} streams each")
    print(f"{'target':<12} {'TTFB p50 ms':>12} {'p90 ms':>8} {'p99 ms':>8}")
    p50 = {}
    for name, times in found.items():
        cuts = statistics.quantiles(times, n=100)
        p50[name] = statistics.median(times)
        print(f"{name:<12} {p50[name]:>12.3f} {cuts[89]:>8.3f} {cuts[98]:>8.3f}")
    added = p50["gateway"] - p50["passthrough"]
    print(f"added TTFB p50 (gateway - passthrough): {added:+.3f} ms  (goal <= 1.000 ms)")
    print("PASS" if added <= 1.0 else "FAIL")
    raise SystemExit(0 if added <= 1.0 else 1)


if __name__ == "__main__":
    main()
