#!/usr/bin/env bash
# Print the path of Prometheus Alertmanager (the real receiver of the
# delivery tests, tests/pipeline_e2e/delivery.rs), extracted from Debian's
# `prometheus-alertmanager` package into a cache; no service starts. The only
# files placed outside the cache are the notification templates Debian's
# build reads from a fixed path, /usr/share/prometheus/alertmanager/*.tmpl
# (as root or through password-less sudo), without which it does not start.
#
#   1. $WEIR_ALERTMANAGER, if set and executable;
#   2. the cached copy in ~/.cache/weir/alertmanager;
#   3. otherwise `apt-get download prometheus-alertmanager` and `dpkg -x`
#      into the cache (`apt-get update` first, as root or through
#      password-less sudo, only if the package lists know no such package).
#
# Only the path is written to stdout.
set -euo pipefail

say() { echo "ensure-alertmanager: $*" >&2; }

usable() { [[ -x "$1" ]] && "$1" --version >/dev/null 2>&1; }

if [[ -n "${WEIR_ALERTMANAGER:-}" ]] && usable "$WEIR_ALERTMANAGER"; then
    printf '%s\n' "$WEIR_ALERTMANAGER"
    exit 0
fi
cache="${XDG_CACHE_HOME:-$HOME/.cache}/weir/alertmanager"
bin="$cache/usr/bin/prometheus-alertmanager"
templates=/usr/share/prometheus/alertmanager
as_root() {
    if [[ $(id -u) -eq 0 ]]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        sudo -n "$@"
    else
        say "$* needs root (or password-less sudo); or set WEIR_ALERTMANAGER"
        exit 1
    fi
}
install_template() {
    if [[ ! -f "$templates/default.tmpl" || ! -f "$templates/email.tmpl" ]]; then
        as_root mkdir -p "$templates"
        as_root cp "$cache"/templates/default.tmpl "$cache"/templates/email.tmpl "$templates/"
    fi
}
if usable "$bin" && [[ -f "$cache/templates/email.tmpl" ]]; then
    install_template
    printf '%s\n' "$bin"
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    say "no Alertmanager, and no apt-get to fetch Debian's prometheus-alertmanager;"
    say "install it yourself and set WEIR_ALERTMANAGER to its path"
    exit 1
fi
candidate=$(apt-cache policy prometheus-alertmanager 2>/dev/null | awk '/Candidate:/ { print $2 }')
if [[ -z "$candidate" || "$candidate" == "(none)" ]]; then
    say "package lists know no prometheus-alertmanager; running apt-get update"
    as_root apt-get update 1>&2
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
say "fetching Debian's prometheus-alertmanager package..."
(cd "$tmp" && apt-get download prometheus-alertmanager 1>&2)
dpkg -x "$tmp"/prometheus-alertmanager_*.deb "$tmp/x"
mkdir -p "$cache/usr/bin"
cp "$tmp/x/usr/bin/prometheus-alertmanager" "$bin"
mkdir -p "$cache/templates"
cp "$tmp/x$templates"/*.tmpl "$cache/templates/"
install_template
if ! usable "$bin"; then
    say "Alertmanager was extracted but $bin --version does not run"
    exit 1
fi
printf '%s\n' "$bin"
