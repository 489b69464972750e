"""A real OpenAI-compatible upstream on 127.0.0.1, in a thread of its own, with failure modes.

Imported as ``backends.openai_upstream`` (``tests/`` is on ``sys.path``). Plain
asyncio HTTP/1.1 with keep-alive, so that the tests can count the TCP
connections the gateway opens. Each request is answered by the next scripted
behaviour (``then``), else ``ok``:

- ``ok``: a chat completion (a tool call when the request offers tools and the
  last message is not a tool result; an answer built from the tool result when
  it is), a legacy completion, or embeddings; SSE when ``"stream": true``;
- ``("status", N)``: an OpenAI error object with status N (``("leak", N)``: one
  whose message repeats the ``Authorization`` header it received);
- ``hang``: never answers; ``drop``: closes the connection without answering;
- ``cut``: a stream that stops after its first event, connection closed mid-body;
- ``cut_clean``: a stream that ends cleanly after its first event, without
  ``finish_reason`` or ``[DONE]``;
- ``("slow", N)``: a stream of N words, 50 ms apart; a caller that goes away
  mid-way is counted in ``aborted``;
- ``("think", N)``: a whole answer after N times 50 ms; a caller that goes away
  meanwhile is counted in ``aborted``.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections import deque
from dataclasses import dataclass
from typing import Any

Behaviour = str | tuple[str, int]

REPLY = "Hello from the upstream."
WEATHER_CALL = {
    "id": "call_weather_1",
    "type": "function",
    "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
}


@dataclass
class Recorded:
    """One request the upstream received."""

    method: str
    path: str
    headers: dict[str, str]
    body: dict[str, Any]


def _event(body: dict[str, Any] | str) -> bytes:
    data = body if isinstance(body, str) else json.dumps(body)
    return f"data: {data}\n\n".encode()


def _chunk(payload: bytes) -> bytes:
    return f"{len(payload):x}\r\n".encode() + payload + b"\r\n"


def _response(status: int, body: bytes, content_type: str = "application/json") -> bytes:
    head = f"HTTP/1.1 {status} X\r\nContent-Type: {content_type}\r\n"
    return (head + f"Content-Length: {len(body)}\r\n\r\n").encode() + body


class MockUpstream:
    """See the module docstring; ``url`` is the base URL to register (``.../v1``)."""

    def __init__(self, reply: str = REPLY):
        self.reply = reply
        self.requests: list[Recorded] = []
        self.connections = 0
        self.aborted = 0
        self.script: deque[Behaviour] = deque()
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.port = 0

    @property
    def url(self) -> str:
        """The base URL of the OpenAI API."""
        return f"http://127.0.0.1:{self.port}/v1"

    def then(self, *behaviours: Behaviour) -> None:
        """Answer the next requests with ``behaviours``, in order."""
        self.script.extend(behaviours)

    def __enter__(self) -> MockUpstream:
        self._thread.start()
        self._ready.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    # -- server --------------------------------------------------------------------------

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._server = self._loop.run_until_complete(
            asyncio.start_server(self._accept, "127.0.0.1", 0)
        )
        self.port = self._server.sockets[0].getsockname()[1]
        self._ready.set()
        self._loop.run_forever()

    async def _shutdown(self) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            while await self._one(reader, writer):
                pass
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass
        finally:
            self._tasks.discard(task)
            writer.close()

    async def _one(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        head = (await reader.readuntil(b"\r\n\r\n")).decode("latin1").split("\r\n")
        method, path, _ = head[0].split(" ", 2)
        headers = {}
        for line in head[1:]:
            if ":" in line:
                name, value = line.split(":", 1)
                headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0"))
        raw = await reader.readexactly(length) if length else b""
        body = json.loads(raw) if raw else {}
        self.requests.append(Recorded(method, path, headers, body))
        behaviour = self.script.popleft() if self.script else "ok"
        if behaviour == "hang":
            await asyncio.sleep(3600)
        if behaviour == "drop":
            return False
        if isinstance(behaviour, tuple) and behaviour[0] in ("status", "leak"):
            said = f"upstream says {behaviour[1]}"
            if behaviour[0] == "leak":  # a careless upstream repeating the credential
                said += f" to {headers.get('authorization')}"
            error = {"message": said, "type": "x", "param": "tools"}
            writer.write(_response(behaviour[1], json.dumps({"error": error}).encode()))
            await writer.drain()
            return True
        if path.endswith("/embeddings"):
            inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
            data = [
                {"object": "embedding", "index": i, "embedding": [float(len(str(x))), 0.5]}
                for i, x in enumerate(inputs)
            ]
            answer = {"object": "list", "data": data, "usage": {"prompt_tokens": 3}}
            writer.write(_response(200, json.dumps(answer).encode()))
            await writer.drain()
            return True
        if isinstance(behaviour, tuple) and behaviour[0] in ("slow", "think"):
            return await self._timed(reader, writer, path, body, behaviour)
        if body.get("stream"):
            return await self._stream(writer, path, body, behaviour)
        writer.write(_response(200, json.dumps(self._whole(path, body)).encode()))
        await writer.drain()
        return True

    # -- answers -------------------------------------------------------------------------

    def _answer(self, body: dict[str, Any]) -> tuple[str | None, dict[str, Any] | None]:
        messages = body.get("messages") or []
        last = messages[-1] if messages else {}
        if last.get("role") == "tool":
            return f"It is {last.get('content')} in Paris.", None
        if body.get("tools"):
            return None, WEATHER_CALL
        return self.reply, None

    @staticmethod
    def _logprobs(text: str | None) -> dict[str, Any]:
        words = [w if not i else " " + w for i, w in enumerate((text or "").split(" "))]
        content = [
            {"token": w, "logprob": -0.25, "bytes": list(w.encode()), "top_logprobs": []}
            for w in words
        ]
        return {"content": content}

    def _whole(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        usage = {"prompt_tokens": 5, "completion_tokens": 4, "total_tokens": 9}
        if path.endswith("/chat/completions"):
            text, call = self._answer(body)
            message: dict[str, Any] = {"role": "assistant", "content": text}
            if call:
                message["tool_calls"] = [call]
            choice = {
                "index": 0,
                "message": message,
                "logprobs": self._logprobs(text) if body.get("logprobs") else None,
                "finish_reason": "tool_calls" if call else "stop",
            }
            return {"id": "up", "object": "chat.completion", "choices": [choice], "usage": usage}
        choice = {"index": 0, "text": self.reply, "logprobs": None, "finish_reason": "stop"}
        return {"id": "up", "object": "text_completion", "choices": [choice], "usage": usage}

    def _events(self, path: str, body: dict[str, Any]) -> list[bytes]:
        chat = path.endswith("/chat/completions")
        text, call = self._answer(body) if chat else (self.reply, None)
        events = []
        if call:
            name = {**call, "function": {"name": call["function"]["name"], "arguments": ""}}
            pieces = ['{"city": ', '"Paris"}']
            deltas: list[dict[str, Any]] = [{"tool_calls": [{"index": 0, **name}]}]
            deltas += [{"tool_calls": [{"index": 0, "function": {"arguments": p}}]} for p in pieces]
            events = [
                {"choices": [{"index": 0, "delta": d, "finish_reason": None}]} for d in deltas
            ]
        else:
            for word in (text or "").split(" "):
                piece = word if not events else " " + word
                choice = {"index": 0, "finish_reason": None}
                choice.update({"delta": {"content": piece}} if chat else {"text": piece})
                events.append({"choices": [choice]})
        last_choice: dict[str, Any] = {
            "index": 0,
            "finish_reason": "tool_calls" if call else "stop",
        }
        last_choice.update({"delta": {}} if chat else {"text": ""})
        events.append({"choices": [last_choice]})
        if (body.get("stream_options") or {}).get("include_usage"):
            usage = {"prompt_tokens": 5, "completion_tokens": len(events) - 1, "total_tokens": 0}
            events.append({"choices": [], "usage": usage})
        return [_event(e) for e in events] + [_event("[DONE]")]

    async def _stream(
        self, writer: asyncio.StreamWriter, path: str, body: dict[str, Any], behaviour: Behaviour
    ) -> bool:
        head = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
        writer.write((head + "Transfer-Encoding: chunked\r\n\r\n").encode())
        events = self._events(path, body)
        if behaviour in ("cut", "cut_clean"):
            writer.write(_chunk(events[0]))
            await writer.drain()
            if behaviour == "cut":
                return False  # closed mid-body: no terminating chunk
            writer.write(b"0\r\n\r\n")
            await writer.drain()
            return True
        for event in events:
            writer.write(_chunk(event))
            await writer.drain()
        writer.write(b"0\r\n\r\n")
        await writer.drain()
        return True

    async def _timed(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        path: str,
        body: dict[str, Any],
        behaviour: tuple[str, int],
    ) -> bool:
        kind, count = behaviour
        if kind == "slow":
            return await self._slow(reader, writer, count)
        return await self._think(reader, writer, path, body, count)

    async def _think(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        path: str,
        body: dict[str, Any],
        ticks: int,
    ) -> bool:
        """A whole answer after ``ticks`` times 50 ms, unless the caller goes away first."""
        for _ in range(ticks):
            await asyncio.sleep(0.05)
            if reader.at_eof():  # the caller closed its end
                self.aborted += 1
                return False
        writer.write(_response(200, json.dumps(self._whole(path, body)).encode()))
        await writer.drain()
        return True

    async def _slow(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, words: int
    ) -> bool:
        head = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
        writer.write((head + "Transfer-Encoding: chunked\r\n\r\n").encode())
        for index in range(words):
            delta = {"content": f"w{index} "}
            writer.write(_chunk(_event({"choices": [{"index": 0, "delta": delta}]})))
            try:
                await writer.drain()
            except ConnectionError:
                self.aborted += 1
                return False
            await asyncio.sleep(0.05)
            if reader.at_eof():  # the caller closed its end
                self.aborted += 1
                return False
        last = {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
        writer.write(_chunk(_event(last)) + _chunk(_event("[DONE]")) + b"0\r\n\r\n")
        await writer.drain()
        return True
