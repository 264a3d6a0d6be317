#!/usr/bin/env bash
# Print the path of promtool (Prometheus' rule tester, used by
# tests/monitoring.rs on examples/monitoring/weir-alerts.yml), extracted
# from Debian's `prometheus` package into a cache; nothing is installed
# system-wide and no service starts.
#
#   1. $WEIR_PROMTOOL, if set and executable;
#   2. a promtool on the PATH;
#   3. the cached copy in ~/.cache/weir/promtool;
#   4. otherwise `apt-get download prometheus` and `dpkg -x` into the cache
#      (`apt-get update` first, as root or through password-less sudo, only
#      if the package lists know no `prometheus`).
#
# Only the path is written to stdout.
set -euo pipefail

say() { echo "ensure-promtool: $*" >&2; }

usable() { [[ -x "$1" ]] && "$1" --version >/dev/null 2>&1; }

if [[ -n "${WEIR_PROMTOOL:-}" ]] && usable "$WEIR_PROMTOOL"; then
    printf '%s\n' "$WEIR_PROMTOOL"
    exit 0
fi
if found=$(command -v promtool 2>/dev/null) && usable "$found"; then
    printf '%s\n' "$found"
    exit 0
fi
cache="${XDG_CACHE_HOME:-$HOME/.cache}/weir/promtool"
bin="$cache/usr/bin/promtool"
if usable "$bin"; then
    printf '%s\n' "$bin"
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    say "no promtool, and no apt-get to fetch Debian's prometheus package;"
    say "install promtool yourself and set WEIR_PROMTOOL to its path"
    exit 1
fi
candidate=$(apt-cache policy prometheus 2>/dev/null | awk '/Candidate:/ { print $2 }')
if [[ -z "$candidate" || "$candidate" == "(none)" ]]; then
    say "package lists know no prometheus; running apt-get update"
    if [[ $(id -u) -eq 0 ]]; then
        apt-get update 1>&2
    elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        sudo -n apt-get update 1>&2
    else
        say "apt-get update needs root (or password-less sudo); or set WEIR_PROMTOOL"
        exit 1
    fi
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
say "fetching Debian's prometheus package for promtool..."
(cd "$tmp" && apt-get download prometheus 1>&2)
mkdir -p "$cache"
dpkg -x "$tmp"/prometheus_*.deb "$tmp/x"
mkdir -p "$cache/usr/bin"
cp "$tmp/x/usr/bin/promtool" "$bin"
if ! usable "$bin"; then
    say "promtool was extracted but $bin --version does not run"
    exit 1
fi
printf '%s\n' "$bin"
