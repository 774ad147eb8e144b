"""The trust key (finecode_wm.trust) in process: what it covers, what it leaves out, hostile
files, and the store under concurrent writers."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from finecode_er.config import ActionConfig, HandlerConfig
from finecode_er.projectcode import SOURCE_SUFFIXES, skipped_dir
from finecode_wm import trust
from finecode_wm.trust import (
    FileCache,
    SessionTrust,
    TrustStore,
    TrustStoreError,
    Unkeyable,
    fingerprint,
    folder_key,
)
from finecode_wm.workspace import Project, Workspace

from .conftest import probe_env

pytestmark = pytest.mark.timeout(60)


def key(ws: Path, files: FileCache | None = None) -> str:
    workspace = Workspace([ws])
    return folder_key(workspace, workspace.folders[0], files)


def write(path: Path, text: str = "") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))


def project(root: Path, python: str | None = None) -> None:
    line = f'python = "{python}"\n' if python else ""
    write(root / "pyproject.toml", f"[tool.finecode]\n{line}[tool.finecode.actions.lint]\n"
          'handlers = [{ source = "checks:run" }]\n')
    write(root / "checks.py", "async def run(params, ctx):\n    return 1\n")


def bounded(call: Callable[[], object], seconds: float = 10) -> object:
    """Run `call` in a thread: a blocking read fails the test instead of hanging it."""
    box: list[object] = []
    thread = threading.Thread(target=lambda: box.append(call()), daemon=True)
    thread.start()
    thread.join(seconds)
    assert box, f"{call} blocked"
    return box[0]


# -- what counts -----------------------------------------------------------------------------


def test_every_python_source_counts_and_refused_places_do_not(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    project(ws / "p")
    write(ws / "p" / "pkg" / "mod.py", "x = 1\n")
    write(ws / "p" / "src" / "lib" / "win.pyw", "x = 1\n")
    write(ws / "tools" / "helper.py", "x = 1\n")  # outside any project, inside the folder
    base = key(ws)
    assert key(ws) == base
    for place in ("__pycache__/checks.cpython-311.pyc", "p/hmod.pyc", "p/.hidden/x.py",
                  "p/node_modules/x.py", "p/venv/x.py", "p/.venv/lib/x.py", "p/README.md",
                  "p/data.json", "p/native.cpython-311-x86_64-linux-gnu.so", "p/x.py.orig"):
        write(ws / place, "print('not keyed')\n")
        assert key(ws) == base, f"{place} is refused by the runner or is not code: not keyed"
    for change in ("p/pkg/mod.py", "p/src/lib/win.pyw", "tools/helper.py", "p/new/deep/n.py"):
        write(ws / change, "x = 2\n")
        assert key(ws) != base, change
        base = key(ws)
    (ws / "p" / "pkg" / "mod.py").unlink()
    assert key(ws) != base, "a removed module changes it too"


def covered(relative: str) -> bool:
    *dirs, name = relative.split("/")
    return name.endswith(SOURCE_SUFFIXES) and not any(skipped_dir(d) for d in dirs)


DIRS = st.sampled_from(["a", "pkg", "src", "node_modules", "venv", ".hidden", "__pycache__"])
NAMES = st.sampled_from(["m.py", "n.pyw", "x.pyc", "README.md", "lib.so", "conf.toml"])
PATHS = st.builds(lambda dirs, name: "/".join([*dirs, name]), st.lists(DIRS, max_size=3), NAMES)


@settings(max_examples=60, deadline=None)
@given(tree=st.dictionaries(PATHS, st.binary(max_size=16), min_size=1, max_size=8),
       data=st.data())
def test_one_change_moves_the_key_exactly_when_a_runner_could_load_it(
        tree: dict[str, bytes], data: st.DataObject) -> None:
    """Unchanged tree: the same key (fresh or cached digests). Edit, add or remove one file:
    the key moves iff it is a source file outside the skipped directories."""
    with tempfile.TemporaryDirectory() as tmp:
        ws = Path(tmp)
        for relative, content in tree.items():
            (ws / relative).parent.mkdir(parents=True, exist_ok=True)
            (ws / relative).write_bytes(content)
        files = FileCache()
        before = fingerprint(ws, [], (), files)
        assert fingerprint(ws, [], (), files) == before == fingerprint(ws, [], (), FileCache())
        operation = data.draw(st.sampled_from(["edit", "add", "remove"]))
        if operation == "add":
            path = data.draw(PATHS.filter(lambda p: p not in tree))
            (ws / path).parent.mkdir(parents=True, exist_ok=True)
            (ws / path).write_bytes(b"new")
        else:
            path = data.draw(st.sampled_from(sorted(tree)))
            if operation == "remove":
                (ws / path).unlink()
            else:
                (ws / path).write_bytes(data.draw(st.binary(max_size=16).filter(
                    lambda b: b != tree[path])))
        assert (fingerprint(ws, [], (), files) != before) == covered(path), (operation, path)


def test_symlinks_are_followed_and_loops_end(tmp_path: Path) -> None:
    ws, outside = tmp_path / "ws", tmp_path / "outside"
    project(ws / "p")
    write(outside / "sub" / "mod.py", "x = 1\n")
    write(outside / "single.py", "x = 1\n")
    (ws / "p" / "pkg").mkdir()
    (ws / "p" / "pkg" / "sub").symlink_to(outside / "sub", target_is_directory=True)
    (ws / "p" / "linked.py").symlink_to(outside / "single.py")
    (ws / "p" / "pkg" / "loop").symlink_to(ws / "p", target_is_directory=True)
    (ws / "p" / "dangling.py").symlink_to(tmp_path / "nowhere.py")
    base = key(ws)
    assert key(ws) == base
    write(outside / "sub" / "mod.py", "x = 2\n")
    assert key(ws) != base, "a symlinked directory's target"
    base = key(ws)
    write(outside / "single.py", "x = 2\n")
    assert key(ws) != base, "a symlinked file's target"
    base = key(ws)
    (ws / "p" / "linked.py").unlink()
    (ws / "p" / "linked.py").symlink_to(outside / "sub" / "mod.py")  # same bytes elsewhere
    assert key(ws) == base, "what a runner loads is the same code"


def test_fifos_and_devices_never_block_and_have_digests_of_their_own(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    project(ws / "p")
    base = key(ws)
    (ws / "p" / "checks.py").unlink()
    os.mkfifo(ws / "p" / "checks.py")
    piped = bounded(lambda: key(ws))
    (ws / "p" / "checks.py").unlink()
    (ws / "p" / "checks.py").symlink_to("/dev/zero")
    zeros = bounded(lambda: key(ws))
    assert len({base, piped, zeros}) == 3
    os.mkfifo(ws / "p" / "x.fifo")
    assert "a FIFO" in str(bounded(lambda: trust._digest_file(ws / "p" / "x.fifo")))

    broken = tmp_path / "broken"
    broken.mkdir()
    os.mkfifo(broken / "pyproject.toml")
    table = bounded(lambda: FileCache().finecode_table(broken))
    assert isinstance(table, dict) and "a FIFO" in table["pyproject.toml"]
    assert bounded(lambda: fingerprint(tmp_path, [], [broken]))
    fake = Project(broken, "broken", sys.executable,
                   {"lint": ActionConfig((HandlerConfig("checks:run"),))})
    assert bounded(lambda: fingerprint(tmp_path, [fake]))


# -- the interpreter -------------------------------------------------------------------------


def test_the_interpreter_counts_as_it_resolves_with_no_size_cap(tmp_path: Path) -> None:
    ws, outside = tmp_path / "ws", tmp_path / "outside"
    outside.mkdir()
    project(ws / "p", python="py")
    (ws / "p" / "py").symlink_to(sys.executable)
    base = key(ws)
    (outside / "other").write_text("#!/bin/sh\nexec true\n")
    (ws / "p" / "py").unlink()
    (ws / "p" / "py").symlink_to(outside / "other")
    assert key(ws) != base, "re-pointed"
    base = key(ws)
    (outside / "other").write_text("#!/bin/sh\nexec false\n")
    assert key(ws) != base, "its content, wherever it lies"

    big = ws / "p" / "big"
    project(ws / "p", python="big")
    big.write_bytes(b"#!/bin/sh\n" + b"#" * (3 << 20) + b"\nexec true\n")
    base = key(ws)
    big.write_bytes(b"#!/bin/sh\n" + b"#" * (3 << 20) + b"\nexec date\n")
    assert key(ws) != base, "an edit past the first MiBs"

    project(ws / "q")  # no `python`: the WM's own interpreter, started by the person
    assert '"python"' not in (ws / "q" / "pyproject.toml").read_text()


def fake_venv(where: Path) -> Path:
    """A venv as CPython finds it: `pyvenv.cfg` one level above `bin/python`."""
    (where / "bin").mkdir(parents=True)
    (where / "bin" / "python").symlink_to(sys.executable)
    write(where / "pyvenv.cfg", "home = /usr/bin\n")
    site = where / "lib" / "python3.11" / "site-packages"
    site.mkdir(parents=True)
    return site


def test_a_venv_in_the_folder_counts_by_its_start_up_hooks(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    project(ws / "p", python=".venv/bin/python")
    site = fake_venv(ws / "p" / ".venv")
    base = key(ws)
    for hook in ("x.pth", "sitecustomize.py", "usercustomize.py",
                 "__pycache__/sitecustomize.cpython-311.pyc", "sitecustomize/__init__.py"):
        write(site / hook, "import os\n")
        assert key(ws) != base, hook
        base = key(ws)
    write(ws / "p" / ".venv" / "pyvenv.cfg", "home = /opt/other\n")
    assert key(ws) != base, "pyvenv.cfg"
    base = key(ws)
    write(site / "thirdparty" / "__init__.py", "import os\n")
    write(site / "thirdparty" / "sub" / "x.pth", "import os\n")
    assert key(ws) == base, "installed packages are the environment's, not keyed"


def test_a_venv_outside_the_folder_is_the_persons_environment(tmp_path: Path) -> None:
    ws, venv = tmp_path / "ws", tmp_path / "venvs" / "one"
    project(ws / "p", python=str(venv / "bin" / "python"))
    site = fake_venv(venv)
    base = key(ws)
    write(site / "x.pth", "import os\n")
    assert key(ws) == base


# -- too much to walk, and the store ---------------------------------------------------------


def test_a_folder_too_large_to_walk_cannot_be_trusted(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    ws = tmp_path / "ws"
    project(ws / "p")
    workspace = Workspace([ws])
    folder = workspace.folders[0]
    store = TrustStore(tmp_path / "trust.json")
    store.set(folder, folder_key(workspace, folder))
    monkeypatch.setattr(trust, "MAX_WALKED", 2)
    with pytest.raises(Unkeyable):
        folder_key(workspace, folder)
    assert SessionTrust(store).decide(workspace).states == {folder: "changed"}
    store.set(folder, None)
    assert SessionTrust(store).decide(workspace).states == {folder: "untrusted"}, \
        "a folder never trusted is not walked"


def test_a_store_that_is_a_fifo_or_holds_no_sha256_trusts_nothing(tmp_path: Path) -> None:
    piped = tmp_path / "piped.json"
    os.mkfifo(piped)
    failure = bounded(lambda: _load_error(TrustStore(piped)))
    assert "a FIFO" in str(failure)
    odd = tmp_path / "odd.json"
    odd.write_text('{"version": 1, "folders": {"/w": {"key": "unkeyable: too big"}}}')
    assert "not a SHA-256" in str(_load_error(TrustStore(odd)))


def _load_error(store: TrustStore) -> TrustStoreError | None:
    try:
        store.load()
    except TrustStoreError as exc:
        return exc
    return None


CHILD = """
import sys, time
from pathlib import Path
from finecode_wm.trust import TrustStore
store, ready, go, folder, action = sys.argv[1:]
Path(ready).touch()
while not Path(go).exists():
    time.sleep(0.001)
TrustStore(Path(store)).set(Path(folder), "a" * 64 if action == "trust" else None)
"""


def test_concurrent_trust_and_untrust_lose_nothing_and_resurrect_nothing(
        tmp_path: Path) -> None:
    """20 processes released at the same moment: 10 forget folders, 10 add others."""
    store = TrustStore(tmp_path / "config" / "trust.json")
    old = [tmp_path / f"old{i}" for i in range(10)]
    new = [tmp_path / f"new{i}" for i in range(10)]
    for folder in old:
        store.set(folder, "b" * 64)
    go, ready = tmp_path / "go", tmp_path / "ready"
    ready.mkdir()
    children = [subprocess.Popen([sys.executable, "-c", CHILD, str(store.path),
                                  str(ready / str(i)), str(go), str(folder), action],
                                 env=probe_env())
                for i, (folder, action) in enumerate(
                    [(f, "untrust") for f in old] + [(f, "trust") for f in new])]
    try:
        for _ in range(3000):
            if len(list(ready.iterdir())) == len(children):
                break
            time.sleep(0.01)
        go.touch()
        assert [child.wait(30) for child in children] == [0] * len(children)
    finally:
        for child in children:
            child.kill()
    assert set(store.load()) == {str(f) for f in new}
