#!/usr/bin/env bash
# Warren against RabbitMQ 3.10, same load tool (`warren perf`), same machine, runs interleaved
# A, B, A, B so that drift on the machine hits both brokers alike.
#
# Usage: bench/compare.sh [SCENARIO...]        (default: a b c d; e = persistent, durable)
#   a  1 producer -> 1 queue -> 1 consumer, 16-byte transient messages, manual ack, prefetch 1000
#   b  the same with publisher confirms, 1000 in flight
#   c  fanout to 10 queues with a consumer each
#   d  end-to-end latency at a fixed 1000 msg/s
#   e  a with persistent messages in a durable queue, confirms
#   g  a into a priority queue of 10 levels (x-max-priority 9), priorities spread over 0-9
#   h  a reject-to-dead-letter loop: the queue dead-letters to itself, the consumer rejects
#      every delivery (basic.nack requeue=false), a producer seeds it at 1000 msg/s; the rate
#      is deliveries, each one rejected and dead-lettered back
#   t  a over TLS (AMQPS; Warren on WARREN_PORT+1, RabbitMQ on RMQ_BENCH_TLS_PORT, 5674): both
#      brokers hold the same RSA 2048 certificate from tests/tls/make_certs.sh, TLS 1.2 and 1.3
#      offered, and the load tool negotiates what each prefers (TLS 1.3, AES-256-GCM on both)
#
# For every run it records the receive rate, latency percentiles, the broker's CPU time per
# message received (utime+stime of the whole broker process from /proc/PID/stat, before and
# after; for RabbitMQ the beam.smp process, all its threads), the load tool's own CPU, and the
# CPU the rest of the machine used meanwhile (other work skews a benchmark on 2 cores).
# Prints a markdown table with Warren/RabbitMQ ratios, writes it to bench/results/STAMP.md and
# keeps raw JSON under bench/results/STAMP/.
#
# Environment:
#   ROUNDS (2)  DURATION seconds per run (12)  WARREN_BIN (target/release/warren)
#   PERF_BIN (WARREN_BIN; the tool is `warren perf`)  WARREN_PORT (5690)
#   RMQ_BENCH_PORT (5673, see bench/rabbitmq.sh)  QUIET_WAIT seconds to wait for an idle
#   machine before each run (60)  PERF_EXTRA extra arguments for every `warren perf` run
#   RT=1: run both brokers (every thread) and the tool under SCHED_RR priority RT_PRIO (10),
#   so that other work on a shared machine (builds, tests) cannot preempt them; both brokers
#   get the same treatment. The kernel's RT throttling still leaves 5% to everything else.
#
# Needs: a release build (cargo build --release -p warren), rabbitmq-server 3.10 (apt), python3.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BENCH="$ROOT/bench"
ROUNDS="${ROUNDS:-2}"
DURATION="${DURATION:-12}"
WARREN_BIN="${WARREN_BIN:-$ROOT/target/release/warren}"
PERF_BIN="${PERF_BIN:-$WARREN_BIN}"
WARREN_PORT="${WARREN_PORT:-5690}"
RMQ_PORT="${RMQ_BENCH_PORT:-5673}"
RMQ_TLS_PORT="${RMQ_BENCH_TLS_PORT:-5674}"
WARREN_TLS_PORT="$((WARREN_PORT + 1))"
QUIET_WAIT="${QUIET_WAIT:-60}"
PERF_EXTRA="${PERF_EXTRA:-}"
RT="${RT:-0}"
RT_PRIO="${RT_PRIO:-10}"
RUN_PREFIX=()
[ "$RT" = 1 ] && RUN_PREFIX=(chrt -r "$RT_PRIO")
SCENARIOS=("$@")
[ ${#SCENARIOS[@]} -gt 0 ] || SCENARIOS=(a b c d)

STAMP="$(date -u +%Y%m%d-%H%M%S)"
OUT="$BENCH/results/$STAMP"
mkdir -p "$OUT"
RUNS="$OUT/runs.jsonl"
: > "$RUNS"
HZ="$(getconf CLK_TCK)"

scenario_args() {
  case "$1" in
    a) echo "--producers 1 --consumers 1 --size 16 --prefetch 1000" ;;
    b) echo "--producers 1 --consumers 1 --size 16 --prefetch 1000 --confirm 1000" ;;
    c) echo "--producers 1 --exchange-type fanout --queues 10 --consumers 10 --size 16 --prefetch 1000" ;;
    d) echo "--producers 1 --consumers 1 --size 16 --prefetch 1000 --rate 1000" ;;
    e) echo "--producers 1 --consumers 1 --size 16 --prefetch 1000 --confirm 1000 --persistent --durable-queues" ;;
    g) echo "--producers 1 --consumers 1 --size 16 --prefetch 1000 --queue-args x-max-priority=9 --priorities 10" ;;
    h) echo "--producers 1 --consumers 1 --size 16 --prefetch 1000 --rate 1000 --reject --exchange= --queue-prefix perf-loop --queue-args x-dead-letter-exchange=,x-dead-letter-routing-key=perf-loop-1" ;;
    t) echo "--producers 1 --consumers 1 --size 16 --prefetch 1000 --tls --tls-ca-file $TLS_DIR/ca.pem" ;;
    *) echo "unknown scenario $1 (a, b, c, d, e, g, h or t)" >&2; exit 2 ;;
  esac
}
# The TLS scenario's certificates (the same ones bench/rabbitmq.sh gives RabbitMQ).
TLS_DIR="${RMQ_BENCH_DIR:-/tmp/rmq-bench}/tls"
[ -s "$TLS_DIR/server.pem" ] || "$ROOT/tests/tls/make_certs.sh" "$TLS_DIR"
for s in "${SCENARIOS[@]}"; do scenario_args "$s" >/dev/null; done
[ -x "$WARREN_BIN" ] || { echo "compare.sh: no $WARREN_BIN; run cargo build --release -p warren" >&2; exit 1; }
# Run copies: a rebuild during the benchmark must not swap the binary between runs.
SNAP="$(mktemp -d /tmp/warren-bench-bin.XXXXXX)"
cp "$WARREN_BIN" "$SNAP/warren"
[ "$PERF_BIN" = "$WARREN_BIN" ] && PERF_BIN="$SNAP/warren" || { cp "$PERF_BIN" "$SNAP/perf"; PERF_BIN="$SNAP/perf"; }
WARREN_BIN_ORIG="$WARREN_BIN"
WARREN_BIN="$SNAP/warren"

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
# utime+stime of a whole process (all threads), in clock ticks.
proc_ticks() { sed 's/^.*) //' "/proc/$1/stat" | awk '{print $12 + $13}'; }
# Busy ticks of the whole machine (all CPUs): everything but idle and iowait.
machine_ticks() { awk '/^cpu /{print $2 + $3 + $4 + $7 + $8 + $9}' /proc/stat; }

