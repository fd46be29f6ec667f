#!/usr/bin/env bash
# Configures and builds svmoe into build/ (Release, Ninja, ccache and a precompiled header).
# Extra arguments go to the CMake configure step, e.g. -DSVMOE_BUILD_TESTS=OFF.
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=${SVMOE_BUILD_JOBS:-$(nproc)}
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release "$@"
cmake --build build -j "$jobs"
