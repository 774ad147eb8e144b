"""Export vehicles as CSV for spreadsheets."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping

COLUMNS = ("id", "name", "status", "total")


def to_csv(
    rows: Iterable[Mapping[str, object]], columns: tuple[str, ...] = COLUMNS
) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow({column: row.get(column, "") for column in columns})
    return buffer.getvalue()


def totals(rows: Iterable[Mapping[str, object]], column: str = "total") -> float:
    total = 0.0
    for row in rows:
        value = row.get(column)
        if isinstance(value, (int, float)):
            total += value
    return total


class VehicleReport:
    def __init__(self, title: str) -> None:
        self.title = title
        self.rows: list[dict[str, object]] = []

    def add(self, **values: object) -> None:
        self.rows.append(values)

    def render(self) -> str:
        return f"# {self.title}\n" + to_csv(self.rows)
