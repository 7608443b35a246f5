#!/usr/bin/env bash
# The kmsbench suites (docs/PERFORMANCE.md):
#   scripts/bench.sh smoke      every workload for a moment; fails only on errors (make bench-smoke, CI)
#   scripts/bench.sh standard   the figures of docs/PERFORMANCE.md (make bench), about 13 minutes
#   scripts/bench.sh full       standard, plus 1,000,000 keys and 5 nodes (make bench-full), about 15 minutes
#   scripts/bench.sh many-keys  the bar's 1,000,000-key row on a warmed node (make bench-keys), about 11 minutes
# Nodes run on 127.0.0.1 with throw-away data directories; results (JSON,
# HTML, Markdown tables) go to bench-results/.
set -euo pipefail
cd "$(dirname "$0")/.."
MODE=${1:-standard}
OUT=bench-results
WORK=$(mktemp -d /tmp/raftkms-bench.XXXXXX)
PIDS=()
trap 'for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done; wait 2>/dev/null; rm -rf "$WORK"' EXIT
command -v curl >/dev/null || apt-get install -y curl >/dev/null

api() { echo "127.0.0.1:$((19000 + $1))"; }
raft() { echo "127.0.0.1:$((19100 + $1))"; }

wait_ready() {
  for _ in $(seq 300); do
    curl -sf "http://$(api "$1")/readyz" >/dev/null 2>&1 && return 0
    sleep 0.2
  done
  echo "node$1 not ready; its log:" >&2; tail -20 "$WORK/node$1.log" >&2; exit 1
}

# port_free PORT: nothing listens on 127.0.0.1:PORT.
port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# cluster N [CONFIG]: stop what runs, start N fresh nodes (with the kmsd
# configuration file CONFIG, if given), set ENDPOINTS and CREDS.
cluster() {
  local n=$1
  local conf=()
  [ -n "${2:-}" ] && conf=(--config "$2")
  for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  PIDS=()
  rm -rf "$WORK"/node*
  for i in $(seq 1 "$n"); do # else the readiness check would ask another process
    for a in "$(api "$i")" "$(raft "$i")"; do
      port_free "${a#*:}" || { echo "$a is taken by another process (a kmsd left running?); stop it first" >&2; exit 1; }
    done
  done
  bin/kmsd "${conf[@]}" --data-dir "$WORK/node1" --node-id node1 --api-addr "$(api 1)" --raft-addr "$(raft 1)" >"$WORK/node1.log" 2>&1 &
  PIDS+=($!)
  wait_ready 1
  for i in $(seq 2 "$n"); do
    bin/kmsd "${conf[@]}" --data-dir "$WORK/node$i" --node-id "node$i" --api-addr "$(api "$i")" --raft-addr "$(raft "$i")" \
      --join "http://$(api 1)" --root-key-file "$WORK/node1/root.key" >"$WORK/node$i.log" 2>&1 &
    PIDS+=($!)
  done
  ENDPOINTS=""
  for i in $(seq 1 "$n"); do
    wait_ready "$i"
    ENDPOINTS+="${ENDPOINTS:+,}http://$(api "$i")"
  done
  CREDS="$WORK/node1/root-credentials.json"
}

kb() { bin/kmsbench "$@" --endpoints "$ENDPOINTS" --credentials "$CREDS" --quiet; }

# one_node_beside: start a one-node cluster (node 9) beside the running one,
# without stopping it; set ONE_ENDPOINTS and ONE_CREDS. The next cluster call
# stops it with the rest.
one_node_beside() {
  for a in "$(api 9)" "$(raft 9)"; do
    port_free "${a#*:}" || { echo "$a is taken by another process (a kmsd left running?); stop it first" >&2; exit 1; }
  done
  bin/kmsd --data-dir "$WORK/node9" --node-id node9 --api-addr "$(api 9)" --raft-addr "$(raft 9)" >"$WORK/node9.log" 2>&1 &
  PIDS+=($!)
  wait_ready 9
  ONE_ENDPOINTS="http://$(api 9)" ONE_CREDS="$WORK/node9/root-credentials.json"
}

