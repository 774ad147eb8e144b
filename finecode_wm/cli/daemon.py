"""`finecode-wm daemon`: a background process that runs `finecode-wm run` for the terminal.

A run in a new process pays the interpreter's start, FineCode's imports and discovery before it
does any work: with every result cached that is most of it. The daemon pays them once and keeps,
per workspace folder, the service a run would build (discovered projects, config, directory
listings, the result cache in memory; not its runners); the caller (`client`) hands it its
command line, current directory, environment and standard streams, and gets the exit code back.
The run itself is `commands`'s.

What keeps it honest:
- one run at a time; a caller that finds it busy runs in its own process;
- a run is taken only from the environment the daemon was started in (the shell's own
  variables aside, `client.SHELL_VARIABLES`): handlers see the daemon's environment;
- every run re-walks the folder and re-reads what changed, as the editor's server does;
- FineCode's own code edited or upgraded since the daemon started: the daemon stops, the run
  goes on in the caller's process;
- only its own user can reach it (a 0700 folder, and the peer's uid checked);
- it stops after `--idle-timeout` seconds without a run, on `daemon stop`, and on SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import fcntl
import io
import json
import os
import resource
import signal
import socket
import struct
import subprocess
import sys
import time
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

import finecode_er

from ..service import FineCode
from . import arguments, client
from .commands import OnStop, Terminal, run_command

__all__ = ["Daemon", "command"]

START_WAIT = 15.0  # seconds `daemon start` waits for the new daemon to answer
STOP_WAIT = 15.0  # seconds `daemon stop` waits for it to be gone
KEPT_SERVICES = 8  # workspaces kept warm at once; the least recently used is closed
FIRST_MESSAGE_WAIT = 5.0
MAX_MESSAGE = 4 * 1024 * 1024
MAX_SOCKET_PATH = 107  # bytes of a Unix socket's path (Linux: 108 with the final NUL)


def _code_files() -> list[Path]:
    return sorted(p for package in (Path(__file__).resolve().parents[1],
                                    Path(finecode_er.__file__).resolve().parent)
                  for p in package.rglob("*.py"))


def code_signature() -> tuple[tuple[str, int, int, int], ...]:
    """FineCode's own source as it is now: the daemon must not answer with older code."""
    signature = []
    for path in _code_files():
        try:
            info = path.stat()
        except OSError:
            continue
        signature.append((str(path), info.st_mtime_ns, info.st_size, info.st_ino))
    return tuple(signature)


class _Kept:
    """Services kept between runs, one per (workspace folder, `--max-parallel`)."""

    def __init__(self) -> None:
        self._services: dict[tuple[Path, int | None], FineCode] = {}

    def get(self, folder: Path, max_parallel: int | None) -> FineCode:
        key = (folder.resolve(), max_parallel)
        service = self._services.pop(key, None)
        if service is None:
            # one run at a time, waited for: the cache's work is done on the loop itself
            service = FineCode(lambda _message: None, max_parallel=max_parallel,
                               cache_on_loop=True)
        self._services[key] = service  # the most recently used last
        return service

    async def release(self, service: FineCode) -> None:
        """Kept, its results written and its runners stopped (the next run starts its own, as
        it would without the daemon: a runner keeps the handler code it imported);
        closed and forgotten when a second Ctrl-C killed its runners, and the oldest beyond
        the cap."""
        if service.pool.closed:
            self._forget(service)
            await service.close()
        else:
            if service.cache is not None:
                await service.cache.settle()
            await service.pool.retire_all()
        while len(self._services) > KEPT_SERVICES:
            oldest = next(iter(self._services.values()))
            self._forget(oldest)
            await oldest.close()

    def _forget(self, service: FineCode) -> None:
        self._services = {k: s for k, s in self._services.items() if s is not service}

    def folders(self) -> list[str]:
        return sorted({str(folder) for folder, _ in self._services})

    async def close(self) -> None:
        services, self._services = list(self._services.values()), {}
        await asyncio.gather(*(s.close() for s in services), return_exceptions=True)


