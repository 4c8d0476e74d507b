#!/usr/bin/env bash
# Benchmark of publishing the large two-platform fixture (integration/fixture-large.sh,
# loaded into the Docker daemon) to a loopback registry started here (`docker-registry serve`
# on 127.0.0.1, storage in a temporary folder, stopped at exit):
#
#   a. first push of both platforms: archbuild (examples/publish_bench.rs drives
#      archbuild::publish::publish: export, gzip, push) vs `skopeo copy --all` of the OCI
#      layout archbuild wrote (already compressed) vs `buildah manifest push --all` (which
#      compresses, from its own storage);
#   b. re-push of unchanged content: archbuild must upload 0 bytes;
#   c. `archbuild verify` / `archbuild inspect` of the index vs `skopeo inspect --raw` of the
#      index plus one per child manifest;
#
# and how long gzip alone takes over the same layers, to tell whether compression is the
# bottleneck. Needs hyperfine, skopeo, docker-registry, jq, GNU time; buildah optional.
# Usage: integration/bench-publish.sh [FIXTURE_DIR]
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
fixture=${1:-$root/target/bench-check}
bin=$root/target/release/archbuild
publish=$root/target/release/examples/publish_bench
(cd "$root" && cargo build --release --quiet --bin archbuild --example publish_bench)
# shellcheck source=fixture-large.sh
source "$root/integration/fixture-large.sh"
fixture_large "$fixture" --load

work=$(mktemp -d "$root/target/bench-publish.XXXXXX")
reg_pid=
buildah_root=
cleanup() {
    local rc=$?
    if [[ -n $reg_pid ]]; then kill "$reg_pid" 2> /dev/null; wait "$reg_pid" 2> /dev/null || true; fi
    if [[ -n $buildah_root ]]; then
        buildah "${buildah_opts[@]}" rm -a > /dev/null 2>&1 || true
        buildah "${buildah_opts[@]}" rmi -a -f > /dev/null 2>&1 || true
    fi
    rm -rf "$work"
    return "$rc"
}
trap cleanup EXIT

# --- the registry ----------------------------------------------------------------------------
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
addr=127.0.0.1:$port
cat > "$work/registry.yml" <<YML
version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $work/registry
http:
  addr: $addr
YML
docker-registry serve "$work/registry.yml" > "$work/registry.log" 2>&1 &
reg_pid=$!
for _ in $(seq 100); do curl -sf "http://$addr/v2/" > /dev/null && break; sleep 0.1; done
curl -sf "http://$addr/v2/" > /dev/null || { cat "$work/registry.log" >&2; exit 2; }

amd=$(docker image inspect -f '{{.Id}}' bench/check-amd64:1)
arm=$(docker image inspect -f '{{.Id}}' bench/check:1)
children=("linux/amd64=$amd" "linux/arm64=$arm")
layers_mib=$(( ($(stat -c %s "$fixture/image.tar") + $(stat -c %s "$fixture/image-amd64.tar")) / 1048576 ))
echo "fixture: two platforms, $layers_mib MiB of uncompressed layers (12 layers, none shared)"

