#!/usr/bin/env bash
# Here (a machine with Debian 12's archive), before a GPU session: the Debian packages the GPU
# build needs beside the pip PyTorch (../../docs/gpu.md), into .deps/debs/ (git-ignored, about
# 15 MB), and the tests' example corpus into data/example/. Both travel to the GPU machine with
# the device tool's `carry`: [".deps/debs", "data/example/ci.jsonl"]. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/../.."
mkdir -p .deps/debs
packages=(
  libspdlog-dev libspdlog1.10 libfmt-dev libfmt9 libcli11-dev nlohmann-json3-dev
  libeigen3-dev libsentencepiece-dev libsentencepiece0 libprotobuf-lite32
  libyaml-cpp-dev libyaml-cpp0.7 libgtest-dev libgmock-dev googletest
  libpcre2-dev libpcre2-8-0 libutf8proc-dev libutf8proc2 libzstd-dev libzstd1
  libprotobuf-dev libprotobuf32 protobuf-compiler libprotoc32
  # svmoe serve: cpp-httplib, and the headers and libraries its header and library use
  libcpp-httplib-dev libcpp-httplib0.11 libssl-dev libssl3 libbrotli-dev libbrotli1 zlib1g-dev
)
(cd .deps/debs && apt-get download -q "${packages[@]}" 2>&1 | grep -v '^W: Download is performed unsandboxed' || true)
count=$(ls .deps/debs/*.deb 2>/dev/null | wc -l)
if [ "$count" -lt ${#packages[@]} ]; then
  echo "fetch-deps: only $count of ${#packages[@]} packages in .deps/debs: run 'apt-get update' or check access to Debian's archive" >&2
  exit 1
fi
bash scripts/get-example-corpus.sh
echo "fetch-deps: ready; carry .deps/debs and data/example/ci.jsonl to the GPU machine"
