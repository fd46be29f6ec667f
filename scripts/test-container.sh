#!/usr/bin/env bash
# The CPU container recipe (container/Dockerfile, docs/container.md) built and smoke-run: the
# image builds svmoe from this checkout on Debian 12, then runs the quickstart's first steps in
# it (scripts/quickstart.sh: the forward check against transformers' logits, prepare, and the
# base model for a few steps). Podman (installed from Debian if missing) or a running Docker.
# Where no registry can be reached, the Debian 12 base image is made with debootstrap
# (kept in /var/tmp/svmoe-bookworm-rootfs) and imported. Skips, saying why, where no container
# engine can run. Needs root. Measured: 62 min for the image (package downloads and a build
# without ccache, beside other compiles on 2 cores), 83 s for the smoke run.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
test_name=test-container
source "$root/scripts/test-report.sh"
started=$(date +%s)
[ "$(id -u)" -eq 0 ] || skip "needs root (container storage, debootstrap)"
work=$(mktemp -d /var/tmp/svmoe-container.XXXXXX)
trap 'rm -rf "$work"' EXIT

engine=""
if command -v podman >/dev/null 2>&1; then
  engine=podman
elif command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; then
  engine=docker
else
  say "installing podman (Debian package)"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends podman >/dev/null 2>&1 &&
    engine=podman || skip "no container engine: podman cannot be installed and no Docker daemon runs"
fi
"$engine" info >/dev/null 2>&1 || skip "$engine cannot run here: $("$engine" info 2>&1 | tail -n 1)"

base=${SVMOE_CONTAINER_BASE:-docker.io/library/debian:12}
if ! "$engine" image exists "$base" 2>/dev/null && ! "$engine" pull -q "$base" >/dev/null 2>&1; then
  # No registry: a Debian 12 root file system from Debian's archive, imported as the base.
  rootfs=/var/tmp/svmoe-bookworm-rootfs
  if [ ! -e "$rootfs/.svmoe-bootstrapped" ]; then
    say "no registry for $base: making a Debian 12 base with debootstrap (a few minutes, kept in $rootfs)"
    command -v debootstrap >/dev/null 2>&1 ||
      DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends debootstrap >/dev/null
    rm -rf "$rootfs"
    debootstrap --variant=minbase bookworm "$rootfs" "${SVMOE_DEBIAN_MIRROR:-http://deb.debian.org/debian}" \
      >"$work/debootstrap.log" 2>&1 || skip "debootstrap failed: $(tail -n 3 "$work/debootstrap.log")"
    touch "$rootfs/.svmoe-bootstrapped"
  fi
  base=localhost/svmoe-debian:12
  tar -C "$rootfs" --exclude=./.svmoe-bootstrapped -c . | "$engine" import -q - "$base" >/dev/null ||
    fail "cannot import the Debian 12 base image"
fi

# Some hosts (a VM whose cgroups are in hybrid mode, or that may not raise rlimits) let the OCI
# runtime start no container; Podman's chroot isolation (buildah's) still runs a build's steps.
isolation=()
if ! "$engine" run --rm --network host "$base" true >"$work/runtime.log" 2>&1; then
  [ "$engine" = podman ] || skip "$engine cannot start a container here: $(tail -n 1 "$work/runtime.log")"
  isolation=(--isolation chroot)
  say "the OCI runtime cannot start a container here ($(tail -n 1 "$work/runtime.log")): building and running with Podman's chroot isolation"
fi

say "building the CPU image on $base ($engine)"
build_start=$(date +%s)
"$engine" build "${isolation[@]}" --network host -f "$root/container/Dockerfile" --build-arg "BASE=$base" \
  -t localhost/svmoe:cpu "$root" >"$work/build.log" 2>&1 || fail "the image does not build: $(tail -n 20 "$work/build.log")"
build_seconds=$(($(date +%s) - build_start))
size=$("$engine" image inspect localhost/svmoe:cpu --format '{{.Size}}' 2>/dev/null || echo 0)

# The smoke run: the quickstart's forward check, prepare and 10 steps of the base, then svmoe
# from the PATH; in a container, or as a build step on the image where none can start.
say "running the quickstart's first steps in it"
smoke="bash scripts/quickstart.sh --only prepare,base --set run.pretrain_base.train.steps=10 && svmoe --version"
if [ "${#isolation[@]}" -eq 0 ]; then
  "$engine" run --rm --network host localhost/svmoe:cpu bash -c "$smoke" >"$work/run.log" 2>&1 ||
    fail "the quickstart fails in the image: $(tail -n 20 "$work/run.log")"
else
  printf 'FROM localhost/svmoe:cpu\nRUN %s\n' "$smoke" >"$work/Containerfile.smoke"
  "$engine" build "${isolation[@]}" --network host --no-cache -f "$work/Containerfile.smoke" "$work" \
    >"$work/run.log" 2>&1 || fail "the quickstart fails in the image: $(tail -n 20 "$work/run.log")"
fi
grep -q "run: 2 step(s)" "$work/run.log" || fail "the quickstart did not run its two steps: $(tail -n 20 "$work/run.log")"
version=$(grep -m 1 -E "^svmoe [0-9]+\.[0-9]+" "$work/run.log" || true)
[ -n "$version" ] || fail "svmoe is not on the image's PATH: $(tail -n 5 "$work/run.log")"
say "image built in ${build_seconds} s ($((size / 1048576)) MiB); $version; the quickstart's forward check, prepare and base ran"
say "passed in $(($(date +%s) - started)) s"
