"""Workspace trust end to end: the real WM, real runners, a workspace whose code leaves markers.

The project `evil` runs on a `python` script of its own and has a project-local handler module;
each leaves a marker (outside the workspace) when it runs. Opening the workspace must leave none;
asking for a run is consent; trust (editor option or `finecode-wm trust`) allows the warm-up.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import attrs
import psutil
import pytest
from lsprotocol import types

from finecode_wm.trust import (
    SessionTrust,
    TrustStore,
    decide,
    fingerprint,
    folder_state,
)
from finecode_wm.workspace import Workspace, local_handler_files

from .conftest import probe_env
from .lsp_client import CONFIG, RecordingClient, init_params
from .test_lsp import plain

pytestmark = pytest.mark.timeout(60)


@attrs.define
class Setup:
    workspace: Path
    markers: Path
    config_home: Path

    @property
    def evil(self) -> Path:
        return self.workspace / "evil"

    def env(self) -> dict[str, str]:
        return probe_env() | {"XDG_CONFIG_HOME": str(self.config_home)}

    def marks(self) -> set[str]:
        return {p.name for p in self.markers.iterdir()}

    def files(self) -> dict[str, bytes]:
        return {str(p.relative_to(self.workspace)): p.read_bytes()
                for p in sorted(self.workspace.rglob("*")) if p.is_file()}

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "finecode_wm", *args], env=self.env(),
                              capture_output=True, text=True, timeout=50)


@pytest.fixture
def setup(tmp_path: Path) -> Setup:
    markers = tmp_path / "markers"
    markers.mkdir()
    ws = tmp_path / "ws"
    evil, other = ws / "evil", ws / "other"
    evil.mkdir(parents=True)
    other.mkdir()
    script = evil / "python"
    script.write_text(f'#!/bin/sh\ntouch "{markers}/python"\nexec "{sys.executable}" "$@"\n')
    script.chmod(0o755)
    (evil / "evil_checks.py").write_text(
        f"from pathlib import Path\nPath({str(markers / 'handler')!r}).touch()\n\n"
        "async def run(params, ctx):\n    return 'ran'\n")
    (evil / "pyproject.toml").write_text(
        '[tool.finecode]\npython = "python"\n'
        '[tool.finecode.actions.check]\nhandlers = [{ source = "evil_checks:run" }]\n')
    (other / "other_checks.py").write_text("async def run(params, ctx):\n    return 'fine'\n")
    (other / "pyproject.toml").write_text(
        '[tool.finecode.actions.check]\nhandlers = [{ source = "other_checks:run" }]\n')
    return Setup(ws, markers, tmp_path / "config")


@contextlib.asynccontextmanager
async def wm(setup: Setup, **options: object) -> AsyncIterator[RecordingClient]:
    """A WM on the workspace, with the user's config directory pointed at the test's own."""
    client = await attrs.evolve(CONFIG, server_env=setup.env()).start()
    assert isinstance(client, RecordingClient)
    try:
        await client.initialize_session(init_params(root=setup.workspace, **options))
        yield client
    finally:  # also after a failed assertion: `stop()` hangs while the server lives
        with contextlib.suppress(Exception):
            await asyncio.wait_for(client.shutdown_session(), 10)
        await client.stop()


async def hint(client: RecordingClient) -> str:
    """The one message telling how to trust (sent when the warm-up was skipped)."""
    for _ in range(200):
        found = [m.message for m in client.messages if "finecode-wm trust" in m.message
                 or "trust the workspace in the editor" in m.message.lower()]
        if found:
            return str(found[0])
        await asyncio.sleep(0.05)
    raise AssertionError(f"no trust hint; messages: {[m.message for m in client.messages]}")


async def until_marked(setup: Setup, name: str) -> None:
    for _ in range(400):
        if name in setup.marks():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"no {name} marker: the workspace was not warmed")


def runners(client: RecordingClient) -> list[psutil.Process]:
    return psutil.Process(client._server.pid).children(recursive=True)


async def run(client: RecordingClient, project: Path) -> dict[str, object]:
    result = plain(await client.protocol.send_request_async(
        "runBatch", {"actions": ["check"], "projects": [str(project)]}))
    assert isinstance(result, dict)
    return result


async def test_untrusted_runs_nothing_until_asked(setup: Setup) -> None:
    async with wm(setup) as client:  # warmRunners defaults to true
        message = await hint(client)
        assert f"finecode-wm trust {setup.workspace}" in message, message
        assert runners(client) == [] and setup.marks() == set()
        other = await run(client, setup.workspace / "other")
        assert [r["result"] for r in other["results"]] == ["fine"]  # type: ignore[attr-defined]
        assert setup.marks() == set(), "running another project ran nothing of this one"
        evil = await run(client, setup.evil)
        assert [r["result"] for r in evil["results"]] == ["ran"]  # type: ignore[attr-defined]
        assert setup.marks() == {"python", "handler"}, "an explicit run is consent"
        hints = [m for m in client.messages if "trust" in m.message]
        assert len(hints) == 1 and hints[0].type == types.MessageType.Info, hints


async def test_trusted_by_the_editor_warms(setup: Setup) -> None:
    async with wm(setup, trusted=True) as client:
        await until_marked(setup, "python")
        assert not [m for m in client.messages if "trust" in m.message]


async def test_untrusted_by_the_editor_wins_over_the_store(setup: Setup) -> None:
    assert setup.cli("trust", str(setup.workspace)).returncode == 0
    async with wm(setup, trusted=False) as client:
        assert "trust the workspace in the editor" in (await hint(client)).lower()
        assert runners(client) == [] and setup.marks() == set()


async def test_trust_cli_store_restart_and_revocation(setup: Setup) -> None:
    before = setup.files()
    listed = json.loads(setup.cli("list", "--json", "--workspace", str(setup.workspace)).stdout)
    assert {p["name"]: p["trust"] for p in listed} == {"evil": "untrusted", "other": "untrusted"}

    done = setup.cli("trust", str(setup.workspace))
    assert done.returncode == 0 and f"trusted {setup.workspace} (2 projects)" in done.stdout
    store = setup.config_home / "finecode" / "trust.json"
    assert str(setup.workspace) in json.loads(store.read_text())["folders"]
    assert setup.files() == before, "the store is never written inside the workspace"
    plain_list = setup.cli("list", "--workspace", str(setup.workspace)).stdout
    assert f"folder {setup.workspace}: trusted" in plain_list, plain_list
    assert setup.marks() == set(), "trust and list read TOML only"

    async with wm(setup) as client:  # a fresh process: the store survived the restart
        await until_marked(setup, "python")
        assert not [m for m in client.messages if "trust" in m.message]
    for marker in setup.markers.iterdir():
        marker.unlink()

    with (setup.evil / "evil_checks.py").open("a") as handler:
        handler.write("# an edit after trusting\n")
    listed = json.loads(setup.cli("list", "--json", "--workspace", str(setup.workspace)).stdout)
    assert {p["trust"] for p in listed} == {"changed"}
    async with wm(setup) as client:
        shown = await hint(client)
        assert "changed since it was trusted" in shown
        assert "evil_checks.py changed (project evil)" in shown, "the editor is told what"
        assert runners(client) == [] and setup.marks() == set()

    assert setup.cli("trust", str(setup.workspace)).returncode == 0
    gone = setup.cli("untrust", str(setup.workspace))
    assert gone.returncode == 0 and f"untrusted {setup.workspace}" in gone.stdout
    again = setup.cli("untrust", str(setup.workspace))
    assert again.returncode == 0 and "was not trusted" in again.stdout
    assert f"{setup.workspace}: untrusted" in setup.cli(
        "list", "--workspace", str(setup.workspace)).stdout


def test_corrupt_store_trusts_nothing_and_says_so(setup: Setup) -> None:
    store = setup.config_home / "finecode" / "trust.json"
    store.parent.mkdir(parents=True)
    store.write_text("{not json")
    listed = setup.cli("list", "--workspace", str(setup.workspace))
    assert "corrupt" in listed.stderr and ": untrusted" in listed.stdout, listed
    refused = setup.cli("trust", str(setup.workspace))
    assert refused.returncode == 1 and "delete it" in refused.stderr
    assert store.read_text() == "{not json", "a corrupt store is not overwritten"


def test_store_inside_the_workspace_is_refused(setup: Setup) -> None:
    setup.config_home = setup.workspace / ".config"
    refused = setup.cli("trust", str(setup.workspace))
    assert refused.returncode == 2 and "lies inside" in refused.stderr
    assert not setup.config_home.exists()


# -- the pure parts --------------------------------------------------------------------------


def key(ws: Path) -> str:
    workspace = Workspace([ws])
    return fingerprint(workspace.folders[0], workspace.projects.values(),
                       workspace.problems.keys())


def test_the_key_follows_config_code_and_interpreter(setup: Setup) -> None:
    ws = setup.workspace
    first = key(ws)
    assert key(ws) == first
    pyproject = setup.evil / "pyproject.toml"
    pyproject.write_text(pyproject.read_text() + '\n[project]\nname = "evil"\n')
    assert key(ws) == first, "outside [tool.finecode] is not FineCode config"
    pyproject.write_text(pyproject.read_text().replace("evil_checks:run", "evil_checks:run2"))
    second = key(ws)
    assert second != first
    (setup.evil / "python").write_text("#!/bin/sh\nexec true\n")
    third = key(ws)
    assert third != second, "a project-local interpreter script is part of the key"
    (ws / "other" / "notes.txt").write_text("not code\n")
    assert key(ws) == third, "only what a runner can load counts"
    (ws / "other" / "unrelated.py").write_text("x = 1\n")
    assert key(ws) != third, "any Python file of the folder is code a handler may import"
    third = key(ws)
    (ws / "new").mkdir()
    (ws / "new" / "pyproject.toml").write_text("[tool.finecode]\nbad = 1\n")
    assert key(ws) != third, "a new (even broken) project changes the key"


def test_local_handler_files(tmp_path: Path) -> None:
    (tmp_path / "pkg" / "sub").mkdir(parents=True)
    (tmp_path / "pkg" / "sub" / "a.py").write_text("")
    (tmp_path / "pkg" / "__init__.py").write_text("")
    (tmp_path / "checks.py").write_text("")
    found = local_handler_files(tmp_path, ["pkg.sub.a:run", "checks:run", "json:loads"])
    assert found == sorted([tmp_path / "checks.py", tmp_path / "pkg" / "__init__.py",
                            tmp_path / "pkg" / "sub" / "a.py"])


def test_decide() -> None:
    a, b = Path("/w/a"), Path("/w/b")
    assert decide(None, {a: "k1", b: "k2"}, {"/w/a": "k1", "/w/b": "k2"}).trusted
    partly = decide(None, {a: "k1", b: "k2"}, {"/w/a": "k1", "/w/b": "old"})
    assert not partly.trusted and partly.changed == (b,) and partly.states[a] == "trusted"
    assert decide(None, {a: "k1"}, {}).untrusted == (a,)
    assert not decide(None, {}, {}).trusted, "no folder, nothing to trust"
    assert decide(True, {a: "k1"}, {}).trusted and not decide(False, {a: "k1"},
                                                              {"/w/a": "k1"}).trusted


def test_one_session_sees_an_edit_at_once(setup: Setup) -> None:
    """The session caches file digests by stat: an edit must still revoke on the next check."""
    workspace = Workspace([setup.workspace])
    store = TrustStore(setup.config_home / "trust.json")
    session = SessionTrust(store)
    assert session.decide(workspace).states == {workspace.folders[0]: "untrusted"}
    store.set(workspace.folders[0], *folder_state(workspace, workspace.folders[0]))
    assert session.decide(workspace).trusted
    (setup.evil / "evil_checks.py").write_text("async def run(params, ctx):\n    return 1\n")
    decision = session.decide(workspace)
    assert not decision.trusted and decision.changed == (workspace.folders[0],)
    hint = session.hint_once(decision, workspace) or ""
    assert "changed since it was trusted" in hint
    assert "evil_checks.py changed" in hint, "the editor's hint names what changed, as list does"
    assert session.hint_once(decision, workspace) is None, "told once"