# Runs a command once; prints "SECONDS PEAK_MIB CPU".
timed() {
    /usr/bin/time -f "%e %M %P" -o "$work/time" "$@" > "$work/out" 2> "$work/err" || { cat "$work/err" >&2; exit 1; }
    read -r s kb cpu < "$work/time"
    echo "$s $((kb / 1024)) $cpu"
}
uploaded() { jq '[.[].stats.bytes_uploaded] | add' "$work/out"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
mean() { jq ".results[$2].mean" "$1"; }

# --- a. first push -----------------------------------------------------------------------------
push_archbuild=("$publish" --push "$addr/archbuild/bench" --name bench --tag 1 --cache "$work/cache" "${children[@]}")
read -r ab_s ab_mib ab_cpu < <(timed "${push_archbuild[@]}")
ab_bytes=$(uploaded)
echo "a. archbuild first push:  ${ab_s}s, peak ${ab_mib} MiB, CPU $ab_cpu, uploaded $((ab_bytes / 1048576)) MiB"
# The OCI layout of the same images, from the compression cache (nothing compressed again).
"$publish" --layout "$work/layout" --name bench --tag 1 --cache "$work/cache" "${children[@]}" > /dev/null
skopeo_copy=(skopeo copy -q --all --dest-tls-verify=false "oci:$work/layout:bench:1" "docker://$addr/skopeo/bench:1")
read -r sk_s sk_mib sk_cpu < <(timed "${skopeo_copy[@]}")
echo "a. skopeo copy --all:     ${sk_s}s, peak ${sk_mib} MiB, CPU $sk_cpu (uploads the layout's blobs, compresses nothing)"
have_buildah=
if command -v buildah > /dev/null; then
    buildah_root=$work/buildah
    buildah_opts=(--root "$buildah_root/root" --runroot "$buildah_root/run")
    if bu_amd=$(buildah "${buildah_opts[@]}" pull -q "docker-archive:$fixture/image-amd64.tar" 2> "$work/buildah.log") \
        && bu_arm=$(buildah "${buildah_opts[@]}" pull -q "docker-archive:$fixture/image.tar" 2>> "$work/buildah.log") \
        && buildah "${buildah_opts[@]}" manifest create bench-list > /dev/null 2>> "$work/buildah.log" \
        && buildah "${buildah_opts[@]}" manifest add --os linux --arch amd64 bench-list "$bu_amd" > /dev/null 2>> "$work/buildah.log" \
        && buildah "${buildah_opts[@]}" manifest add --os linux --arch arm64 bench-list "$bu_arm" > /dev/null 2>> "$work/buildah.log"; then
        have_buildah=1
        buildah_push=(buildah "${buildah_opts[@]}" manifest push -q --all --tls-verify=false bench-list "docker://$addr/buildah/bench:1")
        read -r bu_s bu_mib bu_cpu < <(timed "${buildah_push[@]}")
        echo "a. buildah manifest push --all: ${bu_s}s, peak ${bu_mib} MiB, CPU $bu_cpu (compresses from its storage)"
    else
        echo "a. buildah: could not import the fixture into its storage; skipped: $(tail -1 "$work/buildah.log")" >&2
    fi
fi
echo "a. archbuild / skopeo: $(ratio "$ab_s" "$sk_s")x the time${have_buildah:+; archbuild / buildah: $(ratio "$ab_s" "$bu_s")x}"

# Is compression the bottleneck? gzip -6 (flate2's default level) of the same layer tars,
# one process per platform image (both cores), and single-threaded.
read -r gz2_s _ _ < <(timed bash -c "gzip -6 -c '$fixture/image.tar' > /dev/null & gzip -6 -c '$fixture/image-amd64.tar' > /dev/null; wait")
read -r gz1_s _ _ < <(timed bash -c "gzip -6 -c '$fixture/image.tar' > /dev/null")
echo "a. gzip -6 of both images' layers on two cores: ${gz2_s}s (one image, one core: ${gz1_s}s); archbuild's push is $(ratio "$gz2_s" "$ab_s") compression"

# --- b. re-push of unchanged content -------------------------------------------------------------
"${push_archbuild[@]}" > "$work/out"
re_bytes=$(uploaded)
echo "b. archbuild re-push uploaded $re_bytes bytes"
[[ $re_bytes == 0 ]] || { echo "archbuild re-uploaded $re_bytes bytes of unchanged content" >&2; exit 1; }
args=(-n archbuild "$(printf '%q ' "${push_archbuild[@]}") > /dev/null"
      -n skopeo "$(printf '%q ' "${skopeo_copy[@]}")")
[[ -n $have_buildah ]] && args+=(-n buildah "$(printf '%q ' "${buildah_push[@]}")")
hyperfine --warmup 1 --runs 5 --export-json "$work/repush.json" "${args[@]}" > /dev/null
echo "b. re-push: archbuild $(mean "$work/repush.json" 0)s, skopeo $(mean "$work/repush.json" 1)s${have_buildah:+, buildah $(mean "$work/repush.json" 2)s}"
echo "b. archbuild / skopeo: $(ratio "$(mean "$work/repush.json" 0)" "$(mean "$work/repush.json" 1)")x${have_buildah:+; archbuild / buildah: $(ratio "$(mean "$work/repush.json" 0)" "$(mean "$work/repush.json" 2)")x}"

# --- c. verify and inspect -----------------------------------------------------------------------
ref=$addr/archbuild/bench:1
mapfile -t digests < <(skopeo inspect --raw --tls-verify=false "docker://$ref" | jq -r '.manifests[].digest')
fetches="skopeo inspect --raw --tls-verify=false docker://$ref > /dev/null"
for d in "${digests[@]}"; do
    fetches+="; skopeo inspect --raw --tls-verify=false docker://$addr/archbuild/bench@$d > /dev/null"
done
hyperfine --warmup 2 --runs 10 --export-json "$work/read.json" \
    -n verify "$bin verify $ref --platform linux/amd64,linux/arm64 --json > /dev/null" \
    -n inspect "$bin inspect $ref --json > /dev/null" \
    -n skopeo "$fetches" > /dev/null
v=$(mean "$work/read.json" 0) i=$(mean "$work/read.json" 1) s=$(mean "$work/read.json" 2)
echo "c. verify ${v}s, inspect ${i}s, skopeo inspect --raw + ${#digests[@]} children ${s}s: verify / skopeo $(ratio "$v" "$s")x, inspect / skopeo $(ratio "$i" "$s")x"
"$bin" verify "$ref" --platform linux/amd64,linux/arm64 > /dev/null || { echo "verify of the pushed index failed" >&2; exit 1; }
