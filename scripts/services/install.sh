#!/usr/bin/env bash
# Idempotently install the servers the tests run for real, from Debian packages:
# PostgreSQL, Redis and Prometheus (with promtool). Nothing is left running: the tests
# start private instances on their own ports and data directories
# (tests/services/servers.py), so any service a package starts on install is stopped
# and disabled here.
#
# Fast when everything is present: dpkg is asked first and apt is not touched.
# Exits non-zero, saying what is missing, if a package or binary cannot be installed.
set -euo pipefail

PACKAGES=(postgresql redis-server prometheus)
# The binaries the tests call, checked after install (the PostgreSQL ones are looked up
# under the newest /usr/lib/postgresql/<major>/bin).
BINARIES=(redis-server redis-cli prometheus promtool)
PG_BINARIES=(initdb postgres pg_ctl pg_isready)

log() { echo "==> services: $*" >&2; }
die() { echo "services: error: $*" >&2; exit 1; }

installed() {
  [ "$(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null || true)" = "installed" ]
}

missing=()
for p in "${PACKAGES[@]}"; do
  installed "$p" || missing+=("$p")
done

if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then SUDO=(sudo -n); else
      die "packages missing (${missing[*]}) and not root: run 'apt-get install ${missing[*]}' as root"
    fi
  else
    SUDO=()
  fi
  log "installing ${missing[*]}"
  # Keep the packages' init scripts from starting their system-wide daemons during the
  # install (invoke-rc.d honours policy-rc.d; exit 101 = "action forbidden"). An
  # existing policy is left as it is.
  policy=/usr/sbin/policy-rc.d
  added_policy=0
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' | "${SUDO[@]}" tee "$policy" >/dev/null
    "${SUDO[@]}" chmod 755 "$policy"
    added_policy=1
  fi
  cleanup() { if [ "$added_policy" = 1 ]; then "${SUDO[@]}" rm -f "$policy"; fi; }
  trap cleanup EXIT
  export DEBIAN_FRONTEND=noninteractive
  # Package lists may be missing on a fresh machine; refresh once if apt cannot find one.
  if ! "${SUDO[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}" >&2; then
    log "apt-get install failed; refreshing package lists and retrying"
    "${SUDO[@]}" apt-get update -q >&2
    "${SUDO[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}" >&2 ||
      die "apt-get install ${missing[*]} failed"
  fi

  # Whatever the packages registered as system services is stopped and disabled: the
  # tests never use the system-wide instances (default ports, shared data).
  for svc in redis-server prometheus postgresql; do
    if [ -d /run/systemd/system ]; then
      "${SUDO[@]}" systemctl stop "$svc" >/dev/null 2>&1 || true
    elif [ -x "/etc/init.d/$svc" ]; then
      "${SUDO[@]}" "/etc/init.d/$svc" stop >/dev/null 2>&1 || true
    fi
    if command -v systemctl >/dev/null 2>&1; then
      "${SUDO[@]}" systemctl disable "$svc" >/dev/null 2>&1 || true
    elif command -v update-rc.d >/dev/null 2>&1; then
      "${SUDO[@]}" update-rc.d "$svc" disable >/dev/null 2>&1 || true
    fi
  done
  # The postgresql package creates a default cluster; make sure it is down.
  if command -v pg_lsclusters >/dev/null 2>&1; then
    pg_lsclusters --no-header 2>/dev/null | while read -r ver name _port status _rest; do
      if [ "$status" = online ]; then
        "${SUDO[@]}" pg_ctlcluster "$ver" "$name" stop || true
      fi
    done
  fi
fi

# Everything the tests call must be there, whatever installed it.
for b in "${BINARIES[@]}"; do
  command -v "$b" >/dev/null 2>&1 || die "'$b' not found on PATH after installing ${PACKAGES[*]}"
done
pg_bin=$(find /usr/lib/postgresql -mindepth 2 -maxdepth 2 -name bin -type d 2>/dev/null |
  sort -V | tail -n 1)
[ -n "$pg_bin" ] || die "no /usr/lib/postgresql/<major>/bin after installing postgresql"
for b in "${PG_BINARIES[@]}"; do
  [ -x "$pg_bin/$b" ] || die "'$pg_bin/$b' missing"
done
id postgres >/dev/null 2>&1 || die "the 'postgres' OS user is missing (the postgresql package creates it)"
