#!/usr/bin/env bash
# Runs the kernel-dependent test suites on each kernel listed in tools/vm/kernels, each in a
# qemu VM with no network device (-nic none): the guest is an initramfs holding this build's
# test executables and plugins, the reference plugins, the tools the tests call and the
# kernel's modules. Nothing runs on the host's network; the VM has none.
#
#   tools/vm/kernel-matrix.sh            every kernel in tools/vm/kernels
#   tools/vm/kernel-matrix.sh PACKAGE    one kernel package (e.g. linux-image-amd64)
#   VM_SUITES="bridge portmap" ...       only these suites (test target names)
#   VM_FILTER=vlan ...                   only the tests whose names contain this (libtest filter)
#
# Needs root: installs what it uses (qemu-system-x86, kmod, cpio, binutils) with apt-get when
# missing, and downloads the kernel and busybox-static packages into its cache (target/vm).
# Exit status: 0 only if every suite passed on every kernel.
set -euo pipefail
shopt -s inherit_errexit
cd "$(dirname "$0")/../.."
root=$PWD
cache=${VM_CACHE:-$root/target/vm}
mkdir -p "$cache"

# The suites that need a kernel: they build links, bridges, firewall state. Pure and disk-only
# suites (host-local, hostile input, fuzz) gain nothing from another kernel.
# A suite is a test target: `name` for the black-box suites in tests/, `<crate dir>:name` for a
# crate's own (crates/netops/tests/kernel is `netops:kernel`).
suites=${VM_SUITES:-"netops:kernel firewall:kernel firewall:macspoof firewall:portmap bridge bridge_reference portmap portmap_reference conf_examples loopback loopback_reference crash conformance"}
memory=${VM_MEMORY:-2048}
timeout_s=${VM_TIMEOUT:-2700}

log() { printf 'kernel-matrix: %s\n' "$*" >&2; }

# --- host packages: only the missing ones, so a warm machine makes no apt call ---
export DEBIAN_FRONTEND=noninteractive
missing=()
for pkg in qemu-system-x86 kmod cpio binutils; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  log "installing ${missing[*]}"
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null || {
    apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; }
fi

# --- test executables (built by `cargo build`/`make test` already; this only lists them) ---
log "listing test executables"
cargo build --workspace --bins -q
cargo test --workspace --no-run --message-format=json -q 2>/dev/null >"$cache/build.json"
python3 - "$cache/build.json" "$suites" "$root" >"$cache/tests.list" <<'PY'
import json, os, sys
wanted = set(sys.argv[2].split())
root = os.path.realpath(sys.argv[3])
seen = {}
for line in open(sys.argv[1]):
    try:
        m = json.loads(line)
    except ValueError:
        continue
    if m.get("reason") != "compiler-artifact" or not m.get("executable"):
        continue
    t = m["target"]
    if "test" not in t["kind"] or not m["profile"]["test"]:
        continue
    crate_dir = os.path.dirname(os.path.realpath(m["manifest_path"]))
    name = t["name"] if crate_dir == root else os.path.basename(crate_dir) + ":" + t["name"]
    if name in wanted:
        seen[name] = m["executable"]
missing = wanted - set(seen)
if missing:
    sys.exit("kernel-matrix: no test executable for suites: " + " ".join(sorted(missing)))
for name in sorted(seen):
    print(name, seen[name])
PY
bindir=$(dirname "$(dirname "$(head -n1 "$cache/tests.list" | cut -d' ' -f2)")")

