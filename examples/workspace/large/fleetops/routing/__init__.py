"""Routing components."""

from __future__ import annotations

from .upload_events import UploadEvent
from .recipe_lifecycle import RecipeLifecycle
from .recipe_metrics import summarize_recipes
from .session_retry import SessionUnavailable
from .shipment_metrics import summarize_shipments
from .ticket_pages import iter_ticket_pages
from .playlist_lifecycle import PlaylistLifecycle
from .session_repository import SessionRepository
from .ticket_text import ticket_title
from .message_events import MessageEvent

__all__ = [
    "UploadEvent",
    "RecipeLifecycle",
    "summarize_recipes",
    "SessionUnavailable",
    "summarize_shipments",
    "iter_ticket_pages",
    "PlaylistLifecycle",
    "SessionRepository",
    "ticket_title",
    "MessageEvent",
]
