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
if [ $# -gt 0 ]; then  # ctest's selection (e.g. -R Suite): one process per test
  exec ctest --output-on-failure -j "$(nproc)" -L unit -E '^SentencePieceTokenizer\.' "$@"
fi
# The unit label's gtest tests as one process per CPU (gtest's shards) rather than ctest's one
# process per test: under the sanitizers a process takes ~3 s to load LibTorch, which was most
# of this leg's time (357 tests: 15 min). The label's other tests (the layer rule's) go through
# ctest. The summary line is ctest's, which .ci/run reads.
ctest --output-on-failure -L unit -R '^LayerRule\.' >layer_rule.log 2>&1 || true
cat layer_rule.log
filter='-*Reference*:*E2E*:*HfTokenizersFuzz*:SentencePieceTokenizer.*'
shards=$(nproc)
pids=()
for ((i = 0; i < shards; i++)); do
  GTEST_TOTAL_SHARDS=$shards GTEST_SHARD_INDEX=$i ./tests/svmoe_tests --gtest_filter="$filter" >"shard_$i.log" 2>&1 &
  pids+=($!)
done
failed_shard=0
for pid in "${pids[@]}"; do wait "$pid" || failed_shard=1; done
passed=0 failed=0
for ((i = 0; i < shards; i++)); do
  grep -E '^\[  (FAILED|SKIPPED) +\] [A-Za-z]|^\[==========\] [0-9]+ tests' "shard_$i.log" || true
  p=$(grep -Eo '^\[  PASSED  \] [0-9]+' "shard_$i.log" | grep -Eo '[0-9]+$' || echo 0)
  f=$(grep -Eo '^\[  FAILED  \] [0-9]+ tests?,' "shard_$i.log" | grep -Eo '[0-9]+' || echo 0)
  s=$(grep -Eo '^\[  SKIPPED \] [0-9]+' "shard_$i.log" | grep -Eo '[0-9]+$' || echo 0)
  passed=$((passed + p + s))
  failed=$((failed + f))
  if ! grep -q '^\[==========\] .* ran\.' "shard_$i.log"; then  # a crash: the sanitizer's report
    echo "shard $i ended early:"; tail -60 "shard_$i.log"; failed=$((failed + 1))
  fi
done
read -r rule_passed rule_failed < <(grep -Eo '[0-9]+ tests failed out of [0-9]+' layer_rule.log | awk '{print $6 - $1, $1}') || true
passed=$((passed + ${rule_passed:-0}))
failed=$((failed + ${rule_failed:-1}))
total=$((passed + failed))
echo "$((total > 0 ? 100 * passed / total : 0))% tests passed, $failed tests failed out of $total"
[ "$failed" -eq 0 ] && [ "$failed_shard" -eq 0 ]
