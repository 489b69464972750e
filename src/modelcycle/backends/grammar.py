"""JSON mode for local engines: OpenAI's ``response_format`` as a llama.cpp grammar.

``{"type": "json_object"}`` uses the JSON grammar shipped with llama.cpp
(whitespace bounded, so a model cannot run away in indentation);
``{"type": "json_schema", "json_schema": {"schema": ...}}`` is converted by
llama.cpp's own JSON-schema-to-grammar converter. Sampling under the grammar
can only produce text the grammar accepts, and generation ends when the value
is complete; an answer cut by ``max_tokens`` (``finish_reason: "length"``) can
still be partial, as with OpenAI.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from typing import Any

from modelcycle.backends.base import ResponseFormat
from modelcycle.errors import InvalidInput, MissingExtra

JSON_OBJECT = "json_object"
JSON_SCHEMA = "json_schema"
CACHED = 64
"""Compiled grammars kept per backend (a schema is usually sent again and again)."""
MAX_GRAMMAR = 256 * 1024
"""Longest grammar text accepted: ``maxLength: 1000000`` would expand to megabytes that
llama.cpp parses for every request."""


def gbnf(response_format: ResponseFormat) -> str:
    """The GBNF grammar text for ``response_format``; ``InvalidInput`` for a bad schema."""
    try:
        from llama_cpp import llama_grammar
    except ImportError as exc:
        raise MissingExtra("llama-cpp-python", "local") from exc
    if response_format.type == JSON_OBJECT:
        return str(llama_grammar.JSON_GBNF)
    if response_format.type != JSON_SCHEMA or response_format.schema is None:
        raise InvalidInput(
            f"response_format type '{response_format.type}' is not supported",
            param="response_format",
        )
    remote = _remote_ref(json.loads(response_format.schema))
    if remote is not None:
        # The converter would fetch it: a client must never make the server call out.
        raise InvalidInput(
            f"response_format schema: only local $ref ('#/...') are allowed, got {remote!r}",
            param="response_format",
        )
    try:
        text = str(llama_grammar.json_schema_to_gbnf(response_format.schema))
    except (ValueError, KeyError, TypeError, AssertionError, RecursionError) as exc:
        raise InvalidInput(
            f"response_format.json_schema.schema cannot be enforced: {exc}",
            param="response_format",
        ) from exc
    if len(text) > MAX_GRAMMAR:
        raise InvalidInput(
            "response_format schema is too large to enforce (its grammar exceeds "
            f"{MAX_GRAMMAR // 1024} KiB); lower its maxLength, maxItems or nesting",
            param="response_format",
        )
    return text


def _remote_ref(schema: Any) -> str | None:
    """The first ``$ref`` that does not point inside the schema, if any."""
    stack = [schema]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and not ref.startswith("#"):
                return ref
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return None


class Grammars:
    """Compiled grammars by response format, the most recently used ``CACHED`` kept."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._compiled: OrderedDict[ResponseFormat, Any] = OrderedDict()

    def get(self, response_format: ResponseFormat) -> Any:
        """The ``LlamaGrammar`` for ``response_format`` (compiled once)."""
        with self._lock:
            found = self._compiled.get(response_format)
            if found is not None:
                self._compiled.move_to_end(response_format)
                return found
        from llama_cpp.llama_grammar import LlamaGrammar

        grammar = LlamaGrammar.from_string(gbnf(response_format), verbose=False)
        with self._lock:
            self._compiled[response_format] = grammar
            while len(self._compiled) > CACHED:
                self._compiled.popitem(last=False)
        return grammar
