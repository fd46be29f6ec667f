#!/usr/bin/env bash
# Peak memory of svmoe merge (a figure, not a test): N synthetic bf16 experts (default 8 of
# about 190M parameters, 0.37 GB each) merged into one MoE; prints the peak resident memory
# next to the size of one expert. Usage: scripts/bench-merge.sh [N] [BUILD_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-8}
build=${2:-build}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
/usr/bin/python3 scripts/make_synthetic_experts.py "$work/experts" "$n"
experts=$(for e in $(seq 0 $((n - 1))); do printf '%s ' "$work/experts/expert_$e"; done)
/usr/bin/python3 - "$build/svmoe" "$work" $experts <<'PY'
import os, resource, subprocess, sys, time
svmoe, work, experts = sys.argv[1], sys.argv[2], sys.argv[3:]
start = time.time()
subprocess.run([svmoe, "merge", "--log-level", "warn", "--output", os.path.join(work, "moe"), "--experts", *experts], check=True)
seconds = time.time() - start
peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
one = os.path.getsize(os.path.join(experts[0], "model.safetensors"))
out = sum(os.path.getsize(os.path.join(work, "moe", f)) for f in os.listdir(os.path.join(work, "moe")) if f.endswith(".safetensors"))
print(f"\nsvmoe merge benchmark: {len(experts)} experts of {one / 1e9:.2f} GB (bf16) -> MoE of {out / 1e9:.2f} GB")
print(f"| peak resident memory | {peak / 1e9:.2f} GB ({peak / one:.2f} experts' worth) |")
print(f"| time | {seconds:.1f} s |")
PY
