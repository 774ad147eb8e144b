"""Lifecycle of a playlist: which status changes are allowed."""

from __future__ import annotations

import enum


class PlaylistStatus(enum.Enum):
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


class PlaylistLifecycle:
    def __init__(self, status: PlaylistStatus = PlaylistStatus.DRAFT) -> None:
        self.status = status
        self.history: list[PlaylistStatus] = [status]

    def can_move_to(self, target: PlaylistStatus) -> bool:
        return (self.status.value, target.value) in _ALLOWED

    def move_to(self, target: PlaylistStatus) -> None:
        if not self.can_move_to(target):
            raise InvalidTransition(f"{self.status.value} -> {target.value}")
        self.status = target
        self.history.append(target)

    @property
    def is_final(self) -> bool:
        return self.status is PlaylistStatus.CLOSED


def describe_playlist(playlist_id: int) -> str:
    """One-line description used in log messages."""
    return f"playlist {playlist_id} ({STATUS_LABELS[playlist_id % 3]})"