# Waits until the machine is mostly idle (other builds and tests would skew the run).
wait_quiet() {
  local deadline=$((SECONDS + QUIET_WAIT)) a b busy
  while :; do
    a="$(machine_ticks)"; sleep 1; b="$(machine_ticks)"
    busy=$(( (b - a) * 100 / HZ ))   # percent of one core
    if [ "$busy" -le 25 ]; then return 0; fi
    if [ $SECONDS -ge $deadline ]; then
      echo "  (machine still busy: ${busy}% of a core used by other work; running anyway)" >&2
      return 0
    fi
    sleep 2
  done
}

WARREN_PID=""
WARREN_DATA=""
RMQ_STARTED=0
cleanup() {
  if [ -n "$WARREN_PID" ] && kill -0 "$WARREN_PID" 2>/dev/null; then
    kill -TERM "$WARREN_PID" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$WARREN_PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$WARREN_PID" 2>/dev/null || true
  fi
  [ -n "$WARREN_DATA" ] && rm -rf "$WARREN_DATA"
  rm -rf "$SNAP"
  if [ "$RMQ_STARTED" = 1 ]; then
    "$BENCH/rabbitmq.sh" stop >/dev/null 2>&1 || true
  elif [ "$RT" = 1 ] && [ -n "${RMQ_PID:-}" ]; then
    set_policy "$RMQ_PID" -o 0   # a node we found running goes back to normal scheduling
  fi
}

# set_policy PID CHRT-ARGS...: applies a scheduling policy to every thread of a process.
set_policy() {
  local pid="$1" t; shift
  for t in /proc/"$pid"/task/*; do chrt -p "$@" "${t##*/}" >/dev/null 2>&1 || true; done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

