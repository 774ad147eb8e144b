"""Generated workspaces for the example `test`, `discover_tests`, `prepare_env` and `check`
actions: projects with passing, failing and uncollectable tests, and tiny wheels for offline uv.

The expected findings are found by markers in the sources (`# <- name`), so a test states which
line a finding belongs at without counting lines by hand.
"""

from __future__ import annotations

import base64
import hashlib
import os
import textwrap
import zipfile
from pathlib import Path
from typing import Any

from finecode_er.api import RunActionContext
from finecode_er.reporter import ExecutionReporter

# No third-party pytest plugins in the projects' pytest: FineCode's test environment has many,
# and loading them costs seconds per run.
NO_PLUGINS = '{ env = { PYTEST_DISABLE_PLUGIN_AUTOLOAD = "1" } }'

PYPROJECT = """[project]
name = "{name}"
version = "0.1.0"
requires-python = ">=3.11"
dependencies = {dependencies}

[tool.finecode.actions.test]
handlers = [{{ source = "finecode_examples.testing:test", config = {no_plugins} }}]

[tool.finecode.actions.discover_tests]
handlers = [{{ source = "finecode_examples.testing:discover_tests", config = {no_plugins} }}]

[tool.finecode.actions.check]
handlers = [{{ source = "finecode_examples.check:check" }}]

[tool.finecode.actions.prepare_env]
handlers = [{{ source = "finecode_examples.envs:prepare_env", config = {{ batch_size = 1 }} }}]
"""

PROJECTS: dict[str, dict[str, str]] = {
    # Everything passes (one skipped).
    "alpha": {
        "tests/test_alpha.py": """
            import pytest


            def test_one():
                assert 1 + 1 == 2


            def test_two():
                assert "a".upper() == "A"


            @pytest.mark.skip(reason="not today")
            def test_skipped():
                pass
            """,
    },
    # A wrong expectation, an exception in the project's code, a fixture that fails.
    "beta": {
        "calc.py": """
            def div(a, b):
                return a / b
            """,
        "tests/test_beta.py": """
            import pytest

            from calc import div


            def test_fine():
                assert div(4, 2) == 2


            def test_wrong():
                assert div(9, 3) == 4  # <- test_wrong


            def test_zero():
                assert div(1, 0) == 0  # <- test_zero


            @pytest.fixture
            def broken():
                raise RuntimeError("no fixture for you")  # <- test_uses_broken


            def test_uses_broken(broken):
                pass
            """,
    },
    # One test module cannot be imported; the other one still runs.
    "gamma": {
        "tests/test_ok.py": """
            def test_ok():
                assert True
            """,
        "tests/test_broken.py": '''
            """Imports a module nobody has."""
            import not_installed_anywhere  # <- test_broken.py


            def test_never():
                pass
            ''',
    },
    # The conftest does not import: pytest stops before collecting anything.
    "delta": {
        "conftest.py": """
            import os

            import missing_plugin_module  # <- conftest.py
            """,
        "tests/test_delta.py": """
            def test_never_collected():
                pass
            """,
    },
}


def make_test_workspace(root: Path, dependencies: tuple[str, ...] = ()) -> Path:
    """The four projects above under `root` (each depending on `dependencies`)."""
    for name, files in PROJECTS.items():
        project = root / name
        for relative, text in files.items():
            path = project / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(textwrap.dedent(text).lstrip("\n"))
        deps = "[" + ", ".join(f'"{d}"' for d in dependencies) + "]"
        (project / "pyproject.toml").write_text(
            PYPROJECT.format(name=name, dependencies=deps, no_plugins=NO_PLUGINS))
    return root


def marked(project: str, name: str) -> tuple[str, int]:
    """(project-relative path, 1-based line) of the line marked `# <- name` in `project`."""
    for relative, text in PROJECTS[project].items():
        for number, line in enumerate(textwrap.dedent(text).lstrip("\n").splitlines(), 1):
            if line.endswith(f"# <- {name}"):
                return relative, number
    raise KeyError(f"{project}: no line marked {name}")


