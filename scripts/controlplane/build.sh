#!/usr/bin/env bash
# Builds a real Kubernetes control plane for the tests from the Go module proxy, the way
# envtest's binaries are used for Go operators: etcd (go.etcd.io/etcd/server/v3) and
# kube-apiserver + kube-controller-manager (+ kubectl) from the k8s.io/kubernetes module.
#
#   scripts/controlplane/build.sh            # build what is missing, print the bin folder
#   scripts/controlplane/build.sh --print-bin  # print the bin folder only, build nothing
#
# Binaries go to ~/.cache/tickplane/controlplane/<k8s version>/bin, one stamp file per
# binary and version, so a second run is a fast no-op. Progress goes to stderr; the bin
# folder is the only line on stdout.
#
# Why a throwaway module: k8s.io/kubernetes requires its staging modules (k8s.io/api,
# k8s.io/apiserver, ...) as v0.0.0 and replaces them with ./staging/src/... folders that
# are not part of the published module; a replace in a dependency is ignored, so the
# consumer has to replace each of them with its published v0.<minor>.<patch>. etcd's
# server module also carries replace directives, so `go install pkg@version` refuses it;
# it gets a throwaway module of its own (kept apart so each keeps its own dependency set).
#
# Environment: TICKPLANE_K8S_VERSION (v1.37.2), TICKPLANE_ETCD_VERSION (v3.7.3),
# TICKPLANE_CACHE (~/.cache/tickplane), TICKPLANE_CONTROLPLANE_COMPONENTS (space-separated
# subset of "etcd kube-apiserver kube-controller-manager kubectl"), TICKPLANE_BUILD_VERBOSE=1
# to see every package go compiles.
set -euo pipefail

K8S_VERSION=${TICKPLANE_K8S_VERSION:-v1.37.2}
ETCD_VERSION=${TICKPLANE_ETCD_VERSION:-v3.7.3}
COMPONENTS=${TICKPLANE_CONTROLPLANE_COMPONENTS:-etcd kube-apiserver kube-controller-manager kubectl}
ROOT=${TICKPLANE_CACHE:-$HOME/.cache/tickplane}/controlplane
BIN=$ROOT/$K8S_VERSION/bin
SRC=$ROOT/src

say() { printf '[controlplane] %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

stamp_of() { # component -> stamp file
  case $1 in
    etcd) echo "$BIN/.etcd-$ETCD_VERSION.built" ;;
    kube-apiserver | kube-controller-manager | kubectl) echo "$BIN/.$1-$K8S_VERSION.built" ;;
    *) die "unknown component '$1' (etcd, kube-apiserver, kube-controller-manager, kubectl)" ;;
  esac
}

missing() { # prints the components whose binary or stamp is missing
  local c
  for c in $COMPONENTS; do
    [[ -x $BIN/$c && -f $(stamp_of "$c") ]] || echo "$c"
  done
}

if [[ ${1:-} == --print-bin ]]; then
  echo "$BIN"
  exit 0
