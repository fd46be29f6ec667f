#!/usr/bin/env bash
# Runs a Node script with the official OpenAI client library (npm `openai`, pinned below and
# installed into build/reference/node-openai first), a client svmoe did not write:
#   scripts/reference/openai-client.sh --install-only
#   scripts/reference/openai-client.sh SCRIPT.js ARGS...   # e.g. openai_client_check.js, ../serve_load.js
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
version=5.23.2
prefix=${SVMOE_REFERENCE_OPENAI_DIR:-$root/build/reference/node-openai}
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  echo "openai-client: node and npm are needed (scripts/install-deps.sh installs them)" >&2
  exit 1
fi
installed=$(node -p "require('$prefix/node_modules/openai/package.json').version" 2>/dev/null || true)
if [ "$installed" != "$version" ]; then
  echo "openai-client: installing openai@$version (npm) into $prefix" >&2
  mkdir -p "$prefix"
  npm install --prefix "$prefix" --no-save --no-audit --no-fund --loglevel=error "openai@$version" >&2
fi
[ "${1:-}" = "--install-only" ] && exit 0
script=$1
shift
case "$script" in /*) ;; *) script="$root/scripts/reference/$script" ;; esac
NODE_PATH="$prefix/node_modules" exec node "$script" "$@"