# cluster_bar ROUNDS: the bar's cluster row — a 3-node cluster and a
# one-node cluster running side by side, generate-data-key against each in
# turn (one node, three nodes, one node, …), each pair's ratio and their
# median. Measured in alternation, as compare measures the baseline, since
# the machine's speed drifts between runs made minutes apart.
cluster_bar() {
  local md=$1 rounds=$2 ratios=()
  cluster 3
  local three=$ENDPOINTS three_creds=$CREDS
  one_node_beside
  for r in $(seq "$rounds"); do
    ENDPOINTS=$ONE_ENDPOINTS CREDS=$ONE_CREDS kb run --duration 10s --label "1 node, round $r" --markdown "$md" --json "$WORK/one-$r.json"
    ENDPOINTS=$three CREDS=$three_creds kb run --duration 10s --label "3 nodes, round $r" --markdown "$md" --json "$OUT/cluster-bar-$r.json"
    ratios+=("$(awk -v a="$(throughput "$OUT/cluster-bar-$r.json")" -v b="$(throughput "$WORK/one-$r.json")" 'BEGIN { printf "%.2f", a / b }')")
  done
  echo -e "\n3 nodes ÷ 1 node, each round: ${ratios[*]}; median $(median "${ratios[@]}")" >>"$md"
}

# A configuration that keeps the Raft log in raft.db (raft-boltdb/v2) instead of the default raft-wal.
printf 'version: v1\nraft:\n  log_store: boltdb\n' >"$WORK/boltdb.yaml"
printf 'version: v1\ntrail:\n  commit: quorum\n' >"$WORK/quorum.yaml"
printf 'version: v1\ntrail:\n  journal_sync: true\n' >"$WORK/journal-sync.yaml"

smoke() {
  cluster 1
  for w in generate-data-key decrypt encrypt re-encrypt generate-data-key-without-plaintext mixed create-key; do
    kb run --workload "$w" --duration 1s --warmup 200ms --concurrency 16 --blobs 50 --fail-on-errors >"$WORK/$w.txt" \
      || { cat "$WORK/$w.txt"; exit 1; }
    sed -n 2p "$WORK/$w.txt" | sed "s/^/$w: /"
  done
  kb compare --rounds 1 --duration 1s --warmup 200ms --concurrency 16 --fail-on-errors --html "$WORK/compare.html" \
    --json "$WORK/compare.json" | tail -1
  [ -d "$WORK/node1/raft/wal" ] || { echo "the default log store is not raft-wal: no segment files"; exit 1; }
  cluster 1 "$WORK/boltdb.yaml"
  kb run --workload mixed --duration 1s --warmup 200ms --concurrency 16 --blobs 50 --fail-on-errors >"$WORK/boltdb.txt" \
    || { cat "$WORK/boltdb.txt"; exit 1; }
  [ ! -d "$WORK/node1/raft/wal" ] || { echo "raft.log_store boltdb: segment files"; exit 1; }
  sed -n 2p "$WORK/boltdb.txt" | sed "s/^/mixed, raft.log_store boltdb: /"
  echo "bench smoke: every workload ran without an error"
}

