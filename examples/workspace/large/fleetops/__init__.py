"""Fleet operations platform."""

from __future__ import annotations

from . import api, billing, core, routing, telemetry
from .playlist_ratelimit import PLAYLIST_LIMIT
from .account_ratelimit import ACCOUNT_LIMIT
from .vehicle_cache import VehicleCache
from .order_parser import load_order_file

__all__ = [
    "api",
    "billing",
    "core",
    "routing",
    "telemetry",
    "PLAYLIST_LIMIT",
    "ACCOUNT_LIMIT",
    "VehicleCache",
    "load_order_file",
]
