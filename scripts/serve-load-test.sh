#!/usr/bin/env bash
# The bounded load test of svmoe serve (docs/serving.md): starts `svmoe serve` on a free port of
# 127.0.0.1 with MODEL, drives it with N concurrent OpenAI clients for S seconds
# (scripts/serve_load.js: short scoring requests and long generations), prints requests/s,
# tokens/s, p50/p99 latency, errors and the server's peak RSS, then stops the server with SIGTERM
# and checks that it exits 0. Fails if any request failed.
#   scripts/serve-load-test.sh MODEL_DIR [CLIENTS=8] [SECONDS=30] [MAX_TOKENS=64] [-- svmoe serve flags]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
model=${1:?usage: serve-load-test.sh MODEL_DIR [CLIENTS] [SECONDS] [MAX_TOKENS] [-- serve flags]}
clients=${2:-8}
seconds=${3:-30}
max_tokens=${4:-64}
shift $(($# < 4 ? $# : 4))
[ "${1:-}" = "--" ] && shift
svmoe=${SVMOE_BIN:-$root/build/svmoe}
log=$(mktemp)
trap 'kill "$pid" 2>/dev/null || true; rm -f "$log"' EXIT
"$svmoe" serve --model "$model" --port 0 "$@" >"$log" 2>&1 &
pid=$!
port=""
for _ in $(seq 600); do
  port=$(grep -oE 'listening on http://127\.0\.0\.1:[0-9]+' "$log" | grep -oE '[0-9]+$' || true)
  [ -n "$port" ] && break
  kill -0 "$pid" 2>/dev/null || break
  sleep 0.1
done
if [ -z "$port" ]; then
  echo "serve-load-test: svmoe serve did not start:" >&2
  cat "$log" >&2
  exit 1
fi
name=$(curl -sS "http://127.0.0.1:$port/v1/models" | /usr/bin/python3 -c 'import json, sys; print(json.load(sys.stdin)["data"][0]["id"])')
status=0
bash "$root/scripts/reference/openai-client.sh" "$root/scripts/serve_load.js" --url "http://127.0.0.1:$port" \
  --model "$name" --clients "$clients" --seconds "$seconds" --max-tokens "$max_tokens" --pid "$pid" || status=$?
kill -TERM "$pid"
wait "$pid" || { echo "serve-load-test: svmoe serve exited $? after SIGTERM:" >&2; tail -5 "$log" >&2; exit 1; }
grep -E 'serve: stopped after' "$log" | sed 's/^/serve-load-test: /'
exit "$status"
