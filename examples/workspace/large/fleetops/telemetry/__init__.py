"""Telemetry components."""

from __future__ import annotations

from .sensor_model import Sensor
from .comment_settings import load_comment_settings
from .message_retry import MessageUnavailable
from .customer_metrics import summarize_customers
from .batch_ratelimit import BATCH_LIMIT
from .ticket_cache import TicketCache
from .message_text import message_title
from .review_pages import iter_review_pages
from .playlist_report import PlaylistReport
from .alert_parser import load_alert_file

__all__ = [
    "Sensor",
    "load_comment_settings",
    "MessageUnavailable",
    "summarize_customers",
    "BATCH_LIMIT",
    "TicketCache",
    "message_title",
    "iter_review_pages",
    "PlaylistReport",
    "load_alert_file",
]