standard() {
  mkdir -p "$OUT"
  local md="$OUT/tables.md"
  : >"$md"
  echo "# kmsbench $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, $(git rev-parse --short HEAD)" >>"$md"

  cluster 1
  echo -e "\n## The bar: raftkms against the baseline, alternated (64 connections, 32-byte data keys)\n" >>"$md"
  for w in generate-data-key decrypt; do
    kb compare --workload "$w" --rounds 5 --duration 10s --warmup 2s --label "$w, 1 node" --markdown "$md" \
      --json "$OUT/compare-$w.json" --html "$OUT/compare-$w.html"
  done
  cluster 1 "$WORK/boltdb.yaml"
  for w in generate-data-key decrypt; do
    kb compare --workload "$w" --rounds 3 --duration 10s --warmup 2s --label "$w, 1 node, raft.log_store boltdb" --markdown "$md" \
      --json "$OUT/compare-$w-boltdb.json"
  done
  echo -e "\n## The bar: 3 nodes against 1 node, alternated (generate-data-key, 64 connections spread over every node, same 2 cores)\n" >>"$md"
  cluster_bar "$md" 5
  cluster 1

  echo -e "\n## Raft writes: CreateKey, 64 clients, 1 node\n" >>"$md"
  kb run --workload create-key --duration 10s --label "create-key, 1 node" --markdown "$md" --json "$OUT/create-key.json"

  echo -e "\n## Concurrency (generate-data-key, 1 node)\n" >>"$md"
  for c in 1 4 16 64 256; do
    kb run --concurrency "$c" --duration 5s --label "$c connections" --markdown "$md" --json "$OUT/concurrency-$c.json"
  done
  echo -e "\n## Payload (encrypt, 1 node, 64 connections)\n" >>"$md"
  for p in 32 1024 6144; do
    kb run --workload encrypt --payload-bytes "$p" --duration 5s --label "$p bytes" --markdown "$md"
  done
  echo -e "\n## Keys (generate-data-key, 1 node, 64 connections)\n" >>"$md"
  local keys=(10 1000 100000)
  [ "$MODE" = full ] && keys+=(1000000)
  local have=0
  : >"$WORK/keys.txt"
  for k in "${keys[@]}"; do
    bin/kmsbench keys --endpoints "$ENDPOINTS" --credentials "$CREDS" --count $((k - have)) --out "$WORK/keys.txt" >/dev/null
    have=$k
    kb run --keys-file "$WORK/keys.txt" --duration 5s --label "$k keys" --markdown "$md" --json "$OUT/keys-$k.json"
  done
  kb run --workload mixed --duration 5s --label "mixed 60/30/10, 1 node" --markdown "$OUT/mixed.md" --html "$OUT/mixed.html"

  echo -e "\n## Cluster size (generate-data-key, connections spread over every node, same 2 cores)\n" >>"$md"
  local sizes=(1 3)
  [ "$MODE" = full ] && sizes+=(5)
  for n in "${sizes[@]}"; do
    cluster "$n"
    kb run --duration 10s --label "$n node(s)" --markdown "$md" --json "$OUT/cluster-$n.json" --html "$OUT/cluster-$n.html"
  done
  cluster 3 "$WORK/boltdb.yaml"
  kb run --duration 10s --label "3 nodes, raft.log_store boltdb" --markdown "$md" --json "$OUT/cluster-3-boltdb.json"
  # What the trail's journal buys (docs/TRAIL.md): the same cluster answering
  # only after each record committed, and with the journal fsynced.
  cluster 3 "$WORK/quorum.yaml"
  kb run --duration 10s --label "3 nodes, trail.commit quorum" --markdown "$md" --json "$OUT/cluster-3-quorum.json"
  cluster 3 "$WORK/journal-sync.yaml"
  kb run --duration 10s --label "3 nodes, trail.journal_sync" --markdown "$md" --json "$OUT/cluster-3-journal-sync.json"
  echo "tables: $md; JSON and HTML reports: $OUT/"
}

# throughput FILE: the requests/s of a kmsbench JSON report.
throughput() { sed -n 's/^  "throughput": \([0-9.]*\),$/\1/p' "$1"; }

# median N...: the middle of the numbers (the lower middle of an even count).
median() { printf '%s\n' "$@" | sort -n | sed -n "$((($# + 1) / 2))p"; }

# snapshot_rounds LOG WHAT "BEGAN ENDED"...: names the rounds of WHAT (unix
# times, one "began ended" pair each) that a Raft snapshot in the node's LOG
# overlapped, or ran up to 5 s before (the kernel still writing it out): a
# snapshot of a million keys takes about 5 s and slows the node meanwhile.
snapshot_rounds() {
  local log=$1 what=$2 r=0 hit=()
  shift 2
  local snaps=()
  while read -r at event; do
    snaps+=("$(date -d "$at" +%s.%N) $event")
  done < <(sed -n 's/^\([0-9T:.-]*Z\) \[INFO\]  raft: \(starting snapshot\|snapshot complete\).*/\1 \2/p' "$log" | awk '{ print $1, $2 }')
  for span in "$@"; do
    r=$((r + 1))
    local from=${span% *} to=${span#* } start=""
    for s in "${snaps[@]}"; do
      case "${s#* }" in
      starting) start=${s%% *} ;;
      snapshot) [ -n "$start" ] && awk -v a="$start" -v b="${s%% *}" -v f="$from" -v t="$to" 'BEGIN { exit !(a < t && b + 5 > f) }' && hit+=("$r") ;;
      esac
    done
  done
  echo "rounds of $what during or right after a snapshot: ${hit[*]:-none}"
}

