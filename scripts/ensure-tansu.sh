#!/usr/bin/env bash
# Print the path of a tansu 0.6.0 broker binary (used by the integration
# tests as a real Kafka-protocol broker), installing it first if absent.
#
#   1. $WEIR_TANSU, if set and executable;
#   2. ${WEIR_CACHE:-$HOME/.cache/weir}/tansu-0.6.0/bin/tansu, if present;
#   3. otherwise `cargo install tansu` into that root (10-20 min on 2 cores;
#      its output goes to stderr), then print the path.
#
# Only the path is written to stdout. Idempotent; concurrent callers are
# serialised with flock so only one install runs at a time.
set -euo pipefail

TANSU_VERSION=0.6.0

if [[ -n "${WEIR_TANSU:-}" ]]; then
    if [[ -x "$WEIR_TANSU" ]]; then
        printf '%s\n' "$WEIR_TANSU"
        exit 0
    fi
    echo "ensure-tansu: WEIR_TANSU=$WEIR_TANSU is not an executable file; ignoring it" >&2
fi

root="${WEIR_CACHE:-$HOME/.cache/weir}/tansu-$TANSU_VERSION"
bin="$root/bin/tansu"

if [[ -x "$bin" ]]; then
    printf '%s\n' "$bin"
    exit 0
fi

mkdir -p "$root"
install_tansu() {
    # Re-check under the lock: another caller may have finished meanwhile.
    if [[ -x "$bin" ]]; then
        return 0
    fi
    echo "ensure-tansu: installing tansu $TANSU_VERSION into $root (takes 10-20 min)..." >&2
    cargo install tansu --version "$TANSU_VERSION" --locked --features libsql \
        --root "$root" 1>&2
}

if command -v flock >/dev/null 2>&1; then
    exec 9>"$root/.install.lock"
    flock 9
    install_tansu
    flock -u 9
else
    install_tansu
fi

if [[ ! -x "$bin" ]]; then
    echo "ensure-tansu: cargo install finished but $bin is missing" >&2
    exit 1
fi
printf '%s\n' "$bin"