start_warren() {
  if port_open "$WARREN_PORT"; then
    echo "compare.sh: port $WARREN_PORT is in use; set WARREN_PORT" >&2; exit 1
  fi
  WARREN_DATA="$(mktemp -d /tmp/warren-bench.XXXXXX)"
  # Environment rather than flags, so that options a given build lacks are simply ignored.
  WARREN_AMQP_PORT="$WARREN_PORT" WARREN_HTTP_PORT="$((WARREN_PORT + 10000))" \
  WARREN_PROMETHEUS_PORT="$((WARREN_PORT + 10001))" WARREN_BIND=127.0.0.1 \
  WARREN_DATA_DIR="$WARREN_DATA" WARREN_LOG=warn \
  WARREN_TLS_CERT_FILE="$TLS_DIR/server.pem" WARREN_TLS_KEY_FILE="$TLS_DIR/server.key" \
  WARREN_AMQPS_PORT="$WARREN_TLS_PORT" WARREN_HTTPS_PORT=0 \
    "$WARREN_BIN" serve >"$OUT/warren.log" 2>&1 &
  WARREN_PID=$!
  for _ in $(seq 1 100); do port_open "$WARREN_PORT" && return 0; sleep 0.1; done
  echo "compare.sh: Warren did not start; see $OUT/warren.log" >&2; exit 1
}

start_rabbitmq() {
  if ! "$BENCH/rabbitmq.sh" status >/dev/null 2>&1; then
    RMQ_STARTED=1
  fi
  "$BENCH/rabbitmq.sh" start
  RMQ_PID="$("$BENCH/rabbitmq.sh" pid)"
}

# After a TLS run RabbitMQ's node keeps a core busy in system calls for minutes (seen here with
# Erlang 25: beam.smp at ~100% system time, the load tool's connection still listed although
# its socket is gone, and the management API cannot close it), which would be charged to the
# next run. So after each RabbitMQ run of scenario t the node is restarted.
restart_rabbitmq() {
  "$BENCH/rabbitmq.sh" stop >/dev/null
  "$BENCH/rabbitmq.sh" start >/dev/null
  RMQ_PID="$("$BENCH/rabbitmq.sh" pid)"
  if [ "$RT" = 1 ]; then set_policy "$RMQ_PID" -r "$RT_PRIO"; fi
}

# run SCENARIO BROKER ROUND
run_one() {
  local scenario="$1" broker="$2" round="$3" port pid json log
  case "$broker" in
    warren) port="$WARREN_PORT"; pid="$WARREN_PID" ;;
    rabbitmq) port="$RMQ_PORT"; pid="$RMQ_PID" ;;
  esac
  if [ "$scenario" = t ]; then
    [ "$broker" = warren ] && port="$WARREN_TLS_PORT" || port="$RMQ_TLS_PORT"
  fi
  json="$OUT/$scenario-$broker-$round.json"
  log="$OUT/$scenario-$broker-$round.log"
  wait_quiet
  local b0 m0 b1 m1 t0 t1
  b0="$(proc_ticks "$pid")"; m0="$(machine_ticks)"; t0="$(date +%s.%N)"
  # shellcheck disable=SC2046,SC2086
  if ! "${RUN_PREFIX[@]}" "$PERF_BIN" perf --port "$port" --duration "$DURATION" --json "$json" \
      $(scenario_args "$scenario") $PERF_EXTRA >"$log" 2>&1; then
    echo "  $scenario $broker #$round: the load tool failed; see $log" >&2
    tail -n 5 "$log" >&2
  fi
  b1="$(proc_ticks "$pid")"; m1="$(machine_ticks)"; t1="$(date +%s.%N)"
  [ -s "$json" ] || { echo "  no JSON for $scenario $broker #$round" >&2; return 0; }
  python3 - "$json" "$scenario" "$broker" "$round" "$HZ" "$b0" "$b1" "$m0" "$m1" "$t0" "$t1" >>"$RUNS" <<'EOF'
