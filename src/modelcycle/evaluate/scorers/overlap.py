"""``rouge_l``: overlap with the reference as the longest common subsequence of words.

ROUGE-L is implemented here rather than through ``rouge-score``: that package
keeps only ``a-z0-9`` (so Spanish accented words vanish) and pulls in nltk and
absl. The longest common subsequence is computed with the bit-parallel
algorithm of Allison and Dix (1986, as written by Hyyrö 2004): one big-integer
addition per output token, not a table of ``len(a) * len(b)`` cells.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import Field

from modelcycle.evaluate.scorers.options import ScorerOptions, parse_options
from modelcycle.evaluate.scorers.types import Score, Scorer, ScoringInput, missing_reference

_WORD = re.compile(r"\w+")


def tokens(text: str) -> list[str]:
    """The words ROUGE-L compares: runs of letters, digits and ``_``, case-folded."""
    return _WORD.findall(text.casefold())


def lcs_length(a: Sequence[str], b: Sequence[str]) -> int:
    """Length of the longest common subsequence of two token lists (bit-parallel)."""
    if not a or not b:
        return 0
    if len(a) < len(b):  # loop over the shorter list: fewer Python-level steps
        a, b = b, a
    masks: dict[str, int] = {}
    for position, token in enumerate(a):
        masks[token] = masks.get(token, 0) | (1 << position)
    full = (1 << len(a)) - 1
    row = full  # a 0 bit marks a position of ``a`` used by the LCS so far
    for token in b:
        match = masks.get(token)
        if match is None:
            continue
        used = row & match
        row = ((row + used) | (row - used)) & full
    return len(a) - row.bit_count()


class RougeLOptions(ScorerOptions):
    """Options of ``rouge_l``."""

    beta: float = Field(
        default=1.0,
        gt=0,
        le=100,
        description="Weight of recall over precision in the F-measure (1: the harmonic mean).",
    )


class RougeL(Scorer):
    r"""``rouge_l``: ROUGE-L F-measure of the output against the expected answer, in [0, 1].

    Both texts are split into case-folded words (``\w+``: letters of any
    alphabet, digits, ``_``; no stemming). With ``L`` the length of their
    longest common subsequence, precision ``P = L / len(output)``, recall
    ``R = L / len(expected)`` and the score ``(1 + b^2) P R / (R + b^2 P)``
    (``b = beta``, 1 by default: ``2PR / (P + R)``). 0 when either text has no
    words. ``details`` holds ``precision``, ``recall`` and ``lcs``.
    """

    name = "rouge_l"
    kind = "continuous"
    needs_reference = True
    higher_is_better = True

    def __init__(self, options: RougeLOptions):
        self._beta2 = options.beta**2

    def score(self, sample: ScoringInput) -> Score:
        """The F-measure of the LCS."""
        if sample.expected is None:
            return missing_reference(self.name)
        output, expected = tokens(sample.output), tokens(sample.expected)
        common = lcs_length(output, expected)
        if common == 0:
            return Score.of(0.0, precision=0.0, recall=0.0, lcs=0)
        precision, recall = common / len(output), common / len(expected)
        f = (1 + self._beta2) * precision * recall / (recall + self._beta2 * precision)
        return Score.of(min(f, 1.0), precision=precision, recall=recall, lcs=common)


def build_rouge_l(options: Mapping[str, Any]) -> Scorer:
    """The ``rouge_l`` scorer (options: ``RougeLOptions``)."""
    return RougeL(parse_options(RougeLOptions, options, RougeL.name))