# (project, path, line, code) of every finding a `test` run reports in the workspace.
EXPECTED_TEST_FINDINGS = sorted([
    ("beta", *marked("beta", "test_wrong"), "test-failed"),
    ("beta", *marked("beta", "test_zero"), "test-failed"),
    ("beta", *marked("beta", "test_uses_broken"), "test-error"),
    ("gamma", *marked("gamma", "test_broken.py"), "collection-error"),
    ("delta", *marked("delta", "conftest.py"), "collection-error"),
])
EXPECTED_IDS = {
    "alpha": ["tests/test_alpha.py::test_one", "tests/test_alpha.py::test_two",
              "tests/test_alpha.py::test_skipped"],
    "beta": ["tests/test_beta.py::test_fine", "tests/test_beta.py::test_wrong",
             "tests/test_beta.py::test_zero", "tests/test_beta.py::test_uses_broken"],
    "gamma": ["tests/test_ok.py::test_ok"],
    "delta": [],
}


def finding_rows(project: str, result: dict[str, Any]) -> list[tuple[str, str, int, str]]:
    return [(project, d["path"], d["line"], d["code"]) for d in result["diagnostics"]]


# -- tiny wheels and an offline uv ----------------------------------------------------------


def tiny_wheel(directory: Path, name: str, version: str, requires: tuple[str, ...] = ()) -> Path:
    """A minimal pure-Python wheel (METADATA, WHEEL, RECORD and one module)."""
    module = name.replace("-", "_")
    dist = f"{module}-{version}"
    files = {
        f"{module}/__init__.py": f"VERSION = {version!r}\n",
        f"{dist}.dist-info/METADATA": "Metadata-Version: 2.1\n"
        f"Name: {name}\nVersion: {version}\n" + "".join(f"Requires-Dist: {r}\n" for r in requires),
        f"{dist}.dist-info/WHEEL": "Wheel-Version: 1.0\nGenerator: finecode-tests\n"
                                   "Root-Is-Purelib: true\nTag: py3-none-any\n",
    }
    path = directory / f"{dist}-py3-none-any.whl"
    record = []
    with zipfile.ZipFile(path, "w") as archive:
        for member, text in files.items():
            data = text.encode()
            archive.writestr(member, data)
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
            record.append(f"{member},sha256={digest.decode()},{len(data)}")
        record.append(f"{dist}.dist-info/RECORD,,")
        archive.writestr(f"{dist}.dist-info/RECORD", "\n".join(record) + "\n")
    return path


def tiny_index(directory: Path, count: int = 0) -> Path:
    """`tiny-a` (needs `tiny-b`), `tiny-b`, `tiny-c`, and `count` more (`tiny-pkg-N`)."""
    directory.mkdir(parents=True, exist_ok=True)
    tiny_wheel(directory, "tiny-a", "1.0", ("tiny-b>=1",))
    tiny_wheel(directory, "tiny-b", "1.2")
    tiny_wheel(directory, "tiny-c", "0.3")
    for n in range(count):
        tiny_wheel(directory, f"tiny-pkg-{n}", "1.0")
    return directory


def offline_uv(wheels: Path, cache: Path) -> dict[str, str]:
    """uv settings that reach no network: only the wheels in `wheels`, a cache in `cache`."""
    return {"UV_OFFLINE": "1", "UV_NO_INDEX": "1", "UV_FIND_LINKS": str(wheels),
            "UV_CACHE_DIR": str(cache), "UV_PYTHON_DOWNLOADS": "never",
            "UV_NO_CONFIG": "1"}


# -- a handler in process, recording what its runner would send -----------------------------


class Recorded:
    """A `RunActionContext` for one handler call in this process, and the values its
    execution's stream carried (no pacing: every report is kept)."""

    def __init__(self, root: Path, action: str, config: dict[str, Any] | None = None) -> None:
        self.values: list[dict[str, Any]] = []
        self.reporter = ExecutionReporter(self.values.append, title=action, handlers=1,
                                          interval=0)
        self.ctx = RunActionContext(project_root=root, config=dict(config or {}), action=action,
                                    reporter=self.reporter, work=self.reporter.handler_work())

    def end(self, outcome: str = "done") -> None:
        self.reporter.finish(outcome)

    def before_total(self) -> list[dict[str, Any]]:
        """The values sent before the execution declared any units."""
        return [v for v in self.values if "total" not in v]

    def totals(self) -> list[tuple[float, float]]:
        return [(v["total"], v["done"]) for v in self.values if "total" in v]


def environ_with(extra: dict[str, str]) -> dict[str, str]:
    return {**os.environ, **extra}
