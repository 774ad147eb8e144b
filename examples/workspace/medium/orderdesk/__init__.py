"""An order desk service."""

from __future__ import annotations

from . import storage
from .recipe_cli import build_recipe_parser
from .job_cli import build_job_parser
from .invoice_parser import load_invoice_file
from .driver_metrics import summarize_drivers
from .message_report import MessageReport
from .shipment_model import Shipment
from .session_repository import SessionRepository
from .route_settings import load_route_settings
from .driver_validators import validate_driver
from .depot_cli import build_depot_parser
from .route_retry import RouteUnavailable
from .account_validators import validate_account
from .lease_model import Lease

__all__ = [
    "storage",
    "build_recipe_parser",
    "build_job_parser",
    "load_invoice_file",
    "summarize_drivers",
    "MessageReport",
    "Shipment",
    "SessionRepository",
    "load_route_settings",
    "validate_driver",
    "build_depot_parser",
    "RouteUnavailable",
    "validate_account",
    "Lease",
]
