"""``toxicity``: insults, threats, profanity, hate, sexual content and self-harm, EN and ES.

A lexicon of words and phrases per language (``lexicons/toxicity_<lang>.txt``),
matched by whole words on normalised text (accents, case and light leetspeak
folded; see ``phrases.py``). Rule-based on purpose: offline, no weights,
microseconds per sentence, and every finding explainable by the line that
matched. It catches explicit abuse, not sarcasm or veiled hostility; a plugin
can register a classifier under another name for that.

Finding types are the categories: ``INSULT``, ``THREAT``, ``PROFANITY``,
``HATE``, ``SEXUAL``, ``SELF_HARM``.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from importlib import resources
from typing import Any, Literal

from pydantic import Field, field_validator

from modelcycle.errors import InvalidInput
from modelcycle.guard.detectors.options import DetectorOptions, parse_options
from modelcycle.guard.detectors.phrases import PhraseSet
from modelcycle.guard.types import Finding

NAME = "toxicity"
Category = Literal["INSULT", "THREAT", "PROFANITY", "HATE", "SEXUAL", "SELF_HARM"]
Language = Literal["en", "es"]
CATEGORY_SCORES: dict[str, float] = {
    "HATE": 0.9,
    "THREAT": 0.9,
    "SELF_HARM": 0.85,
    "INSULT": 0.75,
    "SEXUAL": 0.75,
    "PROFANITY": 0.7,
}
"""Score of a lexicon line without its own ``=score``."""
SAFE = "OK"
"""Lexicon lines that are never toxic (they win as the longer match)."""
LANGUAGES: tuple[Language, ...] = ("en", "es")
MAX_EXTRA_TERMS = 1000

Entry = tuple[str, str, float]
"""(category, pattern, score) of one lexicon line."""


class ToxicityOptions(DetectorOptions):
    """Options of the ``toxicity`` detector."""

    languages: list[Language] = Field(
        default_factory=lambda: list(LANGUAGES),
        min_length=1,
        description="Lexicons to use. Both by default: mixed-language text is common.",
    )
    extra_terms: dict[Category, list[str]] = Field(
        default_factory=dict,
        description="More words or phrases per category, in the lexicon's pattern syntax.",
    )
    allow_terms: list[str] = Field(
        default_factory=list,
        max_length=MAX_EXTRA_TERMS,
        description="Words or phrases never reported (a longer listed phrase containing "
        "them still is).",
    )

    @field_validator("extra_terms")
    @classmethod
    def _bounded(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        if sum(len(terms) for terms in value.values()) > MAX_EXTRA_TERMS:
            raise ValueError(f"at most {MAX_EXTRA_TERMS} extra terms")
        return value


def parse_lexicon(text: str, source: str) -> list[Entry]:
    """The entries of a lexicon file: ``CATEGORY pattern [=score]`` per line, ``#`` comments."""
    entries: list[Entry] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        category, _, rest = line.partition(" ")
        pattern, _, score_text = rest.rpartition(" =")
        if not pattern:
            pattern, score_text = rest, ""
        if category != SAFE and category not in CATEGORY_SCORES:
            raise ValueError(f"{source}:{number}: unknown category {category!r}")
        score = float(score_text) if score_text else CATEGORY_SCORES.get(category, 0.0)
        entries.append((category, pattern.strip(), score))
    return entries


@functools.cache
def lexicon(language: str) -> tuple[Entry, ...]:
    """The built-in lexicon of one language (read once per process; it never changes)."""
    path = resources.files(__package__) / "lexicons" / f"toxicity_{language}.txt"
    return tuple(parse_lexicon(path.read_text(encoding="utf-8"), path.name))


def _lexicon_phrase_set(languages: tuple[str, ...]) -> PhraseSet[tuple[str, float]]:
    phrases: PhraseSet[tuple[str, float]] = PhraseSet()
    for language in languages:
        for category, pattern, score in lexicon(language):
            phrases.add(pattern, (category, score), where=f"toxicity_{language}")
    return phrases


@functools.cache
def lexicon_phrases(languages: tuple[str, ...]) -> PhraseSet[tuple[str, float]]:
    """The built-in lexicons of ``languages`` ready to match (built once: ~30k phrases)."""
    return _lexicon_phrase_set(languages)


class ToxicityDetector:
    """Finds lexicon words and phrases; one finding per match, typed by category."""

    name = NAME

    def __init__(self, options: ToxicityOptions):
        languages = tuple(sorted(set(options.languages)))
        if not options.extra_terms and not options.allow_terms:
            self._phrases = lexicon_phrases(languages)  # shared: never changed once built
            return
        self._phrases = _lexicon_phrase_set(languages)
        for category, terms in options.extra_terms.items():
            for index, term in enumerate(terms):
                where = f"extra_terms.{category}[{index}]"
                self._phrases.add(term, (category, CATEGORY_SCORES[category]), where=where)
        # Added last, so an allowed term replaces the same phrase from a lexicon.
        for index, term in enumerate(options.allow_terms):
            self._phrases.add(term, (SAFE, 0.0), where=f"allow_terms[{index}]")

    def detect(self, text: str) -> list[Finding]:
        """Every toxic word or phrase in ``text``."""
        return [
            Finding(NAME, match.payload[0], match.start, match.end, match.payload[1])
            for match in self._phrases.find(text)
            if match.payload[0] != SAFE
        ]


def build_toxicity(options: Mapping[str, Any]) -> ToxicityDetector:
    """The ``toxicity`` detector for a rule's options."""
    parsed = parse_options(ToxicityOptions, options, NAME)
    try:
        return ToxicityDetector(parsed)
    except InvalidInput as exc:
        raise InvalidInput(f"{NAME}: {exc.message}") from None
