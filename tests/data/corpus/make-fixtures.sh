#!/usr/bin/env bash
# Makes the Zstandard corpus fixtures with Debian's `zstd` tool (not svmoe's code), so that
# tests/text/test_corpus.cpp reads files compressed by an implementation nobody here wrote:
#   nested.jsonl.zst      one frame, documents with nested metadata ({"meta": {"category": ...}})
#   two_frames.jsonl.zst  two frames concatenated (as `cat a.zst b.zst` or pzstd make them);
#                         the second frame's last line has no newline
set -euo pipefail
cd "$(dirname "$0")"
nested='{"id": 1, "body": {"text": "Der Kernel plant Prozesse."}, "meta": {"category": "sched", "a/b": "slash"}}
{"id": 2, "body": {"text": "Speicher wird in Seiten verwaltet. 日本語"}, "meta": {"category": "mm", "a/b": "slash"}}
{"id": 3, "body": {"text": "Interrupts werden quittiert."}, "meta": {"category": "irq", "a/b": "slash"}}'
printf '%s\n' "$nested" | zstd -q -19 -f -o nested.jsonl.zst
first=$(mktemp) second=$(mktemp)
trap 'rm -f "$first" "$second"' EXIT
printf '{"text": "frame one", "category": "a"}\n' | zstd -q -f -o "$first"
printf '{"text": "frame two", "category": "b"}\n{"text": "no newline", "category": "b"}' | zstd -q -f -o "$second"
cat "$first" "$second" > two_frames.jsonl.zst
