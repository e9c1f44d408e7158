#!/usr/bin/env bash
# Backlog benchmark: persistent 16-byte messages published with confirms into a durable queue
# with no consumer, then the broker restarted with the backlog in place, then drained.
# Reports publish rate, peak RSS (and per queued message), disk used, time from restart to
# the first message served, and drain rate, for Warren and RabbitMQ 3.10 in the same run.
#
#   bench/backlog.sh                 # Warren with 10,000,000 messages, RabbitMQ with 1,000,000
#   WARREN_MESSAGES=1000000 RMQ_MESSAGES=1000000 bench/backlog.sh
#   RMQ_MESSAGES=0 bench/backlog.sh  # Warren only
#   WARREN_STOP=stop bench/backlog.sh  # a clean stop (SIGTERM) before the restart; default kill -9
#
# RabbitMQ gets fewer messages by default: at ~1.5 KB of RAM per queued message it would hit
# its memory alarm long before 10 million on this machine. Needs a release build and the seed
# suite's virtualenv (pika): `../shared/seed-suite/run.sh --version` makes it.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BENCH="$ROOT/bench"
WARREN_MESSAGES="${WARREN_MESSAGES:-10000000}"
RMQ_MESSAGES="${RMQ_MESSAGES:-1000000}"
PY="${PYTHON:-${SEED_SUITE_VENV:-/tmp/warren-seed-venv}/bin/python}"
[ -x "$PY" ] || PY="$(ls -d /tmp/seed-suite-venv-*/bin/python 2>/dev/null | head -1)"
PERF="$ROOT/target/release/warren"
OUT="$BENCH/results/backlog-$(date -u +%Y%m%d-%H%M%S).md"
QUEUE=backlog-1

export WARREN_STATE="$(mktemp -d /tmp/warren-backlog.XXXXXX)"
export WARREN_AMQP_PORT=25810 WARREN_HTTP_PORT=35810 WARREN_PROMETHEUS_PORT=45810
RMQ_PORT=5673 RMQ_HTTP=15673

declare_queue() { # PORT
  curl -sf -u guest:guest -X PUT -H 'content-type: application/json' -d '{"durable":true}' \
    "http://127.0.0.1:$1/api/queues/%2F/$QUEUE" -o /dev/null
}
queue_messages() { # AMQP_PORT: ready messages, from a passive declare (exact, no stats lag)
  "$PY" "$BENCH/queue_count.py" "$1" "$QUEUE"
}
sample_rss() { # PID FILE: VmRSS in kB every 200 ms while PID lives
  while kill -0 "$1" 2>/dev/null; do
    awk '/VmRSS/ {print $2}' "/proc/$1/status" 2>/dev/null >>"$2" || true
    sleep 0.2
  done
}
peak() { sort -n "$1" | tail -1; }

# measure NAME AMQP_PORT HTTP_PORT MESSAGES PID_CMD DATA_DIR STOP_CMD START_CMD
measure() {
  local name="$1" port="$2" http="$3" n="$4" pid_cmd="$5" data="$6" stop_cmd="$7" start_cmd="$8"
  local rss="$WARREN_STATE/$name.rss" pid t0 t1 pub_rate disk first drain_rate
  : >"$rss"
  declare_queue "$http"
  pid="$(eval "$pid_cmd")"
  # Not on our stdout: this function runs inside $(...), which would wait for the sampler.
  sample_rss "$pid" "$rss" >/dev/null &
  t0=$(date +%s.%N)
  "$PERF" perf --port "$port" --producers 1 --consumers 0 --confirm 1000 --persistent \
    --predeclared --exchange "" --queue-prefix backlog --pmessages "$n" >"$WARREN_STATE/$name.publish.log" 2>&1
  t1=$(date +%s.%N)
  pub_rate=$(python3 -c "print(round($n / ($t1 - $t0)))")
  sleep 1
  disk=$(du -sb "$data" | cut -f1)
  echo "  $name: published $n in $(python3 -c "print(round($t1 - $t0, 1))") s; queue holds $(queue_messages "$port"); disk $((disk / 1048576)) MiB" >&2
  eval "$stop_cmd"
  first=$("$PY" "$BENCH/first_message.py" "$port" "$QUEUE" bash -c "$start_cmd")
  echo "  $name: first message $first s after the start command" >&2
  pid="$(eval "$pid_cmd")"
  sample_rss "$pid" "$rss" >/dev/null &
  t0=$(date +%s.%N)
  "$PERF" perf --port "$port" --producers 1 --rate 1 --consumers 1 --prefetch 1000 --predeclared \
    --exchange "" --queue-prefix backlog --duration 3600 >"$WARREN_STATE/$name.drain.log" 2>&1 </dev/null &
  local perf_pid=$!
  until [ "$(queue_messages "$port")" = 0 ]; do sleep 0.2; done
  t1=$(date +%s.%N)
  kill -INT "$perf_pid"; wait "$perf_pid" || true
  drain_rate=$(python3 -c "print(round($n / ($t1 - $t0)))")
  local peak_kb; peak_kb=$(peak "$rss")
  echo "| $name | $n | $pub_rate | $((peak_kb / 1024)) MiB | $(python3 -c "print(round($peak_kb * 1024 / $n, 1))") | $((disk / 1048576)) MiB | $first s | $drain_rate |"
}

echo "== Warren ($WARREN_MESSAGES messages)" >&2
"$ROOT/scripts/broker.sh" start >/dev/null
warren_row=$(measure warren "$WARREN_AMQP_PORT" "$WARREN_HTTP_PORT" "$WARREN_MESSAGES" \
  "cat $WARREN_STATE/warren.pid" "$WARREN_STATE/data" \
  "'$ROOT/scripts/broker.sh' ${WARREN_STOP:-kill}" "'$ROOT/scripts/broker.sh' start >/dev/null")
"$ROOT/scripts/broker.sh" stop

rmq_row="| rabbitmq | not run (RMQ_MESSAGES=0) | | | | | | |"
if [ "$RMQ_MESSAGES" != 0 ]; then
  echo "== RabbitMQ ($RMQ_MESSAGES messages)" >&2
  "$BENCH/rabbitmq.sh" wipe >/dev/null 2>&1 || true
  "$BENCH/rabbitmq.sh" start >/dev/null
  rmq_row=$(measure rabbitmq "$RMQ_PORT" "$RMQ_HTTP" "$RMQ_MESSAGES" \
    "'$BENCH/rabbitmq.sh' pid" "${RMQ_BENCH_DIR:-/tmp/rmq-bench}/mnesia" \
    "'$BENCH/rabbitmq.sh' stop >/dev/null" "'$BENCH/rabbitmq.sh' start >/dev/null")
  "$BENCH/rabbitmq.sh" stop >/dev/null
fi

{
  echo "### Backlog: persistent 16 B messages, confirms (1000 in flight), no consumer; restart; drain"
  echo
  echo "- date: $(date -u +%FT%TZ); commit $(git -C "$ROOT" rev-parse --short HEAD); machine: $(nproc) cores"
  echo
  echo "| broker | messages | publish msg/s | peak RSS | RSS bytes per queued message | disk | restart to first message | drain msg/s |"
  echo "|---|--:|--:|--:|--:|--:|--:|--:|"
  echo "$warren_row"
  echo "$rmq_row"
  echo
  echo "Peak RSS covers publishing, the restart and the drain. \"Restart to first message\" runs from"
  echo "launching the broker (Warren: the process; RabbitMQ: the node) until basic.get returns a message."
} | tee "$OUT"
rm -rf "$WARREN_STATE"
