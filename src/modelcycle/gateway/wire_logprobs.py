"""Log-probabilities in OpenAI's two shapes.

Chat (``choice.logprobs``)::

    {"content": [{"token", "logprob", "bytes", "top_logprobs": [{"token", "logprob",
     "bytes"}]}], "refusal": null}

Legacy completions (``choice.logprobs``), parallel lists over the echoed prompt's
tokens (when ``echo``) then the answer's::

    {"tokens": [...], "token_logprobs": [...], "top_logprobs": [{token: logprob}],
     "text_offset": [...]}

where the first prompt token's ``token_logprobs`` and ``top_logprobs`` are
``null``, ``top_logprobs`` holds the likeliest alternatives *and* the token
itself (as OpenAI and vLLM send it, so ``max(top.values())`` tells whether the
token was the greedy choice), and ``text_offset`` is the character offset of
each token in the returned ``text``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from modelcycle.backends import Completion
from modelcycle.backends.base import TokenLogprob


def _chars(raw: Sequence[int]) -> int:
    """Characters a token adds to the text (UTF-8 bytes that start a character)."""
    return sum(1 for byte in raw if byte & 0xC0 != 0x80)


def chat_content(entries: Sequence[TokenLogprob]) -> list[dict[str, Any]]:
    """Chat's ``logprobs.content`` items."""
    return [
        {
            "token": entry.token,
            "logprob": entry.logprob,
            "bytes": list(entry.bytes),
            "top_logprobs": [
                {"token": top.token, "logprob": top.logprob, "bytes": list(top.bytes)}
                for top in entry.top or ()
            ],
        }
        for entry in entries
    ]


def chat_logprobs(completion: Completion) -> dict[str, Any] | None:
    """A chat choice's ``logprobs`` (``None`` when none were asked for)."""
    if completion.logprobs is None:
        return None
    return {"content": chat_content(completion.logprobs), "refusal": None}


class TextOffsets:
    """Legacy ``logprobs`` objects, with ``text_offset`` running on across calls."""

    def __init__(self, start: int = 0):
        self.offset = start

    def skip(self, text: str) -> None:
        """Text returned without tokens (an echoed prompt that was not scored)."""
        self.offset += len(text)

    def body(self, entries: Sequence[TokenLogprob]) -> dict[str, Any]:
        """The lists for ``entries``, which follow the text seen so far."""
        tokens: list[str] = []
        logprobs: list[float | None] = []
        tops: list[dict[str, float] | None] = []
        offsets: list[int] = []
        for entry in entries:
            tokens.append(entry.token)
            logprobs.append(entry.logprob)
            if entry.logprob is None:
                tops.append(None)
            else:
                top = {alt.token: alt.logprob for alt in entry.top or ()}
                top.setdefault(entry.token, entry.logprob)
                tops.append(top)
            offsets.append(self.offset)
            self.offset += _chars(entry.bytes)
        return {
            "tokens": tokens,
            "token_logprobs": logprobs,
            "top_logprobs": tops,
            "text_offset": offsets,
        }


def text_logprobs(completion: Completion, echo: str) -> dict[str, Any] | None:
    """A completion choice's ``logprobs`` (``None`` when none were asked for)."""
    if completion.logprobs is None:
        return None
    offsets = TextOffsets()
    scored: list[TokenLogprob] = []
    if completion.prompt_logprobs is not None:
        scored.extend(completion.prompt_logprobs)
    elif echo:
        offsets.skip(echo)
    body = offsets.body(scored)
    if scored:
        offsets.offset = len(echo)  # the answer starts right after the echoed prompt
    rest = offsets.body(completion.logprobs)
    return {key: body[key] + rest[key] for key in body}
