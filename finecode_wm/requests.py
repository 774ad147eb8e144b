"""The WM's request params (a fixed interface: editors and outside tests rely on it).

Checked strictly, with messages a person can act on.

Checked by hand rather than by cattrs structuring: cattrs is lenient on purpose (a string becomes
a list of characters), and every rejection here must say which field is wrong and how.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from finecode_er.config import positive_seconds

from .planning import BadRequest, BatchOptions

__all__ = ["RunRequest", "parse_delegation", "parse_run_action", "parse_run_batch"]

Token = int | str
_OPTION_KEYS = {"concurrent", "stopOnFailure", "timeout", "cache"}
_BATCH_KEYS = {"actions", "projects", "params", "options", "workDoneToken", "partialResultToken"}
_ACTION_KEYS = {"action", "projects", "params"}
_DELEGATION_KEYS = {"parent", "action", "projects", "params", "progressToken"}


@dataclass(frozen=True)
class RunRequest:
    """A dataclass, not attrs: the terminal imports this, and attrs costs it ~20 ms to start."""

    actions: list[str]
    projects: list[str] | None = None
    params: dict[str, Any] = field(default_factory=dict)
    options: BatchOptions = field(default_factory=BatchOptions)
    work_done_token: Token | None = None
    partial_result_token: Token | None = None


def _object(raw: Any, what: str) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise BadRequest(f"{what} must be an object, got {type(raw).__name__}")
    return raw


def _strings(raw: Any, field: str) -> list[str]:
    if not isinstance(raw, list) or not all(isinstance(s, str) and s for s in raw):
        raise BadRequest(f"'{field}' must be a list of non-empty strings, got {raw!r:.80}")
    return raw


def _token(raw: Any, field: str) -> Token | None:
    if raw is None or isinstance(raw, str) or (isinstance(raw, int) and not isinstance(raw, bool)):
        return raw
    raise BadRequest(f"'{field}' must be a string or an integer (a ProgressToken), got {raw!r:.80}")


def _options(raw: Any) -> BatchOptions:
    options = _object(raw, "'options'")
    unknown = sorted(set(options) - _OPTION_KEYS)
    if unknown:
        raise BadRequest(f"unknown option(s) {', '.join(unknown)} "
                         f"(allowed: {', '.join(sorted(_OPTION_KEYS))})")
    for key in ("concurrent", "stopOnFailure", "cache"):
        if key in options and not isinstance(options[key], bool):
            raise BadRequest(f"option '{key}' must be true or false")
    timeout = options.get("timeout")
    return BatchOptions(concurrent=options.get("concurrent", True),
                        stop_on_failure=options.get("stopOnFailure", False),
                        timeout=None if timeout is None else _seconds(timeout),
                        cache=options.get("cache", True))


def _seconds(value: Any) -> float:
    seconds = positive_seconds(value)
    if seconds is None:
        raise BadRequest("option 'timeout' must be a positive number of seconds")
    return seconds


def _known_keys(raw: dict[str, Any], allowed: set[str], what: str) -> None:
    unknown = sorted(set(raw) - allowed)
    if unknown:
        raise BadRequest(f"{what}: unknown field(s) {', '.join(unknown)} "
                         f"(allowed: {', '.join(sorted(allowed))})")


def _optional_object(raw: dict[str, Any], key: str) -> dict[str, Any]:
    value = raw.get(key)
    return {} if value is None else _object(value, f"'{key}'")


def _common(raw: dict[str, Any], actions: list[str]) -> RunRequest:
    projects = raw.get("projects")
    return RunRequest(
        actions=actions,
        projects=None if projects is None else _strings(projects, "projects"),
        params=_optional_object(raw, "params"),
        options=_options(_optional_object(raw, "options")),
        work_done_token=_token(raw.get("workDoneToken"), "workDoneToken"),
        partial_result_token=_token(raw.get("partialResultToken"), "partialResultToken"),
    )


def parse_run_batch(raw: Any) -> RunRequest:
    """`{actions, projects?, params?, options?, workDoneToken?, partialResultToken?}`."""
    raw = _object(raw, "runBatch params")
    _known_keys(raw, _BATCH_KEYS, "runBatch")
    if "actions" not in raw:
        raise BadRequest("runBatch needs 'actions': a list of action names, e.g. [\"lint\"]")
    return _common(raw, _strings(raw["actions"], "actions"))


def parse_run_action(raw: Any) -> RunRequest:
    """`{action, projects?, params?}` of the `finecode.runAction` command."""
    raw = _object(raw, "finecode.runAction argument")
    _known_keys(raw, _ACTION_KEYS, "finecode.runAction")
    action = raw.get("action")
    if not isinstance(action, str) or not action:
        raise BadRequest("finecode.runAction needs {\"action\": \"<name>\"}")
    return _common(raw, [action])


def parse_delegation(raw: dict[str, Any], root: Path) -> RunRequest:
    """A runner's `runAction {parent, action, projects?, params?, progressToken?}`.

    `projects` are absolute or relative to the delegating project's `root`; none means that
    project alone.
    """
    _known_keys(raw, _DELEGATION_KEYS, "run_action")
    action = raw.get("action")
    if not isinstance(action, str) or not action:
        raise BadRequest("run_action needs an action name")
    projects = raw.get("projects")
    paths = [str(root)] if projects is None else [
        os.path.normpath(root / p) for p in _strings(projects, "projects")]
    _token(raw.get("progressToken"), "progressToken")
    return RunRequest(actions=[action], projects=paths, params=_optional_object(raw, "params"))
