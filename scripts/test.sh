#!/usr/bin/env bash
# The project's test command: makes sure the tansu broker used by the
# integration tests, the Chromium that tests/browser.rs drives and the
# promtool that tests/monitoring.rs runs, the Alertmanager of the delivery
# tests and the moto S3 server (with pyarrow) of the object-storage tests
# are installed, then runs every test of the workspace
# (unit, integration and doc tests), with the fail points the crash tests
# use (feature `failpoints`). Extra arguments go to `cargo test`,
# e.g. `bash scripts/test.sh --test broker_smoke`.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

WEIR_TANSU="$(bash scripts/ensure-tansu.sh)"
export WEIR_TANSU
echo "test.sh: using tansu at $WEIR_TANSU" >&2
WEIR_CHROMIUM="$(bash scripts/ensure-chromium.sh)"
export WEIR_CHROMIUM
echo "test.sh: using chromium at $WEIR_CHROMIUM" >&2
WEIR_PROMTOOL="$(bash scripts/ensure-promtool.sh)"
export WEIR_PROMTOOL
echo "test.sh: using promtool at $WEIR_PROMTOOL" >&2
WEIR_ALERTMANAGER="$(bash scripts/ensure-alertmanager.sh)"
export WEIR_ALERTMANAGER
echo "test.sh: using Alertmanager at $WEIR_ALERTMANAGER" >&2
WEIR_MOTO_VENV="$(bash scripts/ensure-moto.sh)"
export WEIR_MOTO_VENV
echo "test.sh: using moto in $WEIR_MOTO_VENV" >&2

cargo test --workspace --features weir/failpoints "$@"
