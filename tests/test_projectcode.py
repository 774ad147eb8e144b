"""Project code loads from `.py` source only (finecode_er.projectcode), in process and in a
runner: bytecode, extension modules, archives and skipped directories of a project are refused,
so what runs is what the trust key covers."""

from __future__ import annotations

import asyncio
import importlib.machinery
import os
import py_compile
import sys
import threading
import zipfile
from importlib.util import cache_from_source
from pathlib import Path

import pytest

from finecode_er.handlers import HandlerLoadError, ProjectHandlers
from finecode_er.wire import INVALID_PARAMS, RpcError

from .conftest import start_runner
from .test_handlers import call, clean_modules, write

__all__ = ["clean_modules"]  # the fixture, used by name

pytestmark = pytest.mark.timeout(30)

GOOD = "async def run(params, ctx):\n    return 'source'\n"
BAD = "async def run(params, ctx):\n    return 'bytecode'\n"


def unchecked_cache(source: Path, compiled_from: str) -> None:
    """A `__pycache__` entry for `source` that Python uses without looking at the source."""
    kept = source.read_text()
    source.write_text(compiled_from)
    py_compile.compile(str(source), cfile=cache_from_source(str(source)), doraise=True,
                       invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH)
    source.write_text(kept)


def bytecode(top: Path) -> list[Path]:
    return sorted(top.rglob("*.pyc"))


async def refused(project: ProjectHandlers, source: str) -> str:
    with pytest.raises(HandlerLoadError) as caught:
        await call(project, source)
    return str(caught.value)


async def test_an_unchecked_cache_entry_is_never_read(tmp_path: Path,
                                                      clean_modules: None) -> None:
    write(tmp_path / "p" / "checks.py", GOOD)
    write(tmp_path / "p" / "pkg" / "__init__.py", "")
    write(tmp_path / "p" / "pkg" / "sub.py", GOOD)
    unchecked_cache(tmp_path / "p" / "checks.py", BAD)
    unchecked_cache(tmp_path / "p" / "pkg" / "sub.py", BAD)
    caches = bytecode(tmp_path)
    project = ProjectHandlers(tmp_path / "p")
    assert await call(project, "checks:run") == "source"
    assert await call(project, "pkg.sub:run") == "source", "submodules too"
    assert bytecode(tmp_path) == caches, "nothing is written into the project"


async def test_a_compiled_only_module_is_refused(tmp_path: Path, clean_modules: None) -> None:
    write(tmp_path / "scratch.py", BAD)
    py_compile.compile(str(tmp_path / "scratch.py"), cfile=str(tmp_path / "p" / "hmod.pyc"))
    message = await refused(ProjectHandlers(tmp_path / "p"), "hmod:run")
    assert "hmod.pyc is compiled-only" in message and "source only" in message, message


async def test_an_extension_module_is_refused_before_it_is_loaded(
        tmp_path: Path, clean_modules: None) -> None:
    suffix = importlib.machinery.EXTENSION_SUFFIXES[0]
    write(tmp_path / "p" / f"native{suffix}", "not a shared object")
    message = await refused(ProjectHandlers(tmp_path / "p"), "native:run")
    assert "is an extension module inside the project" in message, message


@pytest.mark.parametrize("directory", ["node_modules", "venv", ".hidden", "__pycache__"])
async def test_skipped_directories_are_refused(tmp_path: Path, clean_modules: None,
                                               directory: str) -> None:
    write(tmp_path / "p" / "pkg" / directory / "mod.py", GOOD)
    write(tmp_path / "p" / "lib" / directory / "mod.py", GOOD)
    project = ProjectHandlers(tmp_path / "p")
    sys.path.append(str(tmp_path / "p" / "lib" / directory))  # as a `.pth` line could
    message = await refused(project, "mod:run")
    assert "does not cover" in message, message
    if directory.isidentifier():
        write(tmp_path / "p" / "pkg" / "__init__.py", "")
        message = await refused(project, f"pkg.{directory}.mod:run")
        assert "does not cover" in message, message


async def test_a_zip_archive_in_the_project_is_refused(tmp_path: Path,
                                                       clean_modules: None) -> None:
    archive = tmp_path / "p" / "vendor.zip"
    archive.parent.mkdir()
    with zipfile.ZipFile(archive, "w") as out:
        out.writestr("zipped.py", GOOD)
    project = ProjectHandlers(tmp_path / "p")
    sys.path.append(str(archive))
    assert "is a zip archive inside the project" in await refused(project, "zipped:run")


async def test_a_fifo_or_device_module_never_blocks(tmp_path: Path,
                                                    clean_modules: None) -> None:
    """The finder takes regular files only; the loader reads through `safefile` anyway."""
    root = tmp_path / "p"
    root.mkdir()
    os.mkfifo(root / "piped.py")
    (root / "zeros.py").symlink_to("/dev/zero")
    project = ProjectHandlers(root)
    done = threading.Event()
    messages = []

    def load() -> None:
        for source in ("piped:run", "zeros:run"):
            try:
                asyncio.run(call(project, source))
            except HandlerLoadError as exc:
                messages.append(str(exc))
        done.set()

    threading.Thread(target=load, daemon=True).start()
    assert done.wait(10), "loading a FIFO or /dev/zero module blocked"
    assert len(messages) == 2 and all("No module named" in m for m in messages), messages


async def test_a_symlinked_subpackage_loads_from_source(tmp_path: Path,
                                                        clean_modules: None) -> None:
    target = tmp_path / "elsewhere" / "sub"
    write(target / "__init__.py", "")
    write(target / "mod.py", GOOD)
    unchecked_cache(target / "mod.py", BAD)
    write(tmp_path / "p" / "pkg" / "__init__.py", "")
    (tmp_path / "p" / "pkg" / "sub").symlink_to(target, target_is_directory=True)
    assert await call(ProjectHandlers(tmp_path / "p"), "pkg.sub.mod:run") == "source"


async def test_the_runner_loads_workspace_code_from_source_and_writes_no_bytecode(
        tmp_path: Path) -> None:
    """A real runner: a workspace folder's module imported by a handler (not a project root
    itself) is source-only too, and the runner caches no bytecode anywhere."""
    folder = tmp_path / "ws"
    write(folder / "shared" / "helper.py", "WHO = 'source'\n")
    unchecked_cache(folder / "shared" / "helper.py", "WHO = 'bytecode'\n")
    write(folder / "p" / "checks.py", f"""
        import sys
        sys.path.append({str(folder / "shared")!r})
        import helper
        async def run(params, ctx):
            return [helper.WHO, sys.dont_write_bytecode]
        """)
    write(folder / "p" / "pyproject.toml",
          '[tool.finecode.actions.check]\nhandlers = [{ source = "checks:run" }]\n')
    runner = await start_runner(folder / "p", workspaceFolders=[str(folder)])
    try:
        assert await runner.request("run", {"action": "check"}) == ["source", True]
        assert not (folder / "p" / "__pycache__").exists()
        with pytest.raises(RpcError) as caught:
            await runner.request("initialize", {"workspaceFolders": str(folder)})
        assert caught.value.code == INVALID_PARAMS
    finally:
        runner.proc.kill()
        await runner.proc.wait()
