#!/usr/bin/env bash
# Benchmark of publishing the large fixture (integration/fixture-large.sh, loaded into the
# Docker daemon) to loopback registries started here (`docker-registry serve` on 127.0.0.1,
# storage in a temporary folder, stopped at exit):
#
#   a. first push of two platforms (1,497 MiB of uncompressed layers), RUNS times each, every
#      run to a fresh registry (so no tool can reuse or mount what an earlier run pushed):
#        - archbuild (examples/publish_bench.rs drives archbuild::publish::publish: export
#          from the daemon, gzip, push), with an empty compression cache;
#        - `buildah manifest push --all` from buildah's own storage (it compresses);
#        - skopeo: `skopeo copy docker-archive:... docker://...` of both platform images at
#          once, from the uncompressed `docker save` archives (it compresses; skopeo writes
#          an OCI layout compressed, so a layout cannot serve as its uncompressed source);
#   b. re-push of unchanged content: archbuild must upload 0 bytes;
#   c. `archbuild verify` / `archbuild inspect` of a four-platform index vs
#      `skopeo inspect --raw` of the index plus one per child manifest.
#
# Needs hyperfine, skopeo, buildah, docker-registry, jq, GNU time.
# Usage: integration/bench-publish.sh [FIXTURE_DIR]   (RUNS=3 by default)
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
fixture=${1:-$root/target/bench-check}
runs=${RUNS:-3}
bin=$root/target/release/archbuild
publish=$root/target/release/examples/publish_bench
(cd "$root" && cargo build --release --quiet --bin archbuild --example publish_bench)
# shellcheck source=fixture-large.sh
source "$root/integration/fixture-large.sh"
fixture_large "$fixture" --load

work=$(mktemp -d "$root/target/bench-publish.XXXXXX")
# shellcheck source=registry.sh
source "$root/integration/registry.sh"
buildah_opts=(--root "$work/buildah/root" --runroot "$work/buildah/run")
cleanup() {
    local rc=$?
    stop_registry
    buildah "${buildah_opts[@]}" rmi -a -f > /dev/null 2>&1 || true
    rm -rf "$work"
    return "$rc"
}
trap cleanup EXIT


# Runs a command once, after flushing dirty pages (so that no tool pays for the previous
# one's disk writes); prints "SECONDS PEAK_MIB CPU".
timed() {
    sync
    /usr/bin/time -f "%e %M %P" -o "$work/time" "$@" > "$work/out" 2> "$work/err" || { cat "$work/err" >&2; exit 1; }
    read -r s kb cpu < "$work/time"
    echo "$s $((kb / 1024)) $cpu"
}
uploaded() { jq '[.[].stats.bytes_uploaded] | add' "$work/out"; }
stored_mib() { echo $(( $(du -sb "$reg_dir/data/docker/registry/v2/blobs" | cut -f1) / 1048576 )); }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
mean_of() { tr ' ' '\n' <<< "$*" | awk 'NF { s += $1; n++ } END { printf "%.2f", s / n }'; }
mean() { jq ".results[$2].mean" "$1"; }

image_id() { docker image inspect -f '{{.Id}}' "$1"; }
children=("linux/amd64=$(image_id bench/check-amd64:1)" "linux/arm64=$(image_id bench/check:1)")
layers_mib=$(( ($(stat -c %s "$fixture/image.tar") + $(stat -c %s "$fixture/image-amd64.tar")) / 1048576 ))
echo "fixture: two platforms, $layers_mib MiB of uncompressed layers (12 layers, none shared)"

# --- the other tools' copies of the same two images ----------------------------------------------
# buildah: both images in its storage, listed in a manifest list.
bu_amd=$(buildah "${buildah_opts[@]}" pull -q "docker-archive:$fixture/image-amd64.tar" 2> "$work/buildah.log")
bu_arm=$(buildah "${buildah_opts[@]}" pull -q "docker-archive:$fixture/image.tar" 2>> "$work/buildah.log")
buildah "${buildah_opts[@]}" manifest create bench-list > /dev/null 2>> "$work/buildah.log"
buildah "${buildah_opts[@]}" manifest add --os linux --arch amd64 bench-list "$bu_amd" > /dev/null 2>> "$work/buildah.log"
buildah "${buildah_opts[@]}" manifest add --os linux --arch arm64 bench-list "$bu_arm" > /dev/null 2>> "$work/buildah.log"

