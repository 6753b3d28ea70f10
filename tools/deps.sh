#!/usr/bin/env bash
# Installs what `make demo`, `make test` and `make dist` need, and nothing else:
#   tools/deps.sh demo|test|dist [...]
# On Debian as root, apt-get installs exactly the missing packages (dpkg-query first, so a ready
# machine costs a few milliseconds; `apt-get update` only when something is missing) and
# `rustup target add`s missing targets. Not root, it prints one line naming what is
# missing and the command that installs it, and fails; off Debian it names the packages.
set -euo pipefail

pkgs=() targets=()
for need in "$@"; do
  case $need in
    # ip, nft/iptables (shown and used by the demo), ping, nsenter/unshare, sysctl/pkill.
    demo) pkgs+=(iproute2 nftables iptables iputils-ping util-linux procps python3) ;;
    # + the Go reference plugins in /usr/lib/cni (the differential oracle).
    test) pkgs+=(iproute2 nftables iptables iputils-ping util-linux procps python3
                 containernetworking-plugins) ;;
    # + musl targets; qemu-aarch64-static runs the arm64 smoke test; readelf checks static-ness.
    dist) pkgs+=(qemu-user-static binutils)
          targets+=(x86_64-unknown-linux-musl aarch64-unknown-linux-musl) ;;
    *) echo "deps.sh: unknown need '$need' (demo, test or dist)" >&2; exit 2 ;;
  esac
done

if ! command -v dpkg-query >/dev/null; then
  # Not Debian: nothing to check against; name the Debian packages and carry on.
  echo "deps.sh: not Debian; this needs the equivalents of: ${pkgs[*]}" >&2
  pkgs=()
fi
missing=()
for p in $( ((${#pkgs[@]})) && printf '%s\n' "${pkgs[@]}" | sort -u); do
  status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
  [[ $status == "install ok installed" ]] || missing+=("$p")
done
missing_targets=()
if ((${#targets[@]})); then
  installed=$(rustup target list --installed 2>/dev/null || true)
  for t in "${targets[@]}"; do
    grep -qx "$t" <<<"$installed" || missing_targets+=("$t")
  done
fi

if ((${#missing[@]})); then
  if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
    echo "deps.sh: installing ${missing[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    echo "deps.sh: missing ${missing[*]}; install them with: sudo apt-get install ${missing[*]}" >&2
    exit 1
  fi
fi
if ((${#missing_targets[@]})); then
  if command -v rustup >/dev/null; then
    rustup target add "${missing_targets[@]}" >&2
  else
    echo "deps.sh: missing Rust targets ${missing_targets[*]}; install them with: rustup target add ${missing_targets[*]}" >&2
    exit 1
  fi
fi
