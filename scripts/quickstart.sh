#!/usr/bin/env bash
# The main job on the bundled example, from a fresh clone: install, build, then check a
# bundled Llama checkpoint against Hugging Face transformers' logits and tokenize some text.
# (Later stages of the pipeline join this script as they land.)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh -DSVMOE_BUILD_TESTS=OFF
model=tests/data/models/llama_gqa_tied_theta5e5
mkdir -p runs/quickstart
set -x
build/svmoe inspect "$model"
build/svmoe forward -c configs/quickstart/forward.yaml \
  --output runs/quickstart/logits.safetensors --compare "$model/expected.safetensors"
build/svmoe tokenize --tokenizer tests/data/tokenizers/unigram --text "Hello, world." --text "日本の法令"
