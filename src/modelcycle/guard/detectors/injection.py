"""The ``injection`` detector: prompt injection and jailbreak attempts, English and Spanish.

Layers, cheapest first, all offline and linear in the text's length:

1. fold the text (NFKC, lower case, no accents, lookalike letters mapped to
   Latin, invisible characters dropped) keeping a map back to the original;
2. phrase rules over the folded text, scored by how their hits combine
   (``PROMPT_INJECTION``, ``JAILBREAK``, ``SYSTEM_PROMPT_EXTRACTION``); the English
   tables are ``injection_rules_en`` (overrides, fake turns, jailbreak basics) and its
   ``_extraction``, ``_indirect`` (planted in documents) and ``_personas`` (role-play
   jailbreaks) siblings, the Spanish one ``injection_rules_es``;
3. hidden text: tag characters, zero-width characters inside words, bidi
   overrides, private-use runs (``INVISIBLE_TEXT``) and words mixing scripts
   (``CONFUSABLE``);
4. encoded payloads (base64, hex, percent-encoding, rot13, tag-character
   smuggling) decoded once and scanned by the phrase rules (``ENCODED_INJECTION``);
5. optionally, a local classifier model (``classifier_path``).

Finding spans always index the text as given.
"""

from __future__ import annotations

from collections.abc import Mapping
from itertools import islice
from typing import Any

from pydantic import Field

from modelcycle.guard.detectors.encodings import MAX_RUNS, leet_payload, payloads
from modelcycle.guard.detectors.injection_classifier import InjectionClassifier
from modelcycle.guard.detectors.injection_phrases import (
    RuleSet,
    Verdict,
    combine,
    compile_rules,
    find_hits,
    words_of,
)
from modelcycle.guard.detectors.injection_rules_en import RULES_EN
from modelcycle.guard.detectors.injection_rules_en_extraction import RULES_EN_EXTRACTION
from modelcycle.guard.detectors.injection_rules_en_indirect import RULES_EN_INDIRECT
from modelcycle.guard.detectors.injection_rules_en_personas import RULES_EN_PERSONAS
from modelcycle.guard.detectors.injection_rules_es import RULES_ES
from modelcycle.guard.detectors.options import DetectorOptions, parse_options
from modelcycle.guard.detectors.unicode_tricks import (
    SUSPECT,
    TAG_RUN,
    fold,
    hidden_tag_text,
    invisible_runs,
    mixed_script_words,
    non_ascii,
)
from modelcycle.guard.types import Finding

NAME = "injection"
ENCODED_INJECTION = "ENCODED_INJECTION"

RULES = RuleSet.of(
    compile_rules(
        (*RULES_EN, *RULES_EN_EXTRACTION, *RULES_EN_INDIRECT, *RULES_EN_PERSONAS, *RULES_ES)
    )
)

REPORT_FLOOR = 0.3
"""Phrase scores below this are not reported at all (a rule's ``min_score`` filters the rest)."""


class InjectionOptions(DetectorOptions):
    """Options of the ``injection`` detector (a rule's ``options``)."""

    decode: bool = Field(
        default=True,
        description="Decode base64, hex, percent-encoded and rot13 runs and scan what they say.",
    )
    classifier_path: str | None = Field(
        default=None,
        description="Local directory of a transformers sequence-classification model (Prompt "
        "Guard or similar) to run after the rules; never downloaded. None: rules only.",
    )
    classifier_threshold: float = Field(
        default=0.5,
        ge=0,
        le=1,
        description="Classifier score (1 - P(benign)) that makes a finding.",
    )
    classifier_max_chunks: int = Field(
        default=16,
        ge=1,
        le=1024,
        description="Most model-length windows the classifier reads per text (bounds its cost).",
    )


class InjectionDetector:
    """Rule-based injection/jailbreak detection with an optional local classifier."""

    name = NAME

    def __init__(self, options: InjectionOptions, classifier: InjectionClassifier | None = None):
        self.options = options
        self.classifier = classifier

    def detect(self, text: str) -> list[Finding]:
        """Every injection-related finding in ``text``."""
        if not text:
            return []
        folded = fold(text)
        words = words_of(folded.text)
        findings = []
        for verdict in scan(folded.text, words):
            start, end = folded.span(verdict.start, verdict.end)
            findings.append(Finding(NAME, verdict.kind, start, end, verdict.score))
        if not text.isascii() and SUSPECT.search(non_ascii(text)) is not None:
            findings.extend(self._hidden(text))
        if self.options.decode:
            for payload in payloads(text, words):
                score = _decoded_score(payload.decoded)
                if score >= REPORT_FLOOR:
                    findings.append(
                        Finding(NAME, ENCODED_INJECTION, payload.start, payload.end, score)
                    )
            leet = leet_payload(folded.text)
            if leet is not None:
                score = _decoded_score(leet.decoded)
                if score >= REPORT_FLOOR:
                    start, end = folded.span(leet.start, leet.end)
                    findings.append(Finding(NAME, ENCODED_INJECTION, start, end, score))
        if self.classifier is not None:
            findings.extend(self.classifier.findings(text))
        return findings

    def _hidden(self, text: str) -> list[Finding]:
        findings = [
            Finding(NAME, trick.type, trick.start, trick.end, trick.score)
            for trick in (*invisible_runs(text), *mixed_script_words(text))
        ]
        for match in islice(TAG_RUN.finditer(text), MAX_RUNS):
            score = _decoded_score(hidden_tag_text(text, match.start(), match.end()))
            if score >= REPORT_FLOOR:
                findings.append(Finding(NAME, ENCODED_INJECTION, match.start(), match.end(), score))
        return findings


def scan(folded: str, words: set[str]) -> list[Verdict]:
    """Phrase verdicts for a folded text (``words``: its words), those worth reporting."""
    return [v for v in combine(find_hits(RULES, folded, words)) if v.score >= REPORT_FLOOR]


def _decoded_score(decoded: str) -> float:
    """The strongest phrase verdict in a decoded payload (no further decoding: depth 1)."""
    if not decoded:
        return 0.0
    folded = fold(decoded).text
    verdicts = scan(folded, words_of(folded))
    return max((v.score for v in verdicts), default=0.0)


def make_injection(options: Mapping[str, Any]) -> InjectionDetector:
    """Build the detector from a rule's ``options`` (see ``InjectionOptions``)."""
    parsed = parse_options(InjectionOptions, options, NAME)
    classifier = None
    if parsed.classifier_path is not None:
        classifier = InjectionClassifier(
            parsed.classifier_path, parsed.classifier_threshold, parsed.classifier_max_chunks, NAME
        )
    return InjectionDetector(parsed, classifier)
