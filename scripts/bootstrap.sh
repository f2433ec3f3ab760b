#!/usr/bin/env bash
# Create or refresh the project's virtual environment (.venv) with pinned dependencies.
# Idempotent: re-installs only when requirements/lock.txt or pyproject.toml changed.
# Usage: source via scripts/demo.sh / scripts/test.sh, or run directly.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

pick_python() {
  for cand in "${PYTHON:-}" python3.11 python3 python; do
    [ -n "$cand" ] || continue
    if command -v "$cand" >/dev/null 2>&1 &&
       "$cand" -c 'import sys; raise SystemExit(sys.version_info[:2] < (3, 11))' 2>/dev/null; then
      echo "$cand"; return 0
    fi
  done
  echo "deepstationing: Python >= 3.11 is required (set PYTHON=/path/to/python3.11)" >&2
  return 1
}

venv="$root/.venv"
stamp="$venv/.deepstationing-stamp"
want="$(cat requirements/lock.txt pyproject.toml | sha256sum | cut -c1-16)"
if [ -x "$venv/bin/python" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi
py="$(pick_python)"
if [ ! -x "$venv/bin/python" ]; then
  echo "[setup] creating virtual environment in .venv with $py" >&2
  "$py" -m venv "$venv"
fi
echo "[setup] installing pinned dependencies (first run downloads PyTorch; this takes a while)" >&2
pip_quiet() {  # pip, without the local-mirror notices some machines print for every package
  local rc=0
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "$@" \
    2> >(grep -v "is ignored: it is neither a file nor a directory" >&2) || rc=$?
  return "$rc"
}
pip_quiet -r requirements/lock.txt
pip_quiet --no-deps --no-build-isolation -e .
echo "$want" > "$stamp"
echo "[setup] environment ready" >&2
