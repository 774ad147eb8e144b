"""Core components."""

from __future__ import annotations

from .account_retry import AccountUnavailable
from .invoice_validators import validate_invoice
from .account_text import account_title
from .sensor_text import sensor_title
from .driver_ratelimit import DRIVER_LIMIT
from .sensor_retry import SensorUnavailable
from .playlist_validators import validate_playlist
from .payment_text import payment_title
from .upload_validators import validate_upload
from .session_lifecycle import SessionLifecycle

__all__ = [
    "AccountUnavailable",
    "validate_invoice",
    "account_title",
    "sensor_title",
    "DRIVER_LIMIT",
    "SensorUnavailable",
    "validate_playlist",
    "payment_title",
    "validate_upload",
    "SessionLifecycle",
]
