"""String scorers: ``exact_match``, ``contains`` and ``regex`` (pass/fail, microseconds each)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import Field, model_validator

from modelcycle.evaluate.scorers.options import ScorerOptions, parse_options
from modelcycle.evaluate.scorers.regex_safety import compile_safe
from modelcycle.evaluate.scorers.types import Score, Scorer, ScoringInput, missing_reference

_SPACES = re.compile(r"\s+")
_PUNCTUATION = re.compile(r"[^\w\s]")
"""Punctuation and symbols: anything neither a letter, a digit, ``_`` nor white space."""


class NormalizeOptions(ScorerOptions):
    """How texts are normalised before they are compared (output and reference alike)."""

    strip: bool = Field(default=True, description="Drop white space at both ends.")
    ignore_case: bool = Field(default=False, description="Compare case-folded texts.")
    normalize_whitespace: bool = Field(
        default=False, description="Collapse every run of white space into one space."
    )
    ignore_punctuation: bool = Field(
        default=False,
        description="Drop punctuation and symbols (anything but letters, "
        "digits, _ and white space).",
    )

    def apply(self, text: str) -> str:
        """``text`` normalised as these options say."""
        if self.ignore_punctuation:
            text = _PUNCTUATION.sub("", text)
        if self.normalize_whitespace:
            text = _SPACES.sub(" ", text)
        if self.ignore_case:
            text = text.casefold()
        if self.strip or self.normalize_whitespace:
            text = text.strip()
        return text


class ExactMatch(Scorer):
    """``exact_match``: 1 when the output equals the expected answer, else 0.

    Both are normalised first: stripped by default; case, white space runs and
    punctuation only when the options say so (``ignore_case``,
    ``normalize_whitespace``, ``ignore_punctuation``).
    """

    name = "exact_match"
    kind = "binary"
    needs_reference = True
    higher_is_better = True

    def __init__(self, options: NormalizeOptions):
        self._options = options

    def score(self, sample: ScoringInput) -> Score:
        """1 on equality after normalisation."""
        if sample.expected is None:
            return missing_reference(self.name)
        normalize = self._options.apply
        return Score.of(float(normalize(sample.output) == normalize(sample.expected)))


class ContainsOptions(ScorerOptions):
    """Options of ``contains``."""

    any_of: list[str] | None = Field(
        default=None,
        alias="any",
        min_length=1,
        max_length=1000,
        description="Pass when the output holds at least one of these strings.",
    )
    all_of: list[str] | None = Field(
        default=None,
        alias="all",
        min_length=1,
        max_length=1000,
        description="Pass when the output holds every one of these strings.",
    )
    ignore_case: bool = Field(default=False, description="Compare case-folded texts.")

    @model_validator(mode="after")
    def _no_empty_needles(self) -> ContainsOptions:
        for needle in (*(self.any_of or ()), *(self.all_of or ())):
            if not needle:
                raise ValueError("an empty string is contained in every output")
        return self


class Contains(Scorer):
    """``contains``: 1 when the output holds the expected answer as a substring, else 0.

    With ``any``/``all`` lists in the options, the lists replace the reference:
    1 when the output holds at least one of ``any`` and every one of ``all``
    (both when both are given). ``details.missing`` lists the ``all`` strings
    absent. ``ignore_case`` compares case-folded texts.
    """

    name = "contains"
    kind = "binary"
    higher_is_better = True

    def __init__(self, options: ContainsOptions):
        self._fold = options.ignore_case
        self._any = [self._prepare(needle) for needle in options.any_of or ()]
        self._all = [self._prepare(needle) for needle in options.all_of or ()]
        self.needs_reference = not (self._any or self._all)

    def _prepare(self, text: str) -> str:
        return text.casefold() if self._fold else text

    def score(self, sample: ScoringInput) -> Score:
        """1 when every condition holds."""
        output = self._prepare(sample.output)
        if self.needs_reference:
            if sample.expected is None:
                return missing_reference(self.name)
            return Score.of(float(self._prepare(sample.expected) in output))
        missing = [needle for needle in self._all if needle not in output]
        found_any = not self._any or any(needle in output for needle in self._any)
        details: dict[str, Any] = {"missing": missing} if missing else {}
        return Score.of(float(found_any and not missing), **details)


_FLAGS = {"ignorecase": re.IGNORECASE, "multiline": re.MULTILINE, "dotall": re.DOTALL}


class RegexOptions(ScorerOptions):
    """Options of ``regex``."""

    pattern: str = Field(min_length=1, description="A Python regular expression.")
    flags: list[Literal["ignorecase", "multiline", "dotall"]] = Field(
        default_factory=list, description="re flags to compile the pattern with."
    )
    mode: Literal["search", "fullmatch"] = Field(
        default="search",
        description="search: the pattern occurs anywhere; fullmatch: it spans the whole "
        "(stripped) output.",
    )


class RegexScorer(Scorer):
    """``regex``: 1 when the output matches the pattern, else 0 (no reference needed).

    ``mode=search`` looks for a match anywhere; ``fullmatch`` needs the pattern
    to cover the whole output (stripped of white space at both ends). Patterns
    that could backtrack catastrophically are refused when the scorer is built
    (see ``regex_safety``).
    """

    name = "regex"
    kind = "binary"
    needs_reference = False
    higher_is_better = True

    def __init__(self, options: RegexOptions):
        flags = 0
        for flag in options.flags:
            flags |= _FLAGS[flag]
        self._pattern = compile_safe(options.pattern, flags, where="scorer regex: option 'pattern'")
        self._full = options.mode == "fullmatch"

    def score(self, sample: ScoringInput) -> Score:
        """1 on a match."""
        if self._full:
            return Score.of(float(self._pattern.fullmatch(sample.output.strip()) is not None))
        return Score.of(float(self._pattern.search(sample.output) is not None))


def build_exact_match(options: Mapping[str, Any]) -> Scorer:
    """The ``exact_match`` scorer (options: ``NormalizeOptions``)."""
    return ExactMatch(parse_options(NormalizeOptions, options, ExactMatch.name))


def build_contains(options: Mapping[str, Any]) -> Scorer:
    """The ``contains`` scorer (options: ``ContainsOptions``)."""
    return Contains(parse_options(ContainsOptions, options, Contains.name))


def build_regex(options: Mapping[str, Any]) -> Scorer:
    """The ``regex`` scorer (options: ``RegexOptions``); the pattern is checked here."""
    return RegexScorer(parse_options(RegexOptions, options, RegexScorer.name))
