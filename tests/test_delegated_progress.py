"""Delegated progress moves the parent's bar, on every surface (`ctx.run_action(progress=scope)`).

Every combination of {same project, another project, another environment} × {delegate before
the parent's first advance, after it} × {LSP, CLI, MCP}: while the delegated child advances, the
shown percentage rises strictly inside the parent's step, stays within 10 points (of the step)
of the child's own fraction one pacing period earlier and never ahead of it, never goes back,
and reaches the step's end when the delegation returns. Nested delegation subdivides twice.

The child (`delegating:steps`) writes when it made each step (the system's monotonic clock), and
every surface's values are stamped on arrival with the same clock, so a test compares what was
shown, when, with what the child had done by then. One server per surface for the whole module;
the terminal is a fresh `finecode-wm run` per combination (cold runners every time).
"""

from __future__ import annotations

import asyncio
import bisect
import itertools
import json
import re
import shutil
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
import pytest_lsp

from finecode_er.pacing import REPORT_INTERVAL

from .conftest import FIXTURES, probe_env
from .lsp_client import CONFIG, RecordingClient, init_params
from .rules import check_stream
from .test_lsp import run_batch
from .test_mcp import McpServer

pytestmark = [pytest.mark.timeout(120), pytest.mark.asyncio(loop_scope="module")]

WS = FIXTURES / "delegation"
APP = str(WS / "app")
TOLERANCE = 0.10  # of the parent's step, once a pacing period has passed
TARGETS = {"same-project": None, "other-project": ["../lib"], "other-environment": ["../iso"]}
WHEN = {"before-first-advance": True, "after-first-advance": False}
COMBOS = [pytest.param(target, when, id=f"{target}-{when}") for target in TARGETS
          for when in WHEN]
CHILD = {"n": 12, "delay": 0.08}  # about a second
CLI_CHILD = {"n": 16, "delay": 0.15}  # the plain renderer prints a line a second at most
AFTER = 0.2  # the parent's second step, after a delegation in its first: the step's end shows

Shown = list[tuple[float, float]]  # (arrival, percentage)


def parent_params(target: str, first: bool, timeline: Path, child: dict[str, Any]
                  ) -> dict[str, Any]:
    params: dict[str, Any] = {"action": "steps", "attach": True, "first": first,
                              "after": AFTER, "params": {**child, "timeline": str(timeline)}}
    if TARGETS[target] is not None:
        params["projects"] = TARGETS[target]
    return params


def step_of(first: bool) -> tuple[float, float]:
    """The parent's step the delegation subdivides, in percent of the bar."""
    return (0.0, 50.0) if first else (50.0, 100.0)


def read_steps(timeline: Path) -> list[float]:
    return [float(x) for x in timeline.read_text().split()]


def check_subdivided(shown: Shown, steps: list[float], lo: float, hi: float, *,
                     min_inside: int = 3, unit: float = 1.0) -> None:
    """The shown values against the child's own steps (`unit`: one shown step of the bar)."""
    values = [p for _, p in shown]
    assert values == sorted(values), f"the bar went back: {values}"
    inside = sorted({p for _, p in shown if lo < p < hi})
    assert len(inside) >= min_inside, f"rises strictly inside {lo:g}..{hi:g}: {shown}"
    assert steps, "the child made its steps"

    def own(t: float) -> float:
        return bisect.bisect_right(steps, t) / len(steps)

    slack = unit / (hi - lo)  # one whole percent, in fractions of the step
    for t, p in shown:
        fraction = min(1.0, max(0.0, (p - lo) / (hi - lo)))
        assert fraction <= own(t) + slack, f"{p:g} at {t:.3f} is ahead of the child: {shown}"
        if t - REPORT_INTERVAL >= steps[0]:
            behind = own(t - REPORT_INTERVAL) - fraction
            assert behind <= TOLERANCE + slack, (
                f"{p:g} at {t - steps[0]:+.3f} s after the child's first step lags it by "
                f"{behind:.0%} of the step: shown {[(round(a - steps[0], 3), b) for a, b in shown]}"
                f", child's steps {[round(s - steps[0], 3) for s in steps]}")
    after = [p for t, p in shown if t >= steps[-1]]
    assert after and max(after) >= hi, f"reaches the step's end ({hi:g}): {shown}"


