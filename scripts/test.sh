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

echo "== cargo fmt --check, cargo clippy (every crate, every target)"
cargo fmt --all --check
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== cargo test"
cargo test --release --locked --workspace
# After the tests, not before: their build compiles the store's fail points in (a feature of
# its dev-dependency in crates/server), and the broker the suites below run must be the one
# users get.
echo "== cargo build --release"
cargo build --release --locked

echo "== web UI in headless Chromium (tests/ui: its own Warren on free ports)"
if [ ! -x /usr/bin/chromium ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi
(cd tests/ui && npm ci --no-audit --no-fund --loglevel=error && node --test) \
  || { echo "web UI browser tests failed"; exit 1; }

# Ports of our own so a broker already on 5672 (or RabbitMQ) is not disturbed.
export WARREN_AMQP_PORT="${WARREN_AMQP_PORT:-25672}" WARREN_HTTP_PORT="${WARREN_HTTP_PORT:-35672}"
export WARREN_PROMETHEUS_PORT="${WARREN_PROMETHEUS_PORT:-45692}"
export WARREN_STATE="$(mktemp -d /tmp/warren-seed.XXXXXX)"

# The seed suite runs in a network namespace of our own, broker included, so that the broker
# also has an address that is not loopback (10.251.75.1): `guest` must be refused there. Where
# namespaces cannot be made, it runs as is and that one test is skipped.
NS="warren-seed-$$"
IN_NS=()
NONLOOPBACK=""
if [ "$(id -u)" = 0 ] && ip netns add "$NS" 2>/dev/null; then
  ip netns exec "$NS" ip link set lo up
  ip netns exec "$NS" ip addr add 10.251.75.1/32 dev lo
  IN_NS=(ip netns exec "$NS")
  NONLOOPBACK=10.251.75.1
else
  echo "== no network namespace here: the guest-from-non-loopback check will be skipped"
fi
cleanup() {
  "${IN_NS[@]}" scripts/broker.sh stop || true
  [ -z "$NONLOOPBACK" ] || ip netns del "$NS" 2>/dev/null || true
}
trap cleanup EXIT

echo "== crash test: kill -9 while publishing with confirms"
"$SEED/run.sh" --version >/dev/null  # creates the virtualenv with pika
"$SEED_SUITE_VENV/bin/python" tests/crash/crash_test.py target/release/warren --rounds 5 --port 25790 \
  || { echo "crash test failed"; exit 1; }
echo "== crash test with a TTL and a dead-letter queue on the durable queues"
"$SEED_SUITE_VENV/bin/python" tests/crash/crash_test.py target/release/warren --rounds 5 --port 25790 \
  --ttl 300 || { echo "crash test (TTL, dead letters) failed"; exit 1; }

echo "== TLS: pika, openssl s_client and HTTPS against a Warren with certificates of its own"
WARREN_BIN=target/release/warren "$SEED_SUITE_VENV/bin/python" -m pytest -q -p no:cacheprovider \
  tests/tls || { echo "TLS tests failed"; exit 1; }

echo "== kill -9 during startup: definitions compaction and queue recovery interrupted, nothing lost"
"$SEED_SUITE_VENV/bin/python" tests/crash/startup_kill_test.py target/release/warren --queues 4000 \
  --rounds 20 --port 25795 || { echo "startup kill test failed"; exit 1; }

echo "== hostile clients (short sizes): stalled handshakes, a consumer that stops reading, idle"
echo "   connections, churn, channel_max, max-queues, deep tables, descriptor exhaustion"
WARREN_BIN="$ROOT/target/release/warren" tests/hostile/run.sh -q || { echo "hostile-client tests failed"; exit 1; }

echo "== differential: the same random operations against Warren and RabbitMQ 3.10, then the"
echo "   queue-feature tests against each"
PYTHON="$SEED_SUITE_VENV/bin/python" tests/differential/run.sh --sequences 30 --ops 40 \
  || { echo "differential run or queue-feature tests failed against RabbitMQ or Warren"; exit 1; }

echo "== rabbitmqadmin v2 (the RabbitMQ team's CLI) against Warren"
PYTHON="$SEED_SUITE_VENV/bin/python" tests/rabbitmqadmin/run.sh \
  || { echo "rabbitmqadmin tests failed"; exit 1; }

"${IN_NS[@]}" scripts/broker.sh start
echo "== seed suite against Warren on $WARREN_AMQP_PORT${NONLOOPBACK:+ (and $NONLOOPBACK, not loopback)}"
"${IN_NS[@]}" env AMQP_PORT="$WARREN_AMQP_PORT" MGMT_PORT="$WARREN_HTTP_PORT" \
  AMQP_NONLOOPBACK_HOST="$NONLOOPBACK" \
  BROKER_RESTART_CMD="$ROOT/scripts/broker.sh restart" \
  "$SEED/run.sh"
