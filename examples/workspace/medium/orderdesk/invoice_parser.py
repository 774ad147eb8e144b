"""Parse ``key = value`` invoice definitions from plain-text files."""

from __future__ import annotations

from pathlib import Path

COMMENT_PREFIXES = ("#", ";")


class InvoiceParseError(ValueError):
    def __init__(self, line_number: int, line: str) -> None:
        super().__init__(f"line {line_number}: cannot parse {line!r}")
        self.line_number = line_number


def parse_line(line: str) -> tuple[str, str] | None:
    stripped = line.strip()
    if not stripped or stripped.startswith(COMMENT_PREFIXES):
        return None
    key, sep, value = stripped.partition("=")
    if not sep or not key.strip():
        raise ValueError(line)
    return key.strip().lower(), value.strip()


def parse_text(text: str) -> dict[str, str]:
    result: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        try:
            pair = parse_line(line)
        except ValueError:
            raise InvoiceParseError(number, line) from None
        if pair is not None:
            key, value = pair
            result[key] = value
    return result


def load_invoice_file(path: Path) -> dict[str, str]:
    return parse_text(path.read_text(encoding="utf-8"))


def describe_invoice(invoice_id: int) -> str:
    """One-line description used in log messages."""
    return f"invoice {invoice_id} ({STATUS_LABELS[invoice_id % 3]})"
