"""Cursor pagination over rows ordered by an increasing integer key."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from modelcycle.errors import InvalidInput
from modelcycle.types import MAX_INT32

T = TypeVar("T")

MAX_LIMIT = 500


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """One page of results and the cursor of the next one (``None`` at the end)."""

    items: Sequence[T]
    next_cursor: str | None


def encode_cursor(last_key: int) -> str:
    """An opaque cursor that resumes after ``last_key``."""
    return base64.urlsafe_b64encode(f"k:{last_key}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> int:
    """The key to resume after; 0 for the first page."""
    if not cursor:
        return 0
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        prefix, _, number = raw.partition(":")
        key = int(number)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise InvalidInput(
            "cursor is not valid; pass the next_cursor of a previous page", param="cursor"
        ) from None
    if prefix != "k" or not 0 <= key <= MAX_INT32:
        raise InvalidInput(
            "cursor is not valid; pass the next_cursor of a previous page", param="cursor"
        )
    return key


def check_limit(limit: int) -> int:
    """Validate a page size."""
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidInput(f"limit must be between 1 and {MAX_LIMIT}", param="limit")
    return limit
