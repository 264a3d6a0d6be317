#!/usr/bin/env bash
# Checks the floors of the house: each layer imports only the layers below
# it (see "Layout" in the README). A forbidden `crate::` path in a layer's
# code (test modules and tests.rs files aside) fails the check, unless
# scripts/layers-allow.txt lists it as a known debt; an entry there that no
# longer occurs fails too, so the list only shrinks.
#
#   bash scripts/check-layers.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

ops=operators/src
# Connectors: where records come from and go to.
connectors='connect|source|ingest|kafka|memory|recording|sink|output|parquet'

# layer name | files and directories | forbidden modules (regex) | the rule
rules=(
  "record|$ops/record|alert|rules|checkpoint|run|control|metrics|decode|window_aggregate|storage|$connectors|what flows knows nothing else"
  "storage|$ops/storage|record|reading|alert|rules|checkpoint|run|control|metrics|decode|window_aggregate|$connectors|storage is where bytes are kept: it knows nothing of what they are"
  "rules|$ops/rules|alert|checkpoint|run|control|metrics|decode|window_aggregate|seeded|[A-Z][A-Za-z0-9_]*|$connectors|rules are data: they import only what flows (crate::reading, crate::hash, crate::record)"
  "run|$ops/run $ops/checkpoint $ops/metrics|alert|rules|decode|window_aggregate|$connectors|the run layer knows no connector, no rule evaluation, no recording format"
  "alert|$ops/alert|decode|$connectors|alert evaluation knows no input or output system"
  "alarm|$ops/alarm|alert|decode|window_aggregate|$connectors|alarm management stands on alert events: it knows no evaluation, no input or output system"
  "window|$ops/window_aggregate|alert|rules|windows know no rule"
  "decode|$ops/decode|source|ingest|kafka|memory|recording|decoding knows no broker"
  "connectors|$ops/source $ops/kafka $ops/recording $ops/sink|alert|rules|a source knows no rule; a sink knows records, not rules"
  "recording|$ops/recording|source|ingest|memory|the recording format knows no source: the source that reads a recording is in source/"
  "config|src/config|runtime|plan|pipeline|http|demo|backtest|record|reload|preflight|simulate|rule_tests|figures|config is data: it imports nothing from the runtime"
)

allow_file=scripts/layers-allow.txt
found=$(mktemp)
trap 'rm -f "$found"' EXIT

for rule in "${rules[@]}"; do
  layer=${rule%%|*}
  rest=${rule#*|}
  paths=${rest%%|*}
  rest=${rest#*|}
  why=${rest##*|}
  forbidden=${rest%|*}
  # shellcheck disable=SC2086
  files=$(find $paths -name '*.rs' ! -name 'tests.rs' ! -path '*/tests/*' | sort)
  for file in $files; do
    # Code before the file's test module; comments dropped.
    awk '/^#\[cfg\(test\)\]/ { exit } { print }' "$file" |
      sed -e 's|//.*$||' |
      { grep -oE "crate::($forbidden)\b" || true; } |
      sort -u |
      while read -r path; do
        printf '%s %s\t%s\n' "$file" "$path" "$layer: $why"
      done
  done
done >"$found"

status=0
allowed() { { grep -v -e '^#' -e '^$' "$allow_file" || true; } | cut -d' ' -f1,2; }
while IFS=$'\t' read -r hit why; do
  if ! allowed | grep -qxF -- "$hit"; then
    echo "check-layers: forbidden import: $hit ($why)" >&2
    status=1
  fi
done <"$found"
while read -r entry; do
  if ! cut -f1 "$found" | grep -qxF -- "$entry"; then
    echo "check-layers: $allow_file lists \"$entry\", which no longer occurs: remove it" >&2
    status=1
  fi
done < <(allowed)
if [[ $status -eq 0 ]]; then
  echo "check-layers: ok ($(allowed | wc -l) known debts in $allow_file)"
fi
exit $status