# --- a. first push -------------------------------------------------------------------------------
ab_all=() bu_all=() sk_all=()
for run in $(seq "$runs"); do
    start_registry
    rm -rf "$work/cache"
    read -r s mib cpu < <(timed "$publish" --push "$addr/archbuild/bench" --name bench --tag 1 --cache "$work/cache" "${children[@]}")
    ab_all+=("$s")
    echo "a. run $run: archbuild ${s}s (peak ${mib} MiB, CPU $cpu, stored $(stored_mib) MiB)"
    stop_registry
    start_registry
    read -r s mib cpu < <(timed buildah "${buildah_opts[@]}" manifest push -q --all --tls-verify=false bench-list "docker://$addr/buildah/bench:1")
    bu_all+=("$s")
    echo "a. run $run: buildah manifest push --all ${s}s (peak ${mib} MiB, CPU $cpu, stored $(stored_mib) MiB)"
    stop_registry
    start_registry
    read -r s mib cpu < <(timed bash -c "skopeo copy -q --dest-tls-verify=false docker-archive:$fixture/image-amd64.tar docker://$addr/skopeo/bench:amd64 &
        skopeo copy -q --dest-tls-verify=false docker-archive:$fixture/image.tar docker://$addr/skopeo/bench:arm64; wait")
    sk_all+=("$s")
    echo "a. run $run: skopeo copy of both platforms ${s}s (peak ${mib} MiB of one, CPU $cpu, stored $(stored_mib) MiB)"
    stop_registry
done
ab=$(mean_of "${ab_all[@]}") bu=$(mean_of "${bu_all[@]}") sk=$(mean_of "${sk_all[@]}")
echo "a. first push, mean of $runs: archbuild ${ab}s, buildah ${bu}s, skopeo ${sk}s; archbuild / buildah $(ratio "$ab" "$bu")x, archbuild / skopeo $(ratio "$ab" "$sk")x"

# --- b. re-push of unchanged content -------------------------------------------------------------
start_registry
push_archbuild=("$publish" --push "$addr/archbuild/bench" --name bench --tag 1 --cache "$work/cache" "${children[@]}")
"${push_archbuild[@]}" > "$work/out"
"${push_archbuild[@]}" > "$work/out"
re_bytes=$(uploaded)
echo "b. archbuild re-push uploaded $re_bytes bytes"
[[ $re_bytes == 0 ]] || { echo "archbuild re-uploaded $re_bytes bytes of unchanged content" >&2; exit 1; }
buildah_push=(buildah "${buildah_opts[@]}" manifest push -q --all --tls-verify=false bench-list "docker://$addr/buildah/bench:1")
"${buildah_push[@]}" > /dev/null 2>&1
hyperfine --warmup 1 --runs 10 --export-json "$work/repush.json" \
    -n archbuild "$(printf '%q ' "${push_archbuild[@]}") > /dev/null" \
    -n buildah "$(printf '%q ' "${buildah_push[@]}") > /dev/null 2>&1" > /dev/null
echo "b. re-push: archbuild $(mean "$work/repush.json" 0)s, buildah $(mean "$work/repush.json" 1)s; archbuild / buildah $(ratio "$(mean "$work/repush.json" 0)" "$(mean "$work/repush.json" 1)")x"

# --- c. verify and inspect of a four-platform index ------------------------------------------------
# The arm/v7 and ppc64le images share the arm64 image's layers: only their configs are new.
"$publish" --push "$addr/archbuild/bench4" --name bench4 --tag 1 --cache "$work/cache" "${children[@]}" \
    "linux/arm/v7=$(image_id bench/check-armv7:1)" "linux/ppc64le=$(image_id bench/check-ppc64le:1)" > /dev/null
ref=$addr/archbuild/bench4:1
mapfile -t digests < <(skopeo inspect --raw --tls-verify=false "docker://$ref" | jq -r '.manifests[].digest')
fetches="skopeo inspect --raw --tls-verify=false docker://$ref > /dev/null"
for d in "${digests[@]}"; do
    fetches+="; skopeo inspect --raw --tls-verify=false docker://$addr/archbuild/bench4@$d > /dev/null"
done
platforms=linux/amd64,linux/arm64,linux/arm/v7,linux/ppc64le
"$bin" verify "$ref" --platform "$platforms" > /dev/null || { echo "verify of the pushed index failed" >&2; exit 1; }
hyperfine --warmup 2 --runs 20 --export-json "$work/read.json" \
    -n verify "$bin verify $ref --platform $platforms --json > /dev/null" \
    -n inspect "$bin inspect $ref --json > /dev/null" \
    -n skopeo "$fetches" > /dev/null
v=$(mean "$work/read.json" 0) i=$(mean "$work/read.json" 1) s=$(mean "$work/read.json" 2)
echo "c. four platforms: verify ${v}s (with a HEAD per layer), inspect ${i}s, skopeo inspect --raw + ${#digests[@]} children ${s}s: verify / skopeo $(ratio "$v" "$s")x, inspect / skopeo $(ratio "$i" "$s")x"
