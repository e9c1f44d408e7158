#!/usr/bin/env bash
# Scenario (f) against Warren and RabbitMQ 3.10 on this machine: 1 million persistent 16-byte
# messages with a 1 s TTL into a durable queue that dead-letters them to another, no consumer.
# Each broker starts fresh (Warren: an empty data directory; RabbitMQ: bench/rabbitmq.sh),
# so that its peak RSS is this run's.
#   bench/ttl_dead_letter.sh            (MESSAGES=1000000, PYTHON with pika, WARREN_BIN)
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
WARREN_BIN="${WARREN_BIN:-$ROOT/target/release/warren}"
PYTHON="${PYTHON:-${SEED_SUITE_VENV:+$SEED_SUITE_VENV/bin/python}}"
PYTHON="${PYTHON:-python3}"
MESSAGES="${MESSAGES:-1000000}"
PORT="${WARREN_PORT:-5690}"
RMQ_PORT="${RMQ_BENCH_PORT:-5673}"
OUT="$ROOT/bench/results/ttl-$(date -u +%Y%m%d-%H%M%S)"
mkdir -p "$OUT"

DATA="$(mktemp -d)"
"$WARREN_BIN" --amqp-port "$PORT" --http-port 0 --prometheus-port 0 --data-dir "$DATA" --log warn &
WPID=$!
trap 'kill $WPID 2>/dev/null || true; rm -rf "$DATA"' EXIT
for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break; sleep 0.1; done
echo "warren:" >&2
"$PYTHON" "$ROOT/bench/ttl_dead_letter.py" --port "$PORT" --pid "$WPID" --perf "$WARREN_BIN" \
  --messages "$MESSAGES" --json "$OUT/warren.json"
kill $WPID; wait $WPID 2>/dev/null || true

"$ROOT/bench/rabbitmq.sh" stop >/dev/null 2>&1 || true
"$ROOT/bench/rabbitmq.sh" wipe >/dev/null 2>&1 || true
"$ROOT/bench/rabbitmq.sh" start >/dev/null
RPID="$("$ROOT/bench/rabbitmq.sh" pid)"
echo "rabbitmq (pid $RPID):" >&2
"$PYTHON" "$ROOT/bench/ttl_dead_letter.py" --port "$RMQ_PORT" --pid "$RPID" --perf "$WARREN_BIN" \
  --messages "$MESSAGES" --json "$OUT/rabbitmq.json"
echo "results in $OUT" >&2
