#!/usr/bin/env bash
# Remote builders benchmark: the build benchmark's large context (real library trees) built for
# linux/amd64 and linux/arm64 on builder hosts, each a Docker daemon in a network namespace of
# its own (veth, its own address, data and exec roots) pinned to one core with taskset, reached
# over tcp:// through the veth:
#   - cold, both platforms on one host, against each platform on its own host (medians of
#     ROUNDS, each host's build cache pruned and archbuild's state removed before each round),
#   - a no-change rebuild against the two hosts, and one after a small file changed, with the
#     context bytes each sent (archbuild's --json report),
#   - the client's peak memory (/usr/bin/time -v).
# Plain tcp:// (the TLS handshake is once per connection; tests/remote.rs covers TLS and ssh).
# Usage: integration/bench-remote.sh [ARCHBUILD_BINARY]   (root: it makes namespaces)
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:-$PWD/target/release/archbuild}
[ -x "$bin" ] || cargo build --release --quiet
rounds=${ROUNDS:-3}
work=$(mktemp -d /tmp/archbuild-bench-remote.XXXXXX)
hosts=(1 2)
driver=$(docker info --format '{{.Driver}}')

cleanup() {
  for n in "${hosts[@]}"; do
    [[ -f $work/h$n/dockerd.pid ]] && kill "$(cat "$work/h$n/dockerd.pid")" 2>/dev/null || true
  done
  sleep 2
  for n in "${hosts[@]}"; do
    for pid in $(ip netns pids "abbench$n" 2>/dev/null); do kill -9 "$pid" 2>/dev/null || true; done
    ip netns del "abbench$n" 2>/dev/null || true
    ip link del "vabb${n}h" 2>/dev/null || true
  done
  rm -rf "$work"
}
trap cleanup EXIT

start_host() {
  local n=$1 core=$2 dir=$work/h$1
  mkdir -p "$dir"
  ip netns add "abbench$n"
  ip link add "vabb${n}h" type veth peer name "vabb${n}n"
  ip link set "vabb${n}n" netns "abbench$n"
  ip addr add "10.232.$n.1/24" dev "vabb${n}h"
  ip link set "vabb${n}h" up
  ip netns exec "abbench$n" ip addr add "10.232.$n.2/24" dev "vabb${n}n"
  ip netns exec "abbench$n" ip link set "vabb${n}n" up
  ip netns exec "abbench$n" ip link set lo up
  echo '{}' > "$dir/daemon.json"
  nsenter --net="/var/run/netns/abbench$n" taskset -c "$core" dockerd \
    --config-file "$dir/daemon.json" --data-root "$dir/root" --exec-root "$dir/exec" \
    --pidfile "$dir/dockerd.pid" -H "unix://$dir/docker.sock" -H "tcp://10.232.$n.2:2375" \
    --iptables=false --ip-masq=false --storage-driver "$driver" >"$dir/dockerd.log" 2>&1 &
  for _ in $(seq 1 120); do
    docker -H "unix://$dir/docker.sock" version >/dev/null 2>&1 && return 0
    sleep 0.5
  done
  echo "bench-remote: the daemon of host $n did not start" >&2; tail -5 "$dir/dockerd.log" >&2; exit 1
}
start_host 1 0
start_host 2 1

ctx="$work/ctx"
mkdir -p "$ctx/data"
for tree in /usr/lib/x86_64-linux-gnu /usr/lib/gcc /usr/share/doc; do
  [ -d "$tree" ] && cp -a "$tree" "$ctx/data/" 2>/dev/null || true
done
echo "small" > "$ctx/data/changing.txt"
printf 'FROM scratch\nARG TARGETARCH\nCOPY data/ /data/\n' > "$ctx/Dockerfile"
project() { # project FILE AMD64_HOST ARM64_HOST
  cat > "$ctx/$1" <<EOF
[defaults]
platforms = ["linux/amd64", "linux/arm64"]
[images.bench]
context = "."
tags = ["bench"]
check = { ignore = ["/data/**"] }
[builders]
"linux/amd64" = "tcp://10.232.$2.2:2375"
"linux/arm64" = "tcp://10.232.$3.2:2375"
EOF
}
project one.toml 1 1
project two.toml 1 2
echo "context: $(du -sh --apparent-size "$ctx/data" | cut -f1), $(find "$ctx/data" -type f | wc -l) files"

cold() {
  for n in "${hosts[@]}"; do docker -H "unix://$work/h$n/docker.sock" builder prune -af >/dev/null 2>&1; done
  rm -rf "$ctx/.archbuild"; sync
}
# timed CONFIG: prints "SECONDS PEAK_KB CONTEXT_BYTES_SENT".
timed() {
  ( cd "$ctx" && /usr/bin/time -f "%e %M" -o "$work/time" "$bin" --config "$1" build --no-output \
      --json --progress plain >"$work/report.json" 2>"$work/log" ) || { cat "$work/log" >&2; exit 1; }
  local sent
  sent=$(python3 -c 'import json,sys; print(sum(i["context_bytes"] for i in json.load(open(sys.argv[1]))["images"]))' "$work/report.json")
  echo "$(cat "$work/time") $sent"
}
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

one=() two=() peak=()
for _ in $(seq 1 "$rounds"); do
  cold; read -r s kb _ < <(timed one.toml); one+=("$s"); peak+=("$kb")
  cold; read -r s kb _ < <(timed two.toml); two+=("$s"); peak+=("$kb")
done
again=() changed=()
for i in $(seq 1 "$rounds"); do
  read -r s kb again_bytes < <(timed two.toml); again+=("$s"); peak+=("$kb")
  echo "change $i" >> "$ctx/data/changing.txt"
  read -r s kb changed_bytes < <(timed two.toml); changed+=("$s"); peak+=("$kb")
done
one_m=$(median "${one[@]}") two_m=$(median "${two[@]}")
echo "cold, both platforms on one host:  ${one_m}s (rounds: ${one[*]})"
echo "cold, each platform on its host:   ${two_m}s (rounds: ${two[*]})"
echo "ratio two hosts / one host:        $(echo "scale=2; $two_m / $one_m" | bc)"
echo "no-change rebuild on two hosts:    $(median "${again[@]}")s, ${again_bytes} context bytes sent"
echo "rebuild after a one-line change:   $(median "${changed[@]}")s, ${changed_bytes} context bytes sent"
echo "client peak memory:                $(median "${peak[@]}") KB median, $(printf '%s\n' "${peak[@]}" | sort -n | tail -1) KB max"