fi
[[ $# -eq 0 ]] || die "usage: $0 [--print-bin]"

# The fast path: everything built, no lock, no go command.
todo=$(missing)
if [[ -z $todo ]]; then
  echo "$BIN"
  exit 0
fi

command -v go >/dev/null || die "the go command is needed to build the control plane"
mkdir -p "$BIN" "$SRC"
# One builder at a time (a person's `make cluster` and a test run may race).
exec 9>"$ROOT/.build.lock"
flock 9
todo=$(missing)
if [[ -z $todo ]]; then
  echo "$BIN"
  exit 0
fi

export CGO_ENABLED=0
export GOFLAGS="-mod=mod -buildvcs=false"
export GOTOOLCHAIN=${GOTOOLCHAIN:-local}
export GOWORK=off

started=$SECONDS
say "building: $(echo $todo) (kubernetes $K8S_VERSION, etcd $ETCD_VERSION, $(go version | cut -d' ' -f3))"

# go get / go mod steps: output kept in a log, shown on failure.
quiet() { # log-file command...
  local log=$1
  shift
  if ! "$@" >"$log" 2>&1; then
    say "'$*' failed; the end of $log:"
    tail -n 40 "$log" >&2
    exit 1
  fi
}

# go build with a progress line every 250 packages (or every package when verbose); the
# full -v output is kept in a log and its tail shown on failure.
gobuild() { # log-file go-build-args...
  local log=$1
  shift
  local t0=$SECONDS
  set +e
  go build -v -trimpath "$@" 2>&1 | tee "$log" | awk -v verbose="${TICKPLANE_BUILD_VERBOSE:-0}" -v t0="$t0" '
    { n++ }
    verbose == "1" { print "  " $0 > "/dev/stderr"; next }
    n % 250 == 0 { printf "[controlplane]   %d packages compiled or checked\n", n > "/dev/stderr" }'
  local rc=${PIPESTATUS[0]}
  set -e
  if [[ $rc -ne 0 ]]; then
    say "go build failed (exit $rc); the end of $log:"
    tail -n 40 "$log" >&2
    exit "$rc"
  fi
  say "  done in $((SECONDS - t0)) s"
}

build_etcd() {
  local dir=$SRC/etcd-$ETCD_VERSION
  say "etcd $ETCD_VERSION: module in $dir"
  rm -rf "$dir"
  mkdir -p "$dir"
  (
    cd "$dir"
    go mod init tickplane.invalid/controlplane/etcd >/dev/null 2>&1
    # The server's own go.mod replaces its sibling modules with ../ paths; here they are
    # required at the same released version instead.
    go mod edit \
      -require="go.etcd.io/etcd/server/v3@$ETCD_VERSION" \
      -require="go.etcd.io/etcd/api/v3@$ETCD_VERSION" \
      -require="go.etcd.io/etcd/client/pkg/v3@$ETCD_VERSION" \
      -require="go.etcd.io/etcd/client/v3@$ETCD_VERSION" \
      -require="go.etcd.io/etcd/pkg/v3@$ETCD_VERSION"
    say "etcd: resolving modules"
    quiet "$dir/get.log" go get "go.etcd.io/etcd/server/v3@$ETCD_VERSION"
    say "etcd: compiling"
    gobuild "$dir/build.log" -ldflags="-s -w" -o "$BIN/etcd" go.etcd.io/etcd/server/v3
  )
  local version
  version=$("$BIN/etcd" --version)
  say "  ${version%%$'\n'*}"
  touch "$(stamp_of etcd)"
}

build_kubernetes() { # components...
  local dir=$SRC/kubernetes-$K8S_VERSION
  local minor_patch=${K8S_VERSION#v1.}
  local staging=v0.$minor_patch
  say "kubernetes $K8S_VERSION: module in $dir (staging modules at $staging)"
  rm -rf "$dir"
  mkdir -p "$dir"
  local gomod
  gomod=$(go mod download -json "k8s.io/kubernetes@$K8S_VERSION" |
    sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",*$/\1/p')
  [[ -f $gomod ]] || die "could not download k8s.io/kubernetes@$K8S_VERSION"
  # The staging modules are the ones k8s.io/kubernetes replaces with ./staging/src/ paths.
  local -a mods
  mapfile -t mods < <(awk '$2 == "=>" && $3 ~ /^\.\/staging\/src\// { print $1 }
    $1 == "replace" && $3 == "=>" && $4 ~ /^\.\/staging\/src\// { print $2 }' "$gomod" | sort -u)
  [[ ${#mods[@]} -gt 10 ]] || die "found only ${#mods[@]} staging modules in $gomod"
  local goline
  goline=$(awk '$1 == "go" { print $2; exit }' "$gomod")
  local -a edits=(-go="$goline" -require="k8s.io/kubernetes@$K8S_VERSION")
  local m
  for m in "${mods[@]}"; do
    edits+=(-replace="$m=$m@$staging")
  done
  say "kubernetes: ${#mods[@]} staging modules replaced by their published $staging"
  local -a pkgs=()
  for m in "$@"; do
    pkgs+=("k8s.io/kubernetes/cmd/$m")
  done
  # What `kubectl version` and /version report (as hack/lib/version.sh sets them).
  local major=1 minor=${minor_patch%%.*}
  local ld="-s -w"
  local p
  for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ld+=" -X $p.gitVersion=$K8S_VERSION -X $p.gitMajor=$major -X $p.gitMinor=$minor"
    ld+=" -X $p.gitTreeState=clean -X $p.buildDate=1970-01-01T00:00:00Z"
  done
  (
    cd "$dir"
    go mod init tickplane.invalid/controlplane/kubernetes >/dev/null 2>&1
    go mod edit "${edits[@]}"
    say "kubernetes: resolving modules (the first time downloads a few hundred MB)"
    quiet "$dir/get.log" go get "${pkgs[@]/%/@$K8S_VERSION}"
    say "kubernetes: compiling $*"
    gobuild "$dir/build.log" -ldflags="$ld" -o "$BIN/" "${pkgs[@]}"
  )
  for m in "$@"; do
    touch "$(stamp_of "$m")"
  done
}

k8s=()
for c in $todo; do
  case $c in
    etcd) build_etcd ;;
    *) k8s+=("$c") ;;
  esac
done
[[ ${#k8s[@]} -eq 0 ]] || build_kubernetes "${k8s[@]}"

say "built in $((SECONDS - started)) s:"
(cd "$BIN" && ls -l $COMPONENTS | awk '{ printf "[controlplane]   %-26s %5.1f MB\n", $9, $5 / 1e6 }') >&2
echo "$BIN"