# --- one kernel ---
fetch_kernel() { # package -> prints the extracted tree
  local pkg=$1 real tree
  # A meta package (linux-image-amd64) names the versioned image it depends on.
  real=$(apt-cache depends "$pkg" 2>/dev/null | awk '/Depends: linux-image-[0-9]/{print $2; exit}')
  real=${real:-$pkg}
  tree=$cache/$real
  if [ ! -f "$tree/.extracted" ]; then
    log "fetching $real"
    rm -rf "$tree" && mkdir -p "$tree"
    (cd "$tree" && apt-get download -q "$real" >/dev/null 2>&1 || {
      apt-get update -qq && apt-get download -q "$real" >/dev/null; })
    dpkg-deb -x "$tree"/*.deb "$tree/root"
    rm -f "$tree"/*.deb
    touch "$tree/.extracted"
  fi
  echo "$tree"
}

copy_with_libs() { # dest-root file...: the files at their own paths, and their libraries
  local dest=$1; shift
  local f
  for f in "$@"; do
    f=$(readlink -f "$f")
    [ -e "$dest$f" ] || install -D -m 0755 "$f" "$dest$f"
    copy_libs "$dest" "$f"
  done
}

copy_libs() { # dest-root file...: only the shared libraries the files load
  local dest=$1; shift
  local f lib
  for f in "$@"; do
    for lib in $(ldd "$f" 2>/dev/null | grep -oE '/[^ ]+' || true); do
      [ -e "$dest$lib" ] || install -D -m 0755 "$(readlink -f "$lib")" "$dest$lib"
    done
  done
}

link_tool() { # dest-root name real-path
  mkdir -p "$1$(dirname "$2")"
  ln -sf "$(readlink -f "$3")" "$1$2"
}

build_initramfs() { # kernel-tree -> prints initramfs path
  local tree=$1 kver rootfs out t
  kver=$(basename "$(ls -d "$tree"/root/lib/modules/*)")
  rootfs=$tree/rootfs
  out=$tree/initramfs.cpio.gz
  rm -rf "$rootfs" && mkdir -p "$rootfs"/{proc,sys,dev,tmp,run,etc,var/run,t,mnt}
  # Modules: networking, the libraries and crypto they pull in, and the virtual devices the
  # tests and later plugins need. The kernel loads them on demand through /sbin/modprobe.
  mkdir -p "$rootfs/lib/modules/$kver/kernel/drivers"
  cp -a "$tree/root/lib/modules/$kver/"modules.* "$rootfs/lib/modules/$kver/"
  cp -a "$tree/root/lib/modules/$kver/kernel/"{net,lib,crypto} "$rootfs/lib/modules/$kver/kernel/"
  mkdir -p "$rootfs/lib/modules/$kver/kernel/drivers/net"
  for t in veth dummy vrf ifb macvlan ipvlan; do
    find "$tree/root/lib/modules/$kver/kernel/drivers/net" -maxdepth 2 -name "$t.ko*" \
      -exec cp {} "$rootfs/lib/modules/$kver/kernel/drivers/net/" \;
  done
  depmod -b "$rootfs" "$kver"
  # Tools, with the host's shared libraries. /bin/sh is dash: busybox's sh would run its own
  # ip/tc/bridge applets ahead of the real iproute2.
  copy_with_libs "$rootfs" /usr/bin/dash /usr/sbin/ip /usr/sbin/bridge /usr/sbin/tc /usr/sbin/nft \
    /usr/sbin/xtables-nft-multi /usr/sbin/xtables-legacy-multi /usr/bin/ping /usr/bin/unshare \
    /usr/bin/nsenter /usr/bin/mount /usr/bin/umount /usr/bin/kmod /usr/bin/sleep /usr/bin/cat \
    /usr/bin/timeout /usr/sbin/sysctl /usr/bin/mkfifo /usr/bin/env
  link_tool "$rootfs" /bin/sh /usr/bin/dash
  for t in iptables ip6tables iptables-save ip6tables-save iptables-restore ip6tables-restore \
    iptables-nft ip6tables-nft iptables-nft-save ip6tables-nft-save iptables-nft-restore \
    ip6tables-nft-restore; do
    link_tool "$rootfs" "/usr/sbin/$t" /usr/sbin/xtables-nft-multi
  done
  for t in iptables-legacy ip6tables-legacy iptables-legacy-save ip6tables-legacy-save \
    iptables-legacy-restore ip6tables-legacy-restore; do
    link_tool "$rootfs" "/usr/sbin/$t" /usr/sbin/xtables-legacy-multi
  done
  for t in modprobe insmod lsmod depmod; do link_tool "$rootfs" "/sbin/$t" /usr/bin/kmod; done
  mkdir -p "$rootfs/usr/lib/x86_64-linux-gnu"
  cp -a /usr/lib/x86_64-linux-gnu/xtables "$rootfs/usr/lib/x86_64-linux-gnu/"
  [ -d /usr/share/iproute2 ] && mkdir -p "$rootfs/usr/share" && cp -a /usr/share/iproute2 "$rootfs/usr/share/"
  # busybox fills in every other command a test or the init may call, behind the real ones.
  if [ ! -x "$cache/busybox" ]; then
    (cd "$cache" && apt-get download -q busybox-static >/dev/null && dpkg-deb -x busybox-static_*.deb bb \
      && cp bb/bin/busybox "$cache/busybox" && rm -rf bb busybox-static_*.deb)
  fi
  install -D -m 0755 "$cache/busybox" "$rootfs/bin/busybox"
  mkdir -p "$rootfs/bb"
  for t in $("$cache/busybox" --list); do
    [ -e "$rootfs/usr/bin/$t" ] || [ -e "$rootfs/usr/sbin/$t" ] || [ -e "$rootfs/bin/$t" ] ||
      ln -sf /bin/busybox "$rootfs/bb/$t"
  done
  # The reference plugins (static Go binaries) and ours, laid out as target/<profile>/.
  mkdir -p "$rootfs/usr/lib/cni"
  cp -a /usr/lib/cni/. "$rootfs/usr/lib/cni/"
  mkdir -p "$rootfs/t/debug/deps"
  for t in bridge host-local portmap loopback cnitool; do
    if [ -x "$bindir/$t" ]; then
      copy_libs "$rootfs" "$bindir/$t"
      strip -g -o "$rootfs/t/debug/$t" "$bindir/$t"
    fi
  done
  # Debug info is most of a test executable's size and the VM does not need it.
  while read -r name exe; do
    copy_libs "$rootfs" "$exe"
    strip -g -o "$rootfs/t/debug/deps/${name/:/--}" "$exe"
  done <"$cache/tests.list"
  # Suites that read files of the source tree find them where they were built.
  mkdir -p "$rootfs$root"
  cp -a "$root/conf-examples" "$rootfs$root/"
  printf 'root:x:0:0:root:/root:/bin/sh\n' >"$rootfs/etc/passwd"
  printf '127.0.0.1 localhost\n::1 localhost\n' >"$rootfs/etc/hosts"
  echo cni-vm >"$rootfs/etc/hostname"
  cp tools/vm/init "$rootfs/init"
  chmod 0755 "$rootfs/init"
  (cd "$rootfs" && find . -print0 | LC_ALL=C sort -z | cpio --null -o -H newc --quiet | gzip -1) >"$out"
  echo "$out"
}

run_kernel() { # package -> 0 if every suite passed
  local pkg=$1 tree initrd vmlinuz console status
  tree=$(fetch_kernel "$pkg")
  initrd=$(build_initramfs "$tree")
  vmlinuz=$(ls "$tree"/root/boot/vmlinuz-*)
  console=$tree/console.log
  log "$pkg: booting $(basename "$vmlinuz") ($(du -h "$initrd" | cut -f1) initramfs, suites: $suites)"
  local started=$SECONDS
  # -accel tcg: /dev/kvm here is a nested software hypervisor a stock guest cannot use.
  timeout "$timeout_s" qemu-system-x86_64 -accel tcg -m "$memory" -smp 2 -nographic -nic none \
    -no-reboot -kernel "$vmlinuz" -initrd "$initrd" \
    -append "console=ttyS0 panic=-1 quiet loglevel=3 cni_suites=\"$suites\" cni_filter=\"${VM_FILTER:-}\"" \
    </dev/null >"$console" 2>&1 || true
  # The guest prints each suite's output and one line per suite: "VM-SUITE <name> <exit>".
  # Strip the firmware's terminal escapes so the markers start their lines.
  tr -d '\r' <"$console" | sed -E 's/\x1bc//g; s/\x1b\[[0-9;?]*[A-Za-z]//g' >"$console.txt"
  sed -n '/^VM-BEGIN/,/^VM-END/p' "$console.txt" | grep -v '^VM-SUITE' >&2 || true
  status=0
  local name
  for name in $suites; do
    local line
    line=$(grep -E "^VM-SUITE $name " "$console.txt" | tail -n1 || true)
    if [ -z "$line" ]; then
      log "$pkg: suite $name did not report (see $console)"; status=1
    elif [ "${line##* }" != 0 ]; then
      log "$pkg: suite $name FAILED"; status=1
    else
      log "$pkg: suite $name passed"
    fi
  done
  log "$pkg: $((SECONDS - started)) s in the VM"
  return $status
}

kernels=("$@")
[ ${#kernels[@]} -gt 0 ] || mapfile -t kernels < <(grep -vE '^\s*(#|$)' tools/vm/kernels)
overall=0
for k in "${kernels[@]}"; do
  run_kernel "$k" || overall=1
done
exit $overall
