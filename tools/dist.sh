#!/usr/bin/env bash
# `make dist`: static (musl) release tarballs of the plugins for amd64 and arm64, laid out like the
# reference's cni-plugins-linux-<arch>-v<version>.tgz (binaries at the top level, LICENSE, a short
# README), with .sha256/.sha512 files in sha256sum/sha512sum format:
#   dist/cni-plugins-rs-linux-{amd64,arm64}-v<version>.tgz{,.sha256,.sha512}
# Reproducible: the same commit gives byte-identical tarballs on any machine and in any directory
# (paths remapped out of the binaries, fixed mtimes/owners/modes/order, gzip without a timestamp).
# Environment: DIST_TARGET_DIR (cargo target dir, default target/dist), CNI_RS_VERSION and
# SOURCE_DATE_EPOCH (default: tools/version.sh and the commit time).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD

tools/deps.sh dist

PLUGINS=(bridge host-local portmap loopback)
declare -A ARCH=([amd64]=x86_64-unknown-linux-musl [arm64]=aarch64-unknown-linux-musl)

version=${CNI_RS_VERSION:-$(tools/version.sh)}
epoch=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || echo 0)}
target_dir=${DIST_TARGET_DIR:-$repo/target/dist}
cargo_home=${CARGO_HOME:-$HOME/.cargo}
export CNI_RS_VERSION=$version SOURCE_DATE_EPOCH=$epoch CARGO_TARGET_DIR=$target_dir
# No build-machine paths in the binaries (panic locations, debug remnants): the source tree and
# the registry become fixed prefixes. The standard library's paths are already /rustc/<hash>.
export RUSTFLAGS="--remap-path-prefix=$repo=/cni-plugins-rs --remap-path-prefix=$cargo_home=/cargo --remap-path-prefix=$target_dir=/target"
# rustc's bundled lld links aarch64 musl binaries: no cross gcc needed.
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_LINKER=rust-lld

echo "dist: building v$version for ${ARCH[*]}" >&2
cargo build --release --locked -q "${ARCH[@]/#/--target=}" "${PLUGINS[@]/#/-p=}"

mkdir -p dist
for arch in amd64 arm64; do
  name=cni-plugins-rs-linux-$arch-v$version.tgz
  stage=$target_dir/stage-$arch
  rm -rf "$stage" && mkdir -p "$stage"
  for p in "${PLUGINS[@]}"; do
    install -m 0755 "$target_dir/${ARCH[$arch]}/release/$p" "$stage/$p"
  done
  install -m 0644 LICENSE "$stage/LICENSE"
  cat >"$stage/README.md" <<EOF
# cni-plugins-rs v$version (linux/$arch)

Static builds (musl, no dynamic loader, no shared libraries) of the CNI plugins \`bridge\`,
\`host-local\`, \`portmap\` and \`loopback\`: drop-in replacements for the reference plugins of
github.com/containernetworking/plugins, same configs, results and on-disk leases.

Install: \`tar -xzf cni-plugins-rs-linux-$arch-v$version.tgz -C /opt/cni/bin\` after checking the
tarball with \`sha256sum -c cni-plugins-rs-linux-$arch-v$version.tgz.sha256\`.
Each plugin prints its version when run without CNI_COMMAND. Licensed under Apache-2.0 (LICENSE).
EOF
  chmod 0644 "$stage/README.md"
  touch -h -d "@$epoch" "$stage" "$stage"/*
  # Entries as "./name" like the reference's tarball; fixed order, owner, mtime; gzip -n keeps
  # the name and time out of the gzip header.
  tar -C "$stage" --sort=name --owner=0 --group=0 --numeric-owner --mtime="@$epoch" \
    --format=gnu -cf - . | gzip -9 -n >"dist/$name"
  (cd dist && sha256sum "$name" >"$name.sha256" && sha512sum "$name" >"$name.sha512")
  echo "dist: dist/$name $(cut -c1-16 "dist/$name.sha256")…" >&2
done