def narrated(messages: list[str], target: str, action: str = "parent") -> None:
    """The delegated narrative is the parent's, without the counts of one-child batches."""
    project = {"same-project": "app", "other-project": "lib", "other-environment": "iso"}[target]
    # an estimate of the time left may follow once the run is 3 s old (a slow machine)
    pattern = re.compile(rf"^{action} · app: steps · {project}: file\d+\.py( · ~\d+ s left)?$")
    assert any(pattern.search(m) for m in messages), messages
    assert not any("/1 ·" in m for m in messages), messages


# -- LSP ----------------------------------------------------------------------------------------

@pytest_lsp.fixture(config=CONFIG, scope="module")
async def lsp(lsp_client: RecordingClient) -> AsyncIterator[None]:
    await lsp_client.initialize_session(init_params(root=WS, warm=False, maxParallel=3))
    # runners up and handlers imported: the parent's single-child stream begins determinate
    await run_batch(lsp_client, actions=["steps", "where"], params={"n": 1, "delay": 0})
    yield
    await lsp_client.shutdown_session()


@pytest.mark.parametrize(("target", "when"), COMBOS)
async def test_lsp(lsp: RecordingClient, tmp_path: Path, target: str, when: str) -> None:
    token = f"lsp-{target}-{when}"
    timeline = tmp_path / "steps"
    result = await run_batch(lsp, actions=["parent"], projects=[APP], workDoneToken=token,
                             params=parent_params(target, WHEN[when], timeline, CHILD))
    assert result["summary"] == {"ok": 1, "failed": 0, "cancelled": 0}, result
    assert result["results"][0]["result"]["summary"]["ok"] == 1
    values = lsp.values[token]
    check_stream(values)
    assert not [t for t in lsp.values if str(t).startswith("fc-")], "no child token leaks"
    shown = [(t, float(v["percentage"])) for t, v in zip(lsp.stamps[token], values, strict=True)
             if "percentage" in v]
    check_subdivided(shown, read_steps(timeline), *step_of(WHEN[when]))
    narrated([v.get("message", "") for v in values], target)


async def test_lsp_nested_delegation_subdivides_twice(lsp: RecordingClient,
                                                      tmp_path: Path) -> None:
    """app/parent → lib/parent → app/steps: the child moves the bar inside 75..100 % (the
    second step of the second step); it runs in a third runner, neither ancestor's."""
    timeline = tmp_path / "steps"
    inner = {"action": "steps", "projects": ["../app"], "attach": True,
             "params": {**CHILD, "timeline": str(timeline)}}
    result = await run_batch(lsp, actions=["parent"], projects=[APP], workDoneToken="nested",
                             params={"action": "parent", "projects": ["../lib"], "attach": True,
                                     "params": inner})
    (entry,) = result["results"]
    assert entry["status"] == "ok", entry
    leaf = entry["result"]["results"][0]["result"]["results"][0]
    assert leaf["status"] == "ok" and leaf["result"]["root"] == APP, leaf
    values = lsp.values["nested"]
    check_stream(values)
    shown = [(t, float(v["percentage"])) for t, v in zip(lsp.stamps["nested"], values,
                                                           strict=True) if "percentage" in v]
    check_subdivided(shown, read_steps(timeline), 75.0, 100.0)
    messages = [v.get("message", "") for v in values]
    assert any(re.search(r"parent · app: parent · lib: steps · app: file\d+\.py", m)
               for m in messages), messages


# -- MCP ----------------------------------------------------------------------------------------

@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def mcp() -> AsyncIterator[McpServer]:
    server = McpServer(WS)
    session = await server.start()
    await session.call_tool("run_actions", {"actions": ["steps", "where"],
                                            "params": {"n": 1, "delay": 0}})
    yield server
    await server.close()


