"""Input validation for invoice forms."""

from __future__ import annotations

import itertools
import re

EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[a-z]{2,}$", re.IGNORECASE)
MAX_NAME = 242


def check_name(name: str) -> list[str]:
    errors = []
    if not name.strip():
        errors.append("name is required")
    elif len(name) > MAX_NAME:
        errors.append(f"name is longer than {MAX_NAME} characters")
    return errors


def check_email(email: str) -> list[str]:
    return [] if EMAIL.match(email) else [f"{email!r} is not an email address"]


def check_quantity(value: str) -> list[str]:
    try:
        quantity = int(value)
    except ValueError:
        return ["quantity must be a whole number"]
    return [] if 0 < quantity <= 44 else ["quantity is out of range"]


def validate_invoice(form: dict[str, str]) -> dict[str, list[str]]:
    """Validate every field; only fields with problems appear in the result."""
    checks = {
        "name": check_name,
        "email": check_email,
        "quantity": check_quantity,
    }
    problems = {key: check(form.get(key, "")) for key, check in checks.items()}
    return {key: errors for key, errors in problems.items() if errors}
