#!/usr/bin/env bash
# The LibTorch 2 leg: builds svmoe against Debian unstable's LibTorch (2.14, CPU, so C++20) in a
# sid chroot and runs the whole CTest suite there (GPU-only tests skip). Needs root (debootstrap,
# chroot, mount) and Debian's mirror. The chroot is kept between runs, with its build folder and
# its ccache, so a second run rebuilds only what changed: SVMOE_SID_CHROOT (default
# /var/tmp/svmoe-sid; outside the checkout, so fresh clones share it). Arguments go to ctest:
#   scripts/test-libtorch2.sh              # the whole suite
#   scripts/test-libtorch2.sh -L unit      # one label
#   scripts/test-libtorch2.sh --setup-only # bootstrap the chroot and install its packages, no build
# --setup-only is mostly download and unpacking, so .ci/run starts it in the background while the
# first leg compiles.
set -euo pipefail
setup_only=0
if [ "${1:-}" = --setup-only ]; then
  setup_only=1
  shift
fi
root=$(cd "$(dirname "$0")/.." && pwd)
chroot_dir=${SVMOE_SID_CHROOT:-/var/tmp/svmoe-sid}
mirror=${SVMOE_SID_MIRROR:-http://deb.debian.org/debian}
jobs=${SVMOE_BUILD_JOBS:-$(nproc)}
packages=(
  g++ cmake ninja-build ccache pkg-config ca-certificates
  libtorch-dev libgloo-dev
  # sid's sentencepiece headers include abseil
  libsentencepiece-dev libabsl-dev sentencepiece
  libspdlog-dev libcli11-dev nlohmann-json3-dev libeigen3-dev libyaml-cpp-dev libgtest-dev zlib1g-dev libzstd-dev zstd
  libprotobuf-dev protobuf-compiler
  libpcre2-dev libutf8proc-dev
  libcpp-httplib-dev curl
  python3 python3-sklearn nodejs npm
)

say() { echo "test-libtorch2: $*"; }
if [ "$(id -u)" -ne 0 ]; then
  say "needs root (debootstrap, chroot, mount)" >&2
  exit 1
fi
if ! command -v debootstrap >/dev/null 2>&1; then
  say "installing debootstrap"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends debootstrap
fi

if [ ! -e "$chroot_dir/.svmoe-bootstrapped" ]; then
  say "creating a Debian sid chroot in $chroot_dir (about a minute)"
  rm -rf "$chroot_dir"
  mkdir -p "$chroot_dir"
  debootstrap --variant=minbase sid "$chroot_dir" "$mirror" >/dev/null
  touch "$chroot_dir/.svmoe-bootstrapped"
fi
cp /etc/resolv.conf "$chroot_dir/etc/resolv.conf"
# The chroot trusts what this machine trusts (a proxy's certificate authority, say), so that
# npm reaches its registry from inside as it does here.
host_ca=${SSL_CERT_FILE:-/etc/ssl/certs/ca-certificates.crt}
[ -f "$host_ca" ] && cp "$host_ca" "$chroot_dir/etc/svmoe-host-ca.crt"

mounted=()
cleanup() {
  for ((i = ${#mounted[@]} - 1; i >= 0; i--)); do umount "${mounted[i]}" 2>/dev/null || umount -l "${mounted[i]}" || true; done
}
trap cleanup EXIT
mount_once() {  # type-or-bind source target
  mountpoint -q "$3" && return 0
  if [ "$1" = bind ]; then mount --bind "$2" "$3"; else mount -t "$1" "$2" "$3"; fi
  mounted+=("$3")
}
mount_once bind /dev "$chroot_dir/dev"
mount_once proc proc "$chroot_dir/proc"
mount_once tmpfs tmpfs "$chroot_dir/dev/shm"

in_chroot() {
  local ca=()
  [ -f "$chroot_dir/etc/svmoe-host-ca.crt" ] &&
    ca=(NODE_EXTRA_CA_CERTS=/etc/svmoe-host-ca.crt npm_config_cafile=/etc/svmoe-host-ca.crt)
  chroot "$chroot_dir" /usr/bin/env -i HOME=/root LANG=C.UTF-8 CI="${CI:-}" DEBIAN_FRONTEND=noninteractive \
    PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin "${ca[@]}" "$@"
}

missing=$(in_chroot bash -c 'for p in "$@"; do dpkg-query -W -f="\${Status}" "$p" 2>/dev/null |
  grep -q "install ok installed" || echo "$p"; done' _ "${packages[@]}")
if [ -n "$missing" ]; then
  say "installing in the chroot: $(echo $missing)"
  in_chroot apt-get -o Acquire::Check-Valid-Until=false update -q >/dev/null
  # shellcheck disable=SC2086
  in_chroot apt-get -o Acquire::Check-Valid-Until=false install -y -q --no-install-recommends $missing >/dev/null
fi
say "$(in_chroot dpkg-query -W -f='LibTorch ${Version}' libtorch-dev), $(in_chroot g++ --version | head -1)"
[ "$setup_only" -eq 1 ] && exit 0

# The checkout as git sees it (tracked and untracked-not-ignored files) plus the example corpus,
# into the chroot's copy: only files whose content changed are replaced (and so get a new
# modification time: the build folder there is kept, and a copied file with its old time could
# look older than an object built from its previous content).
"$root/scripts/get-example-corpus.sh" >/dev/null
source_dir="$chroot_dir/work/svmoe"
staging="$chroot_dir/work/staging"
rm -rf "$staging"
mkdir -p "$source_dir" "$staging"
(
  cd "$root"
  if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    { git ls-files -co --exclude-standard; find data/example -type f; } | sort -u | while read -r f; do [ -f "$f" ] && echo "$f"; done
  else
    find . -path ./build -prune -o -path './build*' -prune -o -type f -print
  fi
) | tar -C "$root" -cf - -T - | tar -C "$staging" -xf -
(cd "$staging" && find . -type f) | while read -r f; do
  if ! cmp -s "$staging/$f" "$source_dir/$f"; then
    mkdir -p "$(dirname "$source_dir/$f")"
    cp "$staging/$f" "$source_dir/$f"
  fi
done
# Files gone from the checkout go from the copy too (the build folder stays).
(cd "$source_dir" && find . -path ./build -prune -o -type f -print) | while read -r f; do
  [ -e "$staging/$f" ] || rm -f "$source_dir/$f"
done
rm -rf "$staging"

ctest_args=$(printf ' %q' "$@")
in_chroot bash -c "set -e; cd /work/svmoe
  cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
  cmake --build build -j $jobs
  cd build && ctest --output-on-failure -j $jobs $ctest_args"
