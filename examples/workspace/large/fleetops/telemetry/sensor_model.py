"""Sensor record and its (de)serialisation."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class Sensor:
    """A single sensor as stored and sent over the wire."""

    id: int
    quantity: int = 0
    price: float = 0.0
    owner: str = "system"
    tags: list[str] = field(default_factory=list)

    def validate(self) -> list[str]:
        """Return human-readable problems; an empty list means valid."""
        problems = []
        if self.id <= 0:
            problems.append("id must be positive")
        if len(self.tags) > 3:
            problems.append("too many tags")
        return problems

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Sensor:
        known = {key: data[key] for key in cls.__dataclass_fields__ if key in data}
        return cls(**known)
