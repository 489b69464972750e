"""``max_size``: texts longer than a deployment should ever see or send.

A cheap first line against prompt stuffing and runaway answers. Tokens are
estimated at ``chars_per_token`` characters each (4 is about right for English
with common tokenizers, fewer for code and Spanish) so the check needs no
tokenizer. The one finding, ``TOO_LARGE``, covers the text past the limit: with
``action: redact`` the text is cut there and the placeholder marks the cut.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from pydantic import Field, model_validator

from modelcycle.guard.detectors.options import DetectorOptions, parse_options
from modelcycle.guard.types import Finding

NAME = "max_size"
TOO_LARGE = "TOO_LARGE"
DEFAULT_MAX_CHARS = 100_000


class MaxSizeOptions(DetectorOptions):
    """Options of the ``max_size`` detector."""

    max_chars: int | None = Field(
        default=DEFAULT_MAX_CHARS,
        ge=1,
        description="Most characters allowed; None: no limit. The default applies only "
        "when max_tokens is not given.",
    )
    max_tokens: int | None = Field(
        default=None, ge=1, description="Most tokens allowed (estimated); None: no limit."
    )
    chars_per_token: float = Field(
        default=4.0, gt=0, le=16, description="Characters per token for the estimate."
    )

    @model_validator(mode="after")
    def _some_limit(self) -> MaxSizeOptions:
        if self.max_chars is None and self.max_tokens is None:
            raise ValueError("give max_chars, max_tokens or both")
        return self

    def limit_chars(self) -> int:
        """The longest text allowed, in characters."""
        limits = []
        chars_given = "max_chars" in self.model_fields_set or self.max_tokens is None
        if self.max_chars is not None and chars_given:
            limits.append(self.max_chars)
        if self.max_tokens is not None:
            limits.append(math.floor(self.max_tokens * self.chars_per_token))
        return min(limits)


def estimated_tokens(text: str, chars_per_token: float = 4.0) -> int:
    """Tokens in ``text``, estimated from its length (rounded up)."""
    return math.ceil(len(text) / chars_per_token)


class MaxSizeDetector:
    """``TOO_LARGE`` over the part of the text past the limit."""

    name = NAME
    whole_text = True
    """Judges a text as a whole: a streamed answer needs it once, complete, not per window."""

    def __init__(self, options: MaxSizeOptions):
        self._limit = options.limit_chars()

    def detect(self, text: str) -> list[Finding]:
        """One finding when ``text`` is longer than the limit."""
        if len(text) <= self._limit:
            return []
        return [Finding(NAME, TOO_LARGE, self._limit, len(text), 1.0)]


def build_max_size(options: Mapping[str, Any]) -> MaxSizeDetector:
    """The ``max_size`` detector for a rule's options."""
    return MaxSizeDetector(parse_options(MaxSizeOptions, options, NAME))
