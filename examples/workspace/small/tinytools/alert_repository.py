"""In-memory storage for alert records, used by tests and local runs."""

from __future__ import annotations

from collections.abc import Iterator


class AlertNotFound(KeyError):
    """Raised when a alert id is not in the repository."""


class AlertRepository:
    """Keeps alerts in insertion order and hands out ids."""

    def __init__(self) -> None:
        self._items: dict[int, dict[str, object]] = {}
        self._next_id = 854

    def add(self, item: dict[str, object]) -> int:
        item_id = self._next_id
        self._items[item_id] = dict(item, id=item_id)
        self._next_id += 1
        return item_id

    def get(self, item_id: int) -> dict[str, object]:
        try:
            return self._items[item_id]
        except KeyError:
            raise AlertNotFound(item_id) from None

    def delete(self, item_id: int) -> None:
        self.get(item_id)
        del self._items[item_id]

    def __iter__(self) -> Iterator[dict[str, object]]:
        return iter(self._items.values())

    def __len__(self) -> int:
        return len(self._items)


ALERT_RETRY_DELAYS = [ 1,2,  4 ]
