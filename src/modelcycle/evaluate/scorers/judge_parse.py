"""Reading a judge's answer: the final score on a scale, or a pairwise verdict.

Judges on open models answer in every format ("Score: 4", "**Rating:** 4 out
of 5", ``{"score": 4}``, "[[4]]", a bare "4"), wrap their thoughts in
``<think>`` blocks, and sometimes contradict themselves. The parsers take the
*final* labelled answer, refuse one that is ambiguous or off the scale, and
say why, so the judge can be asked again instead of a guess becoming a score.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

Verdict = Literal["A", "B", "tie"]

_THINK = re.compile(r"<(think|thinking|reasoning)>.*?</\1>", re.IGNORECASE | re.DOTALL)
_OPEN_THINK = re.compile(r"<(think|thinking|reasoning)>", re.IGNORECASE)
_MARKUP = re.compile(r"[*_`#]+")
_NUMBER = r"(-?\d+(?:\.\d+)?)(?!\.?\d)"
_NOT_A_RANGE = r"(?![^\S\n]*(?:-|\u2013|to\b|or\b)[^\S\n]*\d)"
_OUT_OF = rf"(?:\s*(?:/|out\s+of|of)\s*{_NUMBER})?"

_LABELLED = re.compile(
    rf"\b(?:final\s+|overall\s+|total\s+)?(?:score|rating|grade)\b[^\S\n]*(?:\(\s*\d+\s*-\s*\d+\s*\)[^\S\n]*)?"
    rf"(?:[:=]|\bis\b|\bof\b)[^\S\n]*\[{{0,2}}[^\S\n]*{_NUMBER}{_NOT_A_RANGE}[^\S\n]*\]{{0,2}}{_OUT_OF}",
    re.IGNORECASE,
)
_JSON_SCORE = re.compile(rf"\"(?:score|rating|grade)\"\s*:\s*\"?{_NUMBER}\"?", re.IGNORECASE)
_BRACKETED = re.compile(rf"\[\[\s*{_NUMBER}\s*\]\]")
_TRAILING_FRACTION = re.compile(
    rf"{_NUMBER}\s*(?:/|out\s+of)\s*{_NUMBER}\s*[.!)\]]*\s*$", re.IGNORECASE
)
_BARE = re.compile(rf"^\s*\[{{0,2}}\s*{_NUMBER}\s*\]{{0,2}}\s*[.!]?\s*$")

_VERDICT_BRACKETED = re.compile(r"\[\[\s*(A|B|C|tie)\s*\]\]", re.IGNORECASE)
_VERDICT_LABELLED = re.compile(  # A/B/C upper case only: "Verdict: a bit better" is no verdict
    r"\b(?i:(?:final\s+)?(?:verdict|winner|better(?:\s+(?:response|answer))?|choice|decision))\b"
    r"\s*(?::|=|\b(?i:is)\b)\s*\[{0,2}\s*(?i:(?:assistant|response|answer)\s+)?"
    r"(A|B|C|(?i:tie|draw))\b"
)
_VERDICT_BARE = re.compile(
    r"^\s*\[{0,2}\s*(?:assistant\s+|response\s+|answer\s+)?(A|B|C|tie|draw)\s*\]{0,2}\s*[.!]?\s*$",
    re.IGNORECASE,
)


@dataclass(frozen=True, slots=True)
class ParsedScore:
    """A judge's score on its scale, or the problem that kept it from being read."""

    raw: float | None
    problem: str | None = None
    reasoning: str = ""


@dataclass(frozen=True, slots=True)
class ParsedVerdict:
    """A pairwise verdict on the order asked (``A`` first), or why there is none."""

    verdict: Verdict | None
    problem: str | None = None
    reasoning: str = ""


@dataclass(frozen=True, slots=True)
class _Found:
    line: int
    value: str
    denominator: str | None = None


def visible_text(text: str) -> str:
    """``text`` without reasoning blocks (``<think>...</think>``); "" when one never closes."""
    text = _THINK.sub("", text)
    opened = _OPEN_THINK.search(text)
    if opened is not None:  # cut off while thinking: nothing after it is an answer
        text = text[: opened.start()]
    return text.strip()


def _final_block(found: list[_Found], lines: list[str]) -> list[_Found]:
    """The matches on the last line holding one, and on the matching lines just above it.

    "Score: 3" then "Score: 5" on consecutive lines is a contradiction; a score
    mentioned mid-reasoning, far above the final one, is not.
    """
    last = found[-1].line
    first = last
    while True:
        previous = first - 1
        while previous >= 0 and not lines[previous].strip():
            previous -= 1
        if previous < 0 or not any(f.line == previous for f in found):
            break
        first = previous
    return [f for f in found if first <= f.line <= last]


