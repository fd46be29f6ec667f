#!/usr/bin/env bash
# Reads TensorBoard event files with readers svmoe did not write: npm `tfrecord` (the TFRecord
# framing, both CRC-32Cs checked by `fast-crc32c`) and `protobufjs` (the Event messages), pinned
# below and installed into build/reference/node-tensorboard first. Prints each file's events as
# JSON (scripts/reference/tensorboard_events_reader.js says the shape).
#   scripts/reference/tensorboard-events.sh --install-only
#   scripts/reference/tensorboard-events.sh RUN/events.out.tfevents.*
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
version=0.2.0
prefix=${SVMOE_REFERENCE_TENSORBOARD_DIR:-$root/build/reference/node-tensorboard}
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  echo "tensorboard-events: node and npm are needed (scripts/install-deps.sh installs them)" >&2
  exit 1
fi
installed=$(node -p "require('$prefix/node_modules/tfrecord/package.json').version" 2>/dev/null || true)
if [ "$installed" != "$version" ]; then
  echo "tensorboard-events: installing tfrecord@$version (npm) into $prefix" >&2
  mkdir -p "$prefix"
  npm install --prefix "$prefix" --no-save --no-audit --no-fund --loglevel=error "tfrecord@$version" >&2
fi
[ "${1:-}" = "--install-only" ] && exit 0
NODE_PATH="$prefix/node_modules" exec node "$root/scripts/reference/tensorboard_events_reader.js" "$@"
