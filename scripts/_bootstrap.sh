# Sourced by scripts/demo and scripts/test: makes a virtualenv with the library
# and its test tools, reinstalling only when the packaging files change.
# Sets ROOT and PY.
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${CAMUNDA_EXT_VENV:-$ROOT/.venv}"
BASE_PYTHON="${PYTHON:-python3}"

if ! "$BASE_PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 9))' 2>/dev/null; then
  echo "camunda_ext needs Python 3.9 or newer as '$BASE_PYTHON' (set PYTHON=...)" >&2
  exit 1
fi
if [ ! -x "$VENV/bin/python" ]; then
  echo "Creating $VENV" >&2
  "$BASE_PYTHON" -m venv "$VENV"
fi
PY="$VENV/bin/python"
wanted="$(cat "$ROOT/setup.cfg" "$ROOT/setup.py" | "$PY" -c 'import hashlib, sys; print(hashlib.sha256(sys.stdin.buffer.read()).hexdigest())')"
stamp="$VENV/.camunda-ext-installed"
if [ "$(cat "$stamp" 2>/dev/null)" != "$wanted" ]; then
  echo "Installing camunda_ext and its test tools into $VENV" >&2
  log="$VENV/install.log"
  if ! { "$PY" -m pip install --disable-pip-version-check --upgrade pip setuptools wheel &&
         "$PY" -m pip install --disable-pip-version-check -e "$ROOT[test,lint,plot]"; } >"$log" 2>&1; then
    tail -n 40 "$log" >&2
    echo "Installing failed; the whole log is in $log" >&2
    exit 1
  fi
  echo "$wanted" > "$stamp"
fi
