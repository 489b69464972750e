"""One request inside a batch: its prompt tokens, its sampling, its text and when it ends.

A ``Row`` is built on the worker thread from a ``Request`` (the prompt is
rendered and tokenized there, because a chat template belongs to the loaded
tokenizer). Each step the batch loop hands every row the logits of its last
position; the row picks its next token with its own settings and its own
random generator (so a seeded request samples the same tokens alone or in a
batch), appends it and decides whether it is done:

- an end-of-sequence token ends it with ``stop`` (the token is counted as a
  completion token, as OpenAI-compatible servers do, but not shown);
- a stop sequence in the decoded text ends it with ``stop``; the text is cut
  before the sequence;
- ``max_tokens`` (capped by the context window) ends it with ``length``.

Text is decoded from all the row's tokens each step, never token by token, so
multi-byte characters and tokenizers that merge spaces come out right. A
streamed row holds back the tail that could still become a stop sequence and
an incomplete UTF-8 character, so no client ever sees text that is later cut.
"""

from __future__ import annotations

import asyncio
import random
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from modelcycle.backends.base import Chunk, GenerationParams, Message, Usage, merge_params
from modelcycle.backends.hf.loading import LoadedModel
from modelcycle.backends.prompting import render_chat, uses_template, with_prompt_params
from modelcycle.errors import InvalidInput, ModelcycleError, UpstreamError

DEFAULT_TEMPERATURE = 1.0
DEFAULT_TOP_P = 1.0
_REPLACEMENT = "\ufffd"  # what a decoder shows for an incomplete UTF-8 sequence


class Sink:
    """Hands a row's chunks (or its error) from the worker thread to the request's event loop."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        queue: asyncio.Queue[Chunk | ModelcycleError],
        cancel: threading.Event,
    ):
        self._loop, self._queue, self._cancel = loop, queue, cancel

    def put(self, item: Chunk | ModelcycleError) -> None:
        """Deliver ``item``; a closed loop means nobody listens, so the row is cancelled."""
        try:
            self._loop.call_soon_threadsafe(self._queue.put_nowait, item)
        except RuntimeError:
            self._cancel.set()


@dataclass(frozen=True, slots=True)
class Request:
    """What a backend submits to a model's worker: one prompt or conversation to answer."""

    prompt: str | None
    messages: tuple[Message, ...] | None
    params: GenerationParams
    version: Mapping[str, Any]
    """The version's params: sampling defaults and the prompt format."""
    stream: bool
    max_batch_size: int
    batch_wait_s: float
    context_length: int | None
    sink: Sink
    cancel: threading.Event = field(default_factory=threading.Event)


