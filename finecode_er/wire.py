"""JSON-RPC 2.0 with Content-Length framing over asyncio streams, for both ends.

Standard library only: the runner is started once per project, and pygls + lsprotocol would cost
it ~0.3 s and ~30 MB. The WM uses the same class for its side of every runner pipe, with
notifications handed straight to a callback (no task per message) so that tens of thousands of
`$/progress` messages a second stay cheap.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import math
from collections.abc import Awaitable, Callable, Mapping
from types import MappingProxyType
from typing import Any, Protocol

METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603
REQUEST_CANCELLED = -32800

MAX_MESSAGE = 64 * 1024 * 1024
MIB = 1024 * 1024

RequestHandler = Callable[[str, Any], Awaitable[Any]]
NotificationHandler = Callable[[str, Any], None]


class Writer(Protocol):
    def write(self, data: bytes) -> None: ...
    def is_closing(self) -> bool: ...


class RpcError(Exception):
    """An error answer: raised by request handlers to answer with it, and by `request()`."""

    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.data = data

    def to_json(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.data is not None:
            error["data"] = self.data
        return error


def progress_sender(notify: Callable[[str, Any], None], token: Any) -> Callable[[Any], None]:
    """A function that sends each value as `$/progress` on `token` through `notify`."""
    def send(value: Any) -> None:
        notify("$/progress", {"token": token, "value": value})

    return send


class ConnectionClosed(Exception):
    """The peer went away before answering (or broke the framing: see `ProtocolViolation`)."""


class MessageTooLarge(ValueError):
    """A message over `MAX_MESSAGE`: never sent, since the peer could only drop the connection."""

    def __init__(self, size: int) -> None:
        super().__init__(f"{size / MIB:.1f} MiB, over the {MAX_MESSAGE // MIB} MiB limit")
        self.size = size


class ProtocolViolation(Exception):
    """The peer's stream cannot be framed any more: the connection is over."""


