#!/usr/bin/env bash
# bench/run.sh: the benchmark harness behind `make bench` (which builds bin/cutover and
# bin/bedrock-stub and installs wrk, hey, nginx, haproxy and caddy first).
#
#   BENCH_QUICK=1      run every scenario briefly (smoke test); results go to bench/tmp/results-quick
#   BENCH_ONLY=a,b     only these scenarios: passthrough, chat, openloop, memory, shadow
#   BENCH_PIN=0        do not pin (default: the process under test on core 0, everything else on
#                      core 1, in the passthrough, chat and openloop scenarios)
#   BENCH_OUT=DIR      results folder (default bench/results)
#   BENCH_BIN=DIR      where cutover and bedrock-stub are (default bin/, as make build leaves them)
#   BENCH_TTFT=300ms BENCH_TPS=60 BENCH_WINDOW=20s BENCH_GUNICORN_WORKERS=N   workload knobs
#   BENCH_USERS=175,700 BENCH_CONFIGS=legacy,cutover-0,cutover-50,cutover-100    a part of the chat matrix
#   BENCH_LOW_USERS=5,10,25,50   the extra low levels of the configurations that reach legacy (empty: none)
#
# A full, unrestricted run into bench/results also regenerates the README's benchmark block (between
# the bench:summary markers) from the new results.json, so the README never quotes another run.
#
# Everything runs on 127.0.0.1 with bounded duration and connection counts. Every process the harness
# starts is in its own process group, listed in bench/tmp/pids; the trap below kills any group still
# listed when this script ends, however it ends.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
mkdir -p bench/tmp/bin
pidfile=bench/tmp/pids

cleanup() {
  local rc=$?
  if [ -n "${harness_pid:-}" ] && kill -0 "$harness_pid" 2>/dev/null; then
    kill -TERM "$harness_pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$harness_pid" 2>/dev/null || break; sleep 0.2; done
    kill -KILL "$harness_pid" 2>/dev/null || true
  fi
  if [ -s "$pidfile" ]; then
    while read -r pg; do
      [ -n "$pg" ] && kill -KILL -- "-$pg" 2>/dev/null || true
    done < "$pidfile"
    : > "$pidfile"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# 5,000 users need well over 10,000 descriptors in the proxy and the load generator.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

for t in wrk hey nginx haproxy caddy redis-server; do
  command -v "$t" >/dev/null || { echo "bench: $t is missing (make bench installs it)" >&2; exit 1; }
done
[ -x "${BENCH_BIN:-bin}/bedrock-stub" ] || { echo "bench: ${BENCH_BIN:-bin}/bedrock-stub is missing (run make build)" >&2; exit 1; }

# Keep the scratch folders (logs, generated configs) of the last two runs only.
# (No scratch folder yet is fine: ls fails then, and pipefail must not end the run.)
{ ls -dt bench/tmp/run-* 2>/dev/null || true; } | tail -n +3 | xargs -r rm -rf

readme=()
if [ "${BENCH_QUICK:-}" != 1 ] && [ -z "${BENCH_OUT:-}${BENCH_ONLY:-}${BENCH_USERS:-}${BENCH_CONFIGS:-}" ] && [ -z "${BENCH_LOW_USERS+set}" ]; then
  readme=(-readme README.md)
fi

go build -o bench/tmp/bin/benchctl ./bench/cmd/benchctl
bench/tmp/bin/benchctl run -root "$root" "${readme[@]}" "$@" &
harness_pid=$!
wait "$harness_pid"