class Row:
    """A request being generated; see the module docstring."""

    def __init__(
        self,
        request: Request,
        loaded: LoadedModel,
        prompt_ids: list[int],
        params: GenerationParams,
        *,
        strip_leading: bool,
        max_new_tokens: int,
    ):
        self.request = request
        self.prompt_ids = prompt_ids
        self._loaded = loaded
        self._strip = strip_leading
        self._max = max_new_tokens
        self._stops = tuple(stop for stop in params.stop or () if stop)
        self._temperature = (
            DEFAULT_TEMPERATURE if params.temperature is None else params.temperature
        )
        self._top_p = DEFAULT_TOP_P if params.top_p is None else params.top_p
        self._generator: Any = None
        if self._temperature > 0:
            import torch

            seed = params.seed if params.seed is not None else random.getrandbits(63)
            self._generator = torch.Generator().manual_seed(seed & 0x7FFF_FFFF_FFFF_FFFF)
        self._generated = 0
        self._text_ids: list[int] = []
        self._emitted = ""
        self.finished = False

    def pick(self, logits: Any, greedy: int) -> int:
        """The next token from this row's logits (``greedy`` is their argmax)."""
        if self._generator is None:
            return greedy
        import torch

        probs = torch.softmax(logits.float() / self._temperature, dim=-1)
        if self._top_p < 1.0:
            ordered, order = probs.sort(descending=True)
            # Keep the smallest set whose mass reaches top_p (the first token always).
            keep = (ordered.cumsum(0) - ordered) < self._top_p
            keep[0] = True
            probs = torch.zeros_like(probs).index_put_((order[keep],), ordered[keep])
        return int(torch.multinomial(probs, 1, generator=self._generator).item())

    def advance(self, token: int) -> bool:
        """Append ``token``, deliver what became final; ``True`` when the row is done."""
        self._generated += 1
        reason: str | None = None
        if token in self._loaded.eos_ids:
            reason = "stop"
        else:
            self._text_ids.append(token)
        raw = self._loaded.tokenizer.decode(self._text_ids, skip_special_tokens=True)
        cut = self._first_stop(raw)
        if cut is not None:
            raw, reason = raw[:cut], "stop"
        elif reason is None and self._generated >= self._max:
            reason = "length"
        text = raw.lstrip() if self._strip else raw
        if reason is not None:
            self._emit(text, reason)
        elif self.request.stream:
            self._emit(text[: max(0, len(text) - self._held_back(raw))], None)
        return self.finished

    def _first_stop(self, raw: str) -> int | None:
        found = [index for index in (raw.find(stop) for stop in self._stops) if index >= 0]
        return min(found) if found else None

    def _held_back(self, raw: str) -> int:
        """How many characters at the end may still change: a partial stop or UTF-8 character."""
        held = len(raw) - len(raw.rstrip(_REPLACEMENT))
        for stop in self._stops:
            for size in range(len(stop) - 1, 0, -1):
                if raw.endswith(stop[:size]):
                    held = max(held, size)
                    break
        return held

    def _emit(self, text: str, reason: str | None) -> None:
        piece = text[len(self._emitted) :]
        if reason is None:
            if piece:
                self._emitted = text
                self.request.sink.put(Chunk(piece))
            return
        self.finished = True
        self._emitted = text
        usage = Usage(len(self.prompt_ids), self._generated)
        self.request.sink.put(Chunk(piece, reason, usage))


def start_row(request: Request, loaded: LoadedModel) -> Row:
    """Render and tokenize ``request`` for ``loaded``; ``InvalidInput`` when it cannot fit."""
    text, params, special, strip = _render(request, loaded.tokenizer)
    ids: list[int] = loaded.tokenizer(text, add_special_tokens=special)["input_ids"]
    if not ids:
        if loaded.bos_id is None:
            raise InvalidInput("the prompt is empty", param=_param(request))
        ids = [loaded.bos_id]
    context = request.context_length or loaded.context_length
    room = context - len(ids)
    if room < 1:
        raise InvalidInput(
            f"the prompt has {len(ids)} tokens; this model's context window is {context}",
            param=_param(request),
            code="context_length_exceeded",
        )
    wanted = params.max_tokens if params.max_tokens is not None else room
    return Row(request, loaded, ids, params, strip_leading=strip, max_new_tokens=min(wanted, room))


def _render(request: Request, tokenizer: Any) -> tuple[str, GenerationParams, bool, bool]:
    """(prompt text, merged params, add special tokens, strip the answer's leading space)."""
    if request.messages is None:
        return request.prompt or "", merge_params(request.version, request.params), True, False
    if uses_template(request.version) or not getattr(tokenizer, "chat_template", None):
        prompt, rendered = render_chat(request.messages, request.version, request.params)
        return prompt, merge_params(request.version, rendered), True, True
    seen = with_prompt_params(request.messages, request.version)  # system_prompt, few_shot
    chat = [{"role": m.role, "content": m.content} for m in seen]
    try:
        prompt = tokenizer.apply_chat_template(chat, tokenize=False, add_generation_prompt=True)
    except Exception as exc:  # jinja2 errors: the template refused these messages
        raise InvalidInput(
            f"the model's chat template refused the messages: {exc}", param="messages"
        ) from exc
    # The template writes the special tokens (BOS) itself.
    return str(prompt), merge_params(request.version, request.params), False, False


def _param(request: Request) -> str:
    return "prompt" if request.messages is None else "messages"


def rows_of(batch: Sequence[Request], loaded: LoadedModel) -> list[Row]:
    """Rows for the requests still wanted; a request that cannot be served gets its error."""
    rows: list[Row] = []
    for request in batch:
        if request.cancel.is_set():
            continue
        try:
            rows.append(start_row(request, loaded))
        except ModelcycleError as exc:
            request.sink.put(exc)
        except Exception as exc:  # a tokenizer bug must not take the batch down
            request.sink.put(UpstreamError(f"cannot tokenize the prompt: {exc}"))
    return rows
