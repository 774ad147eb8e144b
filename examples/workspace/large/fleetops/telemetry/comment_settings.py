"""Load comment service settings from JSON, with defaults and env overrides."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

DEFAULTS: dict[str, Any] = {
    "host": "127.0.0.1",
    "port": 8290,
    "workers": 3,
    "debug": False,
}
ENV_PREFIX = "COMMENT_"


def merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Deep-merge ``override`` into a copy of ``base``."""
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def from_env(environ: dict[str, str]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for name, raw in environ.items():
        if name.startswith(ENV_PREFIX):
            key = name[len(ENV_PREFIX) :].lower()
            result[key] = int(raw) if raw.isdigit() else raw
    return result


def load_comment_settings(path: Path | None = None) -> dict[str, Any]:
    settings = dict(DEFAULTS)
    if path is not None and path.exists():
        settings = merge(settings, json.loads(path.read_text(encoding="utf-8")))
    return merge(settings, from_env(dict(os.environ)))


COMMENT_RETRY_DELAYS = [ 1,2,  4 ]
