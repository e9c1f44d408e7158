#!/usr/bin/env bash
# Start, stop or restart a Warren broker in the background, keeping its data directory.
#   scripts/broker.sh start|stop|restart|kill
# Environment: WARREN_BIN (target/release/warren), WARREN_STATE (/tmp/warren-test: pid file,
# log, data), WARREN_AMQP_PORT (5672), WARREN_HTTP_PORT (15672).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN="${WARREN_BIN:-$ROOT/target/release/warren}"
STATE="${WARREN_STATE:-/tmp/warren-test}"
AMQP_PORT="${WARREN_AMQP_PORT:-5672}"
HTTP_PORT="${WARREN_HTTP_PORT:-15672}"
PIDFILE="$STATE/warren.pid"
mkdir -p "$STATE"

wait_port() { # wait_port PORT SECONDS
  local deadline=$((SECONDS + $2))
  until (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; do
    if [ $SECONDS -ge $deadline ]; then echo "broker.sh: port $1 not open after $2 s" >&2; tail -20 "$STATE/warren.log" >&2; return 1; fi
    sleep 0.1
  done
}

running() { [ -f "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; }

start() {
  if running; then echo "broker.sh: already running (pid $(cat "$PIDFILE"))"; return 0; fi
  WARREN_AMQP_PORT="$AMQP_PORT" WARREN_HTTP_PORT="$HTTP_PORT" WARREN_DATA_DIR="$STATE/data" \
    setsid "$BIN" >>"$STATE/warren.log" 2>&1 </dev/null &
  echo $! >"$PIDFILE"
  wait_port "$AMQP_PORT" 60
}

stop() { # stop SIGNAL
  running || return 0
  local pid; pid="$(cat "$PIDFILE")"
  kill "-$1" "$pid" 2>/dev/null || true
  for _ in $(seq 1 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid"; sleep 0.2; fi
  rm -f "$PIDFILE"
}

case "${1:-}" in
  start) start ;;
  stop) stop TERM ;;
  kill) stop KILL ;;
  restart) stop TERM; start ;;
  *) echo "usage: $0 start|stop|kill|restart" >&2; exit 2 ;;
esac
