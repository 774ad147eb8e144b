"""Per-project handler modules inside one shared runner (finecode_er.handlers), in process."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from finecode_er.handlers import ProjectHandlers

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
def clean_modules() -> Iterator[None]:
    """The tests import modules named like a user's: leave sys.modules as it was."""
    before = set(sys.modules)
    path = list(sys.path)
    yield
    for name in set(sys.modules) - before:
        del sys.modules[name]
    sys.path[:] = path


async def call(project: ProjectHandlers, source: str) -> Any:
    return await project.load(source)({}, None)


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))


async def test_same_named_local_modules_with_sibling_imports(tmp_path: Path,
                                                             clean_modules: None) -> None:
    for name in ("a", "b"):
        write(tmp_path / name / "helpers.py", f"WHO = {name!r}\n")
        write(tmp_path / name / "checks.py", """
            import helpers
            async def run(params, ctx):
                return helpers.WHO
            """)
        write(tmp_path / name / "pkg" / "__init__.py", "")
        write(tmp_path / name / "pkg" / "rules.py", f"RULE = 'rule-{name}'\n")
        write(tmp_path / name / "pkg" / "checks.py", """
            from .rules import RULE
            async def run(params, ctx):
                return RULE
            """)
    a, b = ProjectHandlers(tmp_path / "a"), ProjectHandlers(tmp_path / "b")
    assert [await call(a, "checks:run"), await call(b, "checks:run")] == ["a", "b"]
    assert [await call(a, "pkg.checks:run"), await call(b, "pkg.checks:run")] == \
        ["rule-a", "rule-b"]
    assert "helpers" not in sys.modules and "pkg" not in sys.modules, "kept out between loads"


async def test_an_installed_module_is_shared_and_never_sees_project_code(
        tmp_path: Path, clean_modules: None) -> None:
    """A virtualenv inside the project root, and an installed module imported meanwhile."""
    site = tmp_path / "root" / ".venv" / "lib" / "site-packages"
    write(site / "thirdparty.py", "import fcutils\nclass Finding:\n    pass\n")
    write(site / "fcutils.py", "WHO = 'installed'\n")
    sys.path.append(str(site))
    write(tmp_path / "root" / "fcutils.py", "WHO = 'root project'\n")
    write(tmp_path / "root" / "checks.py", """
        import thirdparty
        async def run(params, ctx):
            return thirdparty
        """)
    write(tmp_path / "root" / "sub" / "checks.py", """
        import thirdparty
        async def run(params, ctx):
            return thirdparty
        """)
    root = ProjectHandlers(tmp_path / "root")
    sub = ProjectHandlers(tmp_path / "root" / "sub")
    first, second = await call(root, "checks:run"), await call(sub, "checks:run")
    assert first is second and sys.modules["thirdparty"] is first, "installed: imported once"
    assert first.fcutils.WHO == "installed", "a shared module never resolves to project code"


async def test_an_edited_helper_is_imported_afresh(tmp_path: Path, clean_modules: None) -> None:
    write(tmp_path / "p" / "helpers.py", "WHO = 'v1'\n")
    write(tmp_path / "p" / "checks.py", """
        import helpers
        async def run(params, ctx):
            return helpers.WHO
        """)
    project = ProjectHandlers(tmp_path / "p")
    project.refresh("same")
    assert await call(project, "checks:run") == "v1"
    write(tmp_path / "p" / "helpers.py", "WHO = 'version 2'\n")  # the WM's version is unchanged
    project.refresh("same")
    assert await call(project, "checks:run") == "version 2"
