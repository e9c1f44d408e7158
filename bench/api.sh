#!/usr/bin/env bash
# The management API with many queues, Warren against RabbitMQ 3.10 in the same run, and the
# cost of statistics to publishers.
#
#   bench/api.sh
#   QUEUES=10000 REQUESTS=20 POLL_DURATION=20 POLL_ROUNDS=2 bench/api.sh
#
# 1. Starts Warren (target/release/warren, free loopback ports, a temporary --data-dir) and the
#    RabbitMQ node of bench/rabbitmq.sh; declares QUEUES transient queues on each with the same
#    pika script, one message to every PUBLISH_EVERY-th; waits until both APIs list them all.
# 2. Times REQUESTS rounds of GET /api/queues (the whole list) and of
#    GET /api/queues?page=1&page_size=100&sort=name, each request on a fresh HTTP connection,
#    alternating Warren, RabbitMQ, Warren, RabbitMQ; reports median and p95 latency and the ratio.
# 3. Deletes the queues on RabbitMQ (and stops it if this script started it), then runs
#    `warren perf` scenario (a) (1 producer -> 1 queue -> 1 consumer, 16-byte messages, manual
#    ack, prefetch 1000) for POLL_DURATION s against Warren, alternately without and with the
#    API polled every second (GET /api/overview, /api/queues, /api/connections), POLL_ROUNDS
#    times each: first with the QUEUES queues still in place (each poll lists them all), then
#    without them. Reports publish rates and the difference.
#
# Writes bench/results/api-STAMP.md (raw data in bench/results/api-STAMP/). Needs a release
# build (cargo build --release -p warren), rabbitmq-server 3.10 (apt) and python with pika (the
# seed suite's virtualenv: ../shared/seed-suite/run.sh --version makes one).
# Environment: QUIET_WAIT seconds to wait for an idle machine before each perf run (30).
# RT=1: both brokers (every thread), the load tool and the HTTP clients run under SCHED_RR
# priority RT_PRIO (10), as in bench/compare.sh, so other work on a shared machine cannot
# preempt them.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BENCH="$ROOT/bench"
QUEUES="${QUEUES:-10000}"
PUBLISH_EVERY="${PUBLISH_EVERY:-10}"
REQUESTS="${REQUESTS:-20}"
POLL_DURATION="${POLL_DURATION:-20}"
POLL_ROUNDS="${POLL_ROUNDS:-3}"
QUIET_WAIT="${QUIET_WAIT:-30}"
RT="${RT:-0}"
RT_PRIO="${RT_PRIO:-10}"
RUN=()
[ "$RT" = 1 ] && RUN=(chrt -r "$RT_PRIO")
RMQ_PORT="${RMQ_BENCH_PORT:-5673}"
RMQ_HTTP="${RMQ_BENCH_MGMT_PORT:-15673}"
PY="${PYTHON:-${SEED_SUITE_VENV:-/tmp/warren-seed-venv}/bin/python}"
[ -x "$PY" ] || PY="$(ls -d /tmp/seed-suite-venv-*/bin/python 2>/dev/null | head -1)"
[ -x "$PY" ] && "$PY" -c 'import pika' 2>/dev/null \
  || { echo "api.sh: need python with pika (set PYTHON)" >&2; exit 1; }
[ -x "$ROOT/target/release/warren" ] \
  || { echo "api.sh: no target/release/warren; run cargo build --release -p warren" >&2; exit 1; }

STAMP="$(date -u +%Y%m%d-%H%M%S)"
OUT="$BENCH/results/api-$STAMP"
REPORT="$BENCH/results/api-$STAMP.md"
mkdir -p "$OUT"
# A copy: a rebuild during the run must not swap the binary under it.
WARREN="$OUT/warren"
cp "$ROOT/target/release/warren" "$WARREN"
HZ="$(getconf CLK_TCK)"

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
machine_ticks() { awk '/^cpu /{print $2 + $3 + $4 + $7 + $8 + $9}' /proc/stat; }
proc_ticks() { sed 's/^.*) //' "/proc/$1/stat" | awk '{print $12 + $13}'; }
set_policy() { # PID CHRT-ARGS...: every thread of a process
  local pid="$1" t; shift
  for t in /proc/"$pid"/task/*; do chrt -p "$@" "${t##*/}" >/dev/null 2>&1 || true; done
}

