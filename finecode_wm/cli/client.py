"""The terminal's side of the daemon (`daemon`): hand a `run` to it, or say it cannot be.

Standard library only, imported before anything else of FineCode: a run the daemon answers
costs the caller an interpreter start and this module. The caller's stdin, stdout and stderr go
to the daemon with the request (`SCM_RIGHTS`), so it writes to the caller's terminal, pipe or
file itself: a terminal stays a terminal (the live bar), `| head -1` still ends the output.

The wire: one JSON object per line. The caller sends `{"run": ...}` (with the descriptors), then
`{"signal": N}` for each Ctrl-C or SIGTERM it gets; the daemon answers `{"accepted": true}` once
it runs the command, then `{"exit": N}`; or `{"fallback": why}` for a run it will not take, which
then runs in the caller's process as it would without a daemon.
"""

from __future__ import annotations

import json
import os
import signal
import stat
import sys
import zlib
from _socket import AF_UNIX, SCM_RIGHTS, SOCK_STREAM, SOL_SOCKET, socket

# `_socket` is the C core of `socket`, which adds only what this module does not use and costs
# a run through the daemon ~3 ms of enum set-up to import.

TYPE_CHECKING = False  # importing `typing` would cost a run through the daemon ~3 ms
if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping
    from typing import Any

__all__ = ["SHELL_VARIABLES", "address", "ask", "forward", "installation", "lines",
           "safe_folder", "send_fds"]

# The terminal's and the shell's own variables: they differ from one shell to the next, and
# what they change (colours, the width) is read from the caller's values anyway. Any other
# difference from the daemon's environment could change what a handler does: such a run is
# not forwarded.
SHELL_VARIABLES = frozenset({
    "_", "PWD", "OLDPWD", "SHLVL", "COLUMNS", "LINES", "TERM", "COLORTERM", "NO_COLOR",
    "FORCE_COLOR", "CLICOLOR", "CLICOLOR_FORCE", "TERM_PROGRAM", "TERM_PROGRAM_VERSION",
    "TERM_SESSION_ID", "WINDOWID", "TMUX", "TMUX_PANE", "STY", "WINDOW", "SSH_TTY", "GPG_TTY",
    "SSH_CLIENT", "SSH_CONNECTION", "PS1", "PS2", "PS4", "PROMPT_COMMAND", "LS_COLORS",
    "HISTFILE", "HISTSIZE", "HISTFILESIZE", "HISTCONTROL", "PYENV_SHELL",
    "PYENV_VIRTUALENV_INIT", "VTE_VERSION", "WT_SESSION", "ITERM_SESSION_ID",
})
MAX_SIGNALS = 3  # the third Ctrl-C leaves a daemon that does not answer (a stopped one too)


def _base(env: Mapping[str, str]) -> str:
    """`$XDG_RUNTIME_DIR/finecode-wm` (the user's own, in memory), else under the cache dir."""
    runtime = env.get("XDG_RUNTIME_DIR", "")
    if os.path.isabs(runtime) and os.path.isdir(runtime):
        return os.path.join(runtime, "finecode-wm")
    cache = env.get("XDG_CACHE_HOME", "")
    if not os.path.isabs(cache):
        cache = os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(cache, "finecode", "daemon")


def installation() -> dict[str, str]:
    """What this FineCode is: its environment (`sys.prefix`) and its package's folder."""
    return {"prefix": sys.prefix,
            "package": os.path.dirname(os.path.dirname(os.path.abspath(__file__)))}


def address(env: Mapping[str, str] | None = None) -> str:
    """The socket of this installation's daemon for this user: one per environment and
    FineCode checkout (the daemon checks the caller's `installation` too: another
    virtualenv's FineCode never answers)."""
    key = "\0".join([str(os.getuid()), *installation().values()]).encode()
    digest = f"{zlib.crc32(key):08x}{zlib.adler32(key):08x}"
    return os.path.join(_base(os.environ if env is None else env), f"daemon-{digest}.sock")


def safe_folder(folder: str) -> str | None:
    """Why the socket's folder must not be used (another user could reach or replace the
    socket), or None."""
    try:
        info = os.lstat(folder)
    except OSError as exc:
        return f"{folder}: {exc.strerror}"
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid() or info.st_mode & 0o077:
        return f"{folder} must be a directory of this user's that no one else may open (0700)"
    return None


