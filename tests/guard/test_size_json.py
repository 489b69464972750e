"""The ``max_size`` and ``json_schema`` detectors."""

from __future__ import annotations

import json
from typing import Any

import pytest

from modelcycle.errors import InvalidInput
from modelcycle.guard import DetectorRegistry, GuardPolicySpec
from modelcycle.guard.builtin import BuiltinDetectors
from modelcycle.guard.detectors.json_schema import build_json_schema
from modelcycle.guard.detectors.max_size import build_max_size

REGISTRY = DetectorRegistry(BuiltinDetectors().modelcycle_guard_detectors())
ANSWER_SCHEMA = {
    "type": "object",
    "required": ["answer", "confidence"],
    "properties": {
        "answer": {"type": "string"},
        "confidence": {"type": "number", "minimum": 0, "maximum": 1},
    },
    "additionalProperties": False,
}


def output_policy(detector: str, action: str, options: dict[str, Any]) -> Any:
    spec = GuardPolicySpec.model_validate(
        {"output": [{"detector": detector, "action": action, "options": options}]}
    )
    return REGISTRY.compile(spec)


def kinds(detector: Any, text: str) -> list[tuple[str, int, int]]:
    return [(f.type, f.start, f.end) for f in detector.detect(text)]


# -- max_size ---------------------------------------------------------------------------


def test_texts_over_the_character_limit_are_too_large_from_the_limit_on() -> None:
    detector = build_max_size({"max_chars": 10})

    assert kinds(detector, "x" * 10) == []
    assert kinds(detector, "x" * 25) == [("TOO_LARGE", 10, 25)]


def test_the_token_limit_uses_the_length_estimate_and_replaces_the_default() -> None:
    detector = build_max_size({"max_tokens": 50_000})  # 200k chars, above the default 100k

    assert kinds(detector, "x" * 150_000) == []
    assert kinds(detector, "x" * 200_001) == [("TOO_LARGE", 200_000, 200_001)]
    assert kinds(build_max_size({"max_tokens": 3, "chars_per_token": 2}), "abcdefg") == [
        ("TOO_LARGE", 6, 7)
    ]


def test_the_default_limit_is_100k_characters() -> None:
    assert kinds(build_max_size({}), "y" * 100_001) == [("TOO_LARGE", 100_000, 100_001)]


def test_redact_cuts_the_text_at_the_limit() -> None:
    policy = output_policy("max_size", "redact", {"max_chars": 5})

    decision = policy.check("Hello, world", "output")

    assert decision.redacted_text == "Hello[TOO_LARGE]"


@pytest.mark.parametrize(
    "options", [{"max_chars": None}, {"max_chars": 0}, {"max_tokens": -1}, {"max_bytes": 1}]
)
def test_bad_size_options_are_refused(options: dict[str, Any]) -> None:
    with pytest.raises(InvalidInput, match=r"^max_size: "):
        build_max_size(options)


# -- json_schema ------------------------------------------------------------------------


def test_without_a_schema_only_valid_json_passes() -> None:
    detector = build_json_schema({})

    assert kinds(detector, '{"a": [1, 2, {"b": null}]}') == []
    assert kinds(detector, "Sure! Here is the JSON: {}") == [("INVALID_JSON", 0, 26)]
    assert kinds(detector, "") == [("INVALID_JSON", 0, 0)]


def test_with_a_schema_the_shape_is_checked() -> None:
    detector = build_json_schema({"schema": ANSWER_SCHEMA})
    good = json.dumps({"answer": "Paris", "confidence": 0.9})
    bad = json.dumps({"answer": "Paris", "confidence": 7})
    extra = json.dumps({"answer": "Paris", "confidence": 0.5, "note": "x"})

    assert kinds(detector, good) == []
    assert kinds(detector, bad) == [("SCHEMA_VIOLATION", 0, len(bad))]
    assert kinds(detector, extra) == [("SCHEMA_VIOLATION", 0, len(extra))]


def test_nesting_beyond_any_limit_is_invalid_json_not_a_crash() -> None:
    detector = build_json_schema({"schema": {"type": "array"}, "max_depth": 8})

    assert kinds(detector, "[" * 8 + "]" * 8) == []
    assert kinds(detector, "[" * 9 + "]" * 9)[0][0] == "INVALID_JSON"
    assert kinds(detector, "[" * 100_000 + "]" * 100_000)[0][0] == "INVALID_JSON"
    assert kinds(detector, '{"a":' * 5000 + "1" + "}" * 5000)[0][0] == "INVALID_JSON"


def test_a_code_fence_is_accepted_only_when_asked() -> None:
    fenced = '```json\n{"answer": "Paris", "confidence": 1}\n```'

    assert kinds(build_json_schema({"schema": ANSWER_SCHEMA}), fenced)[0][0] == "INVALID_JSON"
    assert (
        kinds(build_json_schema({"schema": ANSWER_SCHEMA, "strip_code_fence": True}), fenced) == []
    )


def test_a_policy_blocks_an_answer_that_breaks_the_schema() -> None:
    policy = output_policy("json_schema", "block", {"schema": ANSWER_SCHEMA})

    assert policy.check('{"answer": "x", "confidence": 0.1}', "output").action == "allow"
    assert policy.check("I cannot answer that.", "output").blocked_by == ("INVALID_JSON",)


@pytest.mark.parametrize(
    ("options", "named"),
    [
        ({"schema": {"type": "nonsense"}}, "not a valid JSON Schema at type"),
        ({"schema": {"$ref": "https://example.com/schema.json"}}, "only local references"),
        ({"schema": {"properties": {"a": {"$ref": "file:///etc/passwd"}}}}, "$ref"),
        ({"schema": "object"}, "schema"),
        ({"max_depth": 0}, "max_depth"),
    ],
)
def test_a_bad_schema_fails_the_policy_compile_naming_the_rule(
    options: dict[str, Any], named: str
) -> None:
    spec = GuardPolicySpec.model_validate(
        {"output": [{"detector": "json_schema", "action": "block", "options": options}]}
    )

    with pytest.raises(InvalidInput) as caught:
        REGISTRY.compile(spec)

    assert caught.value.message.startswith("output[0].options: json_schema")
    assert named in caught.value.message
