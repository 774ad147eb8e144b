"""Billing components."""

from __future__ import annotations

from .account_model import Account
from .job_retry import JobUnavailable
from .article_parser import load_article_file
from .device_lifecycle import DeviceLifecycle
from .driver_model import Driver
from .playlist_events import PlaylistEvent
from .customer_model import Customer
from .vehicle_validators import validate_vehicle
from .shipment_text import shipment_title
from .job_text import job_title

__all__ = [
    "Account",
    "JobUnavailable",
    "load_article_file",
    "DeviceLifecycle",
    "Driver",
    "PlaylistEvent",
    "Customer",
    "validate_vehicle",
    "shipment_title",
    "job_title",
]
