"""A real VS Code for tests: code-server on a free port, driven by Playwright in Chromium.

`CodeServer` owns the process (its own user-data and extensions directories under a temp dir);
`Workbench` is what a person does and sees in the browser: the command palette, quick picks,
notifications. Both stay small and literal so a failing run reads like a bug report.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

import psutil

from .cache import node_bin

# One notification as a person sees it: its text, its buttons, and the progress bar's fill.
_NOTIFICATIONS_JS = """() => [
  ...document.querySelectorAll('.notifications-toasts .notification-toast')].map(toast => {
    const bar = toast.querySelector('.monaco-progress-container');
    const bit = bar?.querySelector('.progress-bit');
    const measured = bar && bit && bit.style.width && !bar.classList.contains('done')
      && !bar.classList.contains('infinite');
    return {
      message: toast.querySelector('.notification-list-item-message')?.textContent ?? '',
      buttons: [...toast.querySelectorAll('.monaco-button')].map(b => b.textContent ?? ''),
      percentage: measured ? parseFloat(bit.style.width) : null,
    };
  })"""


# The Problems panel as a person sees it: the count on its tab, the status bar's count, and the
# rows its tree renders (only those in view), in order. A file row (level 1) has the file's name
# and folder; a finding row (level 2) has its message, source, code and `[Ln l, Col c]`.
_PROBLEMS_JS = """() => {
  const panel = document.querySelector('.part.panel');
  const tab = [...(panel?.querySelectorAll('.composite-bar .action-item') ?? [])]
    .find(item => item.querySelector('.action-label')?.textContent === 'Problems');
  const rows = [...(panel?.querySelectorAll('.markers-panel .monaco-list-row') ?? [])];
  rows.sort((a, b) => Number(a.dataset.index) - Number(b.dataset.index));
  return {
    badge: tab?.querySelector('.badge-content')?.textContent ?? '',
    status: document.getElementById('status.problems')?.getAttribute('aria-label') ?? '',
    rows: rows.map(row => ({
      level: Number(row.getAttribute('aria-level')),
      label: row.getAttribute('aria-label') ?? '',
      text: row.textContent ?? '',
    })),
  };
}"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class CodeServer:
    """code-server with a throw-away profile, the packaged extension and FineCode settings."""

    def __init__(self, root: Path, entry: Path, vsix: Path, settings: dict[str, Any]) -> None:
        self.root = root
        self.entry = entry
        self.data = root / "user-data"
        self.extensions = root / "extensions"
        self.log = root / "code-server.log"
        self.port = free_port()
        self.env = dict(os.environ, PATH=f"{node_bin()}{os.pathsep}{os.environ['PATH']}")
        self._cli("--install-extension", str(vsix))
        user = self.data / "User"
        user.mkdir(parents=True, exist_ok=True)
        (user / "settings.json").write_text(json.dumps(settings), encoding="utf-8")
        self.proc: subprocess.Popen[bytes] | None = None

    def _cli(self, *args: str) -> None:
        subprocess.run([str(node_bin() / "node"), str(self.entry), *self._dirs(), *args],
                       env=self.env, check=True, capture_output=True, timeout=120)

    def _dirs(self) -> list[str]:
        return [f"--user-data-dir={self.data}", f"--extensions-dir={self.extensions}"]

    def start(self) -> str:
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen(
                [str(node_bin() / "node"), str(self.entry), *self._dirs(), "--auth=none",
                 f"--bind-addr=127.0.0.1:{self.port}", "--disable-telemetry",
                 "--disable-update-check", "--disable-workspace-trust"],
                env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        url = f"http://127.0.0.1:{self.port}/healthz"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"code-server exited: {self.log.read_text(errors='replace')}")
            try:
                with urllib.request.urlopen(url, timeout=2):
                    return f"http://127.0.0.1:{self.port}"
            except OSError:
                time.sleep(0.2)
        raise TimeoutError(f"code-server did not answer on {url}")

    def finecode_processes(self) -> list[psutil.Process]:
        """The FineCode server (`finecode-wm lsp`) and its runners among code-server's children."""
        assert self.proc is not None
        found = []
        for child in psutil.Process(self.proc.pid).children(recursive=True):
            try:
                cmdline = child.cmdline()
            except psutil.Error:
                continue
            if "finecode_er" in cmdline or any(part.endswith("finecode-wm") for part in cmdline):
                found.append(child)
        return found

    def wait_for_finecode(self, timeout: float = 60) -> None:
        """The extension activated and started the FineCode server."""
        deadline = time.monotonic() + timeout
        while not any(part.endswith("finecode-wm") for p in self.finecode_processes()
                      for part in p.cmdline()):
            if time.monotonic() > deadline:
                raise TimeoutError(f"no finecode-wm under code-server; log: {self.log}")
            time.sleep(0.2)

    def stop(self) -> None:
        """Stop code-server itself (SIGTERM), as a person's Ctrl-C would; children are left be."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def kill_all(self) -> None:
        """Clean-up after the assertions: nothing this test started may outlive it."""
        if self.proc is not None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


class Workbench:
    """What a person does and sees in the VS Code page."""

    def __init__(self, page: Any) -> None:
        self.page = page

    def open(self, url: str, folder: Path) -> None:
        self.page.goto(f"{url}/?folder={folder}")
        self.page.wait_for_selector(".monaco-workbench .part.statusbar", timeout=60_000)

    def command(self, title: str) -> None:
        """Command palette → `title`."""
        self.page.keyboard.press("F1")
        box = self.page.locator(".quick-input-widget input.input")
        box.wait_for(timeout=10_000)
        box.fill(f">{title}")
        self.page.locator(".quick-input-list .monaco-list-row", has_text=title).first.click()

    def run_command(self, title: str, picks: list[str]) -> None:
        """Command palette → `title` → tick `picks` in the quick pick → OK."""
        self.command(title)
        for pick in picks:
            self.page.locator(
                f'.quick-input-list .monaco-checkbox[aria-label="{pick}"]').click(timeout=30_000)
        self.page.locator(".quick-input-widget .monaco-button", has_text="OK").click()

    def notifications(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self.page.evaluate(_NOTIFICATIONS_JS)
        return result

    def click_cancel(self, message_start: str) -> None:
        toast = self.page.locator(".notifications-toasts .notification-toast",
                                  has_text=message_start)
        toast.locator(".monaco-button", has_text="Cancel").click()

    def problems(self) -> dict[str, Any]:
        """The Problems panel: `badge` (its tab's count), `status` (the status bar's count, e.g.
        "Warnings: 10") and the `rows` it renders."""
        result: dict[str, Any] = self.page.evaluate(_PROBLEMS_JS)
        return result