class _Relayed:
    """The caller's Ctrl-C and SIGTERM, relayed over its connection; the connection closing (the
    caller killed) stops the run as SIGHUP would."""

    def __init__(self) -> None:
        self._handler: OnStop | None = None
        self._pending: list[int] = []
        self.note: str | None = None  # why the daemon itself stopped the run, said after it

    def on_stop(self, handler: OnStop | None) -> None:
        self._handler = handler
        if handler is not None:
            for signum in self._pending:
                handler(signum)
        self._pending = []

    def stop(self, signum: int) -> None:
        if self._handler is None:
            self._pending.append(signum)
        else:
            self._handler(signum)


class Daemon:
    """The server: accepts callers on its socket and runs their commands one at a time."""

    def __init__(self, path: str, idle_timeout: float) -> None:
        self.path = path
        self.idle_timeout = idle_timeout
        self.services = _Kept()
        self.environ = dict(os.environ)
        self.signature = code_signature()
        self.started = time.time()
        self.served = 0
        self.busy = False
        self._last = time.monotonic()
        self._stopping = asyncio.Event()
        self._why = ""
        self._running: _Relayed | None = None

    async def serve(self, listener: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        for signum, why in ((signal.SIGTERM, "SIGTERM"), (signal.SIGINT, "SIGINT")):
            loop.add_signal_handler(signum, self.stop, why)
        listener.setblocking(False)
        try:
            async with asyncio.TaskGroup() as group:
                accepting = group.create_task(self._accept(listener, group))
                await self._until_stopped()
                _log(f"stopping: {self._why}")
                accepting.cancel()
                if self._running is not None:  # the run in progress stops as on SIGTERM
                    self._running.note = (f"note: the daemon stopped during the run "
                                          f"({self._why}), which was cancelled")
                    self._running.stop(signal.SIGTERM)
        finally:
            await self.services.close()
            _log("stopped")

    def stop(self, why: str) -> None:
        if not self._stopping.is_set():
            self._why = why
        self._stopping.set()

    async def _until_stopped(self) -> None:
        while not self._stopping.is_set():
            left = self.idle_timeout - (time.monotonic() - self._last)
            if left <= 0 and not self.busy:
                self.stop(f"no run for {self.idle_timeout:g} s")
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), max(left, 1.0))

    def differ(self, env: Any) -> list[str] | None:
        """The variables `env` has otherwise than the daemon's own environment, the shell's
        aside (`client.SHELL_VARIABLES`); None when `env` is no environment."""
        if not isinstance(env, dict):
            return None
        return sorted(k for k in set(env) ^ set(self.environ) | {
            k for k in set(env) & set(self.environ) if env[k] != self.environ[k]}
            if k not in client.SHELL_VARIABLES)

    async def _accept(self, listener: socket.socket, group: asyncio.TaskGroup) -> None:
        loop = asyncio.get_running_loop()
        while True:
            connection, _ = await loop.sock_accept(listener)
            group.create_task(self._serve_one(connection))

    async def _serve_one(self, connection: socket.socket) -> None:
        with connection:
            connection.setblocking(False)
            if not _same_user(connection):
                return
            try:
                message, fds, rest = await asyncio.wait_for(_first_message(connection),
                                                            FIRST_MESSAGE_WAIT)
            except (OSError, ValueError, TimeoutError):
                return
            with contextlib.suppress(OSError):
                if isinstance(message.get("run"), dict):
                    await self._run(connection, message["run"], fds, rest)  # closes fds
                    return
                _close(fds)
                if "control" in message:
                    await self._control(connection, str(message["control"]),
                                        message.get("env"))

    async def _control(self, connection: socket.socket, control: str, env: Any) -> None:
        if control == "status":
            await _send(connection, {"pid": os.getpid(), "started": self.started,
                                     "served": self.served, "busy": self.busy,
                                     "workspaces": self.services.folders(),
                                     "idle_timeout": self.idle_timeout,
                                     "differ": self.differ(env)})
        elif control == "stop":
            await _send(connection, {"stopping": os.getpid()})
            self.stop("finecode-wm daemon stop")

    def _refusal(self, run: dict[str, Any], fds: list[int]) -> dict[str, Any] | None:
        """Why this run is not taken here (the caller runs it itself), or None."""
        if self._stopping.is_set() or self.busy:
            return {"fallback": "busy"}
        if len(fds) != 3:
            return {"fallback": "streams"}
        if code_signature() != self.signature:
            self.stop("FineCode's own code changed")
            return {"fallback": "stale", "note": "note: the daemon was running older FineCode "
                    "code, so it stopped; this run does not use it (start it again: "
                    "finecode-wm daemon start)"}
        if {k: run.get(k) for k in ("prefix", "package")} != client.installation():
            return {"fallback": "installation"}
        differ = self.differ(run.get("env"))
        if differ is None:
            return {"fallback": "request"}
        if differ:
            return {"fallback": "environment", "note": "note: not using the daemon: this "
                    f"environment differs from the one it was started in ({', '.join(differ)});"
                    " restart it from here to use it: finecode-wm daemon restart"}
        return None

    async def _run(self, connection: socket.socket, run: dict[str, Any], fds: list[int],
                   rest: bytes) -> None:
        refusal = self._refusal(run, fds)
        if refusal is None and _limits_file_size(connection):
            refusal = {"fallback": "file size limit"}
        args = None if refusal is not None else _arguments(run.get("argv"))
        if refusal is None and args is None:
            refusal = {"fallback": "arguments"}  # the caller's own parser says why
        if refusal is None:
            try:
                os.chdir(str(run.get("cwd")))
            except (OSError, ValueError):
                refusal = {"fallback": "directory"}
        if refusal is not None or args is None:
            _close(fds)
            _log(f"not taken ({(refusal or {}).get('fallback')}): {run.get('argv')}")
            await _send(connection, refusal or {})
            return
        self.busy, self._last = True, time.monotonic()
        started = time.monotonic()
        stops = self._running = _Relayed()
        listening = asyncio.create_task(_relay(connection, rest, stops))
        code = 1
        try:
            with _streams(fds, run.get("streams")) as (stdout, stderr):
                await _send(connection, {"accepted": True})
                terminal = Terminal.of(stdout, stderr, run["env"])
                try:
                    code = await run_command(args, terminal, self.services, stops)
                except Exception:  # a bug: said to the caller as it would be in its process
                    print(traceback.format_exc(), file=sys.stderr, flush=True)
                    with contextlib.suppress(OSError, ValueError):
                        stderr.write(traceback.format_exc())
                        stderr.flush()
                if stops.note is not None:
                    with contextlib.suppress(OSError, ValueError):
                        stderr.write(f"finecode-wm: {stops.note}\n")
                        stderr.flush()
        finally:
            # Its read on the connection is undone before the connection closes: a read left
            # registered on a closed descriptor was found by the next caller's connection,
            # which got the same number (and was closed under it).
            listening.cancel()
            await asyncio.gather(listening, return_exceptions=True)
            self._running = None
            self.served += 1
            _log(f"ran {run.get('argv')} in {run.get('cwd')}: exit {code}, "
                 f"{time.monotonic() - started:.3f} s")
            self.busy, self._last = False, time.monotonic()
            os.chdir("/")
        with contextlib.suppress(OSError):
            await _send(connection, {"exit": code})