wait_quiet() { # until other work uses under a quarter of a core, at most QUIET_WAIT s
  local deadline=$((SECONDS + QUIET_WAIT)) a b busy
  while :; do
    a="$(machine_ticks)"; sleep 1; b="$(machine_ticks)"
    busy=$(( (b - a) * 100 / HZ ))
    [ "$busy" -le 25 ] && return 0
    [ $SECONDS -ge $deadline ] && { echo "  (machine busy: ${busy}% of a core; running anyway)" >&2; return 0; }
    sleep 2
  done
}

WARREN_PID="" WARREN_DATA="" RMQ_STARTED=0 RMQ_PID=""
cleanup() {
  if [ -n "$WARREN_PID" ] && kill -0 "$WARREN_PID" 2>/dev/null; then
    kill -TERM "$WARREN_PID" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$WARREN_PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$WARREN_PID" 2>/dev/null || true
  fi
  [ -n "$WARREN_DATA" ] && rm -rf "$WARREN_DATA"
  rm -f "$WARREN"
  if [ "$RMQ_STARTED" = 1 ]; then "$BENCH/rabbitmq.sh" stop >/dev/null 2>&1 || true
  elif [ "$RT" = 1 ] && [ -n "$RMQ_PID" ]; then set_policy "$RMQ_PID" -o 0; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- start both ---------------------------------------------------------------------------
W_AMQP="$(free_port)"; W_HTTP="$(free_port)"
while [ "$W_HTTP" = "$W_AMQP" ]; do W_HTTP="$(free_port)"; done
WARREN_DATA="$(mktemp -d /tmp/warren-api-bench.XXXXXX)"
"$WARREN" serve --bind 127.0.0.1 --amqp-port "$W_AMQP" --http-port "$W_HTTP" --prometheus-port 0 \
  --data-dir "$WARREN_DATA" --log warn >"$OUT/warren.log" 2>&1 &
WARREN_PID=$!
for _ in $(seq 1 100); do port_open "$W_AMQP" && port_open "$W_HTTP" && break; sleep 0.1; done
port_open "$W_HTTP" || { echo "api.sh: Warren did not start; see $OUT/warren.log" >&2; exit 1; }
"$BENCH/rabbitmq.sh" status >/dev/null 2>&1 || RMQ_STARTED=1
"$BENCH/rabbitmq.sh" start
RMQ_PID="$("$BENCH/rabbitmq.sh" pid)"
if [ "$RT" = 1 ]; then
  set_policy "$WARREN_PID" -r "$RT_PRIO"
  set_policy "$RMQ_PID" -r "$RT_PRIO"
fi
echo "api.sh: Warren pid $WARREN_PID (amqp $W_AMQP, http $W_HTTP), RabbitMQ amqp $RMQ_PORT, http $RMQ_HTTP; results in $OUT"

{
  echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "warren: $("$WARREN" --version 2>/dev/null), commit $(git -C "$ROOT" rev-parse --short HEAD)$(git -C "$ROOT" diff --quiet HEAD -- crates 2>/dev/null || echo ' (+ uncommitted changes in crates/)')"
  echo "rabbitmq: $(dpkg-query -W -f '${Version}' rabbitmq-server 2>/dev/null), erlang $(dpkg-query -W -f '${Version}' erlang-base 2>/dev/null)"
  echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(awk '/MemTotal/{printf "%.0f GiB", $2/1048576}' /proc/meminfo)"
  if [ "$RT" = 1 ]; then echo "scheduling: brokers, load tool and HTTP clients under SCHED_RR priority $RT_PRIO (RT=1)"; else echo "scheduling: normal (RT=0)"; fi
  echo "queues: $QUEUES transient, a 100-byte message in every ${PUBLISH_EVERY}th; requests: $REQUESTS rounds; poll runs: ${POLL_DURATION}s x $POLL_ROUNDS"
} >"$OUT/meta.txt"

# ---- 10,000 queues on each ---------------------------------------------------------------
for b in "warren $W_AMQP $W_HTTP" "rabbitmq $RMQ_PORT $RMQ_HTTP"; do
  set -- $b
  echo "  $1: declaring $QUEUES queues" >&2
  "$PY" "$BENCH/api_queues.py" declare "$2" "$QUEUES" "$PUBLISH_EVERY"
  # RabbitMQ starts a process per queue: give the new ones the same priority.
  if [ "$RT" = 1 ]; then set_policy "$RMQ_PID" -r "$RT_PRIO"; fi
  "$PY" "$BENCH/api_queues.py" await "$3" "$QUEUES"
done
# RabbitMQ's management database takes in queue statistics every 5 s: let it settle.
sleep 10

echo "api.sh: timing GET /api/queues, $REQUESTS rounds" >&2
"${RUN[@]}" "$PY" "$BENCH/api_queues.py" time "$OUT/api.json" "$REQUESTS" "$QUEUES" warren="$W_HTTP" rabbitmq="$RMQ_HTTP"
{
  echo "rss_warren_kib: $(awk '/VmRSS/{print $2}' /proc/$WARREN_PID/status)"
  echo "rss_rabbitmq_kib: $(awk '/VmRSS/{print $2}' /proc/$RMQ_PID/status)"
} >>"$OUT/meta.txt"

echo "api.sh: deleting the queues on RabbitMQ" >&2
"$PY" "$BENCH/api_queues.py" delete "$RMQ_PORT" "$QUEUES"
if [ "$RMQ_STARTED" = 1 ]; then "$BENCH/rabbitmq.sh" stop; RMQ_STARTED=0; fi

# ---- statistics cost: scenario (a), polled and not ------------------------------------------
RUNS="$OUT/poll.jsonl"
: >"$RUNS"
poll_run() { # SETTING POLLED ROUND
  local json="$OUT/perf-$1-$2-$3.json" poller="" t0 t1 b0 b1
  wait_quiet
  if [ "$2" = polled ]; then
    "${RUN[@]}" "$PY" "$BENCH/api_queues.py" poll "$W_HTTP" "$POLL_DURATION" 2>>"$OUT/poll.log" &
    poller=$!
  fi
  b0="$(proc_ticks "$WARREN_PID")"; t0="$(date +%s.%N)"
  "${RUN[@]}" "$WARREN" perf --port "$W_AMQP" --duration "$POLL_DURATION" --json "$json" \
    --producers 1 --consumers 1 --size 16 --prefetch 1000 >"$OUT/perf-$1-$2-$3.log" 2>&1
  b1="$(proc_ticks "$WARREN_PID")"; t1="$(date +%s.%N)"
  if [ -n "$poller" ]; then wait "$poller"; fi
  python3 - "$json" "$1" "$2" "$3" "$b0" "$b1" "$t0" "$t1" "$HZ" >>"$RUNS" <<'EOF'
import json, sys
path, setting, polled, rnd, b0, b1, t0, t1, hz = sys.argv[1:]
s = json.load(open(path))["summary"]
cpu = (int(b1) - int(b0)) / float(hz)
print(json.dumps({"setting": setting, "polled": polled == "polled", "round": int(rnd),
                  "send_rate": s["send_rate"], "receive_rate": s["receive_rate"],
                  "broker_cpu_percent": 100 * cpu / (float(t1) - float(t0))}))
EOF
  tail -n 1 "$RUNS" | python3 -c 'import json,sys; r=json.load(sys.stdin); print("  %s %-10s #%d: %9.0f msg/s published, %9.0f received, broker %3.0f%% of a core" % (r["setting"], "polled" if r["polled"] else "not polled", r["round"], r["send_rate"], r["receive_rate"], r["broker_cpu_percent"]))' >&2
}

for setting in with-queues idle; do
  if [ "$setting" = idle ]; then
    echo "api.sh: deleting the queues on Warren" >&2
    "$PY" "$BENCH/api_queues.py" delete "$W_AMQP" "$QUEUES"
  fi
  echo "api.sh: warren perf scenario (a), ${POLL_DURATION}s per run, $setting" >&2
  for round in $(seq 1 "$POLL_ROUNDS"); do
    poll_run "$setting" quiet "$round"
    poll_run "$setting" polled "$round"
  done
done

# ---- report -----------------------------------------------------------------------------------
python3 - "$OUT" "$QUEUES" "$REQUESTS" "$POLL_DURATION" "$POLL_ROUNDS" >"$REPORT" <<'EOF'
import json, os, statistics, sys
out, queues, requests, duration, rounds = sys.argv[1:]
meta = open(os.path.join(out, "meta.txt")).read()
api = json.load(open(os.path.join(out, "api.json")))
runs = [json.loads(l) for l in open(os.path.join(out, "poll.jsonl")) if l.strip()]

def p95(xs):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, round(0.95 * (len(xs) - 1)))]

