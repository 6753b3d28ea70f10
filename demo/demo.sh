#!/usr/bin/env bash
# The seeds' experiment, run by our plugins from a conflist in conf-examples/, entirely inside a
# throwaway network + mount namespace (nothing of this machine's own network is touched):
#   - two containers get addresses from host-local on a bridge, ping each other and the gateway;
#   - they reach an "outside" host through masquerade (the outside has no route back to the pods,
#     so replies only come back if the source was rewritten);
#   - a tiny server in container A answers the outside on a published host port (portmap DNAT);
#   - DEL removes veths, leases and rules.
# Usage: sudo demo/demo.sh   (DEMO_CONFLIST=<file> picks another conflist with bridge+portmap;
#        DEMO_PROFILE=debug uses the debug build, as `make test` does to skip a release build)
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
conflist=${DEMO_CONFLIST:-$repo/conf-examples/10-containerd-net.conflist}

if [[ $(id -u) -ne 0 ]]; then
  echo "demo: run as root (it builds network namespaces)" >&2
  exit 1
fi

if [[ "${1:-}" != "--inside" ]]; then
  profile=${DEMO_PROFILE:-release}
  echo "demo: building the plugins ($profile)"
  cargo build --profile "${profile/debug/dev}" -q -p bridge -p host-local -p portmap -p loopback -p cnitool
  # A private network namespace and mount namespace for the whole demo.
  exec unshare --net --mount "$0" --inside
fi

bin="$repo/target/${DEMO_PROFILE:-release}"
# host-local keeps leases in /var/lib/cni/networks by default: give this mount namespace its own.
mount -t tmpfs demo-var-lib /var/lib
work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
ip link set lo up

new_netns() { # new_netns VAR: a process holding a new netns (a "container"); VAR = its path
  unshare --net sleep infinity </dev/null >/dev/null 2>&1 &
  pids+=($!)
  local p=/proc/$!/ns/net
  # Until the child has its own netns: readlink fails while it execs, which is not "done".
  local own l; own=$(readlink /proc/self/ns/net)
  until l=$(readlink "$p" 2>/dev/null) && [[ $l != "$own" ]]; do sleep 0.01; done
  printf -v "$1" '%s' "$p"
}
in_ns() { local ns=$1; shift; nsenter --net="$ns" "$@"; }
step() { printf '\n== %s\n' "$*"; }
json_get() { python3 -c 'import json,sys; v=json.load(sys.stdin)
for k in sys.argv[1:]: v=v[int(k) if k.isdigit() else k]
print(v)' "$@"; }

# cnitool runs the conflist like a runtime: bridge (+host-local) then portmap, prevResult chained.
net=$(json_get name <"$conflist")
export NETCONFPATH="$work/net.d" CNI_PATH="$bin" CNI_CACHE_DIR="$work/cache"
mkdir -p "$NETCONFPATH" && cp "$conflist" "$NETCONFPATH/"
cni() { # cni VERB ID NETNS [CAP_ARGS]
  CNI_CONTAINERID=$2 CAP_ARGS=${4:-} "$bin/cnitool" "$1" "$net" "$3"
}

step "network $net from $(basename "$conflist")"
cat "$conflist"

new_netns a; new_netns b; new_netns outside
ip link add v-out type veth peer name v-in netns "$outside"
ip addr add 192.0.2.1/24 dev v-out && ip link set v-out up
in_ns "$outside" ip addr add 192.0.2.2/24 dev v-in
in_ns "$outside" ip link set v-in up
in_ns "$outside" ip link set lo up

step "ADD container A, publishing host port 8080 -> container port 80"
ra=$(cni add ctr-a "$a" '{"portMappings":[{"hostPort":8080,"containerPort":80,"protocol":"tcp"}]}')
echo "$ra"
step "ADD container B"
rb=$(cni add ctr-b "$b")
echo "$rb"
ip_a=$(json_get ips 0 address <<<"$ra" | cut -d/ -f1)
ip_b=$(json_get ips 0 address <<<"$rb" | cut -d/ -f1)
gw=$(json_get ips 0 gateway <<<"$ra")

step "addresses: bridge, container A, container B"
ip -br addr show type bridge
in_ns "$a" ip -br addr show dev eth0
in_ns "$b" ip -br addr show dev eth0

step "A ($ip_a) pings B ($ip_b) across the bridge"
in_ns "$a" ping -c2 -W2 "$ip_b"
step "A pings its gateway $gw (the bridge)"
in_ns "$a" ping -c2 -W2 "$gw"
step "A reaches the outside host 192.0.2.2 through masquerade"
in_ns "$a" ping -c2 -W2 192.0.2.2

step "a server in A on port 80; the outside connects to the host's 192.0.2.1:8080 (DNAT)"
in_ns "$a" python3 -c '
import socket
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 80)); s.listen(); s.settimeout(10)
c, peer = s.accept(); c.sendall(("hello from container A, you are %s\n" % peer[0]).encode()); c.close()
' &
pids+=($!)
reply=""
for _ in $(seq 50); do
  reply=$(in_ns "$outside" python3 -c '
import socket
c = socket.create_connection(("192.0.2.1", 8080), timeout=2); print(c.recv(200).decode().strip())
' 2>/dev/null) && break
  sleep 0.1
done
echo "outside got: $reply"
[[ $reply == hello* ]] || { echo "demo: the published port did not answer" >&2; exit 1; }

step "the rules, with their packet counters"
# Without ipMasqBackend/backend the plugins use the reference's default: its iptables chains.
iptables-save -c -t nat
# A conflist naming "nftables" gets our native tables instead; show them when present.
for t in cni_masquerade_rs cni_portmap_rs; do
  nft list table inet "$t" 2>/dev/null || true
done

step "CHECK both containers"
cni check ctr-a "$a" && cni check ctr-b "$b" && echo "CHECK passed"

step "DEL both containers: veths, leases and rules are gone"
cni del ctr-a "$a" '{"portMappings":[{"hostPort":8080,"containerPort":80,"protocol":"tcp"}]}'
cni del ctr-b "$b"
left_veths=$(ip -br link show type veth | grep -v '^v-out' || true)
left_leases=$(find /var/lib/cni/networks -type f -name '[0-9a-f]*[.:]*' 2>/dev/null || true)
echo "veths left: ${left_veths:-none}"
echo "leases left: ${left_leases:-none}"
left_rules=$( { nft list ruleset; iptables-save -t nat; ip6tables-save -t nat; } 2>/dev/null \
  | grep -F -e "$ip_a" -e "$ip_b" || true)
echo "rules naming the pods left: ${left_rules:-none}"
[[ -z $left_veths && -z $left_leases && -z $left_rules ]] || { echo "demo: state left behind" >&2; exit 1; }
echo
echo "demo: OK"
