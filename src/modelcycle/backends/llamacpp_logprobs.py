"""Token-level work on a loaded llama.cpp model: scoring prompts, generating with log-probabilities.

Called on the engine's thread only (``Llama`` is not thread-safe), and imported
lazily: it needs numpy and llama-cpp-python.

Why not ``Llama(logits_all=True)``: llama-cpp-python then keeps an
``n_ctx x n_vocab`` float32 array (2 GiB for Gemma 3 at 2,048 tokens and a
262,144-token vocabulary) and a second copy of the model, and its own
``logprobs`` code sorts the whole vocabulary in Python for every token. Here a
prompt is decoded in chunks of ``CHUNK`` tokens on the *shared* context, asking
llama.cpp for the logits of every position of the chunk and reducing each row to
what the answer needs (the token's log-probability and the top alternatives)
before the next chunk: memory is ``CHUNK x n_vocab`` floats whatever the prompt
length. ``benchmarks/llamacpp_logprobs.py`` measures both ways side by side.

Generated tokens are scored as they are sampled: a logits processor (the first
stage of llama.cpp's sampler chain, so it sees the raw logits) keeps the row of
the step, and the token drawn from it picks its log-probability. Values are the
model's own distribution (``log_softmax`` of the logits), before temperature,
penalties or grammar, as vLLM reports them.
"""

from __future__ import annotations

import ctypes
import random
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import llama_cpp
import numpy as np
import numpy.typing as npt

from modelcycle.backends.base import Chunk, TokenLogprob, TopLogprob, Usage

CHUNK = 128
"""Prompt tokens decoded at once when scoring (the logits buffer holds this many rows).

Smaller chunks cost time: at 32, scoring 256 tokens of Gemma 3 took 1.6x as long
as at 128 (llama.cpp's matrix products are less efficient on few rows)."""
BLOCK = 16
"""Rows reduced at once (bounds numpy's temporary arrays to ``BLOCK x n_vocab``)."""

_Logits = npt.NDArray[np.float32]


def piece(llm: Any, token: int, *, special: bool) -> bytes:
    """The bytes of one token (special tokens rendered as their text when ``special``)."""
    vocab = llama_cpp.llama_model_get_vocab(llm.model)
    size = 64
    while True:
        buffer = ctypes.create_string_buffer(size)
        n = llama_cpp.llama_token_to_piece(vocab, token, buffer, size, 0, special)
        if n >= 0:
            return buffer.raw[:n]
        size = -n  # the buffer was too small: n is minus the size needed


