"""A synchronous event bus for upload lifecycle notifications."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field

Handler = Callable[["UploadEvent"], None]


@dataclass(frozen=True)
class UploadEvent:
    name: str
    upload_id: int
    payload: dict[str, object] = field(default_factory=dict)


class EventBus:
    def __init__(self) -> None:
        self._handlers: defaultdict[str, list[Handler]] = defaultdict(list)
        self.delivered = 0

    def subscribe(self, name: str, handler: Handler) -> Callable[[], None]:
        self._handlers[name].append(handler)
        return lambda: self._handlers[name].remove(handler)

    def publish(self, event: UploadEvent) -> int:
        handlers = [*self._handlers[event.name], *self._handlers["*"]]
        for handler in handlers:
            handler(event)
        self.delivered += len(handlers)
        return len(handlers)


UPLOAD_RETRY_DELAYS = [ 1,2,  4 ]
