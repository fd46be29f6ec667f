#!/usr/bin/env bash
# Runs scripts/reference/hf_tokenizers_reference.js on Hugging Face tokenizers' official Node
# binding (npm `tokenizers`, pinned below), which it installs into build/reference/node first.
#   scripts/reference/hf-tokenizers.sh shapes tests/data/tokenizers ../shared/fixtures/train.txt
#   scripts/reference/hf-tokenizers.sh fuzz tests/data/tokenizers build/reference/tokenizers 5000
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
version=0.23.2
prefix=${SVMOE_REFERENCE_NODE_DIR:-$root/build/reference/node}
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  echo "hf-tokenizers: node and npm are needed (scripts/install-deps.sh installs them)" >&2
  exit 1
fi
installed=$(node -p "require('$prefix/node_modules/tokenizers/package.json').version" 2>/dev/null || true)
if [ "$installed" != "$version" ]; then
  echo "hf-tokenizers: installing tokenizers@$version (npm) into $prefix"
  mkdir -p "$prefix"
  npm install --prefix "$prefix" --no-save --no-audit --no-fund --loglevel=error "tokenizers@$version" >&2
fi
NODE_PATH="$prefix/node_modules" exec node "$root/scripts/reference/hf_tokenizers_reference.js" "$@"
