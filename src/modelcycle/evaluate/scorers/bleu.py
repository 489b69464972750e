r"""``bleu``: sentence BLEU exactly as sacrebleu computes it, tokenized faster.

sacrebleu spends most of a sentence score in its 13a tokenizer, whose first rule
(``re.sub`` of one character class with a `` \1 `` template, matching every
space) runs a Python-level template expansion per match. That rule maps each
character on its own, so ``str.translate`` with the same characters gives the
same text in C; the three context-dependent rules run as sacrebleu runs them.
The n-grams are then counted with ``zip`` and ``Counter`` in C rather than
sacrebleu's Python loops, and the smoothing, brevity penalty and score come from
sacrebleu's own ``BLEU.compute_bleu``; the tests compare every score with
``sacrebleu.sentence_bleu``.
"""

from __future__ import annotations

import itertools
import re
from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any, Literal

from pydantic import Field

from modelcycle.errors import MissingExtra
from modelcycle.evaluate.scorers.options import ScorerOptions, parse_options
from modelcycle.evaluate.scorers.types import Score, Scorer, ScoringInput, missing_reference

# The ranges of sacrebleu's first 13a rule, ``([\{-\~\[-\` -\&\(-\+\:-\@\/])``, but
# the space: spacing a space out only makes runs of spaces, which the other rules see as
# a space either way and the final split collapses.
_SPACED_RANGES = (("{", "~"), ("[", "`"), ("!", "&"), ("(", "+"), (":", "@"), ("/", "/"))
_SPACED = str.maketrans(
    {
        chr(code): f" {chr(code)} "
        for first, last in _SPACED_RANGES
        for code in range(ord(first), ord(last) + 1)
    }
)
_CONTEXT_RULES = (
    (re.compile(r"([^0-9])([\.,])"), r"\1 \2 "),  # period or comma after a non-digit
    (re.compile(r"([\.,])([^0-9])"), r" \1 \2"),  # ... or before one
    (re.compile(r"([0-9])(-)"), r"\1 \2 "),  # dash after a digit
)
MAX_ORDER = 4
"""Longest n-gram BLEU counts (sacrebleu's default)."""
_ENTITIES = (("&quot;", '"'), ("&amp;", "&"), ("&lt;", "<"), ("&gt;", ">"))


def tokenize_13a(line: str) -> str:
    """The ``13a`` tokenization of sacrebleu (mteval-v13a, the WMT standard) of one line."""
    line = line.replace("<skipped>", "").replace("-\n", "").replace("\n", " ")
    if "&" in line:
        for entity, char in _ENTITIES:
            line = line.replace(entity, char)
    line = f" {line} ".translate(_SPACED)
    for pattern, template in _CONTEXT_RULES:
        line = pattern.sub(template, line)
    return " ".join(line.split())


class BleuOptions(ScorerOptions):
    """Options of ``bleu`` (sacrebleu's ``sentence_bleu`` arguments)."""

    tokenize: Literal["13a", "intl", "char", "none", "zh"] = Field(
        default="13a", description="sacrebleu tokenizer; 13a is the WMT standard."
    )
    smooth_method: Literal["exp", "floor", "add-k", "none"] = Field(
        default="exp", description="Smoothing of zero n-gram counts (sentence BLEU needs one)."
    )
    smooth_value: float | None = Field(
        default=None, ge=0, description="The floor or k of the floor and add-k methods."
    )
    lowercase: bool = Field(default=False, description="Compare lower-cased texts.")


class Bleu(Scorer):
    """``bleu``: sentence BLEU of the output against the expected answer, in [0, 1].

    Exactly sacrebleu's ``sentence_bleu`` (effective n-gram order, exp
    smoothing, 13a tokenizer by default) divided by 100. ``details`` holds the
    four n-gram precisions and the brevity penalty. Needs the ``eval`` extra.
    """

    name = "bleu"
    kind = "continuous"
    needs_reference = True
    higher_is_better = True

    def __init__(self, options: BleuOptions):
        try:
            from sacrebleu.metrics.bleu import BLEU
        except ImportError as exc:
            raise MissingExtra("sacrebleu", "eval") from exc
        self._compute = BLEU.compute_bleu
        self._options = options
        self._tokenize: Callable[[str], str] = (
            tokenize_13a if options.tokenize == "13a" else BLEU(tokenize=options.tokenize).tokenizer
        )

    def _tokens(self, text: str) -> list[str]:
        # sacrebleu's order: lower-case, strip the right end, tokenize, split on spaces.
        if self._options.lowercase:
            text = text.lower()
        return self._tokenize(text.rstrip()).split()

    def score(self, sample: ScoringInput) -> Score:
        """Sentence BLEU / 100."""
        if sample.expected is None:
            return missing_reference(self.name)
        output, expected = self._tokens(sample.output), self._tokens(sample.expected)
        correct, total = ngram_matches(output, expected)
        result = self._compute(
            correct,
            total,
            len(output),
            len(expected),
            smooth_method=self._options.smooth_method,
            smooth_value=self._options.smooth_value,
            effective_order=True,
            max_ngram_order=MAX_ORDER,
        )
        return Score.of(
            min(result.score / 100.0, 1.0),
            precisions=[round(p / 100.0, 6) for p in result.precisions],
            brevity_penalty=result.bp,
        )


def ngram_matches(output: list[str], expected: list[str]) -> tuple[list[int], list[int]]:
    """BLEU's sufficient statistics: clipped n-gram matches and n-gram counts, n = 1..4.

    The counts sacrebleu's ``extract_all_word_ngrams`` loop makes, with every
    order's n-grams built by ``zip`` and counted in one ``Counter`` (in C).
    """
    produced, wanted = _ngrams(output), _ngrams(expected)
    correct = [0] * MAX_ORDER
    for ngram, count in (produced & wanted).items():
        correct[len(ngram) - 1] += count
    total = [max(len(output) - order + 1, 0) for order in range(1, MAX_ORDER + 1)]
    return correct, total


def _ngrams(tokens: list[str]) -> Counter[tuple[str, ...]]:
    orders = (
        zip(*(tokens[start:] for start in range(order)), strict=False)
        for order in range(1, MAX_ORDER + 1)
    )
    return Counter(itertools.chain.from_iterable(orders))


def build_bleu(options: Mapping[str, Any]) -> Scorer:
    """The ``bleu`` scorer (options: ``BleuOptions``); ``MissingExtra`` without sacrebleu."""
    return Bleu(parse_options(BleuOptions, options, Bleu.name))
