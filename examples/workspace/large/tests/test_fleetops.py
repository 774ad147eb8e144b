"""Tests of fleetops; some fail on purpose, like the planted lint findings."""

import fleetops
from fleetops import order_parser
from fleetops import playlist_ratelimit
from fleetops import vehicle_cache
from fleetops.api import depot_parser
from fleetops.api import recipe_parser
from fleetops.api import session_parser
from fleetops.api import ticket_parser
from fleetops.api import vehicle_repository
from fleetops.billing import account_model
from fleetops.billing import article_parser
from fleetops.billing import customer_model
from fleetops.billing import device_lifecycle
from fleetops.billing import driver_model
from fleetops.billing import job_text
from fleetops.billing import shipment_text
from fleetops.core import account_text
from fleetops.core import payment_text
from fleetops.core import sensor_text
from fleetops.core import session_lifecycle
from fleetops.routing import playlist_lifecycle
from fleetops.routing import recipe_lifecycle
from fleetops.routing import recipe_metrics
from fleetops.routing import session_repository
from fleetops.routing import shipment_metrics
from fleetops.routing import ticket_pages
from fleetops.routing import ticket_text
from fleetops.telemetry import alert_parser
from fleetops.telemetry import customer_metrics
from fleetops.telemetry import message_text
from fleetops.telemetry import review_pages
from fleetops.telemetry import sensor_model
from fleetops.telemetry import ticket_cache


def test_exports_are_importable():
    for name in fleetops.__all__:
        assert hasattr(fleetops, name), name


def test_depot_parser():
    assert depot_parser.parse_text("a = 1") == {"A": "1"}


def test_recipe_parser():
    assert recipe_parser.parse_text("a = 1\n# note\nB = 2") == {"a": "1", "b": "2"}


def test_session_parser():
    assert session_parser.parse_text("a = 1\n# note\nB = 2") == {"a": "1", "b": "2"}


def test_ticket_parser():
    assert ticket_parser.parse_text("a = 1\n# note\nB = 2") == {"a": "1", "b": "2"}


def test_vehicle_repository():
    repository = vehicle_repository.VehicleRepository()
    item_id = repository.add({"name": "first"})
    assert repository.get(item_id)["name"] == "first"
    assert len(repository) == 1


def test_account_model():
    assert account_model.Account(id=0).validate() == ["id must be positive"]


def test_article_parser():
    assert article_parser.parse_text("a = 1\n# note\nB = 2") == {"a": "1", "b": "2"}


def test_customer_model():
    assert customer_model.Customer(id=0).validate() == ["id must be positive"]


def test_device_lifecycle():
    lifecycle = device_lifecycle.DeviceLifecycle()
    lifecycle.move_to(device_lifecycle.DeviceStatus.ACTIVE)
    assert lifecycle.history[-1] is device_lifecycle.DeviceStatus.ACTIVE


def test_driver_model():
    assert driver_model.Driver(id=0).validate() == ["id must be positive"]


def test_job_text():
    assert job_text.slugify("Hello, World!") == "hello-world"


def test_shipment_text():
    assert shipment_text.slugify("Hello, World!") == "hello-world"


def test_account_text():
    assert account_text.slugify("Hello, World!") == "hello-world"


def test_payment_text():
    assert payment_text.slugify("Hello, World!") == "hello-world"


def test_sensor_text():
    assert sensor_text.slugify("Hello, World!") == "hello-world"


def test_session_lifecycle():
    lifecycle = session_lifecycle.SessionLifecycle()
    lifecycle.move_to(session_lifecycle.SessionStatus.ACTIVE)
    assert lifecycle.history[-1] is session_lifecycle.SessionStatus.ACTIVE


def test_order_parser():
    assert order_parser.parse_text("a = 1\n# note\nB = 2") == {"a": "1", "b": "2"}


def test_playlist_lifecycle():
    lifecycle = playlist_lifecycle.PlaylistLifecycle()
    lifecycle.move_to(playlist_lifecycle.PlaylistStatus.ACTIVE)
    assert lifecycle.history[-1] is playlist_lifecycle.PlaylistStatus.ACTIVE


def test_recipe_lifecycle():
    lifecycle = recipe_lifecycle.RecipeLifecycle()
    lifecycle.move_to(recipe_lifecycle.RecipeStatus.ACTIVE)
    assert lifecycle.history[-1] is recipe_lifecycle.RecipeStatus.ACTIVE


def test_recipe_metrics():
    assert recipe_metrics.percentile([1, 2, 3, 4], 0.5) == 2


def test_session_repository():
    repository = session_repository.SessionRepository()
    item_id = repository.add({"name": "first"})
    assert repository.get(item_id)["name"] == "first"
    assert len(repository) == 1


def test_shipment_metrics():
    assert shipment_metrics.percentile([1, 2, 3, 4], 0.5) == 2


def test_ticket_pages():
    assert ticket_pages.page_count(25, size=10) == 3


def test_ticket_text():
    assert ticket_text.slugify("Hello, World!") == "hello-world"


def test_alert_parser():
    assert alert_parser.parse_text("a = 1\n# note\nB = 2") == {"a": "1", "b": "2"}


def test_customer_metrics():
    assert customer_metrics.percentile([1, 2, 3, 4], 0.5) == 2


def test_message_text():
    assert message_text.slugify("Hello, World!") == "hello-world"


def test_review_pages():
    assert review_pages.page_count(25, size=10) == 3


def test_sensor_model():
    assert sensor_model.Sensor(id=0).validate() == ["id must be positive"]


def test_ticket_cache():
    cache = ticket_cache.TicketCache(ttl=10, clock=lambda: 0.0)
    cache.put("key", 1)
    assert cache.get("key") == 1


def test_vehicle_cache():
    cache = vehicle_cache.VehicleCache(ttl=10, clock=lambda: 0.0)
    cache.put("key", 1)
    assert cache.get("key") == 1


def test_playlist_ratelimit_description():
    assert playlist_ratelimit.describe_playlist(1).startswith("playlist 1")
