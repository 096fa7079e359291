#!/usr/bin/env bash
# Idempotently fetch an Apache Kafka broker (KRaft) from Maven Central: kafka_2.13 and its
# run-time dependencies, as listed by scripts/kafka/pom.xml, into
#   ${TICKPLANE_KAFKA_CACHE:-~/.cache/tickplane/kafka}/<version>/libs
# so that `java -cp '<libs>/*' kafka.Kafka server.properties` runs a broker.
#
# The first run downloads (~45 MB; Maven prints each artifact); later runs are a no-op
# unless pom.xml changed. Progress goes to stderr; the libs folder alone goes to stdout:
#   libs=$(scripts/kafka/fetch.sh)
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
pom=$here/pom.xml
version=$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$pom" | head -n1)
if [ -z "$version" ]; then
  echo "fetch.sh: no <kafka.version> in $pom" >&2
  exit 2
fi
cache=${TICKPLANE_KAFKA_CACHE:-$HOME/.cache/tickplane/kafka}
dest=$cache/$version
libs=$dest/libs
stamp=$dest/.complete
key=$(sha1sum "$pom" | cut -d' ' -f1)

fresh() { [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$key" ] && [ -d "$libs" ]; }

if fresh; then
  echo "$libs"
  exit 0
fi

mkdir -p "$dest"
# Two test runs starting at once: the second waits for the first, then finds the stamp.
exec 9>"$cache/.lock"
flock 9
if fresh; then
  echo "$libs"
  exit 0
fi

# Maven fetches the jars, and the broker runs on a JDK 17+: on a fresh Debian machine both
# come from Debian's packages (as root; otherwise say what to install).
if ! command -v mvn >/dev/null 2>&1 || ! command -v java >/dev/null 2>&1; then
  # Only packages not installed yet: naming an installed one to apt-get would upgrade it.
  pkgs=()
  for p in maven openjdk-17-jre-headless; do
    if [ "$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)" != installed ]; then
      pkgs+=("$p")
    fi
  done
  if [ ${#pkgs[@]} -eq 0 ]; then
    echo "fetch.sh: maven and openjdk-17-jre-headless are installed, but mvn or java is" \
      "not on PATH ($PATH)" >&2
    exit 1
  fi
  if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "fetch.sh: Maven and a JDK 17+ are needed: apt-get install ${pkgs[*]}" >&2
    exit 1
  fi
  echo "==> installing ${pkgs[*]} (Debian packages)" >&2
  export DEBIAN_FRONTEND=noninteractive
  if ! apt-get install -y -q --no-install-recommends "${pkgs[@]}" >&2; then
    apt-get update -q >&2
    apt-get install -y -q --no-install-recommends "${pkgs[@]}" >&2
  fi
  for tool in mvn java; do
    if ! command -v "$tool" >/dev/null 2>&1; then
      echo "fetch.sh: $tool is still not on PATH after installing ${pkgs[*]}" >&2
      exit 1
    fi
  done
fi

echo "==> fetching Apache Kafka $version (KRaft broker) from Maven Central into $libs" >&2
echo "    (first run only; later runs reuse the cache)" >&2
tmp=$(mktemp -d "$dest/.libs.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
# Maven's own log (each "Downloading"/"Downloaded" line) is the progress report.
mvn -B --strict-checksums -f "$pom" \
  -Dmaven.repo.local="$cache/m2" \
  -DincludeScope=runtime \
  -DoutputDirectory="$tmp/libs" \
  dependency:copy-dependencies >&2

if [ ! -f "$tmp/libs/kafka_2.13-$version.jar" ]; then
  echo "fetch.sh: Maven finished but kafka_2.13-$version.jar is not in $tmp/libs" >&2
  exit 1
fi
rm -rf "$libs"
mv "$tmp/libs" "$libs"
echo "$key" >"$stamp"
echo "==> $(find "$libs" -name '*.jar' | wc -l) jars, $(du -sh "$libs" | cut -f1) in $libs" >&2
echo "$libs"
