#!/usr/bin/env bash
# Re-runs the figures of docs/performance.md ("Results: the harness of issue 7"), each
# command as it is written there, into $OUT (default ./figures): one .txt (the table) and
# one .json per run. Needs the release build (cargo build --release -p parley -p
# parley-loadtests), node + npm for the Socket.IO peer, and the local PostgreSQL and Redis.
# Takes about 40 minutes. Pass names to run only some: steady-pg steady-sqlite steady-2n
# burst idle reconnect.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-figures}"
mkdir -p "$OUT"
PG="${PG:-postgres://postgres@127.0.0.1:5432/postgres}"
REDIS="${REDIS:-redis://127.0.0.1:6379}"
L=target/release/parley-load
SHORT=(--duration 5s --warmup 2s --drain 5s)
run() { # name, command...
  local name=$1; shift
  echo "== $name: $*" | tee "$OUT/$name.txt"
  "$@" --json "$OUT/$name.json" 2>"$OUT/$name.err" | tee -a "$OUT/$name.txt"
}
want() { [ $# -eq 0 ] && return 0; for w in "${SELECTED[@]}"; do [ "$w" = "$1" ] && return 0; done; return 1; }
SELECTED=("$@")
sel() { [ ${#SELECTED[@]} -eq 0 ] || want "$1"; }

sel steady-pg && run steady-pg $L compare steady --spawn --scenario loadtests/scenarios/steady-100.toml \
  "${SHORT[@]}" --database-url "$PG" --rate 500 --find-max --refine 2
sel steady-sqlite && run steady-sqlite $L compare steady --spawn --scenario loadtests/scenarios/steady-100.toml \
  "${SHORT[@]}" --rate 500 --find-max --refine 2
sel steady-2n && run steady-2n $L compare --targets parley,socketio steady --spawn \
  --scenario loadtests/scenarios/steady-100.toml "${SHORT[@]}" --database-url "$PG" --redis-url "$REDIS" \
  --nodes 2 --rate 250 --find-max --refine 2
sel burst && run burst $L compare burst --spawn --scenario loadtests/scenarios/burst-10k.toml --database-url "$PG"
sel idle && run idle $L compare idle --spawn --scenario loadtests/scenarios/idle-19k.toml
sel reconnect && run reconnect $L compare reconnect --spawn --scenario loadtests/scenarios/reconnect-1k.toml \
  --database-url "$PG"
exit 0
