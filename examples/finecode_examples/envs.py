"""A uv-backed ``prepare_env`` handler: each project's ``.venv`` made from its ``pyproject.toml``.

Phases, each with honest progress: create the venv if it is missing; resolve the dependencies to
a pinned list (``uv export --frozen`` from ``uv.lock`` when the project has one, else
``uv pip compile pyproject.toml``) — no total yet, only a narrative; then install what the venv
lacks, with one unit per package (uv installs the missing pins in small batches, so each one is
counted when uv is done with it, without reading uv's wording); then ``uv pip sync`` makes the
venv exactly the pinned list (extras it held are removed).

A stamp in the venv records the inputs (the dependency tables of ``pyproject.toml``, the lock
file, the handler's config, the venv's interpreter) and the packages installed: while none of
them changed, a run reads two small files and answers "up to date" without starting uv.

The handler runs wherever its runner runs: a project whose ``python`` is this venv cannot start
a runner before the venv exists, so its ``prepare_env`` action sets ``python = "finecode"`` to
run on FineCode's own interpreter (see docs/configuration.md).
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib.util
import json
import os
import re
import shlex
import shutil
import sys
import tempfile
import tomllib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from finecode_examples._subprocess import run, tail

if TYPE_CHECKING:
    from finecode_er.api import ProgressContext, RunActionContext

__all__ = ["Pin", "environment_key", "parse_pins", "prepare_env"]

CONFIG_KEYS = frozenset({"venv", "python", "extras", "groups", "batch_size"})
DEFAULT_BATCH_SIZE = 8
STAMP = "finecode-prepare-env.json"
LOCK_FILE = "uv.lock"
STAMP_VERSION = 1
MAX_INPUT_BYTES = 8 * 1024 * 1024
# The parts of pyproject.toml that decide what the venv holds; editing anything else (a tool's
# settings, FineCode's own table) leaves the venv up to date.
DEPENDENCY_KEYS = ("dependencies", "optional-dependencies", "requires-python")
_PIN = re.compile(r"^(?P<name>[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?)(?:\[[^\]]*\])?"
                  r"\s*==\s*(?P<version>[^\s;,]+)\s*(?:;.*)?$")


@dataclass(frozen=True)
class Settings:
    """The handler's config, checked."""

    venv: str = ".venv"
    python: str | None = None
    extras: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()
    batch_size: int = DEFAULT_BATCH_SIZE

    @classmethod
    def parse(cls, config: Mapping[str, Any] | None) -> Settings:
        config = config or {}
        unknown = sorted(set(config) - CONFIG_KEYS)
        if unknown:
            raise ValueError(f"unknown config keys {unknown}; allowed: {sorted(CONFIG_KEYS)}")
        venv = config.get("venv", ".venv")
        if not isinstance(venv, str) or not venv or Path(venv).is_absolute() or ".." in \
                Path(venv).parts:
            raise ValueError(f"config 'venv' must be a path inside the project, got {venv!r}")
        python = config.get("python")
        if python is not None and (not isinstance(python, str) or not python):
            raise ValueError(f"config 'python' must be an interpreter (a path or a version such "
                             f"as '3.12'), got {python!r}")
        size = config.get("batch_size", DEFAULT_BATCH_SIZE)
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise ValueError(f"config 'batch_size' must be a positive integer, got {size!r}")
        return cls(venv, python, _names(config, "extras"), _names(config, "groups"), size)


def _names(config: Mapping[str, Any], key: str) -> tuple[str, ...]:
    value = config.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) and v and not v.startswith("-")
                                              for v in value):
        raise ValueError(f"config '{key}' must be a list of names, got {value!r}")
    return tuple(value)


@dataclass(frozen=True)
class Pin:
    """One line of the pinned list: `name==version`, or a requirement uv takes as it is."""

    args: tuple[str, ...]
    name: str | None = None
    version: str | None = None

    def satisfied_by(self, installed: Mapping[str, str]) -> bool:
        return self.name is not None and installed.get(self.name) == self.version

    @property
    def label(self) -> str:
        return self.name or " ".join(self.args)


def normalize(name: str) -> str:
    """PEP 503: `Foo_Bar` and `foo-bar` are the same distribution."""
    return re.sub(r"[-_.]+", "-", name).lower()


def parse_pins(text: str) -> list[Pin]:
    """The packages of uv's requirements output (`name==version ; marker`, `-e path`, URLs);
    comments, blank lines and option lines (`--index-url …`) are not packages."""
    pins: list[Pin] = []
    for raw in text.splitlines():
        line = raw.split(" #", 1)[0].strip()
        if not line or line.startswith("#") or (line.startswith("-") and
                                                not line.startswith(("-e ", "--editable "))):
            continue
        match = _PIN.match(line)
        if match:
            pins.append(Pin((line,), normalize(match["name"]), match["version"]))
        else:
            try:
                args = tuple(shlex.split(line))
            except ValueError:
                args = (line,)
            pins.append(Pin(args))
    return pins


