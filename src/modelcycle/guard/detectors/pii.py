"""Detector ``pii``: personal data in English and Spanish text, offline and rule-based.

Types: ``EMAIL_ADDRESS``, ``PHONE_NUMBER``, ``CREDIT_CARD``, ``IBAN_CODE``,
``IP_ADDRESS``, ``ES_DNI``, ``ES_NIE``, ``US_SSN``, ``PASSPORT``,
``POSTAL_ADDRESS``, and ``PERSON`` when ``options["ner_model"]`` names a local
model directory.

Scores say how much a finding was checked: 0.95 and up when a checksum
validated it (Luhn, IBAN mod-97, DNI/NIE letter), 0.6-0.9 for distinctive
shapes or weaker ones with a context word near ("passport", "teléfono"), and
below 0.5 for shapes that are often something else (a bare 9-digit run), which
the default ``min_score`` of 0.5 drops.

Speed: the detector runs on every prompt and answer. One scan finds the runs of
digits worth a look (long ones, an IBAN's check digits, a house number before a
capitalised name); the specific patterns then run only in a small window around
each, and only those the run's size allows (a 4-digit year never meets the card
check). E-mails are looked for only around an ``@``, passports only after the
word. Every pattern is compiled once at import with bounded repetitions, so it
runs in linear time on any input (``tests/guard/test_redos.py``).
"""

from __future__ import annotations

import re
from bisect import bisect_left, bisect_right
from collections.abc import Mapping
from typing import Any

from pydantic import Field

from modelcycle.guard.detectors.options import DetectorOptions, parse_options
from modelcycle.guard.detectors.pii_address import postcode_at, spanish_streets, us_street_at
from modelcycle.guard.detectors.pii_ids import (
    SCORE_CHECKSUM,
    cards,
    iban_at,
    ipv4s,
    ipv6s,
    passports,
    spanish_ids,
    ssns,
)
from modelcycle.guard.detectors.pii_ner import PersonTagger
from modelcycle.guard.detectors.pii_phone import phones
from modelcycle.guard.types import Detector, Finding

NAME = "pii"

# The numbers worth a look, found in one scan: long runs of digits and the separators
# people put in them, the check digits right after an IBAN's country code, and house
# numbers followed by a capitalised street name. "3 de marzo" or "2.4" are not returned.
_NUMBER = re.compile(
    r"[0-9](?:[0-9 ()./:+-]{4,}|(?<=[A-Z]{2}[0-9])[0-9 ()./:+-]*|[0-9]{0,5}[A-Z]?[ ]+(?=[A-Z]))"
)
_ANY_DIGIT = re.compile(r"[0-9]")
_SEPARATORS = str.maketrans("", "", " ()./:+-")
_EMAIL_DOMAIN = re.compile(
    r"@[A-Za-z0-9-]{1,63}(?:\.[A-Za-z0-9-]{1,63}){0,8}\.[A-Za-z]{2,24}(?![\w-])"
)
_EMAIL_LOCAL = re.compile(r"[A-Za-z0-9._%+-]{1,64}\Z")
_EMAIL_LOCAL_CHARS = frozenset(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._%+-"
)
# Invisible characters that would split an e-mail or a card number in two.
_INVISIBLE = re.compile("[\u00ad\u180e\u200b-\u200f\u202a-\u202e\u2060-\u2064\ufeff]+")

SCORE_EMAIL = 0.9


class PiiDetector:
    """Finds personal data; see the module docstring for the types and scores."""

    name = NAME

    def __init__(self, persons: PersonTagger | None = None):
        self.persons = persons

    def detect(self, text: str) -> list[Finding]:
        """Every piece of personal data in ``text``, overlaps resolved.

        Invisible characters (zero-width space, soft hyphen...) are skipped, so
        ``john\u200b@example.com`` is still an e-mail; spans refer to ``text``.
        """
        if text.isascii() or _INVISIBLE.search(text) is None:
            return self._detect(text)
        visible, cuts, shifts = _without_invisible(text)

        def origin(index: int) -> int:
            count = bisect_right(cuts, index)
            return index + (shifts[count - 1] if count else 0)

        return [
            Finding(f.detector, f.type, origin(f.start), origin(f.end - 1) + 1, f.score)
            for f in self._detect(visible)
        ]

    def _detect(self, text: str) -> list[Finding]:
        found: list[Finding] = []
        if "@" in text:
            found += _emails(text)
        found += _numbered(text)
        if "::" in text or text.count(":") >= 3:
            found += ipv6s(text)
        if self.persons is not None and text.strip():
            found += self.persons.find(text, NAME)
        return _drop_contained(found)


class PiiOptions(DetectorOptions):
    """Options of the ``pii`` detector."""

    ner_model: str | None = Field(default=None, min_length=1)
    """Local directory of a transformers token-classification model (saved with
    ``save_pretrained``); enables ``PERSON``. Never downloaded."""