@pytest.mark.parametrize(("target", "when"), COMBOS)
async def test_mcp(mcp: McpServer, tmp_path: Path, target: str, when: str) -> None:
    timeline = tmp_path / "steps"
    seen: list[tuple[float, float, float | None, str | None]] = []

    async def progress(value: float, total: float | None, message: str | None) -> None:
        seen.append((time.monotonic(), value, total, message))

    assert mcp.session is not None
    result = await mcp.session.call_tool(
        "run_actions", {"actions": ["parent"], "projects": ["app"],
                        "params": parent_params(target, WHEN[when], timeline, CHILD)},
        progress_callback=progress)
    assert not result.is_error
    assert result.structured_content is not None
    assert result.structured_content["summary"] == {"ok": 1, "failed": 0, "cancelled": 0}
    values = [value for _, value, _, _ in seen]
    assert all(a < b for a, b in itertools.pairwise(values)), values
    assert {total for _, _, total, _ in seen} == {100}
    assert values[-1] == 100
    check_subdivided([(t, value) for t, value, _, _ in seen], read_steps(timeline),
                     *step_of(WHEN[when]))
    narrated([m or "" for _, _, _, m in seen], target)


# -- terminal -----------------------------------------------------------------------------------

LINE = re.compile(r"^\[\s*[\d.]+s\](?:\s+(\d+)%)?(?: (.*))?$")  # elapsed, percentage?, text


def _toml(value: Any) -> str:
    """An inline TOML value (JSON's strings, numbers and arrays are TOML's too)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_toml(v)}" for k, v in value.items()) + " }"
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return json.dumps(value)


@pytest.fixture(scope="module")
def cli_ws(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the workspace whose app has one action per combination: the terminal passes
    no params, so the parent reads them from its handler config."""
    ws = tmp_path_factory.mktemp("cli") / "ws"
    shutil.copytree(WS, ws)
    lines = []
    for target in TARGETS:
        for when, first in WHEN.items():
            config = parent_params(target, first, ws / f"{target}-{when}.steps", CLI_CHILD)
            lines.append(f"\n[tool.finecode.actions.{target.replace('-', '_')}_{first}]\n"
                         f'handlers = [{{ source = "delegating:parent", config = '
                         f"{_toml(config)} }}]\n")
    app = ws / "app" / "pyproject.toml"
    app.write_text(app.read_text() + "".join(lines))
    return ws


async def run_cli(ws: Path, action: str) -> tuple[int, list[tuple[float, str]]]:
    """`finecode-wm run ACTION` with plain output; its stderr lines stamped on arrival."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "finecode_wm", "run", action, "--project", str(ws / "app"),
        "--workspace", str(ws), cwd=ws, env=probe_env(), stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE)
    assert proc.stderr is not None and proc.stdout is not None
    lines = []
    try:
        async with asyncio.timeout(60):
            while line := await proc.stderr.readline():
                lines.append((time.monotonic(), line.decode(errors="replace").rstrip()))
            await proc.stdout.read()
            code = await proc.wait()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    return code, lines


@pytest.mark.parametrize(("target", "when"), COMBOS)
async def test_cli(cli_ws: Path, target: str, when: str) -> None:
    first = WHEN[when]
    action = f"{target.replace('-', '_')}_{first}"
    code, lines = await run_cli(cli_ws, action)
    text = "\n".join(line for _, line in lines)
    assert code == 0, text
    parsed = [(t, m) for t, line in lines if (m := LINE.match(line))]
    assert parsed and parsed[0][1].group(2) == f"FineCode: {action}", text
    # a cold start may begin the bar without a percentage: the terminal takes it late
    shown = [(t, float(m.group(1))) for t, m in parsed if m.group(1) is not None]
    assert shown and shown[-1][1] == 100, text
    check_subdivided(shown, read_steps(cli_ws / f"{target}-{when}.steps"), *step_of(first),
                     min_inside=2)
    narrated([m.group(2) or "" for _, m in parsed], target, action)
