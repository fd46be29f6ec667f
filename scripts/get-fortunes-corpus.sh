#!/usr/bin/env bash
# A second example corpus, in another language and genre than the kernel documentation: the
# German fortune cookies of Debian's fortunes-de package (quotations, jokes, poems, sayings),
# one JSON line per fortune with category = its fortune file (zitate, witze, gedichte, ...;
# files of fewer than 10 fortunes left out). Fetched with apt-get download and unpacked
# without installing. Writes data/fortunes-de/fortunes.jsonl (or $1/fortunes.jsonl); used by
# configs/quickstart/fortunes-de.yaml (docs/reproducing-the-paper.md, the stage-3 loss study).
# The text is the package's (see its copyright file): fetched, never committed. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-data/fortunes-de}
mkdir -p "$out"
if [ -s "$out/fortunes.jsonl" ]; then
  echo "get-fortunes-corpus: $out is ready"
  exit 0
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
echo "get-fortunes-corpus: downloading fortunes-de"
(cd "$work" && apt-get download -q fortunes-de >/dev/null 2>&1) || {
  echo "get-fortunes-corpus: 'apt-get download fortunes-de' failed: run 'apt-get update' or check access to Debian's archive" >&2
  exit 1
}
dpkg-deb -x "$work"/fortunes-de_*.deb "$work/root"
/usr/bin/python3 scripts/make_fortunes_corpus.py "$work/root/usr/share/games/fortunes/de" "$out/fortunes.jsonl"