def token_text(raw: bytes) -> str:
    r"""A token as text; part of a character is written ``bytes:\xe2\x80`` as OpenAI does."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return "bytes:" + "".join(f"\\x{byte:02x}" for byte in raw)


def _entry(raw: bytes, logprob: float | None, top: tuple[TopLogprob, ...] | None) -> TokenLogprob:
    return TokenLogprob(token_text(raw), logprob, tuple(raw), top)


def _top(llm: Any, row: _Logits, lse: float, k: int) -> tuple[TopLogprob, ...]:
    if k <= 0:
        return ()
    best = np.argpartition(row, -k)[-k:]
    best = best[np.argsort(-row[best], kind="stable")]
    out = []
    for token in best.tolist():
        raw = piece(llm, token, special=False)
        out.append(TopLogprob(token_text(raw), float(row[token]) - lse, tuple(raw)))
    return tuple(out)


def _lse(rows: _Logits) -> npt.NDArray[np.float64]:
    """log(sum(exp(row))) of each row, ``BLOCK`` rows at a time."""
    if rows.ndim == 1:
        return _lse(rows[None, :])[0:1]
    out = np.empty(rows.shape[0], dtype=np.float64)
    for start in range(0, rows.shape[0], BLOCK):
        block = rows[start : start + BLOCK]
        peak = block.max(axis=1, keepdims=True)
        sums = np.exp(block - peak).sum(axis=1, dtype=np.float64)
        out[start : start + BLOCK] = peak[:, 0] + np.log(sums)
    return out


def score_prompt(llm: Any, tokens: Sequence[int], top_n: int) -> list[TokenLogprob]:
    """Every token of ``tokens`` with its log-probability given the ones before it.

    The first token has none (``None``). Leaves the context holding ``tokens``
    and ``llm``'s bookkeeping saying so, so that generating from the same
    prompt right after starts sampling without evaluating it again.
    """
    n = len(tokens)
    if n == 0:
        return []
    if n >= llm.n_ctx():
        raise ValueError(f"Requested tokens ({n}) exceed context window of {llm.n_ctx()}")
    ctx, n_vocab = llm.ctx, llm.n_vocab()
    llama_cpp.llama_memory_clear(llama_cpp.llama_get_memory(ctx), True)
    llm.n_tokens = 0
    entries = [_entry(piece(llm, tokens[0], special=True), None, None)]
    size = min(CHUNK, llm.n_batch)
    batch = llama_cpp.llama_batch_init(size, 0, 1)
    try:
        for start in range(0, n, size):
            part = tokens[start : start + size]
            fill_batch(batch, part, start)
            code = llama_cpp.llama_decode(ctx, batch)
            if code != 0:
                raise RuntimeError(f"llama_decode returned {code}")
            rows = np.ctypeslib.as_array(
                llama_cpp.llama_get_logits(ctx), shape=(len(part), n_vocab)
            )
            # Row r is the distribution of the token after position start + r.
            following = tokens[start + 1 : start + 1 + len(part)]
            if not following:
                continue
            used = rows[: len(following)]
            lse = _lse(used)
            chosen = used[np.arange(len(following)), following]
            for r, token in enumerate(following):
                logprob = float(chosen[r]) - float(lse[r])
                top = _top(llm, used[r], float(lse[r]), top_n)
                raw = piece(llm, token, special=True)
                entries.append(_entry(raw, logprob, top))
    finally:
        llama_cpp.llama_batch_free(batch)
    llm.input_ids[:n] = tokens
    llm.n_tokens = n
    return entries


def fill_batch(batch: Any, tokens: Sequence[int], start: int) -> None:
    """Put ``tokens`` of sequence 0 at positions ``start``..., every one an output."""
    batch.n_tokens = len(tokens)
    for i, token in enumerate(tokens):
        batch.token[i] = token
        batch.pos[i] = start + i
        batch.n_seq_id[i] = 1
        batch.seq_id[i][0] = 0
        batch.logits[i] = True


@dataclass(frozen=True, slots=True)
class Sampling:
    """How to draw tokens, as ``Llama.create_completion`` would."""

    max_tokens: int | None
    temperature: float
    top_p: float
    stop: tuple[str, ...] = ()
    seed: int | None = None
    grammar: Any = None
    top_k: int = 40
    min_p: float = 0.05
    repeat_penalty: float = 1.0


class _Capture:
    """A logits processor keeping the raw logits of the current step."""

    def __init__(self) -> None:
        self.row: _Logits | None = None
        self.lse = 0.0

    def __call__(self, _input_ids: Any, scores: Any) -> Any:
        self.row = np.array(scores, dtype=np.float32)  # a copy: later samplers reorder it
        self.lse = float(_lse(self.row)[0])
        return scores

    def entry(self, llm: Any, token: int, raw: bytes, top_n: int) -> TokenLogprob:
        assert self.row is not None
        logprob = float(self.row[token]) - self.lse
        return _entry(raw, logprob, _top(llm, self.row, self.lse, top_n))


def generate(
    llm: Any,
    prompt: Sequence[int],
    sampling: Sampling,
    top_n: int | None,
    cancel: threading.Event,
) -> Iterator[Chunk]:
    """Generate from prompt tokens: pieces of text, then a chunk with the finish reason.

    Pieces carry their tokens' logprobs when ``top_n`` is not ``None``; the
    last chunk has ``finish_reason`` and the usage. Text that could be the start
    of a stop sequence, or part of a character, is held back until the next
    token decides it.
    """
    limit = llm.n_ctx() - len(prompt)
    if limit <= 0:
        raise ValueError(f"Requested tokens ({len(prompt)}) exceed context window of {llm.n_ctx()}")
    wanted = limit if sampling.max_tokens is None else min(sampling.max_tokens, limit)
    if wanted <= 0:
        yield Chunk("", "length", Usage(len(prompt), 0))
        return
    seed = sampling.seed if sampling.seed is not None else random.getrandbits(32)
    llm.set_seed(seed & 0xFFFFFFFF)
    capture = _Capture() if top_n is not None else None
    vocab = llama_cpp.llama_model_get_vocab(llm.model)
    stops = [stop.encode("utf-8") for stop in sampling.stop if stop]
    longest = max((len(stop) for stop in stops), default=0)
    out = bytearray()
    spans: list[tuple[int, int, TokenLogprob | None]] = []  # (start, end, entry) per token
    emitted = sent = 0
    finish = "length"
    tokens = llm.generate(
        list(prompt),
        top_k=sampling.top_k,
        top_p=sampling.top_p,
        min_p=sampling.min_p,
        temp=sampling.temperature,
        repeat_penalty=sampling.repeat_penalty,
        logits_processor=llama_cpp.LogitsProcessorList([capture]) if capture else None,
        grammar=sampling.grammar,
    )
    count = 0
    for token in tokens:
        if cancel.is_set():
            return
        if llama_cpp.llama_vocab_is_eog(vocab, token):
            finish = "stop"
            break
        count += 1
        raw = piece(llm, token, special=False)
        entry = capture.entry(llm, token, raw, top_n or 0) if capture else None
        start = len(out)
        out += raw
        spans.append((start, len(out), entry))
        hit = _find_stop(out, stops, max(0, start - longest))
        if hit is not None:
            del out[hit:]
            finish = "stop"
            break
        if count >= wanted:
            break
        end = _safe_end(out, stops)
        if end > emitted:
            sent, logprobs = _settled(spans, sent, end)
            yield Chunk(out[emitted:end].decode("utf-8", "replace"), logprobs=logprobs)
            emitted = end
    tokens.close()
    # What remains: the held-back text, and the tokens that put bytes in the answer.
    rest = [entry for start, _, entry in spans[sent:] if start < len(out)]
    text = out[emitted:].decode("utf-8", "replace")
    if text or (capture and rest):
        yield Chunk(text, logprobs=_only(rest) if capture else None)
    yield Chunk("", finish, Usage(len(prompt), count))


def _only(entries: list[TokenLogprob | None]) -> tuple[TokenLogprob, ...]:
    return tuple(entry for entry in entries if entry is not None)


def _settled(
    spans: list[tuple[int, int, TokenLogprob | None]], sent: int, end: int
) -> tuple[int, tuple[TokenLogprob, ...] | None]:
    """Entries of the tokens that end within the first ``end`` bytes, not sent yet."""
    stop = sent
    while stop < len(spans) and spans[stop][1] <= end:
        stop += 1
    entries = [entry for _, _, entry in spans[sent:stop]]
    if not entries or entries[0] is None:
        return stop, None
    return stop, _only(entries)


def _find_stop(out: bytearray, stops: list[bytes], since: int) -> int | None:
    hits = [index for stop in stops if (index := out.find(stop, since)) >= 0]
    return min(hits) if hits else None


def _safe_end(out: bytearray, stops: list[bytes]) -> int:
    """How much of ``out`` can be sent: not a possible stop prefix, not half a character."""
    end = len(out)
    for stop in stops:
        for k in range(min(len(stop) - 1, len(out)), 0, -1):
            if out.endswith(stop[:k]):
                end = min(end, len(out) - k)
                break
    start = end
    while start > 0 and end - start < 4 and out[start - 1] & 0xC0 == 0x80:
        start -= 1
    if start > 0 and out[start - 1] >= 0xC0:
        lead = out[start - 1]
        need = 2 if lead < 0xE0 else 3 if lead < 0xF0 else 4
        if end - (start - 1) < need:
            return start - 1
    return end
