#!/bin/sh
# Build our host-local and the bench in release mode, then compare against the reference
# (/usr/lib/cni/host-local). Extra arguments go to the bench, e.g. `--n 300 --leases 10,5000`.
set -eu
cd "$(dirname "$0")/.."
cargo build --release -p host-local -p cni-bench
target_dir="${CARGO_TARGET_DIR:-target}"
exec "$target_dir/release/cni-bench" host-local --ours "$target_dir/release/host-local" "$@"
