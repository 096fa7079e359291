#!/usr/bin/env bash
# Builds helm from the Go module proxy (helm.sh/helm/v3) once, cached under
# ~/.cache/tickplane/helm/<version>/bin, for the chart's tests (`helm lint`, `helm template`).
#
#   scripts/helm/build.sh              # build if missing, print the bin folder
#   scripts/helm/build.sh --print-bin  # print the bin folder only, build nothing
#
# Progress goes to stderr; the bin folder is the only line on stdout. Environment:
# TICKPLANE_HELM_VERSION (v3.22.0), TICKPLANE_CACHE (~/.cache/tickplane).
set -euo pipefail

HELM_VERSION=${TICKPLANE_HELM_VERSION:-v3.22.0}
ROOT=${TICKPLANE_CACHE:-$HOME/.cache/tickplane}/helm
BIN=$ROOT/$HELM_VERSION/bin
STAMP=$BIN/.helm-$HELM_VERSION.built

say() { printf '[helm] %s\n' "$*" >&2; }

if [[ ${1:-} == --print-bin ]]; then
  echo "$BIN"
  exit 0
fi
if [[ -x $BIN/helm && -f $STAMP ]]; then
  echo "$BIN"
  exit 0
fi
command -v go >/dev/null || { say "error: the go command is needed to build helm"; exit 1; }
mkdir -p "$BIN"
exec 9>"$ROOT/.build.lock"
flock 9
if [[ -x $BIN/helm && -f $STAMP ]]; then
  echo "$BIN"
  exit 0
fi

export CGO_ENABLED=0 GOTOOLCHAIN=${GOTOOLCHAIN:-local} GOWORK=off GOFLAGS="-buildvcs=false"
started=$SECONDS
say "building helm $HELM_VERSION with $(go version | cut -d' ' -f3) (a few minutes the first time)"
log=$ROOT/build-$HELM_VERSION.log
# helm's go.mod has no replace directives, so `go install pkg@version` builds it as released;
# the version string is what `helm version` prints.
if ! GOBIN=$BIN go install -trimpath \
  -ldflags="-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION" \
  "helm.sh/helm/v3/cmd/helm@$HELM_VERSION" >"$log" 2>&1; then
  say "go install failed; the end of $log:"
  tail -n 40 "$log" >&2
  exit 1
fi
touch "$STAMP"
say "built in $((SECONDS - started)) s: $("$BIN/helm" version --short)"
echo "$BIN"
