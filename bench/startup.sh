#!/bin/sh
# Static (musl, from `make dist`'s amd64 tarball) vs glibc (`cargo build --release`) builds of our
# plugins, and the reference's: binary size, VERSION exec time and peak RSS (cni-bench startup).
# Needs dist/ to be built first (`make dist`). Extra arguments go to the bench, e.g. `--n 1000`.
set -eu
cd "$(dirname "$0")/.."
version=${CNI_RS_VERSION:-$(tools/version.sh)}
cargo build --release -q -p bridge -p host-local -p portmap -p loopback -p cni-bench
static=$(mktemp -d)
trap 'rm -rf "$static"' EXIT
tar -xzf "dist/cni-plugins-rs-linux-amd64-v$version.tgz" -C "$static"
target_dir="${CARGO_TARGET_DIR:-target}"
"$target_dir/release/cni-bench" startup \
  --dirs "musl=$static,glibc=$target_dir/release,reference=/usr/lib/cni" "$@"
