#!/usr/bin/env bash
# RSS per idle AMQP connection, Warren against RabbitMQ 3.10: opens $CONNECTIONS connections
# (default 10,000; whole handshake, heartbeat 0, no channels) to each broker in turn and prints
# (RSS with them open - RSS before) / N. The client is tests/hostile/idle.py.
#
#   bench/idle_connections.sh            # Warren from $WARREN_BIN (default target/release/warren)
#   CONNECTIONS=2000 bench/idle_connections.sh
#
# Warren runs on free ports with a fresh data dir. RabbitMQ is bench/rabbitmq.sh's node (its
# RMQ_BENCH_* variables apply); it is started if needed and stopped afterwards only if this
# script started it. Its RSS is that of the node's beam.smp. Both brokers and this client need
# CONNECTIONS + a few hundred descriptors: `ulimit -Hn` must allow that.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
WARREN_BIN="${WARREN_BIN:-$ROOT/target/release/warren}"
CONNECTIONS="${CONNECTIONS:-10000}"
PY="${PYTHON:-/tmp/warren-seed-venv/bin/python}"   # idle.py needs `requests` (the seed venv has it)
IDLE="$ROOT/tests/hostile/idle.py"

need=$((CONNECTIONS + 500))
if [ "$(ulimit -Hn)" != unlimited ] && [ "$(ulimit -Hn)" -lt "$need" ]; then
  echo "idle_connections.sh: ulimit -Hn is $(ulimit -Hn); $need descriptors are needed" >&2; exit 1
fi
ulimit -n "$(ulimit -Hn)"   # RabbitMQ inherits our soft limit (Warren raises its own)
[ -x "$WARREN_BIN" ] || { echo "idle_connections.sh: no Warren binary at $WARREN_BIN" >&2; exit 1; }

echo "== Warren ($WARREN_BIN), $CONNECTIONS idle connections"
"$PY" "$IDLE" --warren "$WARREN_BIN" --connections "$CONNECTIONS" --label warren

echo "== RabbitMQ (bench/rabbitmq.sh), $CONNECTIONS idle connections"
started=""
if ! "$ROOT/bench/rabbitmq.sh" status >/dev/null 2>&1; then
  "$ROOT/bench/rabbitmq.sh" start >/dev/null
  started=1
fi
trap '[ -z "$started" ] || "$ROOT/bench/rabbitmq.sh" stop >/dev/null' EXIT
"$PY" "$IDLE" --port "${RMQ_BENCH_PORT:-5673}" --pid "$("$ROOT/bench/rabbitmq.sh" pid)" \
  --connections "$CONNECTIONS" --label rabbitmq