def _connect(path: str) -> socket | None:
    if safe_folder(os.path.dirname(path)) is not None:
        return None
    sock = socket(AF_UNIX, SOCK_STREAM)
    try:
        sock.connect(path)
    except OSError:
        sock.close()
        return None
    return sock


def send_fds(sock: socket, data: bytes, fds: list[int]) -> int:
    """Send `data` with the descriptors `fds` (`SCM_RIGHTS`); the bytes sent."""
    rights = b"".join(fd.to_bytes(4, sys.byteorder) for fd in fds)  # C ints
    return sock.sendmsg([data], [(SOL_SOCKET, SCM_RIGHTS, rights)])


def lines(sock: socket) -> Iterator[Any]:
    """The JSON objects `sock` sends, one per line, until it closes."""
    buffer = b""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return
        buffer += chunk
        while b"\n" in buffer:
            line, buffer = buffer.split(b"\n", 1)
            yield json.loads(line)


def _line(message: dict[str, Any]) -> bytes:
    return json.dumps(message).encode() + b"\n"


def ask(control: str, path: str | None = None) -> dict[str, Any] | None:
    """A control request (`status`, `stop`) and the daemon's answer; None when none runs."""
    sock = _connect(path or address())
    if sock is None:
        return None
    try:
        sock.sendall(_line({"control": control, "env": dict(os.environ)}))
        return next(lines(sock), None)
    except (OSError, ValueError):
        return None
    finally:
        sock.close()


def _environment() -> dict[str, str]:
    """The caller's environment, with its terminal's size when the daemon cannot ask the
    terminal itself (it asks its own, which is none)."""
    env = dict(os.environ)
    for fd in (2, 1, 0):
        try:
            columns, rows = os.get_terminal_size(fd)
        except OSError:
            continue
        env.setdefault("COLUMNS", str(columns))
        env.setdefault("LINES", str(rows))
        break
    return env


def _streams() -> list[dict[str, str]]:
    return [{"encoding": s.encoding or "utf-8", "errors": s.errors or "strict"}
            for s in (sys.stdout, sys.stderr)]


def forward(argv: list[str]) -> int | None:
    """`finecode-wm run ...` through the daemon: its exit code, or None when no daemon runs or
    it did not take the run (the caller then runs it itself; a note says why when the person
    would want to know)."""
    sock = _connect(address())
    if sock is None:
        return None
    try:
        try:  # a deleted current directory: the run goes on as it would without a daemon
            request = {"run": {"argv": argv, "cwd": os.getcwd(), "env": _environment(),
                               "streams": _streams(), **installation()}}
            data = _line(request)
            sent = send_fds(sock, data, [0, 1, 2])
            if sent < len(data):  # never an empty send: it fails once a quick run closed
                sock.sendall(data[sent:])
        except OSError:
            return None
        return _await(sock)
    finally:
        sock.close()


def _await(sock: socket) -> int | None:
    """Wait for the daemon's answer, passing on each Ctrl-C and SIGTERM this process gets."""
    received: list[int] = []
    accepted = False

    def relay(signum: int, _frame: object) -> None:
        received.append(signum)
        if len(received) >= MAX_SIGNALS:  # taken or not: a daemon that does not answer
            os._exit(128 + signum)
        try:
            sock.sendall(_line({"signal": signum}))
        except OSError:
            pass

    kept = {s: signal.signal(s, relay) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        for message in lines(sock):
            if "accepted" in message:
                accepted = True
            elif "exit" in message:
                return int(message["exit"])
            elif "fallback" in message:
                if message.get("note"):
                    sys.stderr.write(f"finecode-wm: {message['note']}\n")
                break
    except (OSError, ValueError):
        pass
    finally:
        for signum, handler in kept.items():
            signal.signal(signum, handler)
    if accepted:  # the daemon ended in the middle of the run: its output may be cut
        sys.stderr.write("finecode-wm: error: the daemon stopped during the run; run it again "
                         "(or with --no-daemon)\n")
        return 2
    if received:  # stopped before the daemon took the run: nothing ran
        return 128 + received[0]
    return None
