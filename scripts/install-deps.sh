#!/usr/bin/env bash
# Installs svmoe's build and test dependencies from Debian 12 packages.
# Idempotent: packages already present are left alone. Needs root or sudo.
set -euo pipefail

packages=(
  # toolchain
  g++ cmake ninja-build ccache pkg-config
  # LibTorch 1.13 (CPU) and the Gloo headers its distributed API includes
  libtorch-dev libgloo-dev
  # an optimised BLAS for LibTorch's CPU matmuls (Debian's default is the slow reference BLAS)
  libopenblas0-pthread
  # tokenizer, logging, CLI, JSON/YAML, linear algebra, tests
  libsentencepiece-dev sentencepiece libspdlog-dev libcli11-dev nlohmann-json3-dev
  libeigen3-dev libyaml-cpp-dev libgtest-dev zlib1g-dev
  # corpora compressed with Zstandard (.jsonl.zst); the zstd tool makes the test fixtures
  libzstd-dev zstd
  # TensorBoard event files: Protocol Buffers (the library LibTorch links, and its compiler)
  libprotobuf-dev protobuf-compiler
  # tokenizer.json: regex patterns (PCRE2) and Unicode normalization (utf8proc)
  libpcre2-dev libutf8proc-dev
  # svmoe serve's HTTP server (cpp-httplib), and curl for the README's examples of it
  libcpp-httplib-dev curl
  # reference checks (scikit-learn's TF-IDF and spectral clustering), through /usr/bin/python3
  python3 python3-sklearn
)
# The Hugging Face tokenizers reference runs on Node.js (its official binding, installed by npm
# into build/): Debian's packages unless node and npm are already there (e.g. from NodeSource).
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  packages+=(nodejs npm)
fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#packages[@]} packages already installed"
  exit 0
fi

if [ "$(id -u)" -eq 0 ]; then
  as_root=()
elif command -v sudo >/dev/null 2>&1; then
  as_root=(sudo)
else
  echo "install-deps: need root or sudo to install: ${missing[*]}" >&2
  exit 1
fi

echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
"${as_root[@]}" apt-get update -q
"${as_root[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"
echo "install-deps: done"
