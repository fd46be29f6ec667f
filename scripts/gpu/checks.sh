#!/usr/bin/env bash
# Every check svmoe owes the GPU machine, in phases that each fit in one device call (10
# minutes). Run scripts/gpu/fetch-deps.sh here first, then on the GPU machine, carrying
# [".deps/debs", "data/example/ci.jsonl"]:
#   bash scripts/gpu/checks.sh build        # LibTorch of the pip PyTorch + Debian's packages -> build-gpu/
#   bash scripts/gpu/checks.sh tests        # the GPU tests by name, then the whole ctest suite
#   bash scripts/gpu/checks.sh transformers # transformers loads what svmoe writes, and svmoe what it writes
#   bash scripts/gpu/checks.sh bench        # svmoe bench: tiny and reference presets, both expert paths
#   bash scripts/gpu/checks.sh memory       # the largest reference-shape model whose step fits
#   bash scripts/gpu/checks.sh generation   # svmoe bench --generate: tokens/s with and without the KV cache
# (or `all`). Logs and JSON go to $OUT (the device tool's folder) or runs/gpu-checks/. Each
# phase ends with a PASS/FAIL line per check; the exit code is the number of failures.
set -uo pipefail
cd "$(dirname "$0")/../.."
out=${OUT:-runs/gpu-checks}
mkdir -p "$out"
build=build-gpu
export LD_LIBRARY_PATH="$PWD/.deps/root/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
failures=0
summary=()

# check NAME COMMAND...: runs it with its output in $out/NAME.log; records PASS or FAIL.
check() {
  local name=$1
  shift
  local start=$SECONDS
  if "$@" >"$out/$name.log" 2>&1; then
    summary+=("PASS $name ($((SECONDS - start)) s)")
  else
    local rc=$?
    summary+=("FAIL $name (exit $rc, $((SECONDS - start)) s; see $name.log)")
    failures=$((failures + 1))
  fi
  tail -n 15 "$out/$name.log"
}

phase_build() {
  if ! ls .deps/debs/*.deb >/dev/null 2>&1; then
    echo "checks: .deps/debs is empty: run scripts/gpu/fetch-deps.sh on the CPU machine and carry .deps/debs" >&2
    exit 2
  fi
  mkdir -p .deps/root
  for f in .deps/debs/*.deb; do dpkg -x "$f" .deps/root; done
  local prefix nccl flags=""
  prefix=$(python3 -c 'import torch; print(torch.utils.cmake_prefix_path)')
  nccl=$(python3 -c 'import nvidia.nccl, os; print(os.path.join(list(nvidia.nccl.__path__)[0], "include"))' 2>/dev/null || true)
  [ -n "$nccl" ] && [ -f "$nccl/nccl.h" ] && flags="-I$nccl"
  check configure cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_PREFIX_PATH="$prefix;$PWD/.deps/root/usr" -DCMAKE_CXX_FLAGS="$flags" \
    -DProtobuf_PROTOC_EXECUTABLE="$PWD/.deps/root/usr/bin/protoc"
  check build cmake --build "$build" -j "$(nproc)"
  python3 -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, torch.cuda.get_device_name(0))' \
    >"$out/versions.txt" 2>&1
  nvidia-smi >>"$out/versions.txt" 2>&1 || true
}

phase_tests() {
  # The tests that only run with a GPU, by name first, so that their result is plain.
  check gpu-tests "$build/tests/svmoe_tests" \
    --gtest_filter='*Cuda*:*OnCuda*:AdamW.Fused*:Benchmark.TinyPreset*:E2EGpu*' --gtest_also_run_disabled_tests
  # Everything else (the scikit-learn reference tests need /usr/bin/python3 with sklearn).
  check ctest bash -c "cd $build && ctest -j 8 --output-on-failure"
}

phase_transformers() {
  check transformers python3 scripts/gpu/check_transformers.py "$build/svmoe" "$out/transformers"
}

phase_bench() {
  check bench-tiny "$build/svmoe" bench --preset tiny --device cuda --json "$out/bench-tiny.json"
  check bench-reference "$build/svmoe" bench --preset reference --device cuda --json "$out/bench-reference.json"
  check bench-reference-loop "$build/svmoe" bench --preset reference --device cuda --expert-path loop \
    --json "$out/bench-reference-loop.json"
  check bench-reference-checkpointing "$build/svmoe" bench --preset reference --device cuda \
    --activation-checkpointing --json "$out/bench-reference-checkpointing.json"
}

# Generation speed with and without the KV cache (docs/generation.md's table, for docs/gpu.md):
# the tiny preset and llm-jp-3-1.8b's shape (24 blocks, one expert = the dense FFN), batch 1 and 8;
# the figures are in each check's log.
phase_generation() {
  local batch
  for batch in 1 8; do
    check "generate-tiny-b$batch" "$build/svmoe" bench --generate --preset tiny --device cuda --new-tokens 256 \
      --batch "$batch"
    check "generate-1p8b-b$batch" "$build/svmoe" bench --generate --preset reference --blocks 24 --experts 1 --top-k 1 \
      --device cuda --new-tokens 256 --batch "$batch"
  done
}

# The largest reference-shape model whose training step fits: blocks at 8 experts, then experts
# at 4 blocks, each with and without activation checkpointing. A step that does not fit ends
# in CUDA's out-of-memory error (recorded, not a failure).
phase_memory() {
  local table="$out/memory.tsv"
  printf 'blocks\texperts\tcheckpointing\tfits\tpeak_memory_mb\n' >"$table"
  local blocks experts ac flag
  for ac in no yes; do
    flag=""
    [ "$ac" = yes ] && flag="--activation-checkpointing"
    for spec in 8:8 12:8 16:8 24:8 4:16 4:32 4:48 4:64; do
      blocks=${spec%%:*}
      experts=${spec##*:}
      local json="$out/memory-$blocks-$experts-$ac.json"
      if timeout 300 "$build/svmoe" bench --preset reference --device cuda --warmup 0 --repetitions 1 \
        --blocks "$blocks" --experts "$experts" $flag --json "$json" >"$out/memory-$blocks-$experts-$ac.log" 2>&1; then
        printf '%s\t%s\t%s\tyes\t%s\n' "$blocks" "$experts" "$ac" \
          "$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["measurements"][0]["peak_memory_mb"])' "$json")" >>"$table"
      else
        printf '%s\t%s\t%s\tno\t\n' "$blocks" "$experts" "$ac" >>"$table"
      fi
    done
  done
  cat "$table"
  summary+=("DONE memory (memory.tsv)")
}

phase=${1:-all}
case "$phase" in
  build) phase_build ;;
  tests) phase_tests ;;
  transformers) phase_transformers ;;
  bench) phase_bench ;;
  memory) phase_memory ;;
  generation) phase_generation ;;
  all) phase_build && phase_tests && phase_transformers && phase_bench && phase_memory && phase_generation ;;
  *)
    echo "checks: unknown phase '$phase': use build, tests, transformers, bench, memory, generation or all" >&2
    exit 2
    ;;
esac
echo
echo "== gpu checks ($phase) =="
printf '%s\n' "${summary[@]}" | tee -a "$out/summary.txt"
exit "$failures"
