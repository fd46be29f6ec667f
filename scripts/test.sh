#!/usr/bin/env bash
# The whole test suite from a fresh clone: install dependencies, build, run CTest.
# Select by label with e.g. `scripts/test.sh -L reference` (unit, reference, e2e).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/get-example-corpus.sh
scripts/build.sh
cd build
ctest --output-on-failure -j "$(nproc)" "$@"
