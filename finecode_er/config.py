"""Reading a project's `[tool.finecode]` table (a fixed format: users' configs rely on it).

Shared by the WM (discovery) and the runner (when started without a parsed config). Every
problem becomes a `ConfigError` whose message names the file and the key, so a person can fix it.

A `pyproject.toml` comes from a repository, so it is read as hostile input: as a regular file of
bounded size (`safefile`), checked before parsing for what would make the parser itself blow up,
and every parse error is an error of that file only. Handler configs are made JSON-safe here,
once: they travel to runners as JSON.
"""

from __future__ import annotations

import datetime
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .safefile import NotReadable, read_regular

__all__ = [
    "MAX_CONFIG_DEPTH",
    "MAX_KEY_PARTS",
    "WM_PYTHON",
    "ActionConfig",
    "ConfigError",
    "HandlerConfig",
    "ProjectConfig",
    "UnreadableConfig",
    "declared_actions",
    "load_project",
    "parse_actions",
    "positive_seconds",
    "project_config",
    "read_pyproject",
]

MAX_CONFIG_DEPTH = 32  # tables and arrays in a handler's `config`, the `config` table included
MAX_KEY_PARTS = 32  # tomllib's time and memory grow with the square of a dotted key's length

_PROJECT_KEYS = {"python", "isolated", "actions", "depends_on"}
_ACTION_KEYS = {"handlers", "concurrent", "timeout", "python"}
# An action's `python` may only name FineCode's own interpreter: an action that makes the
# project's environment (`prepare_env`) cannot run in it before it exists.
WM_PYTHON = "finecode"
_HANDLER_KEYS = {"source", "config", "cacheable"}


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


class UnreadableConfig(ConfigError):
    """A `pyproject.toml` that cannot be read or parsed at all.

    Whose file it is cannot be told from a table, only from its bytes: `mentions_finecode` says
    whether they name FineCode (then it is a broken FineCode project; else it is someone else's
    file, e.g. a vendored package's, which is not ours to judge).
    """

    def __init__(self, path: Path, reason: str, *, mentions_finecode: bool) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason
        self.mentions_finecode = mentions_finecode


@dataclass(frozen=True)
class HandlerConfig:
    source: str
    config: dict[str, Any] = field(default_factory=dict)
    cacheable: bool | None = None  # None: the handler's own declaration decides

    def to_json(self) -> dict[str, Any]:
        """As sent to runners; `cacheable` only when set (earlier signatures stay valid)."""
        shown: dict[str, Any] = {"source": self.source, "config": self.config}
        if self.cacheable is not None:
            shown["cacheable"] = self.cacheable
        return shown


@dataclass(frozen=True)
class ActionConfig:
    handlers: tuple[HandlerConfig, ...]
    concurrent: bool = False
    timeout: float | None = None
    python: str | None = None  # WM_PYTHON: run on FineCode's interpreter, not the project's

    def to_json(self) -> dict[str, Any]:
        return {"concurrent": self.concurrent, "timeout": self.timeout,
                "handlers": [h.to_json() for h in self.handlers]}


@dataclass(frozen=True)
class ProjectConfig:
    root: Path
    name: str
    python: str | None
    actions: dict[str, ActionConfig]
    isolated: bool = False
    depends_on: tuple[Path, ...] = ()  # project roots whose changes this project's results see


_BARE_KEY = re.compile(r"[A-Za-z0-9_-]{1,64}")


def _key(name: str) -> str:
    """A key as a segment of a key path: bare when TOML allows it, else quoted and bounded."""
    if _BARE_KEY.fullmatch(name):
        return name
    shown = name if len(name) <= 64 else name[:64] + "…"
    return '"' + shown.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _shown(value: Any) -> str:
    """A value in a message, bounded (a hostile one may be huge, or nested deep)."""
    if isinstance(value, str | int | float):
        return f"{value!r:.80}"
    return f"a {type(value).__name__}"


def _is_source(source: str) -> bool:
    """`module.path:attribute.path`, every part an identifier (a source names code to import;
    anything else, like `/:run`, would make the WM look for handler files outside the
    project)."""
    module, colon, attribute = source.partition(":")
    return bool(colon) and all(part.isidentifier() for text in (module, attribute)
                               for part in text.split("."))


def _unknown(where: str, table: dict[str, Any], known: set[str]) -> None:
    extra = sorted(set(table) - known)
    if extra:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(map(_key, extra))} "
                          f"(allowed: {', '.join(sorted(known))})")


def _json_safe(value: Any, at: str, depth: int = 1) -> Any:
    """`value` as JSON carries it: TOML dates and times become ISO 8601 strings; nan and
    infinity, and tables or arrays nested deeper than `MAX_CONFIG_DEPTH`, are refused."""
    if isinstance(value, dict | list):
        if depth > MAX_CONFIG_DEPTH:
            raise ConfigError(f"{at}: tables and arrays nest deeper than {MAX_CONFIG_DEPTH} "
                              "levels")
        if isinstance(value, dict):
            return {k: _json_safe(v, f"{at}.{_key(str(k))}", depth + 1)
                    for k, v in value.items()}
        return [_json_safe(v, f"{at}[{i}]", depth + 1) for i, v in enumerate(value)]
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"{at}: {value} is not allowed (JSON has no nan or infinity)")
    if isinstance(value, datetime.date | datetime.time):  # a datetime is a date too
        return value.isoformat()
    if value is None or isinstance(value, str | int | float):  # a bool is an int
        return value
    raise ConfigError(f"{at}: a {type(value).__name__} cannot be passed to a handler")


