#!/usr/bin/env bash
# A reference RabbitMQ 3.10 node for benchmarks and conformance runs, separate from the system
# service (adapted from a colleague's rmq-bench.sh, so the recipe lives with the repo).
#
# Usage: bench/rabbitmq.sh start|stop|restart-app|status|pid|ctl ARGS...|wipe
#   start        start the node in the background (idempotent); returns once AMQP and
#                management ports accept connections
#   stop         stop the node (idempotent); frees its ports, kills epmd if it is idle
#   restart-app  rabbitmqctl stop_app && start_app, keeping data (for BROKER_RESTART_CMD)
#   status       exit 0 if the node process is alive and AMQP accepts connections
#   pid          print the OS pid of the node's Erlang VM (beam.smp), e.g. for /proc/PID/stat
#   ctl ARGS     run rabbitmqctl against the node (e.g. `bench/rabbitmq.sh ctl list_queues`)
#   wipe         stop, then delete the data dir
# AMQP on $RMQ_BENCH_PORT (5673), AMQPS on $RMQ_BENCH_TLS_PORT (5674, certificates from
# tests/tls/make_certs.sh in $RMQ_BENCH_DIR/tls, no client certificates asked for), management
# on $RMQ_BENCH_MGMT_PORT (15673), Erlang distribution on $RMQ_BENCH_DIST_PORT (25673), data
# under $RMQ_BENCH_DIR (/tmp/rmq-bench).  guest/guest works from loopback.
# Needs `apt-get install rabbitmq-server` (Debian 12 ships 3.10.8 on Erlang/OTP 25).
set -euo pipefail

BASE="${RMQ_BENCH_DIR:-/tmp/rmq-bench}"
PORT="${RMQ_BENCH_PORT:-5673}"
TLS_PORT="${RMQ_BENCH_TLS_PORT:-5674}"
MGMT_PORT="${RMQ_BENCH_MGMT_PORT:-15673}"
DIST_PORT="${RMQ_BENCH_DIST_PORT:-25673}"
NODE="${RMQ_BENCH_NODE:-bench@localhost}"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN=/usr/lib/rabbitmq/bin   # not /usr/sbin: that wrapper su's to user rabbitmq (other cookie)

# Own HOME => own Erlang cookie ($BASE/.erlang.cookie), shared by server and CLI tools.
export HOME="$BASE"
export RABBITMQ_NODENAME="$NODE"
export RABBITMQ_NODE_PORT="$PORT"
export RABBITMQ_DIST_PORT="$DIST_PORT"
export RABBITMQ_MNESIA_BASE="$BASE/mnesia"
export RABBITMQ_LOG_BASE="$BASE/log"
export RABBITMQ_PID_FILE="$BASE/node.pid"
export RABBITMQ_CONFIG_FILE="$BASE/rabbitmq.conf"
export RABBITMQ_ENABLED_PLUGINS_FILE="$BASE/enabled_plugins"
export RABBITMQ_CONF_ENV_FILE="$BASE/rabbitmq-env.conf"   # keep /etc/rabbitmq/rabbitmq-env.conf out
export RABBITMQ_ADVANCED_CONFIG_FILE="$BASE/advanced.config"

ctl() { "$BIN/rabbitmqctl" -n "$NODE" "$@"; }

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

node_pid() {
  local pid
  [ -s "$RABBITMQ_PID_FILE" ] || return 1
  pid="$(cat "$RABBITMQ_PID_FILE")"
  kill -0 "$pid" 2>/dev/null || return 1
  echo "$pid"
}

