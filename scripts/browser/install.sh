#!/usr/bin/env bash
# Idempotently install Debian's chromium, the browser the terminal's browser tests drive
# through Playwright (executable_path=/usr/bin/chromium): Playwright's own browser
# downloads are not reachable here, and Debian's build is kept patched by apt.
#
# Fast when it is present: dpkg is asked first and apt is not touched.
set -euo pipefail

log() { echo "==> browser: $*" >&2; }
die() { echo "browser: error: $*" >&2; exit 1; }

installed() {
  [ "$(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null || true)" = "installed" ]
}

if ! installed chromium || [ ! -x /usr/bin/chromium ]; then
  if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then SUDO=(sudo -n); else
      die "chromium missing and not root: run 'apt-get install chromium' as root"
    fi
  else
    SUDO=()
  fi
  export DEBIAN_FRONTEND=noninteractive
  log "installing chromium"
  # Package lists may be missing on a fresh machine; refresh once if apt cannot find it.
  if ! "${SUDO[@]}" apt-get install -y -q --no-install-recommends chromium >&2; then
    log "apt-get install failed; refreshing package lists and retrying"
    "${SUDO[@]}" apt-get update -q >&2
    "${SUDO[@]}" apt-get install -y -q --no-install-recommends chromium >&2 ||
      die "apt-get install chromium failed"
  fi
fi

[ -x /usr/bin/chromium ] || die "/usr/bin/chromium missing after installing chromium"
