#!/usr/bin/env bash
# Idempotently create .venv and install Tickplane (editable, compiled engine) into it.
# Re-runs pip only when something that affects the install changed: the dependency
# pins, the build script, the Cython sources (with the .py files compiled in pure
# Python mode), or the set of Python files (a strict
# editable install links files, so a new module needs a re-install).
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${VENV:-.venv}
PYTHON=${PYTHON:-python3}
EXTRAS=${TICKPLANE_EXTRAS:-dev}
export PIP_DISABLE_PIP_VERSION_CHECK=1
export PIP_CACHE_DIR=${PIP_CACHE_DIR:-$HOME/.cache/tickplane/pip}

if [ ! -x "$VENV/bin/python" ]; then
  echo "==> creating $VENV"
  "$PYTHON" -m venv "$VENV"
fi

key=$( {
  echo "$EXTRAS"
  cat pyproject.toml setup.py
  cat engine/*.pyx engine/*.pxd 2>/dev/null
  # a .py with a .pxd beside it is compiled (setup.py PURE_MODULES): its text counts
  for pxd in engine/*.pxd; do if [ -f "${pxd%.pxd}.py" ]; then cat "${pxd%.pxd}.py"; fi; done
  git ls-files --cached --others --exclude-standard -- '*.py' '*.pyi' | sort
} | sha1sum | cut -d' ' -f1)
stamp="$VENV/.tickplane-install"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$key" ]; then
  exit 0
fi

echo "==> installing build requirements"
build_reqs=$("$VENV/bin/python" - <<'PY'
import tomllib
print(" ".join(tomllib.load(open("pyproject.toml", "rb"))["build-system"]["requires"]))
PY
)
# shellcheck disable=SC2086
"$VENV/bin/pip" install -q $build_reqs
echo "==> building the engine and installing tickplane[$EXTRAS] (editable)"
"$VENV/bin/pip" install -q --no-build-isolation \
  --config-settings editable_mode=strict -e ".[$EXTRAS]"
echo "$key" > "$stamp"
