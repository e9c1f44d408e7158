#!/usr/bin/env bash
# The differential runner against a Warren and a RabbitMQ 3.10 of its own (both on ports of
# their own), for CI and by hand, then the queue-feature tests (tests/features: pytest, the same
# assertions against each broker). Installs rabbitmq-server (Debian's 3.10.8) when missing.
#   tests/differential/run.sh [differential.py options]     (default: 30 sequences of 40 ops)
# Environment: PYTHON (a python with pika; SEED_SUITE_VENV/bin/python if set), WARREN_BIN.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
PYTHON="${PYTHON:-${SEED_SUITE_VENV:+$SEED_SUITE_VENV/bin/python}}"
PYTHON="${PYTHON:-python3}"
WARREN_BIN="${WARREN_BIN:-$ROOT/target/release/warren}"
export RMQ_BENCH_PORT="${RMQ_BENCH_PORT:-25703}" RMQ_BENCH_MGMT_PORT="${RMQ_BENCH_MGMT_PORT:-25704}"
export RMQ_BENCH_DIST_PORT="${RMQ_BENCH_DIST_PORT:-25705}" RMQ_BENCH_DIR="${RMQ_BENCH_DIR:-/tmp/rmq-differential}"
export RMQ_BENCH_NODE="${RMQ_BENCH_NODE:-differential@localhost}"
WARREN_PORT="${DIFF_WARREN_PORT:-25706}"
WARREN_HTTP_PORT="${DIFF_WARREN_HTTP_PORT:-25707}"

if [ ! -x /usr/lib/rabbitmq/bin/rabbitmq-server ]; then
  apt-get update -qq
  # Debian starts the packaged service on 5672; keep it from starting at all.
  printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq rabbitmq-server >/dev/null
  rm -f /usr/sbin/policy-rc.d
fi

STATE="$(mktemp -d /tmp/warren-differential.XXXXXX)"
cleanup() {
  [ -f "$STATE/pid" ] && kill "$(cat "$STATE/pid")" 2>/dev/null || true
  "$ROOT/bench/rabbitmq.sh" wipe >/dev/null 2>&1 || true
}
trap cleanup EXIT
"$ROOT/bench/rabbitmq.sh" start
"$WARREN_BIN" --bind 127.0.0.1 --amqp-port "$WARREN_PORT" --http-port "$WARREN_HTTP_PORT" --prometheus-port 0 \
  --data-dir "$STATE/data" >"$STATE/warren.log" 2>&1 &
echo $! >"$STATE/pid"
for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$WARREN_PORT") 2>/dev/null && break; sleep 0.1; done
[ $# -gt 0 ] || set -- --sequences 30 --ops 40
"$PYTHON" "$ROOT/tests/differential/differential.py" \
  --warren-port "$WARREN_PORT" --rabbitmq-port "$RMQ_BENCH_PORT" "$@"
for ports in "$RMQ_BENCH_PORT:$RMQ_BENCH_MGMT_PORT" "$WARREN_PORT:$WARREN_HTTP_PORT"; do
  echo "== queue features (tests/features) against ports $ports"
  AMQP_PORT="${ports%%:*}" MGMT_PORT="${ports##*:}" \
    "$PYTHON" -m pytest -q -p no:cacheprovider "$ROOT/tests/features"
done