def finite(value: Any) -> Any:
    """`value` with every NaN and Infinity replaced by None: JSON has no such numbers."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite(v) for v in value]
    return value


def dumps(value: Any, *, mapped: Callable[[], None] | None = None, **options: Any) -> str:
    """Strict JSON (never `NaN`/`Infinity`, which JSON parsers reject).

    Strict encoding is tried first, so a value without non-finite floats costs nothing extra;
    otherwise they are written as `null` and `mapped` is called.
    """
    try:
        return json.dumps(value, ensure_ascii=False, allow_nan=False, **options)
    except ValueError as exc:
        if not str(exc).startswith("Out of range float"):
            raise  # a circular reference
    text = json.dumps(finite(value), ensure_ascii=False, allow_nan=False, **options)
    if mapped is not None:
        mapped()
    return text


def encode(message: dict[str, Any], *, mapped: Callable[[], None] | None = None) -> bytes:
    """One framed message. Raises `MessageTooLarge` over `MAX_MESSAGE`, and TypeError or
    ValueError for a value JSON cannot carry; non-finite floats become null (see `dumps`)."""
    body = dumps(message, mapped=mapped, separators=(",", ":")).encode()
    if len(body) > MAX_MESSAGE:
        raise MessageTooLarge(len(body))
    return b"Content-Length: %d\r\n\r\n%s" % (len(body), body)


def decoder(on_nonfinite: Callable[[], None] | None = None) -> json.JSONDecoder:
    """A JSON decoder that reads `NaN`, `Infinity` and overflowing numbers (`1e999`) as None,
    so no non-finite float enters from a peer that writes them."""
    def nonfinite() -> None:
        if on_nonfinite is not None:
            on_nonfinite()

    def constant(_name: str) -> None:
        nonfinite()

    def number(text: str) -> float | None:
        value = float(text)
        if math.isfinite(value):
            return value
        nonfinite()
        return None

    return json.JSONDecoder(parse_constant=constant, parse_float=number)


async def read_message(reader: asyncio.StreamReader) -> bytes | None:
    """The next framed body, or None at end of stream; skips header blocks without a length.

    Raises `ProtocolViolation` when what follows cannot be framed: a length over `MAX_MESSAGE`
    (its body would have to be read as headers), or a header line over the reader's limit.
    """
    while True:
        length = -1
        while True:
            try:
                line = await reader.readline()
            except ValueError:  # the line is over the reader's limit (and was discarded)
                raise ProtocolViolation("a header line over the reader's limit") from None
            if not line:
                return None
            if line in (b"\r\n", b"\n"):
                break
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                try:
                    length = int(value.strip())
                except ValueError:
                    length = -1
        if length > MAX_MESSAGE:
            raise ProtocolViolation(f"a message of {MessageTooLarge(length)}")
        if length >= 0:
            try:
                return await reader.readexactly(length)
            except asyncio.IncompleteReadError:
                return None


class Connection:
    """One JSON-RPC peer: answers its requests (each in its own task), sends ours.

    `$/cancelRequest` from the peer cancels the task answering that request, which then answers
    `RequestCancelled`. Unparsable messages are logged and skipped; they never end the connection.
    """

    def __init__(self, reader: asyncio.StreamReader, writer: Writer, *,
                 on_request: RequestHandler | None = None,
                 on_notification: NotificationHandler | None = None,
                 log: Callable[[str], None] | None = None,
                 on_cancel_sent: Callable[[int], None] | None = None,
                 on_cancel_answered: Callable[[int], None] | None = None) -> None:
        self._reader = reader
        self._writer = writer
        self._on_request = on_request
        self._on_notification = on_notification
        self._log = log or (lambda _msg: None)
        self._on_cancel_sent = on_cancel_sent
        self._on_cancel_answered = on_cancel_answered
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self._serving: dict[Any, asyncio.Task[None]] = {}
        # Requests we cancelled, by id, with when: the peer still owes an answer.
        self._cancelling: dict[int, float] = {}
        self.closed = False
        self.violation: str | None = None  # why the peer's stream could not be read on
        self._told: set[str] = set()
        self._decoder = decoder(lambda: self._once(
            "read", "NaN/Infinity in a message from the peer was read as null"))

    @property
    def cancelling(self) -> Mapping[int, float]:
        """The requests we cancelled whose answer the peer still owes (read-only), by id, with
        when they were cancelled."""
        return MappingProxyType(self._cancelling)

    def is_cancelling(self, msg_id: int | None = None) -> bool:
        """Does the peer still owe the answer to request `msg_id` that we cancelled (to any
        request we cancelled, when none is named)?"""
        return bool(self._cancelling) if msg_id is None else msg_id in self._cancelling

    def _once(self, key: str, message: str) -> None:
        """Log `message` the first time only (a value that keeps coming must not flood)."""
        if key not in self._told:
            self._told.add(key)
            self._log(message)

    def _encode(self, message: dict[str, Any]) -> bytes:
        return encode(message, mapped=lambda: self._once(
            "sent", "NaN/Infinity in a value was sent as null (JSON has no such numbers); "
                    "said once"))

    # -- sending ----------------------------------------------------------------------------

    def _send(self, message: dict[str, Any]) -> None:
        """Raises `MessageTooLarge` (nothing is sent), or TypeError for a value that is not JSON."""
        if self.closed or self._writer.is_closing():
            return
        self._writer.write(self._encode(message))

    def notify(self, method: str, params: Any = None) -> None:
        """A notification over the size limit is dropped and logged: the peer could not read it."""
        try:
            self._send({"jsonrpc": "2.0", "method": method, "params": params})
        except MessageTooLarge as exc:
            self._log(f"dropped a {method} notification of {exc}")

    async def request(self, method: str, params: Any = None) -> Any:
        """Send a request and wait for its answer; cancelling the wait cancels it at the peer.

        Params that cannot be sent raise here (`MessageTooLarge`, TypeError): nothing was sent.
        """
        if self.closed:
            raise ConnectionClosed(method)
        msg_id = next(self._ids)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[msg_id] = future
        try:
            self._send({"jsonrpc": "2.0", "id": msg_id, "method": method, "params": params})
            return await future
        except asyncio.CancelledError:
            # Cancelled, and no answer came in between (`_answered` takes the entry of a wait
            # cancelled but not yet resumed): tell the peer to stop working on it.
            if future.cancelled() and msg_id in self._pending:
                self._cancelling[msg_id] = asyncio.get_running_loop().time()
                self.notify("$/cancelRequest", {"id": msg_id})
                if self._on_cancel_sent is not None:
                    self._on_cancel_sent(msg_id)
            raise
        finally:
            self._pending.pop(msg_id, None)

    # -- receiving --------------------------------------------------------------------------

    async def serve(self) -> None:
        """Read until the peer closes its end or breaks the framing (`violation` says how);
        then fail every request still waiting."""
        try:
            while (body := await read_message(self._reader)) is not None:
                self._dispatch(body)
        except ProtocolViolation as exc:
            self.violation = f"protocol violation: {exc}"
            self._log(f"{self.violation}; the connection is closed")
        finally:
            self.closed = True
            reason = self.violation or "peer closed the connection"
            for future in self._pending.values():
                if not future.done():
                    future.set_exception(ConnectionClosed(reason))
            for task in self._serving.values():
                task.cancel()

    def _dispatch(self, body: bytes) -> None:
        try:
            message = self._decoder.decode(body.decode())
        except ValueError:
            self._log(f"dropped a message that is not JSON: {body[:120]!r}")
            return
        if not isinstance(message, dict) or not isinstance(message.get("id"), int | str | None):
            self._log(f"dropped a message that is not a JSON-RPC object: {body[:120]!r}")
            return
        try:
            self._route(message)
        except Exception as exc:  # a malformed message never ends the connection
            self._log(f"dropped a malformed message ({exc!r}): {body[:120]!r}")

    def _route(self, message: dict[str, Any]) -> None:
        method = message.get("method")
        if method is None:
            self._answered(message)
        elif "id" in message:
            self._start_request(message["id"], method, message.get("params"))
        elif method == "$/cancelRequest":
            params = message.get("params")
            cancel_id = params.get("id") if isinstance(params, dict) else None
            task = self._serving.get(cancel_id) if isinstance(cancel_id, int | str) else None
            if task is not None:
                task.cancel()
        elif self._on_notification is not None:
            try:
                self._on_notification(method, message.get("params"))
            except Exception as exc:  # a bad notification must not end the connection
                self._log(f"notification {method} failed: {exc!r}")

    def _answered(self, message: dict[str, Any]) -> None:
        msg_id = message.get("id")
        if self._cancelling.pop(msg_id, None) is not None:  # type: ignore[arg-type]
            if self._on_cancel_answered is not None:  # the late answer to a request we cancelled
                self._on_cancel_answered(msg_id)  # type: ignore[arg-type]
            return
        future = self._pending.get(msg_id)  # type: ignore[arg-type]
        if future is not None and future.cancelled():
            # The wait was cancelled and has not resumed yet: the answer is here, so no
            # `$/cancelRequest` must follow (it would never be answered).
            del self._pending[msg_id]  # type: ignore[arg-type]
            return
        if future is None or future.done():
            self._log(f"dropped an answer to no request: {str(message)[:120]}")
            return
        error = message.get("error")
        if isinstance(error, dict):
            future.set_exception(RpcError(int(error.get("code", INTERNAL_ERROR)),
                                          str(error.get("message", "")), error.get("data")))
        else:
            future.set_result(message.get("result"))

    def _start_request(self, msg_id: Any, method: str, params: Any) -> None:
        task = asyncio.get_running_loop().create_task(self._answer(msg_id, method, params))
        self._serving[msg_id] = task
        task.add_done_callback(lambda done: self._never_started(done, msg_id, method))

    def _never_started(self, task: asyncio.Task[None], msg_id: Any, method: str) -> None:
        """A `$/cancelRequest` read right after its request cancels the task before it began:
        `_answer` never ran, and the peer is still owed the answer."""
        if task.cancelled() and self._serving.get(msg_id) is task:  # `_answer` pops it
            del self._serving[msg_id]
            self._send({"jsonrpc": "2.0", "id": msg_id, "error": {
                "code": REQUEST_CANCELLED, "message": f"{method} cancelled"}})

    async def _answer(self, msg_id: Any, method: str, params: Any) -> None:
        reply: dict[str, Any] = {"jsonrpc": "2.0", "id": msg_id}
        try:
            if self._on_request is None:
                raise RpcError(METHOD_NOT_FOUND, f"no requests handled here: {method}")
            reply["result"] = await self._on_request(method, params)
        except asyncio.CancelledError:
            reply["error"] = {"code": REQUEST_CANCELLED, "message": f"{method} cancelled"}
        except RpcError as exc:
            reply["error"] = exc.to_json()
        except Exception as exc:
            reply["error"] = {"code": INTERNAL_ERROR, "message": f"{type(exc).__name__}: {exc}"}
        finally:
            self._serving.pop(msg_id, None)
        try:
            data = self._encode(reply)
        except MessageTooLarge as exc:
            data = self._failure(msg_id, f"{method}: {'result' if 'result' in reply else 'error'}"
                                         f" is {exc}")
        except Exception as exc:  # any answer is better than none: the peer would wait forever
            data = self._failure(msg_id, f"{method}: result is not JSON: "
                                         f"{type(exc).__name__}: {exc}"[:1000])
        if not self.closed and not self._writer.is_closing():
            self._writer.write(data)

    def _failure(self, msg_id: Any, message: str) -> bytes:
        self._log(message)
        return self._encode({"jsonrpc": "2.0", "id": msg_id,
                             "error": {"code": INTERNAL_ERROR, "message": message}})