def _log(message: str) -> None:
    """A line in the daemon's log (its stderr, next to its socket)."""
    print(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {message}", file=sys.stderr, flush=True)


def _same_user(connection: socket.socket) -> bool:
    """The caller is this user (Linux says who is on the other end; elsewhere the socket's
    0700 folder is the guard)."""
    if not hasattr(socket, "SO_PEERCRED"):
        return True
    credentials = connection.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED,
                                        struct.calcsize("3i"))
    _pid, uid, _gid = struct.unpack("3i", credentials)
    return bool(uid == os.getuid())


def _limits_file_size(connection: socket.socket) -> bool:
    """The caller may write only so much into a file (`ulimit -f`): the daemon writes the
    output under its own limit, so the caller's would not hold (Linux says who the caller is;
    elsewhere, or when its limit cannot be read, it is not known)."""
    if not hasattr(socket, "SO_PEERCRED") or not hasattr(resource, "prlimit"):
        return False
    credentials = connection.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED,
                                        struct.calcsize("3i"))
    pid = struct.unpack("3i", credentials)[0]
    try:
        soft, _hard = resource.prlimit(pid, resource.RLIMIT_FSIZE)
    except OSError:
        return False
    return bool(soft != resource.RLIM_INFINITY)


async def _readable(connection: socket.socket) -> None:
    loop = asyncio.get_running_loop()
    ready: asyncio.Future[None] = loop.create_future()

    def wake() -> None:
        if not ready.done():
            ready.set_result(None)

    loop.add_reader(connection.fileno(), wake)
    try:
        await ready
    finally:
        loop.remove_reader(connection.fileno())


