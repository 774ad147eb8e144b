"""Result cache keys and validity: every change that may change a result changes the key or
invalidates the entry; what cannot change it does not."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import pytest

from finecode_wm import trust
from finecode_wm.cache import DigestIndex, Subject, key_of, still_valid, subject_of, validity_of
from finecode_wm.workspace import Workspace

CONFIG = """[project]
name = "{name}"
[tool.finecode]
{extra}
[tool.finecode.actions.lint]
handlers = [{{ source = "checks:run", config = {{ select = ["E"] }} }}]
"""


def make_project(root: Path, name: str = "app", extra: str = "") -> Path:
    (root / "pkg").mkdir(parents=True, exist_ok=True)
    (root / "pyproject.toml").write_text(CONFIG.format(name=name, extra=extra))
    (root / "checks.py").write_text("async def run(params, ctx):\n    return {}\n")
    (root / "pkg" / "__init__.py").write_text("")
    (root / "pkg" / "core.py").write_text("VALUE = 1\n")
    return root


def key(workspace_dir: Path, project: str = "app", params: dict[str, object] | None = None,
        digests: DigestIndex | None = None) -> str | None:
    """The key as a fresh run computes it (the workspace discovered again)."""
    workspace = Workspace([workspace_dir])
    found = workspace.projects[(workspace_dir / project).resolve()]
    return key_of(subject_of(workspace, found, "lint", params or {}), digests or DigestIndex())


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    make_project(tmp_path / "app")
    return tmp_path


def test_the_same_inputs_give_the_same_key(ws: Path) -> None:
    first = key(ws)
    assert first is not None and len(first) == 64
    assert key(ws) == first
    os.utime(ws / "app" / "pkg" / "core.py", (1, 1))  # touched, not changed
    assert key(ws) == first


@pytest.mark.parametrize("edit", [
    pytest.param(lambda r: (r / "pkg" / "core.py").write_text("VALUE = 2\n"), id="file edit"),
    pytest.param(lambda r: (r / "pkg" / "new.py").write_text(""), id="file added"),
    pytest.param(lambda r: (r / "pkg" / "core.py").unlink(), id="file removed"),
    pytest.param(lambda r: (r / "pkg" / "core.py").rename(r / "pkg" / "moved.py"), id="renamed"),
    pytest.param(lambda r: (r / "ruff.toml").write_text("line-length = 80\n"), id="tool config"),
    pytest.param(lambda r: (r / ".gitignore").write_text("pkg\n"), id="hidden file"),
    pytest.param(lambda r: (r / "checks.py").write_text(
        "async def run(params, ctx):\n    return {'x': 1}\n"), id="project-local handler"),
    pytest.param(lambda r: (r / "pyproject.toml").write_text(
        CONFIG.format(name="app", extra="").replace('"E"', '"F"')), id="action config"),
    pytest.param(lambda r: (r / "pyproject.toml").write_text(
        CONFIG.format(name="app", extra="") + "\n# a comment\n"), id="pyproject bytes"),
])
def test_an_input_change_changes_the_key(ws: Path, edit: object) -> None:
    before = key(ws)
    edit(ws / "app")  # type: ignore[operator]
    assert key(ws) != before


@pytest.mark.parametrize("place", [".git", "__pycache__", ".venv", "node_modules", ".mypy_cache",
                                   "myenv"])
def test_skipped_directories_and_venvs_are_no_input(ws: Path, place: str) -> None:
    root = ws / "app"
    if place == "myenv":  # a venv under any name: it holds a pyvenv.cfg
        (root / place).mkdir()
        (root / place / "pyvenv.cfg").write_text("home = /usr/bin\n")
    before = key(ws)
    (root / place / "lib").mkdir(parents=True, exist_ok=True)
    (root / place / "lib" / "thing.py").write_text("x = 1\n")
    assert key(ws) == before


def test_params_and_action_are_in_the_key(ws: Path) -> None:
    assert key(ws, params={"fix": True}) != key(ws) != key(ws, params={"fix": False})


def test_the_interpreter_as_it_resolves(tmp_path: Path) -> None:
    python = tmp_path / "bin" / "python"
    python.parent.mkdir()
    python.write_bytes(b"interpreter 1")
    make_project(tmp_path / "app", extra=f'python = "{python}"')
    before = key(tmp_path)
    python.write_bytes(b"interpreter 2")
    assert key(tmp_path) != before


def test_a_dependency_declared_with_depends_on_is_an_input(tmp_path: Path) -> None:
    make_project(tmp_path / "lib", "lib")
    make_project(tmp_path / "app", extra='depends_on = ["../lib"]')
    app, lib = key(tmp_path, "app"), key(tmp_path, "lib")
    (tmp_path / "lib" / "pkg" / "core.py").write_text("VALUE = 3\n")
    assert key(tmp_path, "app") != app and key(tmp_path, "lib") != lib
    app, lib = key(tmp_path, "app"), key(tmp_path, "lib")
    (tmp_path / "app" / "pkg" / "core.py").write_text("VALUE = 4\n")
    assert key(tmp_path, "app") != app and key(tmp_path, "lib") == lib, \
        "the dependency does not depend on its dependent"


def test_depends_on_cycles_end(tmp_path: Path) -> None:
    make_project(tmp_path / "a", "a", extra='depends_on = ["../b"]')
    make_project(tmp_path / "b", "b", extra='depends_on = ["../a"]')
    workspace = Workspace([tmp_path])
    subject = subject_of(workspace, workspace.projects[(tmp_path / "a").resolve()], "lint", {})
    assert subject.roots == ((tmp_path / "a").resolve(), (tmp_path / "b").resolve())


def test_a_link_out_of_the_roots_has_no_key_and_is_not_walked(tmp_path: Path) -> None:
    """A symlink to `/` in a project would have every file of the machine hashed: the project
    is not cacheable instead (and is so at once). Links inside the roots, into a root it
    depends on, and a venv linked from elsewhere keep their key."""
    make_project(tmp_path / "lib", "lib")
    make_project(tmp_path / "app", extra='depends_on = ["../lib"]')
    (tmp_path / "app" / "inside").symlink_to(tmp_path / "app" / "pkg")
    (tmp_path / "app" / "shared").symlink_to(tmp_path / "lib" / "pkg")
    venv = tmp_path / "elsewhere" / "venv"
    venv.mkdir(parents=True)
    (venv / "pyvenv.cfg").write_text("home = /usr/bin\n")
    (tmp_path / "app" / "venv").symlink_to(venv)
    assert key(tmp_path, "app") is not None
    (tmp_path / "app" / "root").symlink_to("/")
    read: list[str] = []

    class Recording(DigestIndex):
        def digest(self, path: Path | str) -> str:
            read.append(str(path))
            return super().digest(path)

    assert key(tmp_path, "app", digests=Recording()) is None
    assert not [path for path in read if "/root/" in path], "nothing behind the link was read"


def test_a_project_too_large_to_walk_has_no_key(ws: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(trust, "MAX_WALKED", 2)
    assert key(ws) is None


# -- validity: what the runner said the result stands on --------------------------------------


def info(files: list[str], dirs: list[str]) -> dict[str, object]:
    return {"cacheable": True, "version": ["tool 1.0"], "files": files, "dirs": dirs}


def test_validity_follows_tool_files_and_package_listings(tmp_path: Path) -> None:
    tool = tmp_path / "bin" / "tool"
    tool.parent.mkdir()
    tool.write_bytes(b"release 1")
    absent = tmp_path / "etc" / "tool.toml"  # a config the tool would read if it existed
    site = tmp_path / "site-packages"
    (site / "tool-1.0.dist-info").mkdir(parents=True)
    digests = DigestIndex()
    validity = validity_of(info([str(tool), str(absent)], [str(site)]), digests)
    assert validity is not None and validity["version"] == ["tool 1.0"]
    assert still_valid(validity, DigestIndex())
    tool.write_bytes(b"release 2")  # the tool was upgraded in place
    assert not still_valid(validity, DigestIndex())
    tool.write_bytes(b"release 1")
    assert still_valid(validity, DigestIndex())
    absent.parent.mkdir()
    absent.write_text("x = 1\n")  # the config appeared
    assert not still_valid(validity, DigestIndex())
    absent.unlink()
    (site / "tool-1.0.dist-info").rename(site / "tool-1.1.dist-info")  # pip install -U
    assert not still_valid(validity, DigestIndex())


def test_one_runs_lookups_look_at_each_file_once(tmp_path: Path) -> None:
    """Entries that stand on the same files share what one run found of them (`checked`);
    the next run, with a dict of its own, sees an edit."""
    tool = tmp_path / "tool"
    tool.write_bytes(b"release 1")
    site = tmp_path / "site-packages"
    site.mkdir()
    validity = validity_of(info([str(tool)], [str(site)]), DigestIndex())
    assert validity is not None
    looked: list[str] = []

    class Counting(DigestIndex):
        def _cached(self, path: Path | str, kind: str, compute: Any) -> Any:
            looked.append(str(path))
            return super()._cached(path, kind, compute)

    digests, checked = Counting(), {}
    assert all(still_valid(validity, digests, checked) for _ in range(5))
    assert sorted(looked) == [str(site), str(tool)], "each file once for five entries"
    tool.write_bytes(b"release 2")
    assert still_valid(validity, digests, checked), "this run found release 1"
    assert not still_valid(validity, digests, {}), "the next run sees the upgrade"


def test_a_module_edited_since_the_runner_loaded_it_is_not_recorded(tmp_path: Path) -> None:
    """The runner imported the module once: a file changed since then is not the code that
    ran, so its digest must not vouch for the result."""
    module = tmp_path / "handler_pkg.py"
    module.write_text("VERSION = 1\n")
    st = module.stat()
    seen = {str(module): [st.st_mtime_ns, st.st_size]}
    loaded = {**info([str(module)], []), "loaded": seen}
    assert validity_of(loaded, DigestIndex()) is not None
    module.write_text("VERSION = 22\n")
    assert validity_of(loaded, DigestIndex()) is None
    assert validity_of({**loaded, "loaded": [1]}, DigestIndex()) is None


@pytest.mark.parametrize("bad", [None, {}, {"cacheable": False, "reason": "no"},
                                 {"cacheable": True, "files": "x", "dirs": []},
                                 {"cacheable": True, "files": [], "dirs": [1]}, [1]])
def test_no_validity_for_an_answer_that_is_not_cacheable(bad: object) -> None:
    assert validity_of(bad, DigestIndex()) is None


def test_a_malformed_validity_is_never_valid() -> None:
    assert not still_valid({"files": [], "dirs": {}}, DigestIndex())


# -- the digest index kept between processes -------------------------------------------------


def test_the_digest_index_survives_the_process_and_a_corrupt_one_is_empty(
        ws: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(trust, "RACY_NS", 0)  # the files were just written
    first = DigestIndex()
    expected = key(ws, digests=first)
    assert first.dirty
    first.save(tmp_path / "index")
    assert not first.dirty
    second = DigestIndex()
    second.load(tmp_path / "index")
    reads = []
    monkeypatch.setattr(trust, "_digest_file",
                        lambda path: reads.append(path) or "changed?")  # type: ignore[func-returns-value]
    assert key(ws, digests=second) == expected, "digests reused while the stat is unchanged"
    assert reads == [], "no file was read again"
    (tmp_path / "index").write_text('{"version": 1, "entries": [["/x", "sha256", [1], 5]')
    third = DigestIndex()
    third.load(tmp_path / "index")
    assert not third._seen


def test_subject_carries_what_the_runner_gets(ws: Path) -> None:
    workspace = Workspace([ws])
    project = workspace.projects[(ws / "app").resolve()]
    subject = subject_of(workspace, project, "lint", {"p": 1})
    assert subject == Subject(project.root, "lint", project.actions["lint"].to_json(), {"p": 1},
                              sys.executable, (project.root,))


def test_an_index_that_cannot_be_written_leaves_no_temporary_file(
        ws: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """On a full disk every process's failed save would otherwise leave a file behind."""
    monkeypatch.setattr(trust, "RACY_NS", 0)
    digests = DigestIndex()
    key(ws, digests=digests)
    real = Path.write_text

    def disk_full(self: Path, text: str, *args: object, **kwargs: object) -> int:
        real(self, text[:10])
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Path, "write_text", disk_full)
    (tmp_path / "cache").mkdir()
    digests.save(tmp_path / "cache" / "index")
    assert list((tmp_path / "cache").iterdir()) == []
    assert digests.dirty  # saved at the next chance


@pytest.mark.timeout(10)
def test_a_digest_index_that_is_no_regular_file_adds_nothing(tmp_path: Path) -> None:
    """A FIFO in its place would block the cache's worker, and with it the run."""
    os.mkfifo(tmp_path / "index")
    digests = DigestIndex()
    digests.load(tmp_path / "index")
    assert not digests._seen
