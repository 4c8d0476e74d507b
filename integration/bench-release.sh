#!/usr/bin/env bash
# The whole release as users time it: one command from a cold start (build, check, compress,
# push, verify) against what they would otherwise run, on the same two-platform context
# (amd64: this machine's /usr/lib/x86_64-linux-gnu; arm64: Debian's aarch64 cross libraries),
# side by side in one run, ROUNDS rounds (3 by default), medians:
#
#   a. `archbuild build --push` (gzip) against `buildah build --platform linux/amd64,linux/arm64
#      --manifest M ctx && buildah manifest push --all M docker://…`, both cold: the daemon's
#      build cache pruned and archbuild's images and .archbuild removed, buildah in fresh
#      storage, every push to a fresh registry, `sync` before each command;
#   b. the same with `--compression zstd` (buildah still gzip: what users compare with);
#   c. `archbuild build` (the OCI layout) then `archbuild build --push`: the push alone,
#      against `buildah manifest push --all` of the same images from its storage;
#   d. a no-change re-release: seconds and bytes uploaded;
#   e. the client's peak memory (GNU time) in a and b;
#   f. how long Docker 20.10 takes before the first byte of each image's export (it writes the
#      whole export to disk first), the part of the release no client can speed up.
#
# Needs docker, buildah, docker-registry, jq, GNU time. Usage: integration/bench-release.sh
set -euo pipefail
command -v buildah > /dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -q buildah > /dev/null \
    || { echo "bench-release: needs buildah (apt-get install buildah)" >&2; exit 1; }
