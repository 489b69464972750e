"""The ``topics`` detector: denied topics by phrase, off-topic texts by allow-list."""

from __future__ import annotations

from typing import Any

import pytest

from modelcycle.errors import InvalidInput
from modelcycle.guard import DetectorRegistry, GuardPolicySpec
from modelcycle.guard.builtin import BuiltinDetectors
from modelcycle.guard.detectors.topics import build_topics

POLITICS = {"politics": ["election*", "(vote|votar) (for|por)", "elecciones", "partido politico"]}
BILLING = {"BILLING": ["invoice*", "refund*", "factura*", "reembolso"]}


def found(options: dict[str, Any], text: str) -> list[tuple[str, str]]:
    return [(f.type, text[f.start : f.end]) for f in build_topics(options).detect(text)]


def test_denied_phrases_are_found_in_english_and_spanish_with_accents_folded() -> None:
    options = {"deny": POLITICS}

    assert found(options, "Who should I vote for in the Elections?") == [
        ("TOPIC_POLITICS", "vote for"),
        ("TOPIC_POLITICS", "Elections"),
    ]
    assert found(options, "¿A qué partido político debo votar por fin?") == [
        ("TOPIC_POLITICS", "partido político"),
        ("TOPIC_POLITICS", "votar por"),
    ]
    assert found(options, "Electricity prices rose.") == []


def test_a_text_with_no_allowed_topic_is_off_topic_as_a_whole() -> None:
    options = {"allow": BILLING}
    text = "Write me a poem about the sea."

    assert found(options, "My invoice is wrong") == []
    assert found(options, "¿Dónde está mi factura?") == []
    assert found(options, text) == [("OFF_TOPIC", text)]
    assert found(options, "   ") == []


def test_short_texts_can_be_exempt_from_off_topic() -> None:
    options = {"allow": BILLING, "off_topic_min_chars": 12}

    assert found(options, "thanks!") == []
    assert [kind for kind, _ in found(options, "tell me a long story")] == ["OFF_TOPIC"]


def test_deny_and_allow_together() -> None:
    options = {"deny": POLITICS, "allow": BILLING}

    assert found(options, "refund me or I vote for the other party") == [
        ("TOPIC_POLITICS", "vote for")
    ]


def test_a_policy_blocks_a_denied_topic_and_names_it() -> None:
    registry = DetectorRegistry(BuiltinDetectors().modelcycle_guard_detectors())
    spec = GuardPolicySpec.model_validate(
        {"input": [{"detector": "topics", "action": "block", "options": {"deny": POLITICS}}]}
    )

    decision = registry.compile(spec).check("any thoughts on the elections?", "input")

    assert decision.blocked
    assert decision.blocked_by == ("TOPIC_POLITICS",)


@pytest.mark.parametrize(
    ("options", "named"),
    [
        ({}, "give deny, allow or both"),
        ({"deny": {"bad topic!": ["x"]}}, "deny"),
        ({"deny": {"POLITICS": []}}, "deny.POLITICS"),
        ({"allow": {"BILLING": ["!!!"]}}, "allow.BILLING[0]"),
        ({"deny": {"X": ["(a|b"]}}, "unbalanced"),
        ({"block": {"X": ["y"]}}, "block"),
    ],
)
def test_bad_options_are_a_400_naming_what_is_wrong(options: dict[str, Any], named: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        build_topics(options)

    assert caught.value.message.startswith("topics: ")
    assert named in caught.value.message
