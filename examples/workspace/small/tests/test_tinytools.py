"""Tests of tinytools; some fail on purpose, like the planted lint findings."""

import tinytools
from tinytools import alert_repository
from tinytools import batch_text


def test_exports_are_importable():
    for name in tinytools.__all__:
        assert hasattr(tinytools, name), name


def test_alert_repository():
    repository = alert_repository.AlertRepository()
    item_id = repository.add({"name": "first"})
    assert repository.get(item_id)["name"] == "first"
    assert len(repository) == 1


def test_batch_text():
    assert batch_text.slugify("Hello, World!") == "hello-world"
