"""JSON scorers: ``json_valid`` and ``json_schema``, on the guard's JSON checks.

Parsing, the nesting limit, code-fence stripping and schema compilation (any
draft, local ``$ref`` only, formats checked) are the guard ``json_schema``
detector's, so an answer the output guard accepts is one these scorers pass.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import orjson
from pydantic import Field

from modelcycle.errors import InvalidInput
from modelcycle.evaluate.scorers.options import ScorerOptions, parse_options
from modelcycle.evaluate.scorers.types import Score, Scorer, ScoringInput
from modelcycle.guard.detectors.json_schema import compile_schema, depth, unfenced

if TYPE_CHECKING:
    from jsonschema.protocols import Validator


class JsonValidOptions(ScorerOptions):
    """Options of ``json_valid``."""

    strip_code_fence: bool = Field(
        default=False,
        description="Accept an answer wrapped in a Markdown ```json fence (models often add one).",
    )
    max_depth: int = Field(
        default=64, ge=1, le=256, description="Deepest nesting of arrays and objects allowed."
    )


class JsonSchemaOptions(JsonValidOptions):
    """Options of ``json_schema``."""

    json_schema: dict[str, Any] = Field(
        alias="schema", description="The JSON Schema the parsed output must satisfy."
    )


class JsonValid(Scorer):
    """``json_valid``: 1 when the whole output parses as strict JSON (RFC 8259), else 0.

    No NaN or trailing commas; nesting deeper than ``max_depth`` fails.
    ``details.reason`` says why an output failed.
    """

    name = "json_valid"
    kind = "binary"
    needs_reference = False
    higher_is_better = True

    def __init__(self, options: JsonValidOptions):
        self._strip_fence = options.strip_code_fence
        self._max_depth = options.max_depth

    def parse(self, output: str) -> tuple[Any, str | None]:
        """The parsed output, or ``(None, reason)`` when it is not acceptable JSON."""
        body = unfenced(output) if self._strip_fence else output
        try:
            value = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            return None, f"not JSON: {exc}"
        if depth(value, self._max_depth) > self._max_depth:
            return None, f"nested deeper than {self._max_depth} levels"
        return value, None

    def score(self, sample: ScoringInput) -> Score:
        """1 when the output is JSON."""
        _, reason = self.parse(sample.output)
        if reason is not None:
            return Score.of(0.0, reason=reason)
        return Score.of(1.0)


class JsonSchemaScorer(JsonValid):
    """``json_schema``: 1 when the output is JSON that satisfies the schema, else 0.

    The schema is checked when the scorer is built (a malformed schema is a
    400). ``details.reason`` gives the first violation and where it is
    (``/items/0/price: -1 is less than the minimum of 0``), or the parse error.
    """

    name = "json_schema"

    def __init__(self, options: JsonSchemaOptions):
        super().__init__(options)
        try:
            self._validator: Validator = compile_schema(options.json_schema)
        except InvalidInput as exc:
            raise InvalidInput(f"scorer json_schema: option 'schema': {exc.message}") from None

    def score(self, sample: ScoringInput) -> Score:
        """1 when the output conforms."""
        value, reason = self.parse(sample.output)
        if reason is not None:
            return Score.of(0.0, reason=reason)
        error = next(iter(self._validator.iter_errors(value)), None)
        if error is None:
            return Score.of(1.0)
        where = "/" + "/".join(str(part) for part in error.absolute_path)
        return Score.of(0.0, reason=f"{where}: {error.message}"[:500])


def build_json_valid(options: Mapping[str, Any]) -> Scorer:
    """The ``json_valid`` scorer (options: ``JsonValidOptions``)."""
    return JsonValid(parse_options(JsonValidOptions, options, JsonValid.name))


def build_json_schema(options: Mapping[str, Any]) -> Scorer:
    """The ``json_schema`` scorer (options: ``JsonSchemaOptions``); the schema is checked here."""
    return JsonSchemaScorer(parse_options(JsonSchemaOptions, options, JsonSchemaScorer.name))
