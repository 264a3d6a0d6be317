#!/usr/bin/env bash
# Runs a pipeline as a local timely cluster of N `weir` processes on loopback.
#
#   scripts/cluster.sh start N PIPELINE.toml [weir run options...]
#       picks N free loopback ports, writes the host file, starts process
#       0..N-1 with `weir run PIPELINE.toml --process I --hosts FILE ...`, and
#       waits until every process listens and the cluster has formed.
#   scripts/cluster.sh wait     waits for every process to exit (bounded runs);
#                               exits non-zero if any process failed.
#   scripts/cluster.sh stop     stops every process cleanly (SIGTERM: a final
#                               checkpoint, then exit 0) and waits for them.
#   scripts/cluster.sh status   shows each process and the end of its log.
#
# State (host file, pids, logs) lives in $WEIR_CLUSTER_DIR (default
# .weir-cluster); processes log at RUST_LOG (default info). The binary is $WEIR_BIN, else target/release/weir, else
# target/debug/weir (build one with `cargo build --release`).
set -euo pipefail

dir="${WEIR_CLUSTER_DIR:-.weir-cluster}"
die() { echo "cluster.sh: $*" >&2; exit 2; }

weir_bin() {
    local root
    root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
    for candidate in "${WEIR_BIN:-}" "$root/target/release/weir" "$root/target/debug/weir"; do
        if [[ -n "$candidate" && -x "$candidate" ]]; then
            echo "$candidate"
            return
        fi
    done
    die "no weir binary: run \`cargo build --release\` or set WEIR_BIN"
}

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null ||
        die "python3 is needed to pick free ports"
}

pids() { [[ -f "$dir/pids" ]] && cat "$dir/pids" || true; }

alive() { kill -0 "$1" 2>/dev/null; }

wait_all() {
    local failed=0 i=0 pid code
    for pid in $(pids); do
        while alive "$pid"; do sleep 0.2; done
        code="$(cat "$dir/exit-$i" 2>/dev/null || echo "?")"
        echo "process $i (pid $pid) exited with $code"
        [[ "$code" == 0 ]] || failed=1
        i=$((i + 1))
    done
    rm -f "$dir/pids"
    return "$failed"
}

case "${1:-}" in
start)
    [[ $# -ge 3 ]] || die "usage: cluster.sh start N PIPELINE.toml [weir run options...]"
    n="$2" pipeline="$3"
    shift 3
    [[ "$n" =~ ^[1-9][0-9]*$ ]] || die "N must be a positive number, not '$n'"
    [[ -f "$pipeline" ]] || die "no pipeline file $pipeline"
    if [[ -n "$(pids)" ]]; then
        for pid in $(pids); do alive "$pid" && die "a cluster is already running (pids in $dir/pids); stop it first"; done
    fi
    bin="$(weir_bin)"
    mkdir -p "$dir"
    rm -f "$dir"/exit-* "$dir"/process-*.log "$dir/pids"
    : > "$dir/hosts"
    for ((i = 0; i < n; i++)); do echo "127.0.0.1:$(free_port)" >> "$dir/hosts"; done
    for ((i = 0; i < n; i++)); do
        (
            set +e
            RUST_LOG="${RUST_LOG:-info}" "$bin" run "$pipeline" --process "$i" \
                --hosts "$dir/hosts" --quiet "$@" > "$dir/process-$i.log" 2>&1
            echo $? > "$dir/exit-$i"
        ) &
        echo $! >> "$dir/pids"
    done
    # Formed once every process has started its sources (timely connects
    # every process first) and none has exited. Connecting to the ports to
    # check would break timely's handshake.
    deadline=$((SECONDS + 60))
    while :; do
        ready=1
        i=0
        for pid in $(pids); do
            if [[ -f "$dir/exit-$i" ]]; then
                echo "process $i exited early; its log:" >&2
                cat "$dir/process-$i.log" >&2
                "$0" stop >/dev/null 2>&1 || true
                exit 2
            fi
            grep -qs "Kafka source started" "$dir/process-$i.log" || ready=0
            i=$((i + 1))
        done
        [[ "$ready" == 1 ]] && break
        ((SECONDS < deadline)) || die "the cluster did not form within 60 s; see $dir/process-*.log"
        sleep 0.5
    done
    echo "cluster of $n processes running: pids $(pids | tr '\n' ' ')(logs in $dir/)"
    ;;
wait)
    [[ -n "$(pids)" ]] || die "no cluster running"
    wait_all
    ;;
stop)
    [[ -n "$(pids)" ]] || die "no cluster running"
    for pid in $(pids); do
        # The subshell's child is the weir process.
        pkill -TERM -P "$pid" 2>/dev/null || true
    done
    wait_all
    ;;
status)
    [[ -n "$(pids)" ]] || { echo "no cluster running"; exit 0; }
    i=0
    for pid in $(pids); do
        state=running
        alive "$pid" || state="exited ($(cat "$dir/exit-$i" 2>/dev/null || echo "?"))"
        echo "process $i (pid $pid): $state"
        tail -n 3 "$dir/process-$i.log" | sed 's/^/    /'
        i=$((i + 1))
    done
    ;;
*)
    sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
    ;;
esac
