"""Where tests/vscode/setup.sh puts the real editor, and whether it is there.

Shared by the set-up script (`python -m tests.vscode.cache vsix`) and the test, so both agree on
the paths; the packaged extension is named by a digest of its sources, so an edited extension
is never tested from a stale .vsix.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
EXTENSION = REPO / "examples" / "vscode"
EXTENSION_SOURCES = ("package.json", "package-lock.json", "tsconfig.json", ".vscodeignore",
                     "README.md", "src")
CHROMIUM = Path("/usr/bin/chromium")
ENABLE = "bash tests/vscode/setup.sh"


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(os.environ.get("FINECODE_VSCODE_CACHE", Path(base) / "finecode-vscode-e2e"))


def node_bin() -> Path:
    """Node 24 wrappers (node, npm) made by the set-up script."""
    return cache_dir() / "bin"


def code_server_entry() -> Path:
    return cache_dir() / "npm" / "node_modules" / "code-server" / "out" / "node" / "entry.js"


def extension_digest() -> str:
    digest = hashlib.sha256()
    for name in EXTENSION_SOURCES:
        path = EXTENSION / name
        for file in sorted(path.rglob("*")) if path.is_dir() else [path]:
            if file.is_file():
                digest.update(str(file.relative_to(EXTENSION)).encode() + b"\0")
                digest.update(file.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def vsix() -> Path:
    return cache_dir() / f"finecode-vscode-{extension_digest()}.vsix"


def missing() -> str | None:
    """Why the end-to-end test cannot run here, or None when everything is set up."""
    needs = {"Node 24": node_bin() / "node", "code-server": code_server_entry(),
             "the packaged extension (current sources)": vsix(), "Chromium": CHROMIUM}
    for what, path in needs.items():
        if not path.exists():
            return f"{what} not found at {path}"
    if importlib.util.find_spec("playwright") is None:
        return "Python package playwright is not installed in this environment"
    if shutil.which("finecode-wm", path=str(Path(sys.executable).parent)) is None:
        return f"finecode-wm is not installed next to {sys.executable}"
    return None


if __name__ == "__main__":
    print({"vsix": vsix, "dir": cache_dir}[sys.argv[1]]())
