#!/bin/sh
# Build our bridge, host-local and the bench in release mode, then compare against the reference
# (/usr/lib/cni/bridge + host-local) and the kernel floor. Extra arguments go to the bench, e.g.
# `--n 50 --pods 300`.
#
# The benchmark creates bridges, veths, pod namespaces and firewall rules, so it never runs in the
# machine's own namespaces: this script re-executes itself under `unshare --net --mount` (a fresh,
# empty network namespace and a private mount namespace), mounts a tmpfs on /run there (pod netns
# files in /run/netns, xtables and nftables locks private to the run) and only then starts the
# bench, which checks both namespaces again before touching anything. Everything it created goes
# away with the namespaces when it exits.
set -eu
self="$(cd "$(dirname "$0")" && pwd)/$(basename "$0")"
cd "$(dirname "$self")/.."
target_dir="${CARGO_TARGET_DIR:-target}"

if [ "${CNI_BENCH_SANDBOX:-}" != "$$" ]; then
	if [ "$(id -u)" != 0 ]; then
		echo "bench/bridge.sh: needs root (creates network namespaces)" >&2
		exit 2
	fi
	cargo build --release -p bridge -p host-local -p cni-bench
	# Where /proc/1 is not readable, the bench compares its namespaces against these.
	CNI_BENCH_HOST_NET_NS=$(stat -L -c %i /proc/self/ns/net)
	CNI_BENCH_HOST_MNT_NS=$(stat -L -c %i /proc/self/ns/mnt)
	export CNI_BENCH_HOST_NET_NS CNI_BENCH_HOST_MNT_NS
	# The sandboxed shell is exec'd by unshare, so it keeps unshare's pid: mark it with that.
	exec unshare --net --mount --propagation private -- \
		sh -c 'CNI_BENCH_SANDBOX=$$ exec "$0" "$@"' "$self" "$@"
fi

mount -t tmpfs -o mode=0755 cni-bench-run /run
mkdir /run/netns
ip link set lo up
exec "$target_dir/release/cni-bench" bridge --ours-dir "$target_dir/release" "$@"