def _scan(pattern: re.Pattern[str], lines: list[str]) -> list[_Found]:
    found = []
    for index, line in enumerate(lines):
        for match in pattern.finditer(line):
            groups = match.groups()
            denominator = groups[1] if len(groups) > 1 else None
            found.append(_Found(index, groups[0], denominator))
    return found


def _reasoning(lines: list[str], block: list[_Found] | None) -> str:
    if not block:
        return "\n".join(lines).strip()
    return "\n".join(lines[: block[0].line]).strip()


def parse_score(text: str, low: float, high: float) -> ParsedScore:
    """The final score in ``text`` on the scale ``low``..``high`` (see the module docstring).

    Read, in order: labelled scores ("Score: 4", "rating = 4/5", "Score: [[4]]"),
    a JSON ``"score"`` field, MT-Bench's ``[[4]]``; else, unlabelled, a fraction
    ending the answer ("... 4/5") or a bare number as the whole answer. A
    fraction must be out of ``high``; a value outside the scale, several
    different final scores, or no score at all is a problem, not a value.
    """
    visible = visible_text(text)
    if not visible:
        return ParsedScore(None, "the answer is empty (or only reasoning that never ended)")
    shown = visible.splitlines()
    lines = [_MARKUP.sub("", line) for line in shown]
    block: list[_Found] | None = None
    for pattern in (_LABELLED, _JSON_SCORE, _BRACKETED):
        found = _scan(pattern, lines)
        if found:
            block = _final_block(found, lines)
            break
    if block is None:
        stripped = "\n".join(lines).strip()
        bare = _BARE.match(stripped) or _TRAILING_FRACTION.search(stripped)
        if bare is None:
            return ParsedScore(None, "no score found: the answer has no 'Score: N' line")
        groups = bare.groups()
        block = [_Found(len(lines) - 1, groups[0], groups[1] if len(groups) > 1 else None)]
        reasoning = stripped[: bare.start()].strip()
    else:
        reasoning = _reasoning(shown, block)
    values = {float(item.value) for item in block}
    if len(values) > 1:
        listed = ", ".join(sorted({item.value for item in block}, key=float))
        return ParsedScore(None, f"several different final scores ({listed})")
    raw = values.pop()
    for item in block:
        if item.denominator is not None and float(item.denominator) != high:
            return ParsedScore(
                None, f"the score {item.value}/{item.denominator} is not out of {_num(high)}"
            )
    if not low <= raw <= high:
        return ParsedScore(None, f"the score {_num(raw)} is outside {_num(low)}..{_num(high)}")
    return ParsedScore(raw, reasoning=reasoning)


_VERDICTS: dict[str, Verdict] = {"a": "A", "b": "B", "c": "tie", "tie": "tie", "draw": "tie"}


def parse_verdict(text: str) -> ParsedVerdict:
    """The final pairwise verdict in ``text``: ``A``, ``B`` or ``tie``.

    Read, in order: MT-Bench's ``[[A]]``/``[[B]]``/``[[C]]`` (``[[C]]`` a tie),
    a labelled verdict ("Verdict: A", "Winner: Assistant B", "Better response:
    tie"), and a bare "A", "B", "tie" as the whole answer. Different final
    verdicts, or none, is a problem.
    """
    visible = visible_text(text)
    if not visible:
        return ParsedVerdict(None, "the answer is empty (or only reasoning that never ended)")
    shown = visible.splitlines()
    lines = [_MARKUP.sub("", line) for line in shown]
    for pattern in (_VERDICT_BRACKETED, _VERDICT_LABELLED):
        found = _scan(pattern, lines)
        if found:
            block = _final_block(found, lines)
            verdicts = {_VERDICTS[f.value.lower()] for f in block}
            if len(verdicts) > 1:
                return ParsedVerdict(
                    None, f"several different verdicts ({', '.join(sorted(verdicts))})"
                )
            return ParsedVerdict(verdicts.pop(), reasoning=_reasoning(shown, block))
    bare = _VERDICT_BARE.match("\n".join(lines).strip())
    if bare is None:
        return ParsedVerdict(None, "no verdict found: the answer has no [[A]], [[B]] or [[C]]")
    return ParsedVerdict(_VERDICTS[bare.group(1).lower()])


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)
