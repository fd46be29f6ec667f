#!/usr/bin/env bash
# Screenshots an svmoe report (or any HTML file) with headless Chromium, to look at it without a
# browser: scripts/render-report.sh runs/quickstart/eval/report.html report.png [WIDTHxHEIGHT]
# Needs Debian's chromium (apt-get install chromium fonts-noto-cjk for Japanese text).
set -euo pipefail
if [ $# -lt 2 ]; then
  echo "usage: $0 REPORT.html OUT.png [WIDTHxHEIGHT]" >&2
  exit 2
fi
html="$(realpath "$1")"
out="$(realpath -m "$2")"
size="${3:-1200x3000}"
browser="$(command -v chromium || command -v chromium-browser || true)"
if [ -z "$browser" ]; then
  echo "render-report: chromium is not installed (apt-get install chromium)" >&2
  exit 1
fi
profile="$(mktemp -d)"
trap 'rm -rf "$profile"' EXIT
# The flags keep a sandboxed, offline machine quiet: no network, no first-run, no GPU.
"$browser" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run --disable-background-networking \
  --disable-component-update --disable-sync --hide-scrollbars --user-data-dir="$profile" \
  --window-size="${size/x/,}" --screenshot="$out" "file://$html" 2>/dev/null
echo "$out"
