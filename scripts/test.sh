#!/usr/bin/env bash
# The whole test run: unit and end-to-end tests, the pika seed suite against a real Warren
# process (restarts included), and the kill -9 crash test. What CI runs (.ci/run) and what
# a developer runs.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
SEED="${SEED_SUITE:-$ROOT/../shared/seed-suite}"
# The seed suite's virtualenv (pika) also runs the crash test.
export SEED_SUITE_VENV="${SEED_SUITE_VENV:-/tmp/warren-seed-venv}"

echo "== cargo build --release"
cargo build --release --locked
echo "== cargo test"
cargo test --release --locked --workspace

# Ports of our own so a broker already on 5672 (or RabbitMQ) is not disturbed.
export WARREN_AMQP_PORT="${WARREN_AMQP_PORT:-25672}" WARREN_HTTP_PORT="${WARREN_HTTP_PORT:-35672}"
export WARREN_PROMETHEUS_PORT="${WARREN_PROMETHEUS_PORT:-45692}"
export WARREN_STATE="$(mktemp -d /tmp/warren-seed.XXXXXX)"
trap 'scripts/broker.sh stop || true' EXIT
scripts/broker.sh start
echo "== crash test: kill -9 while publishing with confirms"
"$SEED/run.sh" --version >/dev/null  # creates the virtualenv with pika
"$SEED_SUITE_VENV/bin/python" tests/crash/crash_test.py target/release/warren --rounds 5 --port 25790 \
  || { echo "crash test failed"; exit 1; }
echo "== seed suite against Warren on $WARREN_AMQP_PORT"
AMQP_PORT="$WARREN_AMQP_PORT" MGMT_PORT="$WARREN_HTTP_PORT" \
  BROKER_RESTART_CMD="$ROOT/scripts/broker.sh restart" \
  "$SEED/run.sh"
