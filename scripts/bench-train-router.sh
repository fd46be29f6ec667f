#!/usr/bin/env bash
# Stage 3's two gradient paths on the quickstart (a figure, not a test): the same merged MoE's
# routers trained with train_router.detach_router_inputs false (the paper's loss under
# autograd: every router also learns from later layers' terms, the backward pass runs through
# all frozen blocks) and true (each router from its own term only), then both evaluated next to
# the untrained merge. Prints wall time and peak memory (GNU time's maximum resident set) of
# each stage-3 run, the final router loss and top-1 agreement, and CMR_1, CMR_2, S_RL and PPL
# on the test split.
# Usage: scripts/bench-train-router.sh [BUILD_DIR]   (after scripts/build.sh; runs the
# quickstart's steps up to the merge first if runs/quickstart has not got them)
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
config=configs/quickstart/experiment.yaml
runs=runs/quickstart
scripts/get-example-corpus.sh >/dev/null
"$build/svmoe" run -c "$config" --only prepare,base,experts,merge --log-level warn
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

for detach in false true; do
  /usr/bin/time -f "%e %M" -o "$work/time_$detach" "$build/svmoe" train-router -c "$config" \
    --model "$runs/moe" --dataset "$runs/dataset" --output "$work/router_$detach" \
    --set "train_router.detach_router_inputs=$detach" --log-level warn
done
cat > "$work/eval.yaml" <<YAML
eval:
  models:
    - {name: "merged (no stage 3)", path: $runs/moe}
    - {name: "stage 3, full gradient", path: $work/router_false/final}
    - {name: "stage 3, own term only", path: $work/router_true/final}
  dataset: $runs/dataset
  output: $work/eval
  splits: [test]
  context_length: 128
  max_documents: 6
YAML
"$build/svmoe" eval -c "$work/eval.yaml" --log-level warn >/dev/null

/usr/bin/python3 - "$work" <<'PY'
import csv, json, sys
work = sys.argv[1]
def last_router(run):
    last = None
    for line in open(f"{work}/{run}/metrics.jsonl"):
        entry = json.loads(line)
        if "router" in entry:
            last = entry["router"]
    mean = lambda xs: sum(xs) / len(xs)
    return mean(last["router_loss"]), mean(last["top1_agreement"])
rows = {r["model"]: r for r in csv.DictReader(open(f"{work}/eval/table_test.csv"))}
print("\nStage 3 on the quickstart: the paper's gradient (detach_router_inputs: false) and each router's own term (true)\n")
print("| model | stage-3 wall s | peak RSS MB | router loss | top-1 agreement | CMR_1 | CMR_2 | S_RL | PPL |")
print("|---|---|---|---|---|---|---|---|---|")
for name, run in [("merged (no stage 3)", None), ("stage 3, full gradient", "false"), ("stage 3, own term only", "true")]:
    r = rows[name]
    if run:
        seconds, kb = open(f"{work}/time_{run}").read().split()
        loss, agree = last_router(f"router_{run}")
        stage = f"{float(seconds):.1f} | {int(kb) / 1024:.0f} | {loss:.3f} | {agree:.3f}"
    else:
        stage = "- | - | - | -"
    print(f"| {name} | {stage} | {float(r['CMR_1_mean']):.3f} | {float(r['CMR_2_mean']):.3f} | "
          f"{float(r['S_RL_mean']):.3f} | {float(r['PPL_mean']):.2f} |")
PY
