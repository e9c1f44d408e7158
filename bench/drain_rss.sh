#!/usr/bin/env bash
# Memory while a backlog leaves: N persistent 16-byte messages (confirmed) in a durable queue,
# then (1) drained by a consumer with no prefetch limit (prefetch 0, acks), (2) refilled and
# subscribed by a consumer that never reads its socket. Reports the broker's peak RSS in each.
#   bench/drain_rss.sh                 # 10,000,000 messages
#   MESSAGES=1000000 WARREN_BIN=/path/to/other/warren bench/drain_rss.sh
# Needs a release build and the seed suite's virtualenv (pika).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BENCH="$ROOT/bench"
N="${MESSAGES:-10000000}"
export WARREN_BIN="${WARREN_BIN:-$ROOT/target/release/warren}"
PERF="$ROOT/target/release/warren"
PY="${PYTHON:-${SEED_SUITE_VENV:-/tmp/warren-seed-venv}/bin/python}"
export WARREN_STATE="$(mktemp -d /tmp/warren-drain.XXXXXX)"
export WARREN_AMQP_PORT=25820 WARREN_HTTP_PORT=35820 WARREN_PROMETHEUS_PORT=0
QUEUE=drain-1
trap '"$ROOT/scripts/broker.sh" stop >/dev/null 2>&1 || true; rm -rf "$WARREN_STATE"' EXIT

peak_rss_while() { # CMD...: runs CMD, prints the broker's peak VmRSS in MiB meanwhile
  local pid peak=0 rss; pid="$(cat "$WARREN_STATE/warren.pid")"
  "$@" & local cmd=$!
  while kill -0 "$cmd" 2>/dev/null; do
    rss=$(awk '/VmRSS/ {print $2}' "/proc/$pid/status" 2>/dev/null || echo 0)
    [ "$rss" -gt "$peak" ] && peak=$rss
    sleep 0.1
  done
  wait "$cmd" || true
  echo $((peak / 1024))
}
fill() {
  "$PERF" perf --port "$WARREN_AMQP_PORT" --producers 1 --consumers 0 --confirm 1000 --persistent \
    --predeclared --exchange "" --queue-prefix drain --pmessages "$N" >/dev/null 2>&1
}
count() { "$PY" "$BENCH/queue_count.py" "$WARREN_AMQP_PORT" "$QUEUE"; }
drain() {
  "$PERF" perf --port "$WARREN_AMQP_PORT" --producers 1 --rate 1 --consumers 1 --prefetch 0 \
    --predeclared --exchange "" --queue-prefix drain --duration 3600 >/dev/null 2>&1 </dev/null &
  local perf=$!
  until [ "$(count)" = 0 ]; do sleep 0.5; done
  kill -INT "$perf"; wait "$perf" || true
}

"$ROOT/scripts/broker.sh" start >/dev/null
curl -sf -u guest:guest -X PUT -H 'content-type: application/json' -d '{"durable":true}' \
  "http://127.0.0.1:$WARREN_HTTP_PORT/api/queues/%2F/$QUEUE" -o /dev/null
fill_peak=$(peak_rss_while fill)
echo "filled: $(count) messages, peak RSS $fill_peak MiB" >&2
drain_peak=$(peak_rss_while drain)
echo "drained by a prefetch-0 consumer: peak RSS $drain_peak MiB" >&2
fill
stall_peak=$(peak_rss_while "$PY" "$BENCH/stalled_consumer.py" "$WARREN_AMQP_PORT" "$QUEUE" 20)
echo "a prefetch-0 consumer that stopped reading for 20 s: peak RSS $stall_peak MiB; $(count) still ready" >&2
echo "| $(basename "$(dirname "$(dirname "$(dirname "$WARREN_BIN")")")") | $N | $fill_peak MiB | $drain_peak MiB | $stall_peak MiB |"
