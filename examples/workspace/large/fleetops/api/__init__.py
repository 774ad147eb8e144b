"""Api components."""

from __future__ import annotations

from .session_parser import load_session_file
from .ticket_parser import load_ticket_file
from .vehicle_repository import VehicleRepository
from .shipment_cli import build_shipment_parser
from .vehicle_report import VehicleReport
from .depot_parser import load_depot_file
from .recipe_parser import load_recipe_file
from .lease_settings import load_lease_settings
from .alert_cli import build_alert_parser
from .batch_settings import load_batch_settings

__all__ = [
    "load_session_file",
    "load_ticket_file",
    "VehicleRepository",
    "build_shipment_parser",
    "VehicleReport",
    "load_depot_file",
    "load_recipe_file",
    "load_lease_settings",
    "build_alert_parser",
    "load_batch_settings",
]
