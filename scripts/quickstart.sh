#!/usr/bin/env bash
# The main job on the bundled example, from a fresh clone: install, build, fetch the example
# corpus (the Linux kernel documentation), then run the pipeline's stages that exist so far:
#   1. check a bundled Llama checkpoint against Hugging Face transformers' logits,
#   2. svmoe prepare: train a tokenizer, cluster 43 subsystems into 8 subdomains, write the
#      token shards and the router's TF-IDF targets (runs/quickstart/dataset),
#   3. svmoe finetune: pretrain a tiny base model from scratch on all subdomains
#      (runs/quickstart/base, its validation loss in metrics.jsonl),
#   4. svmoe train-experts: one expert per subdomain from that base (runs/quickstart/experts),
#   5. svmoe merge: the 8 experts into one top-2 MoE (runs/quickstart/moe),
#   6. svmoe train-router: the routers against the TF-IDF targets (runs/quickstart/router),
#   7. svmoe finetune on the MoEs: BTX (merge -> finetune) and SvMoE (merge -> train-router ->
#      finetune), each without and with the switch LB loss (runs/quickstart/{btx,svmoe}{,_lb}),
#      and the Dense baseline (the base model, trained as long on all subdomains),
#   8. svmoe eval: PPL, CMR_1, CMR_2, S_RL and few-shot accuracy of the five models
#      (runs/quickstart/eval/tables.md), and svmoe report: the figures and tables in one HTML page.
# About 15 to 20 minutes on 2 cores, after the first build. Every step resumes or skips what is done when run again.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/get-example-corpus.sh
scripts/build.sh -DSVMOE_BUILD_TESTS=OFF
model=tests/data/models/llama_gqa_tied_theta5e5
mkdir -p runs/quickstart
set -x
build/svmoe inspect "$model"
build/svmoe forward -c configs/quickstart/forward.yaml \
  --output runs/quickstart/logits.safetensors --compare "$model/expected.safetensors"
build/svmoe prepare -c configs/quickstart/experiment.yaml
build/svmoe finetune -c configs/quickstart/experiment.yaml
build/svmoe train-experts -c configs/quickstart/experiment.yaml
build/svmoe merge -c configs/quickstart/experiment.yaml
build/svmoe inspect runs/quickstart/moe
build/svmoe train-router -c configs/quickstart/experiment.yaml
stage4=(-c configs/quickstart/experiment.yaml --set finetune.init=pretrained --steps 60
        --set finetune.train.eval_every=60 --set finetune.train.save_every=60)
build/svmoe finetune "${stage4[@]}" --model runs/quickstart/moe --output runs/quickstart/btx
build/svmoe finetune "${stage4[@]}" --model runs/quickstart/moe --output runs/quickstart/btx_lb \
  --set finetune.load_balancing.method=switch
build/svmoe finetune "${stage4[@]}" --model runs/quickstart/router/final --output runs/quickstart/svmoe
build/svmoe finetune "${stage4[@]}" --model runs/quickstart/router/final --output runs/quickstart/svmoe_lb \
  --set finetune.load_balancing.method=switch
build/svmoe finetune "${stage4[@]}" --model runs/quickstart/base/final --output runs/quickstart/dense
build/svmoe eval -c configs/quickstart/experiment.yaml
build/svmoe report -c configs/quickstart/experiment.yaml
set +x
cat runs/quickstart/eval/tables.md
echo "The report: runs/quickstart/eval/report.html (open it in a browser)"
