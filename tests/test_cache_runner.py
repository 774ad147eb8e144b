"""What a runner tells the result cache with a result (`cacheInfo`): who opted in, declared
versions (evaluated once per runner) and the files and directories a result stands on."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import pytest

from .conftest import RunnerUnderTest

pytestmark = pytest.mark.timeout(30)

HANDLERS = '''
from pathlib import Path

from finecode_er.api import cacheable

CALLS = []


def version():
    CALLS.append(1)
    return f"tool 1.{len(CALLS)}"


async def async_version():
    return "async 2.0"


def broken_version():
    raise RuntimeError("no tool here")


@cacheable(version=version, inputs=lambda root: ["tool.toml", root.parent / "shared.toml"])
async def declared(params, ctx):
    return {"calls": len(CALLS)}


@cacheable(version=async_version, inputs=["/etc/tool/config"])
async def declared_async(params, ctx):
    return {"ok": 1}


@cacheable(version=broken_version)
async def declared_broken(params, ctx):
    return {"ok": 1}


async def plain(params, ctx):
    return {"ok": 1}


@cacheable
async def bare(params, ctx):
    return {"ok": 1}


@cacheable(version="3.0")
async def delegating(params, ctx):
    try:
        await ctx.run_action("other")
    except Exception:
        pass
    return {"ok": 1}


class Checker:
    @cacheable(version="4.0")
    async def run(self, params, ctx):
        return {"ok": 1}
'''


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "proj"
    root.mkdir()
    (root / "cached_checks.py").write_text(HANDLERS)
    return root


async def run(runner: RunnerUnderTest, root: Path, *handlers: dict[str, Any],
              cache_info: bool = True) -> Any:
    params: dict[str, Any] = {"action": "lint", "projectRoot": str(root),
                              "actionConfig": {"handlers": list(handlers)}}
    if cache_info:
        params["cacheInfo"] = True
    return await runner.request("run", params)


def handler(name: str, **extra: Any) -> dict[str, Any]:
    return {"source": f"cached_checks:{name}", **extra}


async def test_a_declared_handler_reports_version_inputs_modules_and_packages(
        runner: RunnerUnderTest, project: Path) -> None:
    answer = await run(runner, project, handler("declared"))
    assert answer["result"] == {"calls": 0}, "the version is asked after the run"
    info = answer["cacheInfo"]
    assert info["cacheable"] is True and info["version"] == ["tool 1.1"]
    files = info["files"]
    assert str(project / "tool.toml") in files and str(project.parent / "shared.toml") in files
    assert any(f.endswith(os.path.join("finecode_er", "runner.py")) for f in files), \
        "the runner's own code is something the result stands on"
    assert not any(Path(f).is_relative_to(project) for f in files
                   if not f.endswith("tool.toml")), "project code is the WM's key, not this"
    stdlib = [f for f in files if f.startswith(sys.base_prefix + "/lib/python3")
              and "site-packages" not in f]
    assert not stdlib, "the standard library is the interpreter's"
    assert info["dirs"] and all(d.endswith(("site-packages", "dist-packages"))
                                for d in info["dirs"])
    modules = [f for f in files if not f.endswith(".toml")]
    assert sorted(info["loaded"]) == modules and all(
        isinstance(stat, list) and len(stat) == 2 for stat in info["loaded"].values()), \
        "each module file with its stat as the runner first saw it"
    again = await run(runner, project, handler("declared"))
    assert again["result"] == {"calls": 1} and again["cacheInfo"]["version"] == ["tool 1.1"], \
        "evaluated once per runner"


async def test_the_decorator_bare_is_the_decorator_called(runner: RunnerUnderTest,
                                                          project: Path) -> None:
    answer = await run(runner, project, handler("bare"))
    assert answer["result"] == {"ok": 1}
    assert answer["cacheInfo"]["cacheable"] is True and answer["cacheInfo"]["version"] == [None]


async def test_async_version_and_a_class_handler(runner: RunnerUnderTest, project: Path) -> None:
    answer = await run(runner, project, handler("declared_async"), handler("Checker"))
    assert answer["result"] == [{"ok": 1}, {"ok": 1}]
    assert answer["cacheInfo"]["version"] == ["async 2.0", "4.0"]
    assert "/etc/tool/config" in answer["cacheInfo"]["files"]


@pytest.mark.parametrize(("handlers", "reason"), [
    ([handler("plain")], "does not declare itself cacheable"),
    ([handler("declared"), handler("plain")], "'cached_checks:plain' does not declare"),
    ([handler("declared", cacheable=False)], "has cacheable = false"),
    ([handler("declared_broken")], "RuntimeError: no tool here"),
    ([handler("delegating")], "ran other actions"),
])
async def test_not_cacheable_and_why(runner: RunnerUnderTest, project: Path,
                                     handlers: list[dict[str, Any]], reason: str) -> None:
    answer = await run(runner, project, *handlers)
    assert answer["cacheInfo"]["cacheable"] is False
    assert reason in answer["cacheInfo"]["reason"]
    assert answer["result"] is not None, "the run itself is fine"


async def test_config_opts_in_a_handler_that_declares_nothing(
        runner: RunnerUnderTest, project: Path) -> None:
    answer = await run(runner, project, handler("plain", cacheable=True))
    assert answer["cacheInfo"]["cacheable"] is True and answer["cacheInfo"]["version"] == [None]


async def test_without_cache_info_the_answer_is_the_result(
        runner: RunnerUnderTest, project: Path) -> None:
    assert await run(runner, project, handler("declared"), cache_info=False) == {"calls": 0}


def test_module_files_remembered_give_what_a_fresh_look_gives(tmp_path: Path) -> None:
    """The files a result stands on are the same whether each module's file is worked out
    again or remembered from an earlier run, also after a module was loaded meanwhile and
    for another project's code skipped; a relative `__file__` is never remembered."""
    from finecode_er.caching import _module_files

    known: dict[str, str | None] = {}
    here = [Path(__file__).parent]
    assert _module_files(here, known) == _module_files(here, {})
    assert known and all(os.path.isabs(origin) for origin in known)
    package = tmp_path / "fresh_module_for_cache_info.py"
    package.write_text("X = 1\n")
    sys.path.insert(0, str(tmp_path))
    try:
        __import__("fresh_module_for_cache_info")
        again = _module_files(here, known)
        assert again == _module_files(here, {}) and str(package) in again
        assert str(package) not in _module_files([tmp_path], known), "project code is skipped"
        sys.modules["relative_origin_for_cache_info"] = type(sys)("relative_origin_for_cache_info")
        sys.modules["relative_origin_for_cache_info"].__file__ = "relative/origin.py"
        assert os.path.abspath("relative/origin.py") in _module_files(here, known)
        assert "relative/origin.py" not in known
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("fresh_module_for_cache_info", None)
        sys.modules.pop("relative_origin_for_cache_info", None)
