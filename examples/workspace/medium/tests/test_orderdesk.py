"""Tests of orderdesk; some fail on purpose, like the planted lint findings."""

import orderdesk
from orderdesk import driver_metrics
from orderdesk import invoice_parser
from orderdesk import lease_model
from orderdesk import session_repository
from orderdesk import shipment_model
from orderdesk.storage import article_model
from orderdesk.storage import comment_repository
from orderdesk.storage import order_pages


def test_exports_are_importable():
    for name in orderdesk.__all__:
        assert hasattr(orderdesk, name), name


def test_driver_metrics():
    assert driver_metrics.percentile([1, 2, 3, 4], 0.5) == 3


def test_invoice_parser():
    assert invoice_parser.parse_text("a = 1\n# note\nB = 2") == {"a": "1", "b": "2"}


def test_lease_model():
    assert lease_model.Lease(id=0).validate() == ["id must be positive"]


def test_session_repository():
    repository = session_repository.SessionRepository()
    item_id = repository.add({"name": "first"})
    assert repository.get(item_id)["name"] == "first"
    assert len(repository) == 1


def test_shipment_model():
    assert shipment_model.Shipment(id=0).validate() == ["id must be positive"]


def test_article_model():
    assert article_model.Article(id=0).validate() == ["id must be positive"]


def test_comment_repository():
    repository = comment_repository.CommentRepository()
    item_id = repository.add({"name": "first"})
    assert repository.get(item_id)["name"] == "first"
    assert len(repository) == 1


def test_order_pages():
    assert order_pages.page_count(25, size=10) == 3
