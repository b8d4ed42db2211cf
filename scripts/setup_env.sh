#!/usr/bin/env bash
# Create .venv with Python 3.10 from a lock file; a no-op when the lock and setup.py are unchanged.
# Usage: setup_env.sh [requirements.lock | requirements-orchestrators.lock]
# The orchestrators lock (Airflow, KFP, Luigi) is a superset of the core lock, so a venv synced from it
# also satisfies the core lock and is kept as it is.
set -euo pipefail
cd "$(dirname "$0")/.."
LOCK="${1:-requirements.lock}"
if [ ! -f "$LOCK" ]; then
  echo "error: lock file $LOCK not found" >&2
  exit 1
fi

VENV=.venv
STAMP="$VENV/.installed-from"
UV_VERSION=0.13.9

is_python310() {
  "$1" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 10))' >/dev/null 2>&1
}

find_python310() {
  local candidate
  for candidate in "${PYTHON:-}" "$(command -v python3.10 || true)"; do
    if [ -n "$candidate" ] && is_python310 "$candidate"; then
      echo "$candidate"
      return 0
    fi
  done
  # A pyenv shim for python3.10 answers only when 3.10 is pyenv's selected version; use the
  # installed interpreter directly.
  local root="${PYENV_ROOT:-$HOME/.pyenv}"
  if command -v pyenv >/dev/null 2>&1; then root="$(pyenv root)"; fi
  for candidate in "$root"/versions/3.10*/bin/python3.10; do
    if [ -x "$candidate" ] && is_python310 "$candidate"; then
      echo "$candidate"
      return 0
    fi
  done
  return 1
}

# The marker after the files changes when the way of installing does (bytecode below), so older venvs
# are rebuilt.
lock_hash() { { cat "$1" setup.py; echo "compile-bytecode"; } | sha256sum | cut -d' ' -f1; }
wanted="$(lock_hash "$LOCK")"
if [ -x "$VENV/bin/python" ] && grep -qx "$wanted" "$STAMP" 2>/dev/null; then
  exit 0
fi

if ! PYTHON310="$(find_python310)"; then
  echo "error: Python 3.10 is required (TFX 1.16 supports 3.9 and 3.10) and none was found." >&2
  echo "       Install it (e.g. 'pyenv install 3.10') or point PYTHON at a 3.10 interpreter." >&2
  exit 1
fi

echo "Creating $VENV with $PYTHON310 from $LOCK..."
start=$SECONDS
rm -rf "$VENV"
"$PYTHON310" -m venv "$VENV"
log="$VENV/install.log"
# uv installs the pinned set exactly (about 40 s where pip takes about 4 minutes) and resolves nothing.
# --compile-bytecode: without .pyc files every process compiles what it imports, about 25 s per process
# for TensorFlow, TFX and TFMA (each run, each Beam worker), and Python never writes them where
# PYTHONDONTWRITEBYTECODE is set, as on these machines.
if ! { "$VENV/bin/python" -m pip install "uv==$UV_VERSION" \
       && "$VENV/bin/uv" pip sync --compile-bytecode --python "$VENV/bin/python" "$LOCK" \
       && "$VENV/bin/uv" pip install --python "$VENV/bin/python" --no-deps -e . ; } >"$log" 2>&1; then
  grep -v "^WARNING: Location" "$log" | tail -40 >&2
  echo "error: installing the environment failed; full log in $log" >&2
  exit 1
fi
echo "$wanted" >"$STAMP"
if [ "$LOCK" = requirements-orchestrators.lock ]; then lock_hash requirements.lock >>"$STAMP"; fi
echo "Environment ready in $((SECONDS - start))s."