# many_keys: the bar's 1,000,000-key row (docs/PERFORMANCE.md "Many keys").
# One node with a 1.8 GiB heap limit and huge pages; 10 keys on the fresh node; 999,990
# more; a warm-up over all of them, since a key's first use on a node
# reserves its encryption budget (a Raft write); then 10-second runs over
# all the keys and over 10 of them, alternated ROUNDS times (9: one pair's
# ratio moves by a tenth on this kind of machine, the median of nine far
# less); the peak RSS.
many_keys() {
  mkdir -p "$OUT"
  local md="$OUT/many-keys.md" ten="$WORK/ten.txt" all="$WORK/all.txt"
  echo "# kmsbench, 1 000 000 keys, $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, $(git rev-parse --short HEAD)" >"$md"
  printf 'version: v1\nmemory_limit_bytes: 1932735283\nhuge_pages: true\n' >"$WORK/limit.yaml"
  cluster 1 "$WORK/limit.yaml"
  local keys=(keys --endpoints "$ENDPOINTS" --credentials "$CREDS")
  bin/kmsbench "${keys[@]}" --count 10 --out "$ten" >/dev/null
  echo -e "\n## generate-data-key, 1 node, 64 connections, memory_limit_bytes 1.8 GiB\n" >>"$md"
  kb run --keys-file "$ten" --duration 10s --label "10 keys, fresh node" --markdown "$md" --json "$OUT/many-keys-fresh.json"
  cp "$ten" "$all"
  bin/kmsbench "${keys[@]}" --count 999990 --out "$all" >/dev/null # appends
  kb run --keys-file "$all" --duration "${WARM:-240}s" --label "warm-up, 1 000 000 keys" --markdown "$md"
  local ratios=() plain=() spans=() tens=()
  local rounds=${ROUNDS:-9}
  for r in $(seq "$rounds"); do
    local began=$(date +%s.%N)
    kb run --keys-file "$all" --duration 10s --label "1 000 000 keys, round $r" --markdown "$md" --json "$OUT/many-keys-$r.json"
    spans+=("$began $(date +%s.%N)")
    began=$(date +%s.%N)
    kb run --keys-file "$ten" --duration 10s --label "10 keys, round $r" --markdown "$md" --json "$WORK/ten-$r.json"
    tens+=("$began $(date +%s.%N)")
    ratios+=("$(awk -v a="$(throughput "$OUT/many-keys-$r.json")" -v b="$(throughput "$WORK/ten-$r.json")" \
      -v f="$(throughput "$OUT/many-keys-fresh.json")" 'BEGIN { printf "%.2f (%.2f)", a / b, a / f }')")
    plain+=("${ratios[-1]%% *}")
  done
  {
    echo -e "\n1 000 000 keys ÷ 10 keys, each round (÷ the fresh node's 10 keys): ${ratios[*]}"
    echo "median of the rounds: $(median "${plain[@]}")"
    echo "peak RSS: $(awk '/VmHWM/ { printf "%.2f GiB", $2 / 1048576 }' "/proc/${PIDS[0]}/status")"
    echo "in huge pages at the end (huge_pages, docs/PERFORMANCE.md): $(awk '/AnonHugePages/ { printf "%.2f GiB", $2 / 1048576 }' "/proc/${PIDS[0]}/smaps_rollup")"
    echo "Raft snapshots taken by the node: $(grep -c 'starting snapshot' "$WORK/node1.log" || true) (their times: $OUT/many-keys-node.log)"
    snapshot_rounds "$WORK/node1.log" "the million keys" "${spans[@]}"
    snapshot_rounds "$WORK/node1.log" "the 10 keys" "${tens[@]}"
  } >>"$md"
  cp "$WORK/node1.log" "$OUT/many-keys-node.log"
  cat "$md"
}

make build >/dev/null
case "$MODE" in
smoke) smoke ;;
standard | full) standard ;;
many-keys) many_keys ;;
*) echo "usage: $0 smoke|standard|full|many-keys" >&2; exit 2 ;;
esac
