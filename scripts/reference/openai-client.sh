#!/usr/bin/env bash
# Runs a Node script with the official OpenAI client library (npm `openai`, pinned below and
# installed into build/reference/node-openai first), a client svmoe did not write:
#   scripts/reference/openai-client.sh --install-only
#   scripts/reference/openai-client.sh SCRIPT.js ARGS...   # e.g. openai_client_check.js, ../serve_load.js
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
version=5.23.2
prefix=${SVMOE_REFERENCE_OPENAI_DIR:-$root/build/reference/node-openai}
bash "$root/scripts/reference/npm-install.sh" openai "$version" "$prefix"
[ "${1:-}" = "--install-only" ] && exit 0
script=$1
shift
case "$script" in /*) ;; *) script="$root/scripts/reference/$script" ;; esac
NODE_PATH="$prefix/node_modules" exec node "$script" "$@"