def environment_key(inputs: Mapping[str, Any]) -> str:
    """A digest of everything the venv is made from: equal keys, nothing to do."""
    text = json.dumps(inputs, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


async def prepare_env(params: dict[str, Any], ctx: RunActionContext) -> dict[str, Any]:
    """Create or update the project's venv from its dependencies; idempotent."""
    settings = Settings.parse(ctx.config)
    root = ctx.project_root
    venv = root / settings.venv
    result: dict[str, Any] = {"venv": settings.venv,
                              "python": relative_python(venv, root)}
    async with ctx.progress("Preparing environment", cancellable=True) as progress:
        inputs = await asyncio.to_thread(_inputs, root, venv, settings)
        if await asyncio.to_thread(_stamped, venv, inputs):
            await progress.set_total(0)
            await progress.report(message="up to date")
            return {"summary": "up to date", **result, "up_to_date": True, "created": False,
                    "source": inputs["source"], "installed": [], "removed": []}
        await asyncio.to_thread(_unstamp, venv)
        uv = uv_command()
        created = await _ensure_venv(uv, root, venv, settings, progress)
        python = venv_python(venv)
        await progress.report(message=f"resolving dependencies ({inputs['source']})")
        pins = await _resolve(uv, root, settings, python, locked=inputs["source"] == LOCK_FILE)
        before = await _installed(uv, root, python)
        missing = [pin for pin in pins if not pin.satisfied_by(before)]
        await progress.set_total(len(missing))
        await progress.report(message=f"{len(missing)} of {len(pins)} packages to install")
        for batch in _batches(missing, settings.batch_size):
            await _uv(uv, root, "pip", "install", "--python", str(python), "--no-deps",
                      *(arg for pin in batch for arg in pin.args))
            for pin in batch:
                await progress.advance(1, message=f"installed {pin.label}")
        await progress.report(message="syncing")
        await _sync(uv, root, python, pins)
        after = await _installed(uv, root, python)
        await asyncio.to_thread(_stamp, venv, await asyncio.to_thread(_inputs, root, venv,
                                                                      settings))
    installed = [pin.label for pin in missing]
    removed = sorted(set(before) - set(after))
    made = f"created {settings.venv}, " if created else ""
    gone = f", {len(removed)} removed" if removed else ""
    what = f"{len(installed)} of {len(pins)} packages installed" if pins else \
        "no dependencies to install"
    return {"summary": f"{made}{what}{gone}",
            **result, "up_to_date": False, "created": created, "source": inputs["source"],
            "packages": len(pins), "installed": installed, "removed": removed}


def uv_command() -> list[str]:
    """uv next to the running interpreter (the version installed with FineCode's examples
    extra), else on PATH, else `python -m uv`."""
    found = shutil.which("uv", path=str(Path(sys.executable).parent)) or shutil.which("uv")
    if found:
        return [found]
    if importlib.util.find_spec("uv") is not None:
        return [sys.executable, "-m", "uv"]
    raise RuntimeError(f"uv is not installed for {sys.executable}; install it with "
                       "'pip install uv' (FineCode's `examples` extra has it)")


def venv_python(venv: Path) -> Path:
    return venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def relative_python(venv: Path, root: Path) -> str:
    return venv_python(venv).relative_to(root).as_posix()


async def _uv(uv: Sequence[str], root: Path, *args: str) -> str:
    """Run one uv command in the project; its stdout, or a failure with the end of stderr."""
    returncode, stdout, stderr = await run([*uv, *args], cwd=root)
    if returncode != 0:
        raise RuntimeError(f"uv {' '.join(args[:2])} failed with exit code {returncode}: "
                           f"{tail(stderr or stdout)}")
    return stdout


async def _ensure_venv(uv: Sequence[str], root: Path, venv: Path, settings: Settings,
                       progress: ProgressContext) -> bool:
    """Create the venv when it is missing, or when FineCode made it for another interpreter
    request (a venv made by hand is used as it is)."""
    request = settings.python or ""
    if await asyncio.to_thread(_usable, venv, request):
        return False
    await progress.report(message=f"creating {settings.venv}")
    await _uv(uv, root, "venv", "--clear", "--no-project", "--python",
              settings.python or sys.executable, str(venv))
    await asyncio.to_thread(_write_stamp, venv, {"python": request})
    return True


async def _resolve(uv: Sequence[str], root: Path, settings: Settings, python: Path, *,
                   locked: bool) -> list[Pin]:
    extras = [arg for extra in settings.extras for arg in ("--extra", extra)]
    groups = [arg for group in settings.groups for arg in ("--group", group)]
    if locked:
        text = await _uv(uv, root, "export", "--frozen", "--no-emit-project", "--no-hashes",
                         "--no-header", "--no-annotate", "--format", "requirements-txt",
                         "--no-default-groups", *extras, *groups)
    else:
        text = await _uv(uv, root, "pip", "compile", "pyproject.toml", "--python", str(python),
                         "--no-header", "--no-annotate", *extras, *groups)
    return parse_pins(text)


async def _installed(uv: Sequence[str], root: Path, python: Path) -> dict[str, str]:
    """What the venv holds, as uv lists it (JSON, not wording)."""
    text = await _uv(uv, root, "pip", "list", "--python", str(python), "--format", "json")
    try:
        listed = json.loads(text)
    except ValueError as exc:
        raise RuntimeError(f"uv pip list printed no JSON: {tail(text)}") from exc
    return {normalize(str(item["name"])): str(item.get("version")) for item in listed
            if isinstance(item, dict) and isinstance(item.get("name"), str)}


async def _sync(uv: Sequence[str], root: Path, python: Path, pins: Sequence[Pin]) -> None:
    """Make the venv exactly `pins` (removes what the dependencies no longer name)."""
    with tempfile.TemporaryDirectory(prefix="finecode-env-") as tmp:
        listing = Path(tmp) / "requirements.txt"
        listing.write_text("".join(shlex.join(pin.args) + "\n" if len(pin.args) > 1
                                   else pin.args[0] + "\n" for pin in pins), encoding="utf-8")
        await _uv(uv, root, "pip", "sync", "--python", str(python), str(listing))


def _batches(pins: Sequence[Pin], size: int) -> Iterator[Sequence[Pin]]:
    for start in range(0, len(pins), size):
        yield pins[start : start + size]


# -- the stamp: blocking file work, run in a thread ---------------------------------------------


def _read_small(path: Path) -> bytes | None:
    """A regular file's bytes (bounded), None when it is missing or not a regular file."""
    try:
        if not path.is_file() or path.stat().st_size > MAX_INPUT_BYTES:
            return None
        return path.read_bytes()
    except OSError:
        return None


def _inputs(root: Path, venv: Path, settings: Settings) -> dict[str, Any]:
    """Everything the venv depends on, as plain JSON values."""
    raw = _read_small(root / "pyproject.toml")
    if raw is None:
        raise RuntimeError(f"{root / 'pyproject.toml'} cannot be read")
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise RuntimeError(f"{root / 'pyproject.toml'} is not valid TOML: {exc}") from None
    project, tool = _table(data, "project"), _table(data, "tool")
    lock = _read_small(root / LOCK_FILE)
    return {
        "version": STAMP_VERSION,
        "project": {key: project.get(key) for key in DEPENDENCY_KEYS},
        "groups": data.get("dependency-groups"),
        "uv": tool.get("uv"),
        "source": LOCK_FILE if lock is not None else "pyproject.toml",
        "lock": hashlib.sha256(lock).hexdigest() if lock is not None else None,
        "settings": [settings.venv, settings.python, settings.extras, settings.groups],
        "interpreter": (_read_small(venv / "pyvenv.cfg") or b"").decode(errors="replace"),
        "packages": _dist_infos(venv),
    }


def _table(data: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = data.get(key)
    return value if isinstance(value, dict) else {}


def _dist_infos(venv: Path) -> list[str]:
    """The distributions installed in the venv, read from its site-packages listing: a package
    installed or removed by hand changes it."""
    found: list[str] = []
    for site in sorted([*venv.glob("lib/python*/site-packages"), venv / "Lib" / "site-packages"]):
        try:
            found.extend(sorted(n for n in os.listdir(site) if n.endswith(".dist-info")))
        except OSError:
            continue
    return found


def _stamp_path(venv: Path) -> Path:
    return venv / STAMP


def _read_stamp(venv: Path) -> dict[str, Any]:
    raw = _read_small(_stamp_path(venv))
    try:
        stamp = json.loads(raw) if raw is not None else {}
    except ValueError:
        return {}
    return stamp if isinstance(stamp, dict) else {}


def _stamped(venv: Path, inputs: Mapping[str, Any]) -> bool:
    return _read_stamp(venv).get("key") == environment_key(inputs)


def _usable(venv: Path, request: str) -> bool:
    """Whether the venv is there to be updated: made by hand, or by FineCode for this
    interpreter request; a directory that is not a venv is refused, not replaced."""
    if (venv / "pyvenv.cfg").is_file():
        made_for = _read_stamp(venv).get("python")
        return not isinstance(made_for, str) or made_for == request
    if venv.exists() and any(venv.iterdir()):
        raise RuntimeError(f"{venv} exists and is not a virtual environment; move it away "
                           "or set the handler's `venv` config to another directory")
    return False


def _write_stamp(venv: Path, stamp: Mapping[str, Any]) -> None:
    """Replace the stamp atomically: a reader never sees half of it."""
    fd, tmp = tempfile.mkstemp(prefix=".stamp-", dir=venv)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump(stamp, out)
        os.replace(tmp, _stamp_path(venv))
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _unstamp(venv: Path) -> None:
    """Forget the key (keep who made the venv): a run stopped halfway must not look done."""
    stamp = _read_stamp(venv)
    if "key" in stamp:
        del stamp["key"]
        _write_stamp(venv, stamp)


def _stamp(venv: Path, inputs: Mapping[str, Any]) -> None:
    _write_stamp(venv, {**_read_stamp(venv), "key": environment_key(inputs)})