def ms(s):
    return f"{s * 1000:,.1f} ms" if s < 10 else f"{s:,.1f} s"

print(f"# Management API: GET /api/queues with {int(queues):,} queues, Warren vs RabbitMQ 3.10\n")
print("```\n" + meta.strip() + "\n```\n")
print(f"Each request on a fresh HTTP connection (guest, basic auth), {requests} per broker and "
      "request, alternating Warren, RabbitMQ, Warren, RabbitMQ.\n")
print("| request | Warren median | Warren p95 | RabbitMQ median | RabbitMQ p95 | RabbitMQ ÷ Warren (median) | response bytes W / R |")
print("|---|--:|--:|--:|--:|--:|--:|")
for kind, path in api["requests"].items():
    w, r = api["samples_s"]["warren"][kind], api["samples_s"]["rabbitmq"][kind]
    wm, rm = statistics.median(w), statistics.median(r)
    sizes = api["response_bytes"]
    print(f"| `GET {path}` | {ms(wm)} | {ms(p95(w))} | {ms(rm)} | {ms(p95(r))} | {rm / wm:,.1f}× | "
          f"{sizes[f'warren {kind}']:,} / {sizes[f'rabbitmq {kind}']:,} |")

print(f"\n## Statistics cost: `warren perf` scenario (a), {duration} s per run, API polled every second or not\n")
print("Polled: GET /api/overview, /api/queues and /api/connections once a second while the "
      "load runs. Runs alternate not polled, polled; rates are the mean of the rounds.\n")
