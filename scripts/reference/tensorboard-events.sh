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
bash "$root/scripts/reference/npm-install.sh" tfrecord "$version" "$prefix"
[ "${1:-}" = "--install-only" ] && exit 0
NODE_PATH="$prefix/node_modules" exec node "$root/scripts/reference/tensorboard_events_reader.js" "$@"
