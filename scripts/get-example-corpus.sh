#!/usr/bin/env bash
# The bundled example corpus: the Linux kernel documentation of Debian's linux-doc-6.1 package
# (reStructuredText), one JSON line per file with category = its top-level subsystem folder of
# Documentation/ (translations/ and folders of fewer than 10 files left out). Fetched with
# apt-get download and unpacked without installing. Writes, under data/example/ (or $1):
#   linux-doc.jsonl      the whole corpus (about 28 MB of text)
#   quickstart.jsonl     a deterministic slice of a few MB, for configs/quickstart/
#   ci.jsonl             a smaller slice, for the tests
# The text is GPL-2 documentation: it is fetched, never committed. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-data/example}
mkdir -p "$out"
if [ -s "$out/linux-doc.jsonl" ] && [ -s "$out/quickstart.jsonl" ] && [ -s "$out/ci.jsonl" ]; then
  echo "get-example-corpus: $out is ready"
  exit 0
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
echo "get-example-corpus: downloading linux-doc-6.1"
(cd "$work" && apt-get download -q linux-doc-6.1 >/dev/null 2>&1) || {
  echo "get-example-corpus: 'apt-get download linux-doc-6.1' failed: run 'apt-get update' or check access to Debian's archive" >&2
  exit 1
}
dpkg-deb -x "$work"/linux-doc-6.1_*.deb "$work/root"
/usr/bin/python3 scripts/make_example_corpus.py "$work/root/usr/share/doc/linux-doc-6.1/Documentation" "$out"
