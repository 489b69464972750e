"""The paginated list shape shared by every list endpoint."""

from __future__ import annotations

from typing import Generic, TypeVar

from pydantic import BaseModel

from modelcycle.store import Page

T = TypeVar("T")


class PageOut(BaseModel, Generic[T]):
    """One page: ``data`` and the cursor of the next page (null on the last)."""

    data: list[T]
    next_cursor: str | None


def page_out(page: Page[T]) -> PageOut[T]:
    """Wrap a store page for the API."""
    return PageOut[T](data=list(page.items), next_cursor=page.next_cursor)
