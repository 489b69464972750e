"""What ``MockBackend`` does beyond text: tokens, log-probabilities, JSON mode, embeddings.

Everything is deterministic, so tests can assert exact values:

- tokens are words with their leading whitespace (``"Hello world"`` is
  ``["Hello", " world"]``), the ones that usage counts; ids are handed out in
  order of first appearance by a ``WordVocabulary`` per backend instance, so
  ``/tokenize`` then ``/detokenize`` gives the text back (there is no BOS);
- a word's log-probability is a function of the word alone, and it is always the
  likeliest token at its position (what a greedy model would have produced);
- JSON mode answers a JSON value built from the reply (an object
  ``{"text": reply}``, or the smallest instance of the schema, strings filled
  with the reply);
- an embedding is a unit vector drawn from a generator seeded with a hash of
  the text: the same text always gives the same vector.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import re
import threading
from collections.abc import Sequence
from typing import Any

from modelcycle.backends.base import ResponseFormat, TokenLogprob, TopLogprob
from modelcycle.errors import InvalidInput

WORDS = re.compile(r"\s*\S+|\s+$")
"""A word and the whitespace before it; trailing whitespace is a token of its own."""
EMBEDDING_DIM = 16
CONTEXT_LENGTH = 4096


def words(text: str) -> list[str]:
    """The mock's tokens of ``text``."""
    return WORDS.findall(text)


class WordVocabulary:
    """Word <-> id, ids given out on first sight (thread-safe, grows with what it reads)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ids: dict[str, int] = {}
        self._words: list[str] = []

    def encode(self, text: str) -> list[int]:
        """The ids of ``text``."""
        with self._lock:
            ids = []
            for word in words(text):
                found = self._ids.get(word)
                if found is None:
                    found = self._ids[word] = len(self._words)
                    self._words.append(word)
                ids.append(found)
            return ids

    def decode(self, ids: Sequence[int], *, param: str) -> str:
        """The text of ``ids``; ``InvalidInput`` for an id never handed out."""
        with self._lock:
            out = []
            for token in ids:
                if not 0 <= token < len(self._words):
                    raise InvalidInput(
                        f"token id {token} is not in the mock vocabulary "
                        f"({len(self._words)} words so far)",
                        param=param,
                    )
                out.append(self._words[token])
            return "".join(out)

    def __len__(self) -> int:
        with self._lock:
            return len(self._words)


def _unit(seed: bytes) -> float:
    return int.from_bytes(hashlib.blake2b(seed, digest_size=8).digest(), "big") / 2**64


def scored(word: str, top_n: int, *, first: bool = False) -> TokenLogprob:
    """A word with its log-probability and ``top_n`` alternatives (it is the likeliest)."""
    raw = tuple(word.encode("utf-8"))
    if first:
        return TokenLogprob(word, None, raw, None)
    logprob = math.log(0.5 + 0.5 * _unit(word.encode("utf-8")))  # in (log 0.5, 0]
    top = [TopLogprob(word, logprob, raw)]
    for rank in range(1, top_n):
        alternative = f"{word}~{rank}"
        top.append(TopLogprob(alternative, logprob - rank, tuple(alternative.encode("utf-8"))))
    return TokenLogprob(word, logprob, raw, tuple(top[:top_n]))


def scored_text(text: str, top_n: int, *, prompt: bool = False) -> tuple[TokenLogprob, ...]:
    """Every word of ``text`` scored; a prompt's first word has no log-probability."""
    return tuple(
        scored(word, top_n, first=prompt and index == 0) for index, word in enumerate(words(text))
    )


def as_json(reply: str, response_format: ResponseFormat) -> str:
    """A JSON text built from ``reply`` that satisfies ``response_format``."""
    if response_format.schema is None:
        return json.dumps({"text": reply})
    try:
        schema = json.loads(response_format.schema)
    except ValueError as exc:
        raise InvalidInput(
            f"response_format schema is not JSON: {exc}", param="response_format"
        ) from exc
    return json.dumps(_instance(schema, reply, depth=0))


def _instance(schema: Any, reply: str, depth: int) -> Any:
    """The smallest value of ``schema`` (required properties only), strings set to ``reply``."""
    if not isinstance(schema, dict) or depth > 16:
        return reply
    if "const" in schema:
        return schema["const"]
    if schema.get("enum"):
        return schema["enum"][0]
    for key in ("anyOf", "oneOf", "allOf"):
        if schema.get(key):
            return _instance(schema[key][0], reply, depth + 1)
    kind = schema.get("type", "object" if "properties" in schema else "string")
    if isinstance(kind, list):
        kind = kind[0] if kind else "string"
    if kind == "object":
        properties = schema.get("properties") or {}
        return {
            name: _instance(properties.get(name, {}), reply, depth + 1)
            for name in schema.get("required") or list(properties)
        }
    if kind == "array":
        count = int(schema.get("minItems") or 0)
        return [_instance(schema.get("items", {}), reply, depth + 1) for _ in range(count)]
    defaults: dict[str, Any] = {"integer": 0, "number": 0, "boolean": False, "null": None}
    return defaults.get(str(kind), reply)


def embedding(text: str, dim: int) -> list[float]:
    """A unit vector of ``dim`` floats determined by ``text``."""
    rng = random.Random(hashlib.blake2b(text.encode("utf-8"), digest_size=16).digest())  # noqa: S311
    vector = [rng.gauss(0.0, 1.0) for _ in range(dim)]
    norm = math.sqrt(math.fsum(x * x for x in vector)) or 1.0
    return [x / norm for x in vector]


def shorten(vector: list[float], dimensions: int | None) -> list[float]:
    """The first ``dimensions`` components, scaled back to unit length (as OpenAI does)."""
    if dimensions is None or dimensions >= len(vector):
        return vector
    head = vector[:dimensions]
    norm = math.sqrt(math.fsum(x * x for x in head)) or 1.0
    return [x / norm for x in head]
