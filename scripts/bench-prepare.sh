#!/usr/bin/env bash
# Benchmark of svmoe prepare on the full example corpus (a figure, not a test):
#   - tokenisation throughput per core: svmoe's tokenizer.json implementation (the
#     Metaspace, llm-jp-3 regex-normaliser and Llama-3 byte-level shapes) and its
#     tokenizer.model path (libsentencepiece), next to sentencepiece's spm_encode, same text
#     and same model, one thread each;
#   - the whole stage on all cores, with the time spent outside tokenisation.
# Usage: scripts/bench-prepare.sh [BUILD_DIR]   (after scripts/build.sh and get-example-corpus.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
corpus=data/example/linux-doc.jsonl
[ -s "$corpus" ] || scripts/get-example-corpus.sh
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# The corpus's text as lines (what spm_encode reads).
/usr/bin/python3 -c "
import json, sys
with open('$work/text.txt', 'w', encoding='utf-8') as out:
    for line in open('$corpus', encoding='utf-8'):
        for text_line in json.loads(line)['text'].split('\n'):
            if text_line.strip(): out.write(text_line + '\n')
"
mb=$(/usr/bin/python3 -c "import os; print(os.path.getsize('$work/text.txt') / 1e6)")
tokenizers=tests/data/tokenizers/unigram

calc() { /usr/bin/python3 -c "print(round($1, 2))"; }
seconds() { local start end; start=$(date +%s.%N); "$@" > /dev/null; end=$(date +%s.%N); calc "$end - $start"; }
rate() { calc "$mb / $1"; }

t_json=$(seconds "$build/svmoe" tokenize --tokenizer "$tokenizers/tokenizer.json" --no-special --file "$work/text.txt")
t_llmjp=$(seconds "$build/svmoe" tokenize --tokenizer tests/data/tokenizers/llm_jp_3/tokenizer.json --no-special --file "$work/text.txt")
t_bytes=$(seconds "$build/svmoe" tokenize --tokenizer tests/data/tokenizers/byte_level_llama3/tokenizer.json --no-special --file "$work/text.txt")
t_model=$(seconds "$build/svmoe" tokenize --tokenizer "$tokenizers/tokenizer.model" --no-special --file "$work/text.txt")
t_spm=$(seconds spm_encode --model "$tokenizers/tokenizer.model" --output_format=id --input "$work/text.txt")

cat > "$work/bench.yaml" <<YAML
prepare:
  corpus: $corpus
  tokenizer: $tokenizers/tokenizer.json
  output: $work/dataset
  num_subdomains: 8
YAML
t_stage=$(seconds "$build/svmoe" prepare -c "$work/bench.yaml" --log-level warn)
cores=$(nproc)

echo
echo "svmoe prepare benchmark: $(printf '%.1f' "$mb") MB of text (the Linux documentation), $cores cores"
echo
echo "| what | seconds | MB/s per core |"
echo "|---|---|---|"
printf "| svmoe tokenize, tokenizer.json (Unigram), 1 thread | %.2f | %s |\n" "$t_json" "$(rate "$t_json")"
printf "| svmoe tokenize, tokenizer.json llm-jp-3 style (regex normaliser, Unigram), 1 thread | %.2f | %s |\n" "$t_llmjp" "$(rate "$t_llmjp")"
printf "| svmoe tokenize, tokenizer.json Llama-3 style (Split regex, byte-level BPE), 1 thread | %.2f | %s |\n" "$t_bytes" "$(rate "$t_bytes")"
printf "| svmoe tokenize, tokenizer.model (libsentencepiece), 1 thread | %.2f | %s |\n" "$t_model" "$(rate "$t_model")"
printf "| spm_encode, tokenizer.model, 1 thread | %.2f | %s |\n" "$t_spm" "$(rate "$t_spm")"
printf "| svmoe prepare, whole stage (tokenizer.json), %s threads | %.2f | %s |\n" "$cores" "$t_stage" \
  "$(calc "$mb / $t_stage / $cores")"
