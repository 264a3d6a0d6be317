#!/usr/bin/env bash
# Print the path of a Python virtual environment holding the moto S3 server
# (`moto[server]`, used by the integration tests as a real S3-compatible
# store) and pyarrow (used by the tests to read Parquet back from it, with a
# reader nobody here wrote), installing it first if absent.
#
#   1. $WEIR_MOTO_VENV, if set and it holds bin/moto_server;
#   2. ${WEIR_CACHE:-$HOME/.cache/weir}/moto-<version>, if complete;
#   3. otherwise `python3 -m venv` there and `pip install` into it (a minute
#      or two; its output goes to stderr), then print the path.
#
# Only the path is written to stdout. Idempotent; concurrent callers are
# serialised with flock so only one install runs at a time.
set -euo pipefail

MOTO_VERSION=5.2.6
PYARROW_VERSION=26.0.1

if [[ -n "${WEIR_MOTO_VENV:-}" ]]; then
    if [[ -x "$WEIR_MOTO_VENV/bin/moto_server" ]]; then
        printf '%s\n' "$WEIR_MOTO_VENV"
        exit 0
    fi
    echo "ensure-moto: WEIR_MOTO_VENV=$WEIR_MOTO_VENV has no bin/moto_server; ignoring it" >&2
fi

root="${WEIR_CACHE:-$HOME/.cache/weir}/moto-$MOTO_VERSION"
done_marker="$root/.installed"

if [[ -f "$done_marker" ]]; then
    printf '%s\n' "$root"
    exit 0
fi

mkdir -p "$(dirname "$root")"
install_moto() {
    if [[ -f "$done_marker" ]]; then
        return 0
    fi
    echo "ensure-moto: installing moto $MOTO_VERSION and pyarrow $PYARROW_VERSION into $root..." >&2
    # A venv records its own path, so it is built where it lives; the marker
    # written last tells a complete one from an interrupted install.
    rm -rf "$root"
    python3 -m venv "$root" 1>&2
    "$root/bin/pip" install --quiet --disable-pip-version-check \
        "moto[server]==$MOTO_VERSION" "pyarrow==$PYARROW_VERSION" 1>&2
    touch "$done_marker"
}

exec 9>"$root.lock"
if command -v flock >/dev/null 2>&1; then
    flock 9
fi
install_moto
printf '%s\n' "$root"