root=$(cd "$(dirname "$0")/.." && pwd)
rounds=${ROUNDS:-3}
bin=$root/target/release/archbuild
(cd "$root" && cargo build --release --quiet --bin archbuild)
work=$(mktemp -d /tmp/archbuild-release.XXXXXX)
# shellcheck source=registry.sh
source "$root/integration/registry.sh"
buildah_opts=(--root "$work/buildah/root" --runroot "$work/buildah/run")
cleanup() {
    stop_registry
    buildah "${buildah_opts[@]}" rmi -a -f > /dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT

ctx=$work/ctx
mkdir -p "$ctx/tree-amd64" "$ctx/tree-arm64"
cp -a /usr/lib/x86_64-linux-gnu "$ctx/tree-amd64/"
cp -a /usr/aarch64-linux-gnu /usr/lib/gcc-cross/aarch64-linux-gnu "$ctx/tree-arm64/"
# The cross compiler's own programs (cc1, lto1, its plugin) run on the build host: x86-64
# files an arm64 image must not hold (archbuild's check would rightly refuse them).
find "$ctx/tree-arm64" -type f -print0 | xargs -0 file -N | awk -F': ' '/ELF .*x86-64/ { print $1 }' \
    | xargs -r rm -f
cat > "$ctx/Dockerfile" << 'EOF'
FROM scratch
ARG TARGETARCH
COPY tree-${TARGETARCH}/ /usr/lib/
EOF
echo "context: amd64 $(du -sh --apparent-size "$ctx/tree-amd64" | cut -f1), arm64 $(du -sh --apparent-size "$ctx/tree-arm64" | cut -f1)"

# Writes archbuild.toml for a push to $addr.
project() {
    cat > "$ctx/archbuild.toml" << EOF
[defaults]
platforms = ["linux/amd64", "linux/arm64"]
registry = "$addr/archbuild"
[images.bench]
context = "."
tags = ["1"]
EOF
}
cold_archbuild() {
    docker builder prune -af > /dev/null 2>&1
    docker images --format '{{.Repository}}:{{.Tag}}' | grep -E '(^archbuild|/archbuild/bench:)' \
        | xargs -r docker rmi -f > /dev/null 2>&1 || true
    rm -rf "$ctx/.archbuild"
}
cold_buildah() {
    buildah "${buildah_opts[@]}" rmi -a -f > /dev/null 2>&1 || true
    rm -rf "$work/buildah"
}
# Runs a command after a sync; prints "SECONDS PEAK_MIB".
timed() {
    sync
    /usr/bin/time -f "%e %M" -o "$work/time" "$@" > "$work/out" 2> "$work/err" || { tail -20 "$work/err" >&2; exit 1; }
    read -r s kb < "$work/time"
    echo "$s $((kb / 1024))"
}
release=(env -C "$ctx" "$bin" build --push --progress plain --json)
# buildah's release in one shell, as a Makefile would run it: build both platforms into a
# manifest list, then push the list with every platform image. Argument: the registry.
buildah_release() {
    buildah "${buildah_opts[@]}" build -q --layers=false --platform linux/amd64,linux/arm64 \
        --manifest bench-list -f "$ctx/Dockerfile" "$ctx" > /dev/null
    buildah "${buildah_opts[@]}" manifest push -q --all --tls-verify=false bench-list "docker://$1/buildah/bench:1"
}
export -f buildah_release
export ctx
median() { tr ' ' '\n' <<< "$*" | awk 'NF' | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
exports() { jq '[.images[].exports] | add' "$ctx/.archbuild/report.json"; }

gz=() zs=() bu=() push=() bupush=() mem=() wait_first=()
for round in $(seq "$rounds"); do
    start_registry; project; cold_archbuild
    read -r s mib < <(timed "${release[@]}")
    gz+=("$s") mem+=("$mib")
    echo "round $round: archbuild build --push (gzip) ${s}s, peak ${mib} MiB, $(exports) exports"
    echo "round $round: stages (report.json): $(jq -r '[.timings[] | "\(.step) \(.seconds * 100 | round / 100)s"] | join(", ")' "$ctx/.archbuild/report.json")"
    # f. what Docker 20.10 spends writing each export to disk before its first byte is sent.
    first=0
    for arch in amd64 arm64; do
        sync
        t=$( { /usr/bin/time -f %e docker save "archbuild-local/bench:1-linux-$arch" | head -c 1 > /dev/null; } 2>&1 | tail -1) || true
        first=$(awk -v a="$first" -v b="$t" 'BEGIN { print a + b }')
    done
    wait_first+=("$first")
    echo "round $round: docker save until its first byte, both images: ${first}s"
    stop_registry

    start_registry; project; cold_archbuild
    read -r s mib < <(timed "${release[@]}" --compression zstd)
    zs+=("$s") mem+=("$mib")
    echo "round $round: archbuild build --push --compression zstd ${s}s, peak ${mib} MiB"
    stop_registry

    start_registry; cold_buildah
    read -r s _ < <(timed bash -c 'buildah_opts=(--root "$1" --runroot "$2"); set -e; buildah_release "$3"' _ \
        "$work/buildah/root" "$work/buildah/run" "$addr")
    bu+=("$s")
    echo "round $round: buildah build + manifest push --all ${s}s"
    stop_registry

    # c. the layout first, then the push alone; buildah's push of the images it built above.
    start_registry; project; cold_archbuild
    (cd "$ctx" && "$bin" build --progress plain > /dev/null 2>&1)
    read -r s _ < <(timed "${release[@]}")
    push+=("$s")
    echo "round $round: archbuild build --push after archbuild build ${s}s, $(exports) exports, $(jq '[.published[].stats.layers_compressed] | add' "$work/out") layers compressed"
    read -r s _ < <(timed buildah "${buildah_opts[@]}" manifest push -q --all --tls-verify=false bench-list "docker://$addr/buildah/again:1")
    bupush+=("$s")
    echo "round $round: buildah manifest push --all ${s}s"
    # d. nothing changed: five re-releases in the last round, their median.
    if [[ $round == "$rounds" ]]; then
        same=()
        for _ in 1 2 3 4 5; do
            read -r s _ < <(timed "${release[@]}")
            same+=("$s")
        done
        echo "d. no-change re-release, median of 5: $(median "${same[@]}")s (${same[*]}), $(jq '[.published[].stats.bytes_uploaded] | add' "$work/out") bytes uploaded, $(exports) exports"
        echo "d. stages of the last (report.json): $(jq -r '[.timings[] | "\(.step) \(.seconds * 1000 | round)ms"] | join(", ")' "$ctx/.archbuild/report.json")"
    fi
    stop_registry
done

g=$(median "${gz[@]}") z=$(median "${zs[@]}") b=$(median "${bu[@]}") p=$(median "${push[@]}") bp=$(median "${bupush[@]}")
echo "a. one-command release, medians of $rounds: archbuild ${g}s, buildah ${b}s: $(ratio "$g" "$b")x"
echo "b. with zstd: archbuild ${z}s: $(ratio "$z" "$b")x buildah's gzip release"
echo "c. push after a build: archbuild ${p}s, buildah manifest push --all ${bp}s: $(ratio "$p" "$bp")x"
f=$(median "${wait_first[@]}")
echo "f. the daemon's export before its first byte, both images: ${f}s, $(ratio "$f" "$g")x of archbuild's release (the check overlaps the amd64 build with the arm64 export)"
echo "e. client peak memory: max $(tr ' ' '\n' <<< "${mem[*]}" | sort -g | tail -1) MiB"
