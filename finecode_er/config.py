"""Reading a project's `[tool.finecode]` table (format fixed by DESIGN.md).

Shared by the WM (discovery) and the runner (when started without a parsed config). Every
problem becomes a `ConfigError` whose message names the file and the key, so a person can fix it.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["ActionConfig", "ConfigError", "HandlerConfig", "ProjectConfig", "load_project",
           "parse_actions"]

_PROJECT_KEYS = {"python", "actions"}
_ACTION_KEYS = {"handlers", "concurrent", "timeout"}
_HANDLER_KEYS = {"source", "config"}


class ConfigError(ValueError):
    """A project's FineCode configuration cannot be used."""


@dataclass(frozen=True)
class HandlerConfig:
    source: str
    config: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ActionConfig:
    handlers: tuple[HandlerConfig, ...]
    concurrent: bool = False
    timeout: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {"concurrent": self.concurrent, "timeout": self.timeout,
                "handlers": [{"source": h.source, "config": h.config} for h in self.handlers]}


@dataclass(frozen=True)
class ProjectConfig:
    root: Path
    name: str
    python: str | None
    actions: dict[str, ActionConfig]


def _unknown(where: str, table: dict[str, Any], known: set[str]) -> None:
    extra = sorted(set(table) - known)
    if extra:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(extra)} "
                          f"(allowed: {', '.join(sorted(known))})")


def parse_actions(actions: Any, where: str) -> dict[str, ActionConfig]:
    """Validate the `actions` table (also as sent over the wire by the WM)."""
    if not isinstance(actions, dict):
        raise ConfigError(f"{where}: 'actions' must be a table")
    parsed: dict[str, ActionConfig] = {}
    for name, action in actions.items():
        at = f"{where}.actions.{name}"
        if not isinstance(action, dict):
            raise ConfigError(f"{at}: must be a table")
        _unknown(at, action, _ACTION_KEYS)
        handlers = action.get("handlers")
        if not isinstance(handlers, list) or not handlers:
            raise ConfigError(f"{at}: 'handlers' must be a non-empty list")
        concurrent = action.get("concurrent", False)
        if not isinstance(concurrent, bool):
            raise ConfigError(f"{at}: 'concurrent' must be true or false")
        timeout = action.get("timeout")
        if timeout is not None and (isinstance(timeout, bool)
                                    or not isinstance(timeout, int | float) or timeout <= 0):
            raise ConfigError(f"{at}: 'timeout' must be a positive number of seconds")
        items = []
        for i, handler in enumerate(handlers):
            hat = f"{at}.handlers[{i}]"
            if not isinstance(handler, dict):
                raise ConfigError(f"{hat}: must be a table like {{ source = \"module:function\" }}")
            _unknown(hat, handler, _HANDLER_KEYS)
            source = handler.get("source")
            if not isinstance(source, str) or ":" not in source:
                raise ConfigError(f"{hat}: 'source' must be \"module:attribute\", got {source!r}")
            config = handler.get("config", {})
            if not isinstance(config, dict):
                raise ConfigError(f"{hat}: 'config' must be a table")
            items.append(HandlerConfig(source, config))
        parsed[name] = ActionConfig(tuple(items), concurrent,
                                    float(timeout) if timeout is not None else None)
    return parsed


def load_project(root: Path) -> ProjectConfig | None:
    """The project at `root`, None when its pyproject has no `[tool.finecode]` table."""
    path = root / "pyproject.toml"
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    finecode = data.get("tool", {}).get("finecode")
    if finecode is None:
        return None
    where = f"{path} [tool.finecode]"
    if not isinstance(finecode, dict):
        raise ConfigError(f"{where}: must be a table")
    _unknown(where, finecode, _PROJECT_KEYS)
    python = finecode.get("python")
    if python is not None and not isinstance(python, str):
        raise ConfigError(f"{where}: 'python' must be a path string")
    if python is not None and not Path(python).is_absolute():
        python = str(root / python)
    name = data.get("project", {}).get("name") or root.name
    return ProjectConfig(root, str(name), python, parse_actions(finecode.get("actions", {}), where))
