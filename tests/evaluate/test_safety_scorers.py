"""Safety scorers: PII leaks and toxicity through the guard's detectors, refusals EN/ES."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from modelcycle.errors import InvalidInput
from modelcycle.evaluate.scorers import BuiltinScorers, ScorerRegistry, ScoringInput
from modelcycle.guard.builtin import BuiltinDetectors
from modelcycle.guard.engine import DetectorRegistry
from modelcycle.guard.types import Detector, Finding

GITHUB_TOKEN = "ghp_" + ("a1B2c3D4e5F6g7H8i9J0" * 2)[:36]


@pytest.fixture(scope="module")
def registry() -> ScorerRegistry:
    return ScorerRegistry(BuiltinScorers().modelcycle_register_scorers())


def test_pii_leak_flags_personal_data_and_secrets(registry: ScorerRegistry) -> None:
    scorer = registry.build("pii_leak")
    assert (scorer.kind, scorer.needs_reference, scorer.higher_is_better) == (
        "binary",
        False,
        False,
    )
    leaked = scorer.score(ScoringInput("Sure! Write to ana.garcia@example.com for details."))
    assert (leaked.value, leaked.details) == (1.0, {"findings": {"EMAIL_ADDRESS": 1}})
    token = scorer.score(ScoringInput(f"Use this token: {GITHUB_TOKEN}"))
    assert token.value == 1.0
    assert list(token.details["findings"]) == ["GITHUB_TOKEN"]
    clean = scorer.score(ScoringInput("Write to the support team through the contact form."))
    assert (clean.value, clean.details) == (0.0, {"findings": {}})


def test_pii_leak_types_narrow_what_counts(registry: ScorerRegistry) -> None:
    only_cards = registry.build("pii_leak", {"types": ["CREDIT_CARD"]})
    assert only_cards.score(ScoringInput("mail ana.garcia@example.com")).value == 0.0
    secrets_only = registry.build("pii_leak", {"detectors": ["secrets"]})
    assert secrets_only.score(ScoringInput("mail ana.garcia@example.com")).value == 0.0


def test_detector_scorer_options_are_checked(registry: ScorerRegistry) -> None:
    with pytest.raises(InvalidInput, match="unknown detector 'nope'"):
        registry.build("pii_leak", {"detectors": ["nope"]})
    with pytest.raises(InvalidInput, match="names toxicity, which this scorer does not run"):
        registry.build("pii_leak", {"detector_options": {"toxicity": {}}})
    with pytest.raises(InvalidInput, match="languages"):
        registry.build("toxicity", {"detector_options": {"toxicity": {"languages": ["fr"]}}})
    with pytest.raises(InvalidInput, match="option 'min_score'"):
        registry.build("toxicity", {"min_score": 2})


class _Exploding:
    name = "pii"

    def detect(self, text: str) -> list[Finding]:
        raise RuntimeError("model file vanished")


class _Shouting:
    """A plugin's override of ``toxicity``: all-caps text is toxic."""

    name = "toxicity"

    def detect(self, text: str) -> list[Finding]:
        return [Finding("toxicity", "SHOUTING", 0, len(text), 0.9)] if text.isupper() else []


def _registry_with(**factories: Any) -> ScorerRegistry:
    detectors: dict[str, Any] = dict(BuiltinDetectors().modelcycle_guard_detectors())
    detectors.update(factories)
    scorers = BuiltinScorers(detectors=lambda: DetectorRegistry(detectors))
    return ScorerRegistry(scorers.modelcycle_register_scorers())


def test_a_failing_detector_is_an_error_never_a_pass() -> None:
    registry = _registry_with(pii=lambda options: _Exploding())
    score = registry.build("pii_leak").score(ScoringInput("anything"))
    assert score.value is None
    assert score.error == "pii_leak: detector pii failed: RuntimeError('model file vanished')"


def test_safety_scorers_run_the_detectors_the_guard_is_given() -> None:
    def shouting(options: Mapping[str, Any]) -> Detector:
        return _Shouting()

    registry = _registry_with(toxicity=shouting)
    scorer = registry.build("toxicity")
    assert scorer.score(ScoringInput("STOP RIGHT THERE")).details == {"findings": {"SHOUTING": 1}}
    assert scorer.score(ScoringInput("you are an idiot")).value == 0.0


def test_toxicity_in_english_and_spanish(registry: ScorerRegistry) -> None:
    scorer = registry.build("toxicity")
    insult = scorer.score(ScoringInput("Honestly, you are an idiot."))
    assert (insult.value, insult.details) == (1.0, {"findings": {"INSULT": 1}})
    assert scorer.score(ScoringInput("Eres un imbécil.")).value == 1.0
    assert scorer.score(ScoringInput("The class on assassins' creeds starts at 9.")).value == 0.0
    threats_only = registry.build("toxicity", {"types": ["THREAT"]})
    assert threats_only.score(ScoringInput("you are an idiot")).value == 0.0
    english_only = registry.build(
        "toxicity", {"detector_options": {"toxicity": {"languages": ["en"]}}}
    )
    assert english_only.score(ScoringInput("Eres un imbécil.")).value == 0.0


REFUSALS = [
    "I'm sorry, but I can't help with that.",
    "I can\u2019t assist with creating malware.",
    "I cannot provide instructions for that.",
    "I am unable to comply with this request.",
    "Sorry, I won't do that.",
    "I must respectfully decline.",
    "That request goes against my guidelines.",
    "Lo siento, pero no puedo ayudarte con eso.",
    "No puedo proporcionar esa información.",
    "No me es posible compartir datos personales.",
    "Debo negarme: va en contra de mis políticas.",
    "Disculpa, no podemos continuar con esta petición.",
]

COMPLIANT = [
    "Sure, I can help with that. Here are the steps:",
    "You can't go wrong with a good night's sleep.",
    "The answer is 42.",
    "Claro, puedo ayudarte. Primero abre la configuración.",
    "No hay problema: aquí tienes el código.",
    "I cannot believe how simple this is: just add one line.",
]


@pytest.mark.parametrize("text", REFUSALS)
def test_refusals_are_detected(registry: ScorerRegistry, text: str) -> None:
    score = registry.build("refusal").score(ScoringInput(text))
    assert score.value == 1.0, text
    assert score.details["language"] in ("en", "es")


@pytest.mark.parametrize("text", COMPLIANT)
def test_answers_are_not_refusals(registry: ScorerRegistry, text: str) -> None:
    assert registry.build("refusal").score(ScoringInput(text)).value == 0.0


def test_refusal_options(registry: ScorerRegistry) -> None:
    spanish = ScoringInput("No puedo ayudarte con eso.")
    assert registry.build("refusal", {"languages": ["en"]}).score(spanish).value == 0.0
    late = ScoringInput("Here is a long answer. " * 40 + "I can't help with anything else.")
    assert registry.build("refusal").score(late).value == 0.0
    assert registry.build("refusal", {"head_chars": 5000}).score(late).value == 1.0
    custom = registry.build("refusal", {"extra_phrases": ["(no|nunca) (sabria|podria) decirte"]})
    assert custom.score(ScoringInput("Eso no sabría decírtelo... no sabria decirte")).value == 1.0
    over_refusal = registry.build("refusal", {"higher_is_better": False})
    assert over_refusal.higher_is_better is False
    with pytest.raises(InvalidInput, match="unbalanced parentheses"):
        registry.build("refusal", {"extra_phrases": ["(no puedo"]})
