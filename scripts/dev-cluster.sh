#!/usr/bin/env bash
# A local 3-node raftkms cluster with TLS everywhere, for development:
#   scripts/dev-cluster.sh up      (make cluster)
#   scripts/dev-cluster.sh down    (make cluster-stop)
# Nodes listen on 127.0.0.1: API 9001-9003, cluster 9101-9103; data, logs,
# certificates and pid files live in ./dev-cluster.
set -euo pipefail
cd "$(dirname "$0")/.."
DIR=dev-cluster
CERTS=$DIR/certs

api() { echo "127.0.0.1:900$1"; }
raft() { echo "127.0.0.1:910$1"; }

wait_ready() {
  local n=$1
  for _ in $(seq 300); do
    if curl -sf --cacert "$CERTS/ca.pem" "https://$(api "$n")/readyz" >/dev/null 2>&1; then return 0; fi
    if ! kill -0 "$(cat "$DIR/node$n.pid")" 2>/dev/null; then
      echo "node$n exited; its log:" >&2; tail -20 "$DIR/node$n.log" >&2; return 1
    fi
    sleep 0.2
  done
  echo "node$n not ready after 60s; see $DIR/node$n.log" >&2
  return 1
}

start() {
  local n=$1; shift
  local tls=(--tls-cert "$CERTS/node$n.pem" --tls-key "$CERTS/node$n-key.pem" --tls-ca "$CERTS/ca.pem"
             --api-tls-cert "$CERTS/node$n.pem" --api-tls-key "$CERTS/node$n-key.pem")
  bin/kmsd --data-dir "$DIR/node$n" --node-id "node$n" --api-addr "$(api "$n")" --raft-addr "$(raft "$n")" \
    "${tls[@]}" "$@" >"$DIR/node$n.log" 2>&1 &
  echo $! >"$DIR/node$n.pid"
}

up() {
  command -v curl >/dev/null || apt-get install -y curl >/dev/null
  mkdir -p "$DIR"
  for n in 1 2 3; do
    if [ -f "$DIR/node$n.pid" ] && kill -0 "$(cat "$DIR/node$n.pid")" 2>/dev/null; then
      echo "the dev cluster is already running (stop it with: make cluster-stop)"; exit 1
    fi
  done
  [ -f "$CERTS/ca.pem" ] || bin/kmsd dev-certs --out "$CERTS" --hosts 127.0.0.1,localhost >/dev/null
  if [ -d "$DIR/node1/raft" ]; then
    # A restart: every node comes back from its data directory; they need
    # each other (a quorum) before any serves.
    for n in 1 2 3; do start "$n"; done
  else
    start 1
    wait_ready 1
    for n in 2 3; do start "$n" --join "https://$(api 1)" --root-key-file "$DIR/node1/root.key"; done
  fi
  for n in 1 2 3; do wait_ready "$n"; done
  cat <<MSG
A 3-node raftkms cluster is running (TLS between nodes and on the API):
  node1 https://$(api 1)   node2 https://$(api 2)   node3 https://$(api 3)
  root credentials: $DIR/node1/root-credentials.json   CA: $CERTS/ca.pem   logs: $DIR/node*.log

  bin/kmsctl --endpoint https://$(api 2) --ca-file $CERTS/ca.pem --credentials $DIR/node1/root-credentials.json cluster status
  bin/kmsctl --endpoint https://$(api 3) --ca-file $CERTS/ca.pem --credentials $DIR/node1/root-credentials.json create-key

Stop it with: make cluster-stop   (data stays in $DIR; rm -rf $DIR to start afresh)
MSG
}

down() {
  for n in 1 2 3; do
    if [ -f "$DIR/node$n.pid" ]; then
      kill -TERM "$(cat "$DIR/node$n.pid")" 2>/dev/null || true
    fi
  done
  for n in 1 2 3; do
    if [ -f "$DIR/node$n.pid" ]; then
      pid=$(cat "$DIR/node$n.pid")
      for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      rm -f "$DIR/node$n.pid"
    fi
  done
  echo "the dev cluster is stopped"
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  *) echo "usage: $0 up|down" >&2; exit 2 ;;
esac
