#!/usr/bin/env bash
# bench/soak.sh: the soak run. Builds bin/cutover and bin/bedrock-stub, then runs
# bench/soak (real redis-server, bedrock-stub, gunicorn and cutover processes on
# 127.0.0.1) for SOAK_DURATION (default 5m) of mixed load with faults on a
# schedule: legacy SIGKILLed and restarted, Redis stopped and restarted, shares
# flipped through the admin API and the config file hot-reloaded, stub fault
# markers in 2% of the chats. Prints and writes bench/results/soak/summary.json (SOAK_OUT);
# exits 1 on any unintended error or if the proxy's memory grew.
#
#   SOAK_DURATION=3m SOAK_CONC=16 SOAK_PERIOD=90s SOAK_FAULT=8s bench/soak.sh
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
export PYTHONPATH="$root/.pydeps"
pidfile=bench/tmp/pids
mkdir -p "${SOAK_OUT:-bench/results/soak}" bin
cleanup() {
  local rc=$?
  if [ -n "${soak_pid:-}" ] && kill -0 "$soak_pid" 2>/dev/null; then
    kill -TERM "$soak_pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$soak_pid" 2>/dev/null || break; sleep 0.2; done
  fi
  if [ -s "$pidfile" ]; then
    while read -r pg; do [ -n "$pg" ] && kill -KILL -- "-$pg" 2>/dev/null || true; done < "$pidfile"
    : > "$pidfile"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
command -v redis-server >/dev/null || { echo "soak: redis-server is missing" >&2; exit 1; }
go build -o bin/ ./cmd/...
go build -o bench/tmp/bin/soak ./bench/soak
bench/tmp/bin/soak -root "$root" -duration "${SOAK_DURATION:-5m}" -conc "${SOAK_CONC:-16}" \
  -period "${SOAK_PERIOD:-90s}" -fault "${SOAK_FAULT:-8s}" -out "${SOAK_OUT:-bench/results/soak}" &
soak_pid=$!
wait "$soak_pid"
