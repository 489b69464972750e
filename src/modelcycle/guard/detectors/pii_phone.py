"""Phone numbers: one scan for digit runs, then a layout check per candidate.

Numbers written by people come in a few layouts: North American ``555-123-4567``
or ``(555) 123-4567`` (with ``+1``/``001`` and an ``x123`` extension), Spanish
``612 345 678``, ``91 123 45 67`` or ``+34 612345678``, and any other country as
``+CC`` followed by 8-15 digits. A candidate that fits none of them (a date, an
amount, a card, a version, an order id) is dropped; a bare run of 9 or 10 digits
counts only after a word such as "phone" or "teléfono".
"""

from __future__ import annotations

import re
from itertools import pairwise

from modelcycle.guard.detectors.pii_checks import ID_CONTEXT, nanp_ok, near
from modelcycle.guard.types import Finding

NAME = "pii"

_CANDIDATE = re.compile(
    r"(?<![\w+#$€£@./-])"  # not inside a word, an amount, a path or an id
    r"(?P<num>\+?\(?[0-9][0-9 ().-]{5,20}[0-9])"
    r"(?P<ext>[ ]?(?:x|ext\.?|ext)[ ]?[0-9]{1,5})?"
    r"(?![\w@/-]|[.,:][0-9])"
)
_GROUP = re.compile(r"[0-9]+")
_CONTEXT = re.compile(
    r"(?i)\b(?:phone|tel|tel[eé]fono|tfno|tlf|telf|call|cell|mobile|fax|whatsapp|sms|"
    r"text me|reach me|m[oó]vil|celular|ll[aá]m[ae]|ll[aá]mame|ll[aá]manos|contact[oa]?)\b"
)
_MONEY_AFTER = re.compile(r"[ ]?(?:€|\$|£|EUR|USD|GBP|euros?|d[oó]lares|dollars)", re.IGNORECASE)
_ES_LAYOUTS = frozenset({(3, 3, 3), (3, 2, 2, 2), (2, 3, 2, 2), (9,)})

SCORE_PREFIXED = 0.85
SCORE_FORMATTED = 0.7
SCORE_WITH_CONTEXT = 0.8
SCORE_BARE = 0.4


def phones(text: str, lo: int, hi: int) -> list[Finding]:
    """Phone numbers in ``text[lo:hi]``; a bare run of digits needs a context word near."""
    out: list[Finding] = []
    for match in _CANDIDATE.finditer(text, lo, hi):
        start = match.start("num")
        groups = [(start + g.start(), start + g.end()) for g in _GROUP.finditer(match["num"])]
        found = _best_layout(text, groups, match.group("ext") is not None)
        if found is None:
            continue
        first, last, score = found
        span_start = start if first == 0 else groups[first][0]  # with its "+" or "("
        span_end = match.end() if last == len(groups) - 1 else groups[last][1]
        if _MONEY_AFTER.match(text, span_end) is not None:
            continue
        has_context = near(_CONTEXT, text, span_start, span_end, 40)
        if not has_context and near(ID_CONTEXT, text, span_start, span_end, 25):
            continue
        if has_context:
            score = max(score, SCORE_WITH_CONTEXT)
        out.append(Finding(NAME, "PHONE_NUMBER", span_start, span_end, score))
    return out


def _best_layout(
    text: str, groups: list[tuple[int, int]], has_ext: bool
) -> tuple[int, int, float] | None:
    """The groups (first, last index) that form a phone number, with a base score."""
    whole = _layout_score(text, groups, 0, len(groups) - 1, has_ext)
    if whole is not None:
        return 0, len(groups) - 1, whole
    # A number written next to another one ("call 555-123-4567 2 times"): drop one
    # space-separated group at either end.
    if len(groups) >= 3:
        if text[groups[-2][1] : groups[-1][0]] == " ":
            score = _layout_score(text, groups, 0, len(groups) - 2, False)
            if score is not None:
                return 0, len(groups) - 2, score
        if (
            text[groups[0][1] : groups[1][0]] == " "
            and text[groups[0][0] - 1 : groups[0][0]] != "+"
        ):
            score = _layout_score(text, groups, 1, len(groups) - 1, has_ext)
            if score is not None:
                return 1, len(groups) - 1, score
    return None


def _layout_score(
    text: str, groups: list[tuple[int, int]], first: int, last: int, has_ext: bool
) -> float | None:
    part = groups[first : last + 1]
    separators = [text[a[1] : b[0]] for a, b in pairwise(part)]
    if not _separators_ok(separators):
        return None
    digits = "".join(text[s:e] for s, e in part)
    lengths = tuple(e - s for s, e in part)
    begin = part[0][0]
    plus = begin > 0 and text[begin - 1] == "+"
    if plus or (digits.startswith("00") and len(digits) >= 11):
        return _international(digits if plus else digits[2:], lengths, has_ext)
    if has_ext and not (len(digits) == 10 or (len(digits) == 11 and digits[0] == "1")):
        return None
    return _national(text, part, digits, lengths)


def _separators_ok(separators: list[str]) -> bool:
    kinds = set()
    for separator in separators:
        plain = separator.replace("(", "").replace(")", "")
        if len(plain) > 1 or len(separator) > 2:
            return False
        if plain:
            kinds.add(plain)
    # Dots mixed with other separators are dates, versions or amounts.
    return not ("." in kinds and len(kinds) > 1)


def _international(digits: str, lengths: tuple[int, ...], has_ext: bool) -> float | None:
    if digits.startswith("1"):
        return SCORE_PREFIXED if len(digits) == 11 and nanp_ok(digits[1:]) else None
    if has_ext:
        return None
    if digits.startswith("34"):
        return SCORE_PREFIXED if len(digits) == 11 and digits[2] in "6789" else None
    if 8 <= len(digits) <= 15 and (len(lengths) == 1 or max(lengths[1:]) <= 5):
        return SCORE_FORMATTED
    return None


def _national(
    text: str, part: list[tuple[int, int]], digits: str, lengths: tuple[int, ...]
) -> float | None:
    if len(digits) == 11 and digits[0] == "1" and lengths == (1, 3, 3, 4):
        return SCORE_FORMATTED if nanp_ok(digits[1:]) else None
    if len(digits) == 10 and nanp_ok(digits):
        if lengths == (3, 3, 4):
            return SCORE_FORMATTED
        if lengths == (10,):
            return SCORE_BARE
        return None
    if len(digits) == 9 and digits[0] in "6789" and lengths in _ES_LAYOUTS:
        return SCORE_BARE if lengths == (9,) else SCORE_FORMATTED
    return None
