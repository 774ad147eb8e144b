# Sourced by the quick-start scripts: make (or reuse) .venv and install the project with the
# extras named in $FINECODE_EXTRAS. Works with only Python >= 3.11 and the package registries.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
python="${PYTHON:-}"
if [ -z "$python" ]; then
  for candidate in python3.13 python3.12 python3.11 python3; do
    if command -v "$candidate" >/dev/null 2>&1 \
       && "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
      python="$candidate"; break
    fi
  done
fi
[ -n "$python" ] || { echo "FineCode needs Python >= 3.11 (set PYTHON=/path/to/python)" >&2; exit 1; }
venv="$repo/.venv"
if [ ! -x "$venv/bin/python" ]; then
  if ! "$python" -m venv "$venv" 2>/dev/null; then
    # Debian's python3 without the python3-venv package: fall back to virtualenv from PyPI.
    rm -rf "$venv"
    "$python" -m pip install --quiet --user virtualenv \
      || { echo "cannot create a virtualenv: apt-get install python3-venv, or install pip" >&2; exit 1; }
    "$python" -m virtualenv --quiet "$venv"
  fi
fi
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -e "$repo[${FINECODE_EXTRAS:-examples}]"
export PATH="$venv/bin:$PATH"
