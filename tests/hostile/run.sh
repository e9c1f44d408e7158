#!/usr/bin/env bash
# Runs the hostile-client tests against a Warren binary (each test starts its own broker on
# free ports). Short sizes by default; HOSTILE_FULL=1 for the full ones. Extra arguments go to
# pytest (e.g. -s to see the measured figures, -k churn to pick tests).
#
#   tests/hostile/run.sh                       # target/release/warren
#   WARREN_BIN=/path/to/warren tests/hostile/run.sh -s
#   HOSTILE_FULL=1 HOSTILE_REPORT=/tmp/figures.txt tests/hostile/run.sh
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
export WARREN_BIN="${WARREN_BIN:-$ROOT/target/release/warren}"
VENV="${SEED_SUITE_VENV:-/tmp/warren-seed-venv}"
if ! "$VENV/bin/python" -c 'import pika, requests, pytest, pytest_timeout' 2>/dev/null; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q pika==1.3.2 requests==2.32.3 pytest==8.3.4 pytest-timeout==2.3.1
fi
[ -x "$WARREN_BIN" ] || { echo "run.sh: no broker binary at $WARREN_BIN (set WARREN_BIN)" >&2; exit 2; }
WARREN_BIN="$(realpath "$WARREN_BIN")"   # the tests run from this directory
command -v prlimit >/dev/null || { echo "run.sh: prlimit (util-linux) is needed" >&2; exit 2; }
cd "$HERE"
exec "$VENV/bin/python" -m pytest "$@"