def _close(fds: list[int]) -> None:
    for fd in fds:
        with contextlib.suppress(OSError):
            os.close(fd)


def _message(line: bytes) -> dict[str, Any]:
    """One line of the caller's as a JSON object; ValueError for anything else, a nesting too
    deep to parse included (its RecursionError ended the whole daemon)."""
    try:
        message = json.loads(line)
    except RecursionError:
        raise ValueError("nested too deeply") from None
    if not isinstance(message, dict):
        raise ValueError("not a JSON object")
    return message


async def _first_message(connection: socket.socket) -> tuple[dict[str, Any], list[int], bytes]:
    """The caller's first line, the descriptors sent with it, and what followed it; on any
    failure (cancelled included) the descriptors are closed."""
    data, fds = b"", []
    try:
        while b"\n" not in data:
            try:
                chunk, more, _flags, _address = socket.recv_fds(connection, 65536, 3)
            except BlockingIOError:
                await _readable(connection)
                continue
            fds += more
            if not chunk or len(data) > MAX_MESSAGE:
                raise ValueError("no request")
            data += chunk
        line, rest = data.split(b"\n", 1)
        message = _message(line)
    except BaseException:
        _close(fds)
        raise
    return message, fds, rest


async def _relay(connection: socket.socket, rest: bytes, stops: _Relayed) -> None:
    """The caller's signals, as they come; its connection closing is a hang-up."""
    loop = asyncio.get_running_loop()
    buffer = rest
    while True:
        while b"\n" in buffer:
            line, buffer = buffer.split(b"\n", 1)
            with contextlib.suppress(ValueError, TypeError, KeyError):
                signum = int(_message(line)["signal"])
                if signum in (signal.SIGINT, signal.SIGTERM):
                    stops.stop(signum)
        try:
            chunk = await loop.sock_recv(connection, 4096)
        except OSError:
            chunk = b""
        if not chunk:
            stops.stop(signal.SIGHUP)
            return
        buffer += chunk


async def _send(connection: socket.socket, message: dict[str, Any]) -> None:
    await asyncio.get_running_loop().sock_sendall(connection,
                                                  json.dumps(message).encode() + b"\n")


def _arguments(argv: Any) -> argparse.Namespace | None:
    """The caller's `run` command line, or None when it is not one the daemon runs (a usage
    error or `--help`: the caller's own parser prints those)."""
    if not isinstance(argv, list) or not all(isinstance(w, str) for w in argv):
        return None
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        try:
            args = arguments.parse(argv)
        except SystemExit:
            return None
    return args if args.command == "run" else None


@contextlib.contextmanager
def _streams(fds: list[int], encodings: Any) -> Iterator[tuple[TextIO, TextIO]]:
    """The caller's stdout and stderr, in its encodings; every descriptor closed after."""
    def spec(i: int) -> tuple[str, str]:
        try:
            return str(encodings[i]["encoding"]), str(encodings[i]["errors"])
        except (TypeError, KeyError, IndexError):
            return "utf-8", "strict"

    opened: list[TextIO] = []
    try:
        for i, fd in enumerate(fds[1:3]):
            encoding, errors = spec(i)
            try:
                opened.append(open(fd, "w", encoding=encoding, errors=errors, closefd=False))
            except LookupError:
                opened.append(open(fd, "w", encoding="utf-8", errors="replace", closefd=False))
        yield opened[0], opened[1]
    finally:
        for stream in opened:
            with contextlib.suppress(OSError, ValueError):
                stream.close()
        _close(fds)


# -- `finecode-wm daemon start|stop|restart|status`, in the caller's process -----------------


def command(action: str, *, idle_timeout: float) -> int:
    """`finecode-wm daemon ACTION`; its exit code."""
    try:
        return _command(action, idle_timeout)
    except BrokenPipeError:  # the reader left (`status | head -1`): the rest goes nowhere
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        return 0


def _command(action: str, idle_timeout: float) -> int:
    path = client.address()
    if action == "status":
        return _status(path)
    if action in ("stop", "restart"):
        code = _stop(path)
        if action == "stop" or code != 0:
            return code
    return _start(path, idle_timeout)


NONE_RUNNING = "no daemon is running (for this user and this FineCode installation)"


