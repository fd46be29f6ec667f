#!/usr/bin/env bash
# The main job on the bundled example, from a fresh clone: install what is missing, build, fetch
# the example corpus (the Linux kernel documentation), check a bundled Llama checkpoint against
# Hugging Face transformers' logits, then run the whole SvMoE recipe with `svmoe run`
# (configs/quickstart/experiment.yaml, docs/pipeline.md) into runs/quickstart/:
#   prepare (a tokenizer, 43 subsystems clustered into 8 subdomains, the TF-IDF targets), a tiny
#   base model pretrained from scratch, 8 experts, the BTX merge into a top-2 MoE, the routers
#   trained on TF-IDF under both readings of the paper's stage-3 loss, the seven models of the
#   tables (Dense, BTX and SvMoE with and without LB, SvMoE with the other loss reading), eval
#   (PPL, CMR_1, CMR_2, S_RL, few-shot on true/false statements about the kernel docs) and the
#   HTML report; then what the fine-tuned SvMoE model writes for a prompt, with the experts each
#   of its tokens went to (svmoe generate, docs/generation.md).
# About 20 minutes on 2 cores after the build. Run it again and it goes on where it stopped;
# change a setting and only what depends on it runs again.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/get-example-corpus.sh
scripts/build.sh -DSVMOE_BUILD_TESTS=OFF
model=tests/data/models/llama_gqa_tied_theta5e5
mkdir -p runs/quickstart
set -x
build/svmoe forward -c configs/quickstart/forward.yaml \
  --output runs/quickstart/logits.safetensors --compare "$model/expected.safetensors"
build/svmoe run -c configs/quickstart/experiment.yaml "$@"
svmoe_model=runs/quickstart/models/svmoe_lb/final
if [ -d "$svmoe_model" ]; then
  build/svmoe generate --model "$svmoe_model" --prompt "The kernel" --max-new-tokens 24 --routing
  { set +x; } 2>/dev/null
  echo "quickstart: serve it to OpenAI clients and lm-evaluation-harness with: build/svmoe serve --model $svmoe_model (docs/serving.md)"
fi
