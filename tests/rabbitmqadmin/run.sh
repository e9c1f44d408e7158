#!/usr/bin/env bash
# rabbitmqadmin v2 (the RabbitMQ team's CLI) against a Warren of its own: installs the pinned
# release with cargo when it is missing (about 5 minutes on 2 cores; kept under target/), then
# runs tests/rabbitmqadmin with pytest.
#   tests/rabbitmqadmin/run.sh [pytest options]
# Environment: PYTHON (a python with pika and pytest), WARREN_BIN, RABBITMQADMIN (a binary to
# use instead of installing one).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
PYTHON="${PYTHON:-python3}"
WARREN_BIN="${WARREN_BIN:-$ROOT/target/release/warren}"
VERSION=2.35.0
INSTALL_ROOT="$ROOT/target/rabbitmqadmin-$VERSION"
if [ -z "${RABBITMQADMIN:-}" ]; then
  RABBITMQADMIN="$INSTALL_ROOT/bin/rabbitmqadmin"
  if [ ! -x "$RABBITMQADMIN" ]; then
    echo "installing rabbitmqadmin $VERSION into $INSTALL_ROOT"
    # Its release profile asks for fat LTO and one codegen unit: minutes more for a test tool.
    CARGO_PROFILE_RELEASE_LTO=false CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16 \
      cargo install rabbitmqadmin --version "$VERSION" --locked --root "$INSTALL_ROOT" --quiet
  fi
fi
export RABBITMQADMIN

STATE="$(mktemp -d /tmp/warren-rabbitmqadmin.XXXXXX)"
cleanup() {
  [ -f "$STATE/pid" ] && kill "$(cat "$STATE/pid")" 2>/dev/null || true
  rm -rf "$STATE"
}
trap cleanup EXIT
export AMQP_PORT="${ADMIN_AMQP_PORT:-25720}" MGMT_PORT="${ADMIN_MGMT_PORT:-25721}"
"$WARREN_BIN" --bind 127.0.0.1 --amqp-port "$AMQP_PORT" --http-port "$MGMT_PORT" \
  --prometheus-port 0 --data-dir "$STATE/data" >"$STATE/warren.log" 2>&1 &
echo $! >"$STATE/pid"
for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$MGMT_PORT") 2>/dev/null && break; sleep 0.1; done
"$PYTHON" -m pytest -q -p no:cacheprovider "$ROOT/tests/rabbitmqadmin" "$@" \
  || { echo "rabbitmqadmin tests failed; Warren's log:"; tail -n 30 "$STATE/warren.log"; exit 1; }