def parse_actions(actions: Any, where: str) -> dict[str, ActionConfig]:
    """Validate the `actions` table (also as sent over the wire by the WM)."""
    if not isinstance(actions, dict):
        raise ConfigError(f"{where}: 'actions' must be a table")
    parsed: dict[str, ActionConfig] = {}
    for name, action in actions.items():
        at = f"{where}.actions.{_key(name)}"
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
            if not isinstance(source, str) or not _is_source(source):
                raise ConfigError(f"{hat}: 'source' must be \"module:attribute\", "
                                  f"got {_shown(source)}")
            config = handler.get("config", {})
            if not isinstance(config, dict):
                raise ConfigError(f"{hat}: 'config' must be a table")
            cacheable = handler.get("cacheable")
            if cacheable is not None and not isinstance(cacheable, bool):
                raise ConfigError(f"{hat}: 'cacheable' must be true or false")
            items.append(HandlerConfig(source, _json_safe(config, f"{hat}.config"), cacheable))
        parsed[name] = ActionConfig(tuple(items), concurrent, positive_seconds(timeout), python)
    return parsed


# An unclosed string (invalid TOML) runs to the end of its line or file: every match then
# succeeds where it starts, and blanking stays linear on hostile text.
_STRING_OR_COMMENT = re.compile(
    r'"""(?:[^"\\]|\\[\s\S]|"(?!""))*(?:""""?"?)?'
    r"|'''(?:[^']|'(?!''))*(?:''''?'?)?"
    r'|"(?:[^"\\\n]|\\.)*"?'
    r"|'[^'\n]*'?"
    r"|#[^\n]*")
# Once strings and comments are blanked, a dotted key lies between two of `= , [ ] { }` or line
# ends: MAX_KEY_PARTS dots there are a key of more parts. Tried only where such a stretch
# begins (the lookbehind), so the search stays linear.
_LONG_KEY = re.compile(r"(?:^|(?<=[=,\[\]{}\n]))(?:[^=,\[\]{}\n.]*+\.){" + str(MAX_KEY_PARTS) + "}")


def read_pyproject(path: Path) -> dict[str, Any]:
    """The parsed `pyproject.toml` at `path`, or `UnreadableConfig` saying why not.

    A key of more than `MAX_KEY_PARTS` dotted parts is refused before parsing (for 80 KB of one,
    tomllib needs 6 GB), and nesting too deep for the parser is an error of this file like any
    other.
    """
    try:
        raw = read_regular(path)
    except NotReadable as exc:
        raise UnreadableConfig(path, exc.reason, mentions_finecode=False) from None
    mentions = b"finecode" in raw.lower()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UnreadableConfig(path, f"not UTF-8 (byte {exc.start}: {exc.reason})",
                               mentions_finecode=mentions) from None
    if _LONG_KEY.search(_STRING_OR_COMMENT.sub(" ", text)):
        raise UnreadableConfig(path, f"refused: a key of more than {MAX_KEY_PARTS} dotted parts",
                               mentions_finecode=mentions)
    import tomllib  # here: a run whose configs were all read before (`pyproject_index`) parses none

    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        reason = f"not valid TOML ({exc})"
    except RecursionError:
        reason = "not valid TOML (nested too deeply for the parser)"
    raise UnreadableConfig(path, reason, mentions_finecode=mentions)


def _finecode_table(data: dict[str, Any]) -> Any:
    tool = data.get("tool")
    return tool.get("finecode") if isinstance(tool, dict) else None


def declared_actions(data: dict[str, Any]) -> frozenset[str]:
    """The action names a parsed pyproject declares, valid or not (those of a broken project)."""
    finecode = _finecode_table(data)
    actions = finecode.get("actions") if isinstance(finecode, dict) else None
    return frozenset(actions) if isinstance(actions, dict) else frozenset()


def load_project(root: Path) -> ProjectConfig | None:
    """The project at `root`, None when its pyproject has no `[tool.finecode]` table."""
    return project_config(root, read_pyproject(root / "pyproject.toml"))


def project_config(root: Path, data: dict[str, Any]) -> ProjectConfig | None:
    """The project at `root` from its parsed pyproject, None without a `[tool.finecode]` table."""
    finecode = _finecode_table(data)
    if finecode is None:
        return None
    where = f"{root / 'pyproject.toml'} [tool.finecode]"
    if not isinstance(finecode, dict):
        raise ConfigError(f"{where}: must be a table")
    _unknown(where, finecode, _PROJECT_KEYS)
    python = finecode.get("python")
    if python is not None and (not isinstance(python, str) or not python or "\0" in python):
        raise ConfigError(f"{where}: 'python' must be a path string")
    if python is not None and not Path(python).is_absolute():
        python = str(root / python)
    isolated = finecode.get("isolated", False)
    if not isinstance(isolated, bool):
        raise ConfigError(f"{where}: 'isolated' must be true or false")
    project = data.get("project")
    name = project.get("name") if isinstance(project, dict) else None
    return ProjectConfig(root, name if isinstance(name, str) and name else root.name, python,
                         parse_actions(finecode.get("actions", {}), where), isolated,
                         _depends_on(finecode.get("depends_on", []), root, where))


def _depends_on(raw: Any, root: Path, where: str) -> tuple[Path, ...]:
    """`depends_on = ["../lib"]`: project directories, relative to this project's root."""
    if not isinstance(raw, list) or not all(
            isinstance(p, str) and p and "\0" not in p for p in raw):
        raise ConfigError(f"{where}: 'depends_on' must be a list of project paths, "
                          'like ["../lib"]')
    return tuple(dict.fromkeys(Path(os.path.normpath(root / p)) for p in raw))