import json, sys
path, scenario, broker, rnd, hz, b0, b1, m0, m1, t0, t1 = sys.argv[1:]
hz = float(hz)
doc = json.load(open(path))
s = doc["summary"]
broker_cpu = (int(b1) - int(b0)) / hz
wall = float(t1) - float(t0)
machine = (int(m1) - int(m0)) / hz
tool = s.get("tool_cpu_s") or 0.0
lat = s.get("latency_us") or {}
print(json.dumps({
    "scenario": scenario, "broker": broker, "round": int(rnd),
    "elapsed_s": s["elapsed_s"], "sent": s["sent"], "received": s["received"],
    "confirmed": s["confirmed"],
    "send_rate": s["send_rate"], "receive_rate": s["receive_rate"],
    "confirm_rate": s["confirm_rate"],
    "p50_us": lat.get("p50"), "p95_us": lat.get("p95"), "p99_us": lat.get("p99"),
    "max_us": lat.get("max"),
    "broker_cpu_s": broker_cpu,
    "broker_cpu_us_per_msg": broker_cpu * 1e6 / s["received"] if s["received"] else None,
    "broker_cpu_percent": 100 * broker_cpu / wall,
    "tool_cpu_percent": s.get("tool_cpu_percent"),
    # What else ran meanwhile: machine busy time minus broker and tool, per core-second.
    "other_cpu_percent": max(0.0, 100 * (machine - broker_cpu - tool) / wall),
    "errors": s.get("errors", []),
}))
EOF
  tail -n 1 "$RUNS" | python3 -c '
import json, sys
r = json.loads(sys.stdin.read())
lat = "p50 %.0f / p99 %.0f µs" % (r["p50_us"], r["p99_us"]) if r["p50_us"] is not None else "no latency"
print("  %s %-8s #%d: %9.0f msg/s received, %s, broker CPU %.2f µs/msg (%.0f%% of a core), tool %.0f%%, other %.0f%%" % (
    r["scenario"], r["broker"], r["round"], r["receive_rate"], lat,
    r["broker_cpu_us_per_msg"] or 0, r["broker_cpu_percent"], r["tool_cpu_percent"] or 0,
    r["other_cpu_percent"]))'
  if [ "$scenario" = t ] && [ "$broker" = rabbitmq ]; then
    restart_rabbitmq
  fi
  sleep 2
}

echo "compare.sh: results in $OUT"
start_warren
start_rabbitmq
echo "compare.sh: Warren pid $WARREN_PID on $WARREN_PORT, RabbitMQ (beam.smp) pid $RMQ_PID on $RMQ_PORT"
if [ "$RT" = 1 ]; then
  set_policy "$WARREN_PID" -r "$RT_PRIO"
  set_policy "$RMQ_PID" -r "$RT_PRIO"
  echo "compare.sh: brokers and tool run under SCHED_RR $RT_PRIO"
fi
{
  echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "warren: $WARREN_BIN_ORIG ($("$WARREN_BIN" --version 2>/dev/null)), commit $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null)$(git -C "$ROOT" diff --quiet HEAD -- crates 2>/dev/null || echo ' (+ uncommitted changes in crates/)')"
  echo "rabbitmq: $(dpkg-query -W -f '${Version}' rabbitmq-server 2>/dev/null), erlang $(dpkg-query -W -f '${Version}' erlang-base 2>/dev/null)"
  echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(awk '/MemTotal/{printf "%.0f GiB", $2/1048576}' /proc/meminfo)"
  echo "duration: ${DURATION}s per run, rounds: $ROUNDS, order per scenario: Warren, RabbitMQ, Warren, RabbitMQ"
  if [ "$RT" = 1 ]; then echo "scheduling: brokers and load tool under SCHED_RR priority $RT_PRIO (RT=1)"; else echo "scheduling: normal (RT=0)"; fi
} >"$OUT/meta.txt"

for scenario in "${SCENARIOS[@]}"; do
  echo "scenario $scenario: warren perf $(scenario_args "$scenario") --duration $DURATION"
  for round in $(seq 1 "$ROUNDS"); do
    run_one "$scenario" warren "$round"
    run_one "$scenario" rabbitmq "$round"
  done
done

python3 "$BENCH/report.py" "$OUT" | tee "$BENCH/results/$STAMP.md"
echo
echo "compare.sh: table in bench/results/$STAMP.md, raw data in bench/results/$STAMP/"