prepare() {
  mkdir -p "$BASE" "$RABBITMQ_MNESIA_BASE" "$RABBITMQ_LOG_BASE"
  : > "$RABBITMQ_CONF_ENV_FILE"
  [ -s "$BASE/tls/server.pem" ] || "$ROOT/tests/tls/make_certs.sh" "$BASE/tls"
  # TLS as Warren offers it: 1.2 and 1.3, the server's certificate, no client certificate.
  cat > "$RABBITMQ_CONFIG_FILE" <<EOF
listeners.tcp.default = $PORT
listeners.ssl.default = $TLS_PORT
ssl_options.cacertfile = $BASE/tls/ca.pem
ssl_options.certfile = $BASE/tls/server.pem
ssl_options.keyfile = $BASE/tls/server.key
ssl_options.verify = verify_none
ssl_options.fail_if_no_peer_cert = false
ssl_options.versions.1 = tlsv1.3
ssl_options.versions.2 = tlsv1.2
management.tcp.port = $MGMT_PORT
loopback_users.guest = true
EOF
  # Only management (and its agent, pulled in as a dependency); no prometheus.
  echo '[rabbitmq_management].' > "$RABBITMQ_ENABLED_PLUGINS_FILE"
  [ -f "$RABBITMQ_ADVANCED_CONFIG_FILE" ] || echo '[].' > "$RABBITMQ_ADVANCED_CONFIG_FILE"
}

start() {
  if node_pid >/dev/null && port_open "$PORT" && port_open "$MGMT_PORT"; then
    echo "rabbitmq.sh: already running ($NODE, pid $(node_pid), amqp $PORT, mgmt $MGMT_PORT)"
    return 0
  fi
  if node_pid >/dev/null; then
    echo "rabbitmq.sh: node process exists but is not ready; waiting" >&2
  else
    for p in "$PORT" "$TLS_PORT" "$MGMT_PORT" "$DIST_PORT"; do
      if port_open "$p"; then echo "rabbitmq.sh: port $p is already in use" >&2; exit 1; fi
    done
    prepare
    rm -f "$RABBITMQ_PID_FILE"
    setsid nohup "$BIN/rabbitmq-server" >>"$RABBITMQ_LOG_BASE/startup.log" 2>&1 </dev/null &
  fi
  local deadline=$((SECONDS + 120))
  until port_open "$PORT" && port_open "$TLS_PORT" && port_open "$MGMT_PORT"; do
    if [ $SECONDS -ge $deadline ]; then
      echo "rabbitmq.sh: node did not come up in 120 s; see $RABBITMQ_LOG_BASE" >&2
      tail -n 30 "$RABBITMQ_LOG_BASE/startup.log" >&2 || true
      exit 1
    fi
    sleep 0.5
  done
  ctl await_startup --timeout 60 >/dev/null 2>&1 || true
  echo "rabbitmq.sh: started $NODE (pid $(node_pid || echo ?)), amqp 127.0.0.1:$PORT, amqps $TLS_PORT, mgmt http://127.0.0.1:$MGMT_PORT"
}

stop() {
  local pid
  if pid="$(node_pid)"; then
    # `stop PIDFILE` returns only after the OS process has exited.
    timeout 60 "$BIN/rabbitmqctl" -n "$NODE" stop "$RABBITMQ_PID_FILE" >/dev/null 2>&1 || true
    if kill -0 "$pid" 2>/dev/null; then
      kill -TERM "$pid" 2>/dev/null || true
      for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
      kill -KILL "$pid" 2>/dev/null || true
    fi
  fi
  rm -f "$RABBITMQ_PID_FILE"
  # epmd is started on demand by the node; end it if no node is registered any more.
  if command -v epmd >/dev/null && epmd -names 2>/dev/null | grep -q '^epmd: up' \
     && ! epmd -names 2>/dev/null | grep -q '^name '; then
    epmd -kill >/dev/null 2>&1 || true
  fi
  for p in "$PORT" "$TLS_PORT" "$MGMT_PORT" "$DIST_PORT"; do
    for _ in $(seq 1 20); do port_open "$p" || break; sleep 0.25; done
  done
  echo "rabbitmq.sh: stopped $NODE"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  restart-app) ctl stop_app >/dev/null && ctl start_app >/dev/null
               until port_open "$PORT"; do sleep 0.2; done ;;
  pid) node_pid ;;
  status) # no rabbitmqctl here: it would start an epmd daemon when the node is down
          if node_pid >/dev/null && port_open "$PORT"; then echo "rabbitmq.sh: $NODE running (pid $(node_pid))"
          else echo "rabbitmq.sh: $NODE not running"; exit 1; fi ;;
  ctl) shift; ctl "$@" ;;
  wipe) stop; rm -rf "$BASE" ;;
  *) echo "usage: $0 start|stop|restart-app|status|pid|ctl ARGS...|wipe" >&2; exit 2 ;;
esac
