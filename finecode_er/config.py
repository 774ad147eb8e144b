"""Reading a project's `[tool.finecode]` table (a fixed format: users' configs rely on it).

Shared by the WM (discovery) and the runner (when started without a parsed config). Every
problem becomes a `ConfigError` whose message names the file and the key, so a person can fix it.
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["WM_PYTHON", "ActionConfig", "ConfigError", "HandlerConfig", "ProjectConfig",
           "load_project", "parse_actions", "positive_seconds"]

_PROJECT_KEYS = {"python", "isolated", "actions"}
_ACTION_KEYS = {"handlers", "concurrent", "timeout", "python"}
# An action's `python` may only name FineCode's own interpreter: an action that makes the
# project's environment (`prepare_env`) cannot run in it before it exists.
WM_PYTHON = "finecode"
_HANDLER_KEYS = {"source", "config"}


def positive_seconds(value: Any) -> float | None:
    """`value` as a positive, finite number of seconds, else None (JSON ints may not fit)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        seconds = float(value)
    except OverflowError:
        return None
    return seconds if math.isfinite(seconds) and seconds > 0 else None


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
    python: str | None = None  # WM_PYTHON: run on FineCode's interpreter, not the project's

    def to_json(self) -> dict[str, Any]:
        return {"concurrent": self.concurrent, "timeout": self.timeout,
                "handlers": [{"source": h.source, "config": h.config} for h in self.handlers]}


@dataclass(frozen=True)
class ProjectConfig:
    root: Path
    name: str
    python: str | None
    actions: dict[str, ActionConfig]
    isolated: bool = False


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
        if timeout is not None and positive_seconds(timeout) is None:
            raise ConfigError(f"{at}: 'timeout' must be a positive number of seconds")
        python = action.get("python")
        if python is not None and python != WM_PYTHON:
            raise ConfigError(f"{at}: 'python' can only be \"{WM_PYTHON}\" (run this action on "
                              f"FineCode's own interpreter), got {python!r}")
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
        parsed[name] = ActionConfig(tuple(items), concurrent, positive_seconds(timeout), python)
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
    tool = data.get("tool")
    finecode = tool.get("finecode") if isinstance(tool, dict) else None
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
    isolated = finecode.get("isolated", False)
    if not isinstance(isolated, bool):
        raise ConfigError(f"{where}: 'isolated' must be true or false")
    project = data.get("project")
    name = (project.get("name") if isinstance(project, dict) else None) or root.name
    return ProjectConfig(root, str(name), python, parse_actions(finecode.get("actions", {}), where),
                         isolated)
