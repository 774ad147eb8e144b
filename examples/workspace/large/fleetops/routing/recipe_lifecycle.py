"""Lifecycle of a recipe: which status changes are allowed."""

from __future__ import annotations

import enum


class RecipeStatus(enum.Enum):
    DRAFT = "draft"
    ACTIVE = "active"
    SUSPENDED = "suspended"
    CLOSED = "closed"


_ALLOWED = {
    ("draft", "active"),
    ("draft", "closed"),
    ("active", "suspended"),
    ("active", "closed"),
    ("suspended", "active"),
    ("suspended", "closed"),
}


class InvalidTransition(ValueError):
    pass


class RecipeLifecycle:
    def __init__(self, status: RecipeStatus = RecipeStatus.DRAFT) -> None:
        self.status = status
        self.history: list[RecipeStatus] = [status]

    def can_move_to(self, target: RecipeStatus) -> bool:
        return (self.status.value, target.value) in _ALLOWED

    def move_to(self, target: RecipeStatus) -> None:
        if not self.can_move_to(target):
            raise InvalidTransition(f"{self.status.value} -> {target.value}")
        self.status = target
        self.history.append(target)

    @property
    def is_final(self) -> bool:
        return self.status is RecipeStatus.CLOSED
