#!/usr/bin/env bash
# `make dist-check` (CI runs it; builds dist/ first): checks the release tarballs in dist/.
#  1. tests/dist.rs: layout, checksum files, static ELF for the right arch, no build paths, the
#     version in every about text, and the arm64 binaries under qemu-aarch64-static;
#  2. the black-box tests (and the differential ones) on the amd64 tarball's binaries, through
#     CNI_TEST_BIN_DIR;
#  3. reproducibility: a fresh clone of this commit in another directory, built with another
#     target dir, must give byte-identical tarballs (DIST_REPRO=0 skips this ~6 minute step).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
tools/deps.sh test dist

version=${CNI_RS_VERSION:-$(tools/version.sh)}
export CNI_DIST_VERSION=$version

step() { printf '\n== dist-check: %s (%(%T)T)\n' "$*" -1 >&2; }

# dist/ must be this commit's: the tarballs' mtimes are the commit time, so a dist/ left from an
# earlier commit differs from the clean clone's build. A no-op when it is already current.
tools/dist.sh

step "tarballs, static-ness, version, arm64 under qemu"
cargo test -q --test dist -- --include-ignored

step "black-box tests on the amd64 tarball's binaries"
bin=$repo/target/dist-check/amd64
rm -rf "$bin" && mkdir -p "$bin"
tar -xzf "dist/cni-plugins-rs-linux-amd64-v$version.tgz" -C "$bin"
CNI_TEST_BIN_DIR=$bin cargo test -q \
  --test host_local --test host_local_reference --test bridge --test bridge_reference \
  --test portmap --test portmap_reference --test loopback --test loopback_reference \
  --test conf_examples --test logging --test hostile_input

if [[ ${DIST_REPRO:-1} != 0 ]]; then
  step "rebuild from a clean clone: byte-identical tarballs"
  if [[ -n $(git status --porcelain --untracked-files=no) ]]; then
    echo "dist-check: uncommitted changes; the clone builds HEAD, so commit first (or DIST_REPRO=0)" >&2
    exit 1
  fi
  clone=$(mktemp -d /tmp/cni-dist-repro.XXXXXX)
  trap 'rm -rf "$clone"' EXIT
  git clone -q --shared "$repo" "$clone/src"
  git -C "$clone/src" checkout -q --detach "$(git rev-parse HEAD)"
  CNI_RS_VERSION=$version DIST_TARGET_DIR="$clone/target" "$clone/src/tools/dist.sh"
  for arch in amd64 arm64; do
    name=cni-plugins-rs-linux-$arch-v$version.tgz
    if ! cmp "dist/$name" "$clone/src/dist/$name"; then
      echo "dist-check: $name differs between two builds of the same commit" >&2
      exit 1
    fi
  done
  echo "dist-check: both tarballs are byte-identical across builds" >&2
fi
step "ok"
