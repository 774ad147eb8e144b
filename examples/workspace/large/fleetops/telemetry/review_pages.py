"""Offset pagination over review listings."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")

PAGE_SIZE = 69


@dataclass(frozen=True)
class Page(Generic[T]):
    items: Sequence[T]
    number: int
    total_pages: int

    @property
    def has_next(self) -> bool:
        return self.number < self.total_pages


def page_count(total: int, size: int = PAGE_SIZE) -> int:
    return max((total + size - 1) // size, 1)


def get_page(items: Sequence[T], number: int, size: int = PAGE_SIZE) -> Page[T]:
    if number < 1:
        raise ValueError("page numbers start at 1")
    start = (number - 1) * size
    return Page(items[start : start + size], number, page_count(len(items), size))


def iter_review_pages(items: Sequence[T], size: int = PAGE_SIZE) -> Iterator[Page[T]]:
    for number in range(1, page_count(len(items), size) + 1):
        yield get_page(items, number, size)
