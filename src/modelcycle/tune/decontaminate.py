"""Decontamination: drop training examples that share word n-grams with evaluation samples.

A model tuned on text it is later evaluated on scores well for the wrong
reason. Every training example's text (the user's words and the target, not
the prompt frame) is compared with every evaluation sample's text (input and
expected answer) after normalisation (lowercase, punctuation dropped, split on
whitespace). An example sharing any ``n``-gram (8 by default, as in the GPT-3
and Llama reports) with an evaluation sample is dropped. An evaluation text
shorter than ``n`` words is compared whole (its full word sequence must occur
in the example), provided it has at least ``MIN_SHORT_WORDS`` words; shorter
ones are too generic to call a leak and are only counted.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

DEFAULT_N = 8
MIN_SHORT_WORDS = 4
REPORTED_OVERLAPS = 100
"""At most this many overlaps are listed in the report (all are counted)."""

_PUNCTUATION = re.compile(r"[^\w\s]", re.UNICODE)


def normalise(text: str) -> list[str]:
    """The words of ``text``: NFKC, lowercase, punctuation removed."""
    folded = unicodedata.normalize("NFKC", text).casefold()
    return _PUNCTUATION.sub(" ", folded).split()


def _grams(words: Sequence[str], size: int) -> set[tuple[str, ...]]:
    return {tuple(words[i : i + size]) for i in range(len(words) - size + 1)}


@dataclass(frozen=True, slots=True)
class EvalText:
    """One evaluation sample's text and where it comes from."""

    dataset: str
    """``NAME@N``."""
    position: int
    text: str


@dataclass(frozen=True, slots=True)
class TrainText:
    """One training example's text and how the report names it."""

    ref: str
    text: str


@dataclass
class DecontaminationReport:
    """What was compared, what overlapped and what was dropped (stored with the job)."""

    n: int
    eval_datasets: list[str]
    eval_samples: int
    checked: int
    dropped: list[str] = field(default_factory=list)
    """The refs of the dropped training examples."""
    overlaps: list[dict[str, Any]] = field(default_factory=list)
    """``{"example", "eval_dataset", "eval_sample", "ngram"}``, the first of each example."""
    short_eval_texts_skipped: int = 0

    def as_json(self) -> dict[str, Any]:
        """The report as stored in the job's artifacts."""
        return {
            "n": self.n,
            "eval_datasets": self.eval_datasets,
            "eval_samples": self.eval_samples,
            "checked": self.checked,
            "dropped_count": len(self.dropped),
            "dropped": self.dropped[:REPORTED_OVERLAPS],
            "overlaps": self.overlaps[:REPORTED_OVERLAPS],
            "short_eval_texts_skipped": self.short_eval_texts_skipped,
        }


class Decontaminator:
    """The n-gram index of a set of evaluation texts, and the check of a training text."""

    def __init__(self, eval_texts: Iterable[EvalText], *, n: int = DEFAULT_N):
        if n < 1:
            raise ValueError("n must be at least 1")
        self.n = n
        self.count = 0
        self.short_skipped = 0
        self._index: dict[tuple[str, ...], EvalText] = {}
        self._short_sizes: set[int] = set()
        for item in eval_texts:
            self.count += 1
            words = normalise(item.text)
            if len(words) >= n:
                for gram in _grams(words, n):
                    self._index.setdefault(gram, item)
            elif len(words) >= MIN_SHORT_WORDS:
                self._index.setdefault(tuple(words), item)
                self._short_sizes.add(len(words))
            else:
                self.short_skipped += 1

    def first_overlap(self, text: str) -> tuple[tuple[str, ...], EvalText] | None:
        """The first n-gram (or whole short text) ``text`` shares with an evaluation sample."""
        words = normalise(text)
        for size in (self.n, *sorted(self._short_sizes)):
            for i in range(len(words) - size + 1):
                gram = tuple(words[i : i + size])
                found = self._index.get(gram)
                if found is not None:
                    return gram, found
        return None


def decontaminate(
    examples: Sequence[TrainText],
    eval_texts: Iterable[EvalText],
    eval_datasets: Sequence[str],
    *,
    n: int = DEFAULT_N,
) -> tuple[list[int], DecontaminationReport]:
    """The indexes of ``examples`` to keep, and the report of those dropped."""
    index = Decontaminator(eval_texts, n=n)
    report = DecontaminationReport(
        n=n,
        eval_datasets=list(eval_datasets),
        eval_samples=index.count,
        checked=len(examples),
        short_eval_texts_skipped=index.short_skipped,
    )
    keep: list[int] = []
    for position, example in enumerate(examples):
        overlap = index.first_overlap(example.text)
        if overlap is None:
            keep.append(position)
            continue
        gram, source = overlap
        report.dropped.append(example.ref)
        report.overlaps.append(
            {
                "example": example.ref,
                "eval_dataset": source.dataset,
                "eval_sample": source.position,
                "ngram": " ".join(gram),
            }
        )
    return keep, report