def _elsewhere(answer: dict[str, Any]) -> str:
    """What a daemon started in another environment means for runs from this one."""
    differ = answer.get("differ")
    if not differ:
        return ""
    return (f"\nruns from this environment do not use it: it was started in another "
            f"({', '.join(differ)} differ); `finecode-wm daemon restart` from here to use it")


def _status(path: str) -> int:
    answer = client.ask("status", path)
    if answer is None:
        print(NONE_RUNNING)
        return 1
    since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(answer["started"]))
    print(f"daemon running: pid {answer['pid']}, since {since}, {answer['served']} run(s) "
          f"served{', busy' if answer['busy'] else ''}; stops after "
          f"{answer['idle_timeout']:g} s without a run")
    print(f"socket: {path}")
    for folder in answer["workspaces"]:
        print(f"  workspace {folder}")
    if _elsewhere(answer):
        print(_elsewhere(answer).lstrip("\n"))
    return 0


def _stop(path: str) -> int:
    answer = client.ask("stop", path)
    if answer is None:
        print(NONE_RUNNING)
        return 0
    deadline = time.monotonic() + STOP_WAIT
    while client.ask("status", path) is not None or os.path.exists(path):
        if time.monotonic() > deadline:
            print(f"error: the daemon (pid {answer['stopping']}) did not stop within "
                  f"{STOP_WAIT:g} s", file=sys.stderr)
            return 1
        time.sleep(0.02)
    print(f"daemon stopped (pid {answer['stopping']})")
    return 0


def _start(path: str, idle_timeout: float) -> int:
    answer = client.ask("status", path)
    if answer is not None:
        print(f"the daemon is already running (pid {answer['pid']}){_elsewhere(answer)}")
        return 0
    if len(os.fsencode(path)) > MAX_SOCKET_PATH:
        print(f"error: the daemon's socket path {path} is longer than a socket's path may be "
              f"({MAX_SOCKET_PATH} bytes): set XDG_RUNTIME_DIR to a shorter folder",
              file=sys.stderr)
        return 1
    folder = os.path.dirname(path)
    try:
        os.makedirs(folder, mode=0o700, exist_ok=True)
    except OSError as exc:
        print(f"error: cannot make {folder}: {exc.strerror}", file=sys.stderr)
        return 1
    problem = client.safe_folder(folder)
    if problem is not None:
        print(f"error: {problem}", file=sys.stderr)
        return 1
    log = path.removesuffix(".sock") + ".log"
    with open(log, "wb") as sink:  # this daemon's log: the last one's went with it
        process = subprocess.Popen(
            [sys.executable, "-m", "finecode_wm.cli.daemon", "--idle-timeout", str(idle_timeout)],
            stdin=subprocess.DEVNULL, stdout=sink, stderr=sink, cwd="/", start_new_session=True)
    deadline = time.monotonic() + START_WAIT
    while (answer := client.ask("status", path)) is None:
        if process.poll() is not None or time.monotonic() > deadline:
            if process.poll() is None:
                process.kill()
            print(f"error: the daemon did not start; its log: {log}", file=sys.stderr)
            with contextlib.suppress(OSError):
                sys.stderr.write(Path(log).read_text(errors="replace")[-2000:])
            return 1
        time.sleep(0.02)
    print(f"daemon started (pid {answer['pid']}): `finecode-wm run` from this environment goes "
          "through it; stop it with `finecode-wm daemon stop`")
    return 0


def _serve(idle_timeout: float) -> int:
    """The daemon's process: hold the lock (one daemon per socket), bind, serve, clean up."""
    path = client.address()
    with open(path.removesuffix(".sock") + ".lock", "a") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            print("another daemon is running for this user and FineCode installation",
                  file=sys.stderr)
            return 1
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)  # a socket left by a daemon that was killed
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            listener.bind(path)
            listener.listen(64)
            daemon = Daemon(path, idle_timeout)
            os.chdir("/")
            print(f"{time.strftime('%Y-%m-%d %H:%M:%S')} daemon {os.getpid()} serving {path}",
                  flush=True)
            asyncio.run(daemon.serve(listener))
        finally:
            with contextlib.suppress(OSError):
                os.unlink(path)
            listener.close()
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="finecode-wm daemon (serving)")
    parser.add_argument("--idle-timeout", type=float, default=arguments.IDLE_TIMEOUT)
    sys.exit(_serve(parser.parse_args().idle_timeout))