def make_pii(options: Mapping[str, Any]) -> Detector:
    """The ``pii`` detector for a rule's options (see ``PiiOptions``)."""
    parsed = parse_options(PiiOptions, options, NAME)
    if parsed.ner_model is None:
        return PiiDetector()
    return PiiDetector(PersonTagger(parsed.ner_model))


def _emails(text: str) -> list[Finding]:
    """Each ``@`` with a domain after it and a local part before it."""
    out: list[Finding] = []
    at = text.find("@")
    while at > 0:
        domain = _EMAIL_DOMAIN.match(text, at)
        local = _EMAIL_LOCAL.search(text, max(0, at - 65), at) if domain is not None else None
        if domain is not None and local is not None:
            start = local.start()
            if (start == 0 or text[start - 1] not in _EMAIL_LOCAL_CHARS) and not _in_url(
                text, start
            ):
                out.append(Finding(NAME, "EMAIL_ADDRESS", start, domain.end(), SCORE_EMAIL))
        at = text.find("@", at + 1)
    return out


def _in_url(text: str, start: int) -> bool:
    """Whether ``start`` is in a URL's user part (``postgres://app:pw@host``), not an e-mail."""
    if start == 0 or text[start - 1] not in ":/":
        return False
    word_start = max(text.rfind(" ", 0, start), text.rfind("\n", 0, start)) + 1
    return "://" in text[word_start:start]


def _numbered(text: str) -> list[Finding]:
    """Everything that contains digits, looked for only around the numbers in ``text``."""
    found: list[Finding] = []
    for number in _NUMBER.finditer(text):
        found += _around_number(text, number)
        if text[number.end() : number.end() + 1].isupper():  # "12 Oak Street"
            street = us_street_at(text, number.start())
            found += [street] if street is not None else []
    passport = "pas" in text or "PAS" in text or "Pas" in text
    if passport or _ANY_DIGIT.search(text) is not None:
        lowered = text.lower()
        found += spanish_streets(text, lowered, set(lowered.split()))
        if passport and ("passport" in lowered or "pasaporte" in lowered):
            found += passports(text)
    return found


def _around_number(text: str, number: re.Match[str]) -> list[Finding]:
    """What one run of digits and separators is part of: only the checks its size allows."""
    start, end = number.span()
    raw = number.group(0)
    digits = len(raw.translate(_SEPARATORS))
    lo, hi = max(0, start - 3), min(len(text), end + 8)
    last_digit = start + len(raw.rstrip(" ()./:+-"))
    found: list[Finding | None] = []
    if start >= 2 and text[start - 2 : start].isalpha() and text[start - 2 : start].isupper():
        iban = iban_at(text, start - 2)
        if iban is not None and iban.end >= last_digit:
            return [iban]  # the whole run is the IBAN: no card or phone inside it
        found.append(iban)
    if digits >= 12:
        card = cards(text, lo, hi)
        whole = [c for c in card if c.start == start and c.end == last_digit]
        if whole and whole[0].score >= SCORE_CHECKSUM:
            return whole  # the whole run is one card of a known network
        found += card
    if digits >= 7:
        found += phones(text, lo, hi) + spanish_ids(text, lo, hi)
    if digits >= 9:
        found += ssns(text, lo, hi)
    if digits >= 4 and raw.count(".") >= 3:
        found += ipv4s(text, lo, hi)
    if raw[:5].isdigit() and not raw[5:6].isdigit():
        found.append(postcode_at(text, start, start + 5))
    return [f for f in found if f is not None]


def _without_invisible(text: str) -> tuple[str, list[int], list[int]]:
    """``text`` without invisible runs; where each run was cut and how much was cut so far."""
    pieces: list[str] = []
    cuts: list[int] = []
    shifts: list[int] = []
    last = removed = 0
    for m in _INVISIBLE.finditer(text):
        pieces.append(text[last : m.start()])
        cuts.append(m.start() - removed)
        removed += m.end() - m.start()
        shifts.append(removed)
        last = m.end()
    pieces.append(text[last:])
    return "".join(pieces), cuts, shifts


def _drop_contained(found: list[Finding]) -> list[Finding]:
    """Drop duplicates, and a finding inside a better one of another type (a card in an IBAN)."""
    if len(found) < 2:
        return found
    ordered = sorted(set(found), key=lambda f: (f.start, -f.end, -f.score))
    starts = [f.start for f in ordered]
    longest = max(f.end - f.start for f in ordered)
    kept: list[Finding] = []
    for finding in ordered:
        first = bisect_left(starts, finding.start - longest)
        last = bisect_right(starts, finding.start)
        if not any(
            _covers(other, finding) for other in ordered[first:last] if other is not finding
        ):
            kept.append(finding)
    return kept


def _covers(big: Finding, small: Finding) -> bool:
    if not (big.start <= small.start and small.end <= big.end):
        return False
    if big.type == small.type:  # "192.0.2.1" inside "::ffff:192.0.2.1"
        return big.end - big.start > small.end - small.start
    if big.score != small.score:
        return big.score > small.score
    return big.end - big.start > small.end - small.start
