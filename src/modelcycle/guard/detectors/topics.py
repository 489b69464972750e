"""``topics``: keep a deployment on its subject, away from the subjects it must not touch.

Options name topics by keyword or phrase, in the pattern syntax of
``phrases.py`` (whole words on normalised text, accents folded, so one list
serves English and Spanish: ``(election|elections|elecciones|votar)``)::

    deny:  {"POLITICS": ["election*", "elecciones", "vote for"]}
    allow: {"BILLING": ["invoice*", "factura*", "refund*"]}

Findings: each denied phrase found is ``TOPIC_<NAME>`` over the phrase; when
``allow`` is given and no allowed phrase is found, one ``OFF_TOPIC`` finding
covers the whole text. Keywords, not meaning: list the words your users use.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import Field, StringConstraints, field_validator

from modelcycle.errors import InvalidInput
from modelcycle.guard.detectors.options import DetectorOptions, parse_options
from modelcycle.guard.detectors.phrases import PhraseSet
from modelcycle.guard.types import Finding

NAME = "topics"
OFF_TOPIC = "OFF_TOPIC"
DENIED_SCORE = 0.9
OFF_TOPIC_SCORE = 0.75
MAX_PHRASES = 2000

TOPIC_NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,47}$")
TopicName = Annotated[str, StringConstraints(pattern=TOPIC_NAME_RE.pattern)]
Phrases = Annotated[list[Annotated[str, StringConstraints(min_length=1)]], Field(min_length=1)]


def denied_type(topic: str) -> str:
    """The finding type of a denied topic: ``TOPIC_<NAME>`` in upper case."""
    return f"TOPIC_{topic.upper()}"


class TopicsOptions(DetectorOptions):
    """Options of the ``topics`` detector."""

    deny: dict[TopicName, Phrases] = Field(
        default_factory=dict,
        description="Topic -> words or phrases that must not appear (finding TOPIC_<NAME>).",
    )
    allow: dict[TopicName, Phrases] = Field(
        default_factory=dict,
        description="Topic -> words or phrases of the subjects the deployment serves; a text "
        "with none of them is OFF_TOPIC.",
    )
    off_topic_min_chars: int = Field(
        default=0,
        ge=0,
        le=100_000,
        description="Texts shorter than this are never OFF_TOPIC (greetings, 'thanks').",
    )

    @field_validator("deny", "allow")
    @classmethod
    def _bounded(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        if sum(len(phrases) for phrases in value.values()) > MAX_PHRASES:
            raise ValueError(f"at most {MAX_PHRASES} phrases")
        return value


class TopicsDetector:
    """Denied topics by phrase; off-topic texts when an allow-list is given."""

    name = NAME

    def __init__(self, options: TopicsOptions):
        if not options.deny and not options.allow:
            raise InvalidInput(f"{NAME}: give deny, allow or both (topic -> phrases)")
        self._min_chars = options.off_topic_min_chars
        self._deny: PhraseSet[str] = PhraseSet()
        for topic, phrases in options.deny.items():
            for index, phrase in enumerate(phrases):
                self._deny.add(phrase, denied_type(topic), where=f"{NAME}: deny.{topic}[{index}]")
        self._allow: PhraseSet[str] | None = None
        # OFF_TOPIC judges a text as a whole: a streamed answer needs it once, complete.
        self.whole_text = bool(options.allow)
        if options.allow:
            self._allow = PhraseSet()
            for topic, phrases in options.allow.items():
                for index, phrase in enumerate(phrases):
                    where = f"{NAME}: allow.{topic}[{index}]"
                    self._allow.add(phrase, topic.upper(), where=where)

    def detect(self, text: str) -> list[Finding]:
        """Denied phrases, and ``OFF_TOPIC`` when no allowed one is present."""
        found = [
            Finding(NAME, match.payload, match.start, match.end, DENIED_SCORE)
            for match in self._deny.find(text)
        ]
        if (
            self._allow is not None
            and text.strip()
            and len(text) >= self._min_chars
            and not self._allow.find(text)
        ):
            found.append(Finding(NAME, OFF_TOPIC, 0, len(text), OFF_TOPIC_SCORE))
        return found


def build_topics(options: Mapping[str, Any]) -> TopicsDetector:
    """The ``topics`` detector for a rule's options."""
    return TopicsDetector(parse_options(TopicsOptions, options, NAME))
