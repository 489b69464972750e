"""``json_schema``: answers of a deployment that promises JSON are JSON, of the promised shape.

Meant for the output stage. Without a schema it checks only that the answer
parses; with one (any JSON Schema draft, checked when the policy is saved) it
validates the parsed answer too. Findings cover the whole text:
``INVALID_JSON`` (does not parse, or nests deeper than ``max_depth``) and
``SCHEMA_VIOLATION``. Parsing uses orjson, which stops at 1024 levels, and the
depth is measured without recursion, so no answer can exhaust the stack.

``$ref`` may point only inside the schema (``#/...``): a schema never makes the
server fetch anything. A ``pattern`` keyword runs Python's ``re`` on the answer;
give the rule a ``timeout_ms`` when the pattern is not yours to trust.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

import orjson
from pydantic import Field

from modelcycle.errors import InvalidInput
from modelcycle.guard.detectors.options import DetectorOptions, parse_options
from modelcycle.guard.types import Finding

if TYPE_CHECKING:
    from jsonschema.protocols import Validator

NAME = "json_schema"
INVALID_JSON = "INVALID_JSON"
SCHEMA_VIOLATION = "SCHEMA_VIOLATION"
FENCE = "```"


class JsonSchemaOptions(DetectorOptions):
    """Options of the ``json_schema`` detector."""

    json_schema: dict[str, Any] | None = Field(
        default=None,
        alias="schema",
        description="A JSON Schema the answer must satisfy; None: any valid JSON.",
    )
    max_depth: int = Field(
        default=64, ge=1, le=256, description="Deepest nesting of arrays and objects allowed."
    )
    strip_code_fence: bool = Field(
        default=False,
        description="Accept an answer wrapped in a Markdown ```json fence (models often add one).",
    )


def _refs(node: Any) -> Iterator[Any]:
    """Every ``$ref`` value in a schema, found without recursion."""
    stack = [node]
    while stack:
        current = stack.pop()
        if isinstance(current, dict):
            if "$ref" in current:
                yield current["$ref"]
            stack.extend(current.values())
        elif isinstance(current, list):
            stack.extend(current)


def compile_schema(schema: dict[str, Any]) -> Validator:
    """A validator for ``schema``; ``InvalidInput`` when it is not a valid JSON Schema."""
    import jsonschema  # imported here: only policies with a schema pay for it
    from referencing import Registry

    for ref in _refs(schema):
        if not isinstance(ref, str) or not ref.startswith("#"):
            raise InvalidInput(
                f"{NAME}: schema $ref {ref!r} points outside the schema; "
                "only local references (#/...) are allowed"
            )
    validator_class = jsonschema.validators.validator_for(schema)
    try:
        validator_class.check_schema(schema)
    except jsonschema.SchemaError as exc:
        where = "/".join(str(part) for part in exc.absolute_path) or "(root)"
        raise InvalidInput(f"{NAME}: not a valid JSON Schema at {where}: {exc.message}") from None
    return validator_class(
        schema, registry=Registry(), format_checker=validator_class.FORMAT_CHECKER
    )


def depth(value: Any, limit: int) -> int:
    """Nesting depth of a parsed JSON value (a scalar is 0), counted up to ``limit + 1``."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        current, level = stack.pop()
        if isinstance(current, dict | list):
            level += 1
            deepest = max(deepest, level)
            if deepest > limit:
                return deepest
            children = current.values() if isinstance(current, dict) else current
            stack.extend((child, level) for child in children)
    return deepest


def unfenced(text: str) -> str:
    """``text`` without a surrounding Markdown code fence (```json ... ```), if it has one."""
    stripped = text.strip()
    if not (stripped.startswith(FENCE) and stripped.endswith(FENCE) and len(stripped) > 6):
        return text
    first_line, newline, rest = stripped[len(FENCE) : -len(FENCE)].partition("\n")
    if not newline or (first_line.strip() and not first_line.strip().isalnum()):
        return text
    return rest


class JsonSchemaDetector:
    """``INVALID_JSON`` or ``SCHEMA_VIOLATION`` over the whole text; nothing when it conforms."""

    name = NAME
    whole_text = True
    """Judges a text as a whole: a streamed answer needs it once, complete, not per window."""

    def __init__(self, options: JsonSchemaOptions):
        self._max_depth = options.max_depth
        self._strip_fence = options.strip_code_fence
        self._validator = (
            compile_schema(options.json_schema) if options.json_schema is not None else None
        )

    def detect(self, text: str) -> list[Finding]:
        """One finding when ``text`` is not JSON of the expected shape."""
        body = unfenced(text) if self._strip_fence else text
        try:
            value = orjson.loads(body)
        except orjson.JSONDecodeError:
            return [Finding(NAME, INVALID_JSON, 0, len(text), 1.0)]
        if depth(value, self._max_depth) > self._max_depth:
            return [Finding(NAME, INVALID_JSON, 0, len(text), 1.0)]
        if self._validator is not None and not self._validator.is_valid(value):
            return [Finding(NAME, SCHEMA_VIOLATION, 0, len(text), 1.0)]
        return []


def build_json_schema(options: Mapping[str, Any]) -> JsonSchemaDetector:
    """The ``json_schema`` detector for a rule's options."""
    return JsonSchemaDetector(parse_options(JsonSchemaOptions, options, NAME))
