"""Project code is loaded from its `.py` source only: what a runner runs is what trust keys.

The WM trusts a workspace folder by a key over its Python source files (docs/trust.md).
Bytecode cannot be keyed stably (every tool that runs Python in a repository rewrites
`__pycache__`), so a runner never reads bytecode for a file under a *project path* (a workspace
folder or a project root it was told about): such a module is compiled in memory from its
`.py`, and `__pycache__` is neither read nor written. What the key does not cover is refused
with an `ImportError` that says why: a compiled-only module (`.pyc` without its source), an
extension module (`.so`, `.pyd`), a zip archive, and any file in a directory the key skips
(hidden ones, `__pycache__`, `node_modules`, `venv`).

The runner's environment (the standard library, and every site-packages directory on
`sys.path`, even in a `.venv` inside the project) is not project code: it loads as usual.
Standard library only: the WM imports `SKIPPED_DIRS`, `skipped_dir` and `SOURCE_SUFFIXES` to
walk exactly what is loaded here.
"""

from __future__ import annotations

import importlib.machinery
import os
import site
import sys
import zipimport
from collections.abc import Iterable
from pathlib import Path
from types import CodeType, ModuleType
from typing import Any

from .safefile import stream_regular

__all__ = ["SKIPPED_DIRS", "SOURCE_SUFFIXES", "protect", "skipped_dir"]

SKIPPED_DIRS = frozenset({".git", ".venv", "venv", "node_modules", "__pycache__"})
SOURCE_SUFFIXES = (".py", ".pyw")  # every suffix a source loader takes, on any platform

_SITE_NAMES = ("site-packages", "dist-packages")

_roots: set[str] = set()
_environment: tuple[str, ...] = ()
_installed = False


def skipped_dir(name: str) -> bool:
    """A directory that discovery and the trust key skip (and the runner refuses to load from)."""
    return name in SKIPPED_DIRS or name.startswith(".")


def protect(path: Path | str) -> None:
    """Load every module under `path` from source only, from now on (idempotent)."""
    _install()
    _roots.add(os.path.abspath(path))


def _install() -> None:
    """Put the guarded file finder first on `sys.path_hooks` (path entries are re-resolved)."""
    global _installed, _environment
    if _installed:
        return
    _installed = True
    _environment = tuple(_environment_dirs())
    sys.path_hooks.insert(0, _path_hook)
    sys.path_importer_cache.clear()


def _environment_dirs() -> Iterable[str]:
    """The interpreter's own import directories (the standard library, site-packages) and the
    runner's package."""
    import sysconfig  # only once a project is protected: not on every runner's start

    paths = sysconfig.get_paths()
    found = [paths.get(name) for name in ("stdlib", "platstdlib", "purelib", "platlib")]
    found += site.getsitepackages() if hasattr(site, "getsitepackages") else []
    found.append(os.path.dirname(__file__))  # the runner itself (a checkout in the workspace)
    for path in found:
        if path:
            yield os.path.abspath(path)
            yield os.path.realpath(path)


def _site_dirs() -> Iterable[str]:
    """site-packages directories on `sys.path` (a venv's, or one added by a `.pth`)."""
    for entry in sys.path:
        if os.path.basename(entry.rstrip(os.sep)) in _SITE_NAMES:
            yield os.path.abspath(entry)


def _under(path: str, top: str) -> bool:
    return path.startswith(top.rstrip(os.sep) + os.sep)


def _verdict(path: str) -> str | None:
    """None: not project code (load as usual). "": project code, from source only. Otherwise
    the reason it is refused."""
    literal = os.path.abspath(path)
    if not _roots or any(_under(literal, env) for env in (*_environment, *_site_dirs())):
        return None
    forms = {literal, os.path.realpath(literal)}
    matches = [(form, root) for form in forms for root in _roots if _under(form, root)]
    if not matches:
        return None
    for form, root in matches:
        parts = Path(os.path.relpath(os.path.dirname(form), root)).parts
        if not any(skipped_dir(part) for part in parts if part != os.curdir):
            return ""
    return (f"{path} lies in a directory that workspace trust does not cover (hidden "
            "directories, __pycache__, node_modules, venv); FineCode does not load project code "
            "from there")


def _refuse(fullname: str, path: str, reason: str) -> ImportError:
    return ImportError(f"{reason} (module {fullname!r})", name=fullname, path=path)


def _read_source(path: str, fullname: str) -> bytes:
    chunks: list[bytes] = []
    try:
        stream_regular(Path(path), chunks.append)
    except OSError as exc:
        raise _refuse(fullname, path, str(exc)) from None
    return b"".join(chunks)


class _SourceLoader(importlib.machinery.SourceFileLoader):
    """Project code: compiled from the `.py` in memory; an unchecked `.pyc` is never read."""

    def get_code(self, fullname: str) -> CodeType | None:
        verdict = _verdict(self.path)
        if verdict is None:
            return super().get_code(fullname)
        if verdict:
            raise _refuse(fullname, self.path, verdict)
        return self.source_to_code(_read_source(self.path, fullname), self.path)

    def get_data(self, path: str) -> bytes:
        """Also what `get_source` reads (tracebacks): a regular file only, never a FIFO."""
        if _verdict(path) is None:
            return super().get_data(path)
        return _read_source(path, self.name)


class _BytecodeLoader(importlib.machinery.SourcelessFileLoader):
    def get_code(self, fullname: str) -> CodeType | None:
        verdict = _verdict(self.path)
        if verdict is None:
            return super().get_code(fullname)
        raise _refuse(fullname, self.path, verdict or (
            f"{self.path} is compiled-only (bytecode without its .py source); FineCode loads "
            "project code from source only, so workspace trust covers what runs"))


class _ExtensionLoader(importlib.machinery.ExtensionFileLoader):
    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        verdict = _verdict(self.path)
        if verdict is None:
            return super().create_module(spec)
        raise _refuse(spec.name, self.path, verdict or (
            f"{self.path} is an extension module inside the project; FineCode loads project "
            "code from .py source only, so workspace trust covers what runs (install compiled "
            "code into the environment instead)"))


_file_finder_hook = importlib.machinery.FileFinder.path_hook(
    (_ExtensionLoader, importlib.machinery.EXTENSION_SUFFIXES),
    (_SourceLoader, importlib.machinery.SOURCE_SUFFIXES),
    (_BytecodeLoader, importlib.machinery.BYTECODE_SUFFIXES))


class _RefusedArchive:
    """A file on a project path (a zip archive): whatever it would provide is refused.

    It also keeps the stock zip importer from opening a FIFO or device placed there."""

    def __init__(self, path: str) -> None:
        self.path = path

    def find_spec(self, fullname: str, target: Any = None) -> None:
        if not os.path.isfile(self.path):
            return
        try:
            found = zipimport.zipimporter(self.path).find_spec(fullname)
        except (zipimport.ZipImportError, OSError):
            return
        if found is not None:
            raise _refuse(fullname, self.path, f"{self.path} is a zip archive inside the "
                          "project; FineCode loads project code from .py source only")

    def invalidate_caches(self) -> None:
        return None


def _path_hook(path: str) -> Any:
    """Directories get the guarded finder; a file on a project path is refused; others pass."""
    if os.path.isdir(path):
        return _file_finder_hook(path)
    if os.path.lexists(path) and _verdict(path) is not None:
        return _RefusedArchive(path)
    raise ImportError("not a directory", path=path)
