#!/usr/bin/env bash
# The unit tests built with AddressSanitizer and UndefinedBehaviorSanitizer (and warnings as
# errors) in build-asan/: CI's third leg. Extra arguments go to ctest.
# LibTorch itself is not instrumented; svmoe's code and the tests are. Leaks are not reported:
# LibTorch keeps process-lifetime allocations (its registries) that LeakSanitizer would list.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/get-example-corpus.sh  # the tests' corpus (data/example/ci.jsonl), as scripts/test.sh fetches it
jobs=${SVMOE_BUILD_JOBS:-$(nproc)}
# -O1 and no debug information: the sanitizers' usual build, and half the compile time of -O2 -g
# with LibTorch's headers (stack traces still name the functions).
cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=Release "-DCMAKE_CXX_FLAGS_RELEASE=-O1 -DNDEBUG" \
  -DSVMOE_SANITIZE=address,undefined -DSVMOE_WERROR=ON
cmake --build build-asan -j "$jobs" -- -k 0
cd build-asan
export ASAN_OPTIONS=detect_leaks=0:abort_on_error=1:${ASAN_OPTIONS:-}
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1:${UBSAN_OPTIONS:-}
# SentencePieceTokenizer.*: libsentencepiece's module is loaded with RTLD_DEEPBIND (docs/architecture.md),
# which the sanitizer runtime refuses to load.
ctest --output-on-failure -j "$(nproc)" -L unit -E '^SentencePieceTokenizer\.' "$@"
