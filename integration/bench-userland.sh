#!/usr/bin/env bash
# Benchmark of `archbuild check` on a 1 GB six-platform image of real Debian files: bookworm
# minbase root filesystems (debootstrap --foreign) of amd64, arm64, armhf, i386, ppc64el and
# s390x, one uncompressed layer each, in one OCI layout. Two builds side by side in one run:
# BASE (a revision before a rules change, built in a worktree) and this checkout, so the cost
# of the extra reading (dynamic sections, Go build information, library resolution) is a
# ratio on the same image. Also the peak memory of each (/usr/bin/time -v) and `cat` of the
# same bytes for scale.
#
# Usage: integration/bench-userland.sh [BASE_REV]   (default: 06156d3, before the library rules)
# Needs debootstrap, hyperfine, GNU tar, sha256sum, git.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
base_rev=${1:-06156d3}
work=$root/target/bench-userland
debian=$root/target/tmp/debian # shared with tests/userlands.rs
mkdir -p "$work" "$debian"

# --- the two builds ------------------------------------------------------------------------
(cd "$root" && cargo build --release --quiet)
new=$root/target/release/archbuild
if [[ ! -x $work/base/target/release/archbuild || $(git -C "$work/base" rev-parse HEAD 2>/dev/null) != $(git -C "$root" rev-parse "$base_rev") ]]; then
    rm -rf "$work/base"
    git -C "$root" worktree prune
    git -C "$root" worktree add --detach "$work/base" "$base_rev" > /dev/null
    (cd "$work/base" && cargo build --release --quiet)
fi
base=$work/base/target/release/archbuild

# --- the image -----------------------------------------------------------------------------
declare -A platform_of=([amd64]=linux/amd64 [arm64]=linux/arm64 [armhf]=linux/arm/v7
    [i386]=linux/386 [ppc64el]=linux/ppc64le [s390x]=linux/s390x)
for arch in "${!platform_of[@]}"; do
    dir=$debian/bookworm-$arch
    if [[ ! -d $dir/usr/bin ]]; then
        debootstrap --foreign --variant=minbase --arch="$arch" bookworm "$dir.tmp" http://deb.debian.org/debian > /dev/null &
    fi
done
wait
for arch in "${!platform_of[@]}"; do
    dir=$debian/bookworm-$arch
    [[ -d $dir.tmp ]] && mv "$dir.tmp" "$dir"
    [[ -f $dir.tar ]] || tar -C "$dir" --exclude=./debootstrap --exclude=./var/cache/apt/archives \
        --exclude=./proc -cf "$dir.tar" .
done

layout=$work/layout
rm -rf "$layout" && mkdir -p "$layout/blobs/sha256"
put() { # FILE -> prints "digest size", the blob linked or written into the layout
    local d size
    d=$(sha256sum "$1" | cut -d' ' -f1)
    size=$(stat -c %s "$1")
    if ((size > 1048576)); then # a layer tar: linked, not copied
        ln -f "$1" "$layout/blobs/sha256/$d" 2> /dev/null || cp "$1" "$layout/blobs/sha256/$d"
    else # a document rewritten for the next platform: copied
        cp "$1" "$layout/blobs/sha256/$d"
    fi
    echo "$d $size"
}
entries=()
for arch in amd64 arm64 armhf i386 ppc64el s390x; do
    IFS=/ read -r os cpu variant <<< "${platform_of[$arch]}"
    read -r layer layer_size < <(put "$debian/bookworm-$arch.tar")
    plat="\"os\":\"$os\",\"architecture\":\"$cpu\"${variant:+,\"variant\":\"$variant\"}"
    printf '{%s,"config":{"Entrypoint":["/bin/bash"]},"rootfs":{"type":"layers","diff_ids":["sha256:%s"]}}' \
        "$plat" "$layer" > "$work/config.json"
    read -r config config_size < <(put "$work/config.json")
    printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%s},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"sha256:%s","size":%s}]}' \
        "$config" "$config_size" "$layer" "$layer_size" > "$work/manifest.json"
    read -r manifest manifest_size < <(put "$work/manifest.json")
    entries+=("{\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"digest\":\"sha256:$manifest\",\"size\":$manifest_size,\"platform\":{$plat}}")
done
(IFS=,; printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[%s]}' "${entries[*]}") > "$work/index.json"
read -r index index_size < <(put "$work/index.json")
printf '{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.index.v1+json","digest":"sha256:%s","size":%s,"annotations":{"org.opencontainers.image.ref.name":"debian"}}]}' \
    "$index" "$index_size" > "$layout/index.json"
echo '{"imageLayoutVersion":"1.0.0"}' > "$layout/oci-layout"
echo "image: $(du -sm "$layout/blobs" | cut -f1) MiB in 6 platforms"

# Both builds must read the whole image before they are timed: this checkout finds it clean
# (exit 0); an older base may report findings (exit 1, e.g. 06156d3's ARM library rule).
"$base" check "oci:$layout:debian" > /dev/null || (($? == 1))
"$new" check "oci:$layout:debian" > /dev/null

# --- timing --------------------------------------------------------------------------------
hyperfine --warmup 1 --runs 5 -i --export-json "$work/times.json" \
    -n read "cat $layout/blobs/sha256/* > /dev/null" \
    -n base "$base check oci:$layout:debian --json > /dev/null" \
    -n new "$new check oci:$layout:debian --json > /dev/null"
median() { grep -o '"median": *[0-9.e-]*' "$work/times.json" | sed -n "${1}p" | grep -o '[0-9.e-]*$'; }
awk -v b="$(median 2)" -v n="$(median 3)" -v r="$(median 1)" \
    'BEGIN { printf "median: read %.2f s, base %.2f s, new %.2f s: new/base %.2fx\n", r, b, n, n / b }'
for bin in "$base" "$new"; do
    rss=$( { /usr/bin/time -v "$bin" check "oci:$layout:debian" --json > /dev/null || true; } 2>&1 | grep 'Maximum resident' | grep -o '[0-9]*$')
    echo "peak RSS $(basename "$(dirname "$(dirname "$(dirname "$bin")")")"): $((rss / 1024)) MiB"
done
