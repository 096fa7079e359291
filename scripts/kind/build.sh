#!/usr/bin/env bash
# Builds kind (sigs.k8s.io/kind) from the Go module proxy once, cached under
# ~/.cache/tickplane/kind/<version>/bin, for `make kind-up` / `make e2e-kind` (kind itself
# needs Docker to run clusters). Prints the bin folder on stdout, progress on stderr.
# Environment: TICKPLANE_KIND_VERSION (v0.33.0), TICKPLANE_CACHE (~/.cache/tickplane).
set -euo pipefail

KIND_VERSION=${TICKPLANE_KIND_VERSION:-v0.33.0}
ROOT=${TICKPLANE_CACHE:-$HOME/.cache/tickplane}/kind
BIN=$ROOT/$KIND_VERSION/bin

if [[ -x $BIN/kind ]]; then
  echo "$BIN"
  exit 0
fi
command -v go >/dev/null || { echo "[kind] error: the go command is needed" >&2; exit 1; }
mkdir -p "$BIN"
echo "[kind] building kind $KIND_VERSION" >&2
log=$ROOT/build-$KIND_VERSION.log
if ! CGO_ENABLED=0 GOTOOLCHAIN=${GOTOOLCHAIN:-local} GOWORK=off GOBIN=$BIN \
  go install -trimpath -ldflags="-s -w" "sigs.k8s.io/kind@$KIND_VERSION" >"$log" 2>&1; then
  echo "[kind] go install failed; the end of $log:" >&2
  tail -n 40 "$log" >&2
  exit 1
fi
echo "[kind] $("$BIN/kind" version)" >&2
echo "$BIN"
