"""The result cache in a warm editor server and over MCP: a re-run after one edit runs one
project, cached children keep the progress rules, and findings are the same with and without
the cache."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_lsp

from .cached import cached, findings, make_workspace, runs
from .conftest import probe_env
from .lsp_client import CONFIG, RecordingClient, init_params
from .rules import check_stream
from .test_lsp import run_batch
from .test_mcp import McpServer, call, strictly_increasing

pytestmark = pytest.mark.timeout(90)

EVERYTHING = {(p, a) for p in ("p1", "p2", "p3") for a in ("lint", "local")}


@pytest_lsp.fixture(config=CONFIG)
async def client(lsp_client: RecordingClient, tmp_path: Path) -> AsyncIterator[None]:
    lsp_client.ws = make_workspace(tmp_path / "ws")  # type: ignore[attr-defined]
    lsp_client.init_result = await lsp_client.initialize_session(
        init_params(root=lsp_client.ws, warm=False))  # type: ignore[attr-defined]
    yield
    await lsp_client.shutdown_session()


async def test_warm_server_reruns_only_the_edited_project(client: RecordingClient) -> None:
    ws: Path = client.ws  # type: ignore[attr-defined]
    actions = {"actions": ["lint", "local"]}
    first = await run_batch(client, **actions, workDoneToken="cold")
    assert cached(first) == set() and first["summary"]["ok"] == 6
    warm = await run_batch(client, **actions, workDoneToken="warm")
    assert cached(warm) == EVERYTHING and findings(warm) == findings(first)
    values = client.values["warm"]
    shown = check_stream(values)
    assert shown[-1] == 100 and values[-1]["message"] == "6 ok (6 cached)"

    (ws / "p2" / "c.py").write_text("import sys\ny = 2\n")  # a new F401 in p2
    edited = await run_batch(client, **actions, workDoneToken="edited")
    assert cached(edited) == EVERYTHING - {("p2", "lint"), ("p2", "local")}
    assert [runs(ws, p) for p in ("p1", "p2", "p3")] == [1, 2, 1], "one project ran again"
    values = client.values["edited"]
    shown = check_stream(values)
    assert shown[-1] == 100 and values[-1]["message"] == "6 ok (4 cached)"
    counts = [m.group(1) for v in values if (m := re.match(r"(\d+)/6", v.get("message", "")))]
    assert all(int(n) >= 4 for n in counts[1:]), f"cached children count at once: {counts}"
    pushed = client.diagnostics[(ws / "p2" / "c.py").as_uri()]
    assert [d.code for d in pushed] == ["F401"], "the editor gets the fresh findings"
    assert [d.code for d in client.diagnostics[(ws / "p1" / "pkg" / "a.py").as_uri()]] == \
        ["F401", "T1"], "and keeps the cached ones"

    fresh = await run_batch(client, **actions, options={"cache": False})
    assert cached(fresh) == set() and findings(fresh) == findings(edited)


async def test_a_cached_single_child_keeps_the_stream_rules(client: RecordingClient) -> None:
    ws: Path = client.ws  # type: ignore[attr-defined]
    one = {"actions": ["lint"], "projects": [str(ws / "p1")]}
    await run_batch(client, **one)
    result = await run_batch(client, **one, workDoneToken="single")
    assert cached(result) == {("p1", "lint")}
    values = client.values["single"]
    check_stream(values)
    assert values[-1]["message"] == "1 ok (1 cached)"


async def test_mcp_findings_are_the_same_with_and_without_the_cache(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path / "ws")
    server = McpServer(ws, env=probe_env() | {"XDG_CACHE_HOME": str(tmp_path / "cache")})
    await server.start()
    try:
        arguments: dict[str, Any] = {"actions": ["lint", "local"]}
        first = (await call(server, arguments)).structured_content
        seen: list[tuple[float, float | None, str | None]] = []
        answer = await call(server, arguments, seen)
        second = answer.structured_content
        text = answer.content[0].text  # type: ignore[union-attr]
        assert text.startswith(f"FineCode: {len(EVERYTHING)} ok ({len(EVERYTHING)} cached)"), \
            "the agent's text says what its progress end said"
        assert "cached    p1 · lint" in text and "\nok " not in text, \
            "each reused result reads `cached`, as in the terminal's table"
        bypassed = (await call(server, {**arguments, "options": {"cache": False}}))
        assert first is not None and second is not None
        assert cached(first) == set() and cached(second) == EVERYTHING
        assert bypassed.structured_content is not None
        assert cached(bypassed.structured_content) == set()
        assert findings(first) == findings(second) == findings(bypassed.structured_content)
        assert strictly_increasing(seen)[-1] == 100
        assert [runs(ws, p) for p in ("p1", "p2", "p3")] == [2, 2, 2]
    finally:
        await server.close()
