#!/usr/bin/env bash
# Print the path of a headless-capable Chromium (used by tests/browser.rs to
# load the status page), installing Debian's `chromium` package first if
# absent.
#
#   1. $WEIR_CHROMIUM, if set and executable;
#   2. /usr/bin/chromium, if present;
#   3. otherwise `apt-get install chromium fonts-liberation` (non-interactive,
#      without recommends; `apt-get update` first only if the package lists
#      know no `chromium`, or if the install fails on stale lists), as root or
#      through password-less sudo. Its output goes to stderr.
#
# Only the path is written to stdout. Fails with a message on stderr when no
# Chromium can be found or installed (not Debian, no root, no network...).
set -euo pipefail

say() { echo "ensure-chromium: $*" >&2; }

# Does "$1" start a browser?
usable() {
    [[ -x "$1" ]] && "$1" --version >/dev/null 2>&1
}

if [[ -n "${WEIR_CHROMIUM:-}" ]]; then
    if usable "$WEIR_CHROMIUM"; then
        printf '%s\n' "$WEIR_CHROMIUM"
        exit 0
    fi
    say "WEIR_CHROMIUM=$WEIR_CHROMIUM is not a working chromium; ignoring it"
fi

bin=/usr/bin/chromium
if usable "$bin"; then
    printf '%s\n' "$bin"
    exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
    say "no chromium at $bin and no apt-get to install Debian's chromium package;"
    say "install Chromium yourself and set WEIR_CHROMIUM to its path"
    exit 1
fi
if [[ $(id -u) -eq 0 ]]; then
    as_root=()
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    as_root=(sudo -n)
else
    say "no chromium at $bin, and installing it needs root (or password-less sudo):"
    say "  sudo apt-get install chromium fonts-liberation"
    say "or set WEIR_CHROMIUM to the path of a Chromium"
    exit 1
fi

apt() {
    ${as_root[@]+"${as_root[@]}"} env DEBIAN_FRONTEND=noninteractive \
        apt-get -o DPkg::Lock::Timeout=300 "$@" 1>&2
}
install_chromium() {
    apt install -y --no-install-recommends chromium fonts-liberation
}

# Only refresh the package lists when they do not offer chromium at all.
candidate=$(apt-cache policy chromium 2>/dev/null | awk '/Candidate:/ { print $2 }')
if [[ -z "$candidate" || "$candidate" == "(none)" ]]; then
    say "package lists know no chromium; running apt-get update"
    apt update
fi
say "installing Debian's chromium package..."
if ! install_chromium; then
    # Lists that are present but stale point at files the mirror removed.
    say "install failed; refreshing the package lists and retrying"
    apt update
    if ! install_chromium; then
        say "apt-get could not install chromium (see above)"
        exit 1
    fi
fi

if ! usable "$bin"; then
    say "chromium was installed but $bin --version does not run"
    exit 1
fi
printf '%s\n' "$bin"
