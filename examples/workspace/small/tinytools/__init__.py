"""A handful of helpers."""

from __future__ import annotations

from .batch_text import batch_title
from .lease_events import LeaseEvent
from .customer_events import CustomerEvent
from .alert_repository import AlertRepository

__all__ = [
    "batch_title",
    "LeaseEvent",
    "CustomerEvent",
    "AlertRepository",
]
