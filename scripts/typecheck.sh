#!/usr/bin/env bash
# mypy over every Python module of the parts, by its installed name (tickplane.<part>.*).
# `mypy -p` does not descend into the strict editable install's link tree, so the
# module list is taken from the source folders.
set -euo pipefail
cd "$(dirname "$0")/.."
mods=()
for part in core engine cli api ui operator; do
  while IFS= read -r f; do
    m=${f%.py}; m=${m%/__init__}; m=${m//\//.}
    mods+=(-m "tickplane.$m")
  done < <(git ls-files --cached --others --exclude-standard -- "$part/*.py" | sort)
done
exec "${VENV:-.venv}/bin/mypy" "${mods[@]}"