print("| queues in the broker | publish msg/s not polled | publish msg/s polled | difference | receive msg/s not polled | receive msg/s polled | broker CPU not polled / polled |")
print("|---|--:|--:|--:|--:|--:|--:|")
for setting, label in (("with-queues", f"{int(queues):,} (+ the perf queue)"), ("idle", "1 (the perf queue)")):
    q = [r for r in runs if r["setting"] == setting and not r["polled"]]
    p = [r for r in runs if r["setting"] == setting and r["polled"]]
    if not q or not p:
        continue
    mean = lambda rs, k: statistics.mean(r[k] for r in rs)
    qs, ps = mean(q, "send_rate"), mean(p, "send_rate")
    print(f"| {label} | {qs:,.0f} | {ps:,.0f} | {100 * (ps - qs) / qs:+.1f}% | "
          f"{mean(q, 'receive_rate'):,.0f} | {mean(p, 'receive_rate'):,.0f} | "
          f"{mean(q, 'broker_cpu_percent'):.0f}% / {mean(p, 'broker_cpu_percent'):.0f}% |")
print("\nEvery run:\n")
print("| queues | polled | round | publish msg/s | receive msg/s | broker CPU (% of a core) |")
print("|---|---|--:|--:|--:|--:|")
for r in runs:
    print(f"| {r['setting']} | {'yes' if r['polled'] else 'no'} | {r['round']} | {r['send_rate']:,.0f} | "
          f"{r['receive_rate']:,.0f} | {r['broker_cpu_percent']:.0f} |")
EOF
cat "$REPORT"
echo
echo "api.sh: report in ${REPORT#$ROOT/}, raw data in ${OUT#$ROOT/}/"
