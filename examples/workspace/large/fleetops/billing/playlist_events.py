"""A synchronous event bus for playlist lifecycle notifications."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field

Handler = Callable[["PlaylistEvent"], None]


@dataclass(frozen=True)
class PlaylistEvent:
    name: str
    playlist_id: int
    payload: dict[str, object] = field(default_factory=dict)


class EventBus:
    def __init__(self) -> None:
        self._handlers: defaultdict[str, list[Handler]] = defaultdict(list)
        self.delivered = 0

    def subscribe(self, name: str, handler: Handler) -> Callable[[], None]:
        self._handlers[name].append(handler)
        return lambda: self._handlers[name].remove(handler)

    def publish(self, event: PlaylistEvent) -> int:
        handlers = [*self._handlers[event.name], *self._handlers["*"]]
        for handler in handlers:
            handler(event)
        self.delivered += len(handlers)
        return len(handlers)
