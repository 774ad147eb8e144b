"""The runner pipe under hostile input: strict JSON both ways, the size limit, broken framing,
and the stderr drain's line cutting."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from finecode_er.api import RunActionContext
from finecode_er.reporter import ExecutionReporter
from finecode_er.wire import (
    INTERNAL_ERROR,
    MAX_MESSAGE,
    Connection,
    ConnectionClosed,
    MessageTooLarge,
    RpcError,
    dumps,
    encode,
    finite,
)
from finecode_wm.runners.process import LineCutter

pytestmark = pytest.mark.timeout(30)


def strict(text: str | bytes) -> Any:
    """Parse JSON the way strict parsers (JavaScript, Go, …) do: no NaN or Infinity."""
    def refuse(name: str) -> None:
        raise ValueError(f"{name} is not JSON")

    return json.loads(text, parse_constant=refuse)


class Pipe:
    """The writing end of a Connection, collecting what it sends."""

    def __init__(self) -> None:
        self.data = bytearray()

    def write(self, data: bytes) -> None:
        self.data += data

    def is_closing(self) -> bool:
        return False

    def messages(self) -> list[dict[str, Any]]:
        found, rest = [], bytes(self.data)
        while rest:
            header, _, rest = rest.partition(b"\r\n\r\n")
            length = int(header.split(b":")[1])
            found.append(strict(rest[:length]))
            rest = rest[length:]
        return found


def framed(body: bytes) -> bytes:
    return b"Content-Length: %d\r\n\r\n%s" % (len(body), body)


def connection(reader: asyncio.StreamReader, pipe: Pipe, logged: list[str],
               **kwargs: Any) -> Connection:
    return Connection(reader, pipe, log=logged.append, **kwargs)


# -- strict JSON ----------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner,
                                                                max_size=3),
    max_leaves=12)


@settings(max_examples=150, deadline=None)
@given(json_values)
def test_dumps_is_always_strict_json_and_keeps_finite_values(value: Any) -> None:
    said: list[bool] = []
    text = dumps(value, mapped=lambda: said.append(True))
    assert strict(text) == json.loads(json.dumps(finite(value)))
    assert bool(said) == (text != json.dumps(value, ensure_ascii=False)), \
        "mapped is said exactly when something was mapped"


def test_dumps_refuses_what_json_cannot_carry() -> None:
    with pytest.raises(TypeError, match="set"):
        dumps({"x": {1, 2}})
    loop: list[Any] = []
    loop.append(loop)
    with pytest.raises(ValueError, match="Circular"):
        dumps(loop)


async def test_a_result_with_nan_is_sent_as_null_and_said_once() -> None:
    async def answer(method: str, params: Any) -> Any:
        return {"x": float("nan"), "y": [float("inf"), 2.5]}

    reader, pipe, logged = asyncio.StreamReader(), Pipe(), []
    conn = connection(reader, pipe, logged, on_request=answer)
    serving = asyncio.create_task(conn.serve())
    for i in (1, 2):
        reader.feed_data(framed(json.dumps({"jsonrpc": "2.0", "id": i, "method": "run"}).encode()))
    for _ in range(20):
        await asyncio.sleep(0)
    reader.feed_eof()
    await serving
    answers = pipe.messages()
    assert [a["result"] for a in answers] == [{"x": None, "y": [None, 2.5]}] * 2
    assert sum("NaN/Infinity" in m for m in logged) == 1, logged


async def test_nan_infinity_and_overflowing_numbers_from_a_peer_are_read_as_null() -> None:
    got: list[Any] = []
    reader, pipe, logged = asyncio.StreamReader(), Pipe(), []
    conn = connection(reader, pipe, logged, on_notification=lambda m, p: got.append(p))
    serving = asyncio.create_task(conn.serve())
    for body in (b'{"jsonrpc":"2.0","method":"$/progress","params":[NaN,Infinity,-Infinity]}',
                 b'{"jsonrpc":"2.0","method":"$/progress","params":{"total":1e999,"done":2.5}}'):
        reader.feed_data(framed(body))
    reader.feed_eof()
    await serving
    assert got == [[None, None, None], {"total": None, "done": 2.5}]
    assert sum("read as null" in m for m in logged) == 1, logged


async def test_a_cancel_read_with_its_request_is_still_answered() -> None:
    """Both in one read: the task answering the request is cancelled before it ever ran."""
    async def answer(method: str, params: Any) -> Any:
        await asyncio.sleep(10)

    reader, pipe, logged = asyncio.StreamReader(), Pipe(), []
    conn = connection(reader, pipe, logged, on_request=answer)
    serving = asyncio.create_task(conn.serve())
    reader.feed_data(framed(b'{"jsonrpc":"2.0","id":7,"method":"run"}') +
                     framed(b'{"jsonrpc":"2.0","method":"$/cancelRequest","params":{"id":7}}'))
    for _ in range(20):
        await asyncio.sleep(0)
    assert pipe.messages() == [{"jsonrpc": "2.0", "id": 7, "error": {
        "code": -32800, "message": "run cancelled"}}]
    assert not conn._serving
    reader.feed_eof()
    await serving


async def test_an_answer_that_crosses_our_cancel_sends_no_cancel() -> None:
    """The wait is cancelled and, before it resumes, the answer arrives: no `$/cancelRequest`
    may follow (the peer would never answer it, and the runner would be killed as deaf)."""
    reader, pipe, logged = asyncio.StreamReader(), Pipe(), []
    sent: list[int] = []
    conn = Connection(reader, pipe, log=logged.append, on_cancel_sent=sent.append)
    serving = asyncio.create_task(conn.serve())
    waiting = asyncio.create_task(conn.request("run", {}))
    await asyncio.sleep(0)
    [request] = pipe.messages()
    waiting.cancel()  # the wait's future is cancelled now; the task resumes on the next step
    conn._answered({"jsonrpc": "2.0", "id": request["id"], "result": {"ok": True}})
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert [m for m in pipe.messages() if m.get("method") == "$/cancelRequest"] == []
    assert sent == [] and not conn.cancelling and not conn._pending
    assert not [m for m in logged if "dropped" in m]
    reader.feed_eof()
    await serving


# -- the size limit -------------------------------------------------------------------------

def test_encode_refuses_a_message_over_the_limit() -> None:
    with pytest.raises(MessageTooLarge, match=r"64\.0 MiB, over the 64 MiB limit"):
        encode({"x": "y" * MAX_MESSAGE})


async def test_a_result_over_the_limit_is_answered_with_an_error_and_the_peer_serves_on() -> None:
    async def answer(method: str, params: Any) -> Any:
        return "x" * (MAX_MESSAGE + 1) if method == "huge" else "small"

    reader, pipe, logged = asyncio.StreamReader(), Pipe(), []
    conn = connection(reader, pipe, logged, on_request=answer)
    serving = asyncio.create_task(conn.serve())
    for i, method in enumerate(("huge", "fine"), 1):
        reader.feed_data(framed(json.dumps({"jsonrpc": "2.0", "id": i,
                                            "method": method}).encode()))
    for _ in range(20):
        await asyncio.sleep(0)
    reader.feed_eof()
    await serving
    huge, fine = pipe.messages()
    assert huge["error"]["code"] == INTERNAL_ERROR
    assert huge["error"]["message"] == "huge: result is 64.0 MiB, over the 64 MiB limit"
    assert fine["result"] == "small"


async def test_oversize_notifications_are_dropped_and_requests_raise_before_sending() -> None:
    reader, pipe, logged = asyncio.StreamReader(), Pipe(), []
    conn = connection(reader, pipe, logged)
    conn.notify("$/progress", {"token": "p", "value": "x" * MAX_MESSAGE})
    assert not pipe.data and any("dropped a $/progress notification" in m for m in logged)
    with pytest.raises(MessageTooLarge):
        await conn.request("run", {"params": "x" * MAX_MESSAGE})
    with pytest.raises(TypeError):
        await conn.request("run", {"params": {1, 2}})
    assert not pipe.data and not conn._pending, "nothing sent, nothing left waiting"


# -- framing a peer breaks ------------------------------------------------------------------

@pytest.mark.parametrize("garbage", [b"Content-Length: 100000000\r\n\r\n",
                                     b"X-Bar: " + b"=" * 200 + b"\r\n"])
async def test_an_unframeable_stream_ends_the_connection_with_the_reason(garbage: bytes) -> None:
    reader, pipe, logged = asyncio.StreamReader(limit=128), Pipe(), []
    conn = connection(reader, pipe, logged)
    serving = asyncio.create_task(conn.serve())
    waiting = asyncio.create_task(conn.request("run", {}))
    await asyncio.sleep(0)
    reader.feed_data(garbage)
    await asyncio.wait_for(serving, 5)
    assert conn.closed and conn.violation is not None
    assert conn.violation.startswith("protocol violation: ")
    with pytest.raises(ConnectionClosed, match="protocol violation"):
        await waiting


async def test_a_header_block_without_length_is_still_skipped() -> None:
    got: list[Any] = []
    reader, pipe, logged = asyncio.StreamReader(), Pipe(), []
    conn = connection(reader, pipe, logged, on_notification=lambda m, p: got.append(p))
    serving = asyncio.create_task(conn.serve())
    reader.feed_data(b"X-Nothing: 1\r\n\r\n" + framed(b'{"jsonrpc":"2.0","method":"m","params":1}'))
    reader.feed_eof()
    await serving
    assert got == [1] and conn.violation is None


async def test_an_error_answer_to_our_request_is_raised() -> None:
    reader, pipe, logged = asyncio.StreamReader(), Pipe(), []
    conn = connection(reader, pipe, logged)
    serving = asyncio.create_task(conn.serve())
    waiting = asyncio.create_task(conn.request("run", {}))
    await asyncio.sleep(0)
    reader.feed_data(framed(b'{"jsonrpc":"2.0","id":1,"error":{"code":-32603,"message":"no"}}'))
    with pytest.raises(RpcError, match="no"):
        await waiting
    reader.feed_eof()
    await serving


# -- stderr lines ---------------------------------------------------------------------------

def cut_all(chunks: list[bytes], limit: int) -> list[str]:
    cutter = LineCutter(limit)
    lines = [line for chunk in chunks for line in cutter.feed(chunk)]
    return lines + cutter.end()


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300), st.lists(st.integers(1, 50), max_size=10), st.integers(4, 40))
def test_lines_are_the_same_however_the_stream_is_chunked(data: bytes, cuts: list[int],
                                                           limit: int) -> None:
    chunks, rest = [], data
    for n in cuts:
        chunks.append(rest[:n])
        rest = rest[n:]
    chunks.append(rest)
    assert cut_all(chunks, limit) == cut_all([data], limit)
    for line in cut_all([data], limit):
        text, _, _ = line.partition(" … (line cut")
        assert len(text.encode()) <= 3 * limit, "a cut line keeps at most `limit` bytes"


def test_a_line_that_never_ends_is_given_cut_at_once_and_the_rest_dropped() -> None:
    cutter = LineCutter(10)
    assert cutter.feed(b"#" * 4) == []
    assert cutter.feed(b"#" * 1000) == ["########## … (line cut at 10 bytes)"]
    for _ in range(1000):
        assert cutter.feed(b"#" * 1000) == []
    assert len(cutter._part) == 0, "never buffers more than the limit"
    assert cutter.feed(b"\rdone\n\n12345") == ["done"]
    assert cutter.end() == ["12345"]
    assert cutter.feed(b"0123456789\n") == ["0123456789"], "a line of the limit is whole"


# -- what a runner sends --------------------------------------------------------------------

async def test_titles_and_messages_a_runner_sends_are_cut_to_1000_characters() -> None:
    sent: list[dict[str, Any]] = []
    reporter = ExecutionReporter(sent.append, title="t", handlers=1, interval=0)
    ctx = RunActionContext(project_root=Path("."), config={}, action="a", reporter=reporter,
                           work=reporter.handler_work())
    async with ctx.progress("T" * 5000, total=2) as progress:
        await progress.advance(1, message="m" * 5000)
    reporter.finish("failed: " + "e" * 5000)
    texts = [v.get(key) for v in sent for key in ("title", "message") if key in v]
    assert texts and all(len(text) <= 1000 for text in texts), [len(t) for t in texts]
    assert sent[0]["title"].startswith("TTT") and sent[-1]["message"].startswith("failed: ee")
