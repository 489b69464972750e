"""The ``toxicity`` detector: EN/ES lexicons on normalised text, whole words only."""

from __future__ import annotations

from typing import Any

import pytest

from modelcycle.errors import InvalidInput
from modelcycle.guard import DetectorRegistry, GuardPolicySpec
from modelcycle.guard.builtin import BuiltinDetectors
from modelcycle.guard.detectors.phrases import PhraseSet, expand, normalise
from modelcycle.guard.detectors.toxicity import ToxicityDetector, build_toxicity


@pytest.fixture(scope="module")
def toxicity() -> ToxicityDetector:
    return build_toxicity({})


def found(detector: ToxicityDetector, text: str) -> list[tuple[str, str]]:
    """(type, the text each finding covers)."""
    return [(f.type, text[f.start : f.end]) for f in detector.detect(text)]


@pytest.mark.parametrize(
    ("text", "kind", "span"),
    [
        ("You are such an idiot.", "INSULT", "idiot"),
        ("I'll kill you if you come back", "THREAT", "I'll kill you"),
        ("This is bullshit.", "PROFANITY", "bullshit"),
        ("Send me nudes", "SEXUAL", "Send me nudes"),
        ("Just go kill yourself", "SELF_HARM", "go kill yourself"),
        ("Immigrants are vermin.", "HATE", "Immigrants are vermin"),
        ("Eres un gilipollas.", "INSULT", "gilipollas"),
        ("Te voy a matar, lo juro.", "THREAT", "Te voy a matar"),
        ("Joder, se ha roto otra vez.", "PROFANITY", "Joder"),
        ("Me quiero suicidar.", "SELF_HARM", "Me quiero suicidar"),
        ("Sudacas de mierda.", "HATE", "Sudacas de mierda"),
        ("Quiero follarte ya.", "SEXUAL", "Quiero follarte"),
    ],
)
def test_each_category_is_found_with_its_span_in_english_and_spanish(
    toxicity: ToxicityDetector, text: str, kind: str, span: str
) -> None:
    assert found(toxicity, text) == [(kind, span)]


@pytest.mark.parametrize(
    "text",
    [
        "Scunthorpe United drew with Essex.",
        "The assassin studied classical bass in Massachusetts.",
        "Add gin to the cocktail; Dickens would approve of the analysis.",
        "Mi perra se llama Luna.",
        "La zorra vive en el bosque.",
        "Compré un cono de helado y un capullo de rosa.",
        "Voy a coger el autobús.",
        "Me muero de risa con este vídeo.",
        "No sé dónde vives, pásame la dirección.",
        "Don't kill yourself over this deadline.",
        "I'm a gay Jewish woman; Black history month starts soon.",
    ],
)
def test_no_substring_homonym_or_identity_false_positives(
    toxicity: ToxicityDetector, text: str
) -> None:
    assert toxicity.detect(text) == []


@pytest.mark.parametrize(
    ("text", "span"),
    [
        ("MARICÓN", "MARICÓN"),
        ("what an @$$hole", "@$$hole"),
        ("fuuuuuck this", "fuuuuuck"),
        ("\uff46\uff55\uff43\uff4b this", "\uff46\uff55\uff43\uff4b"),  # full-width
        ("you 1d10t", "you 1d10t"),
        ("sh1t happens", "sh1t"),
    ],
)
def test_accents_case_width_leetspeak_and_stretching_do_not_hide_a_word(
    toxicity: ToxicityDetector, text: str, span: str
) -> None:
    assert [s for _, s in found(toxicity, text)] == [span]


def test_spans_are_offsets_into_the_original_text_after_expanding_characters(
    toxicity: ToxicityDetector,
) -> None:
    # ß folds to "ss" and the ligature to "fi": the normalised text is longer.
    text = "Straße ﬁne, but you idiot — ñandú."
    (finding,) = toxicity.detect(text)
    assert text[finding.start : finding.end] == "you idiot"


def test_allow_and_extra_terms_change_what_is_reported() -> None:
    tuned = build_toxicity({"allow_terms": ["idiot"], "extra_terms": {"INSULT": ["numpkin*"]}})

    assert found(tuned, "what an idiot") == []
    assert found(tuned, "you numpkins!") == [("INSULT", "numpkins")]
    assert found(tuned, "eres un gilipollas") == [("INSULT", "gilipollas")]


def test_languages_option_limits_the_lexicons() -> None:
    english = build_toxicity({"languages": ["en"]})

    assert english.detect("eres un gilipollas") == []
    assert found(english, "you moron") == [("INSULT", "you moron")]


@pytest.mark.parametrize(
    ("options", "named"),
    [
        ({"languages": ["fr"]}, "languages"),
        ({"extra_terms": {"RUDE": ["x"]}}, "extra_terms"),
        ({"extra_terms": {"INSULT": ["((a|b)"]}}, "extra_terms.INSULT[0]"),
        ({"allow_terms": ["!!!"]}, "allow_terms[0]"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_bad_options_fail_the_policy_compile_naming_the_rule_and_option(
    options: dict[str, Any], named: str
) -> None:
    registry = DetectorRegistry(BuiltinDetectors().modelcycle_guard_detectors())
    spec = GuardPolicySpec.model_validate(
        {"input": [{"detector": "toxicity", "action": "block", "options": options}]}
    )

    with pytest.raises(InvalidInput) as caught:
        registry.compile(spec)

    assert caught.value.message.startswith("input[0].options: toxicity")
    assert named in caught.value.message


def test_a_policy_redacts_abuse_and_blocks_threats() -> None:
    registry = DetectorRegistry(BuiltinDetectors().modelcycle_guard_detectors())
    spec = GuardPolicySpec.model_validate(
        {
            "input": [
                {"detector": "toxicity", "action": "block", "types": ["THREAT"]},
                {"detector": "toxicity", "action": "redact", "types": ["PROFANITY", "INSULT"]},
            ]
        }
    )
    policy = registry.compile(spec)

    rude = policy.check("this shit app, you idiot", "input")
    threat = policy.check("i will kill you", "input")

    assert rude.action == "redact"
    assert rude.redacted_text == "this [PROFANITY] app, [INSULT]"
    assert threat.blocked
    assert threat.blocked_by == ("THREAT",)


def test_pattern_choices_expand_and_a_trailing_star_matches_prefixes() -> None:
    phrases: PhraseSet[str] = PhraseSet()
    phrases.add("(i|we) (will|ll) call", "CALL")
    phrases.add("refund*", "REFUND")

    assert expand("(a|b) c (d|)") == ["a c d", "a c ", "b c d", "b c "]
    assert [m.payload for m in phrases.find("We'll call about the refunds")] == [
        "CALL",
        "REFUND",
    ]


def test_normalisation_keeps_a_map_to_the_original_offsets() -> None:
    plain = normalise("Hello W0RLD")
    folded = normalise("Maße")

    assert plain.text == "hello world"
    assert plain.index is None
    assert folded.text == "masse"
    assert folded.original_span(2, 4) == (2, 3)  # "ss" came from the one "ß"
