#!/usr/bin/env bash
# Benchmark of `archbuild check` on a large image made of real ELF library trees
# (integration/fixture-large.sh), compared with merely reading the same bytes:
#
#   1. docker save stream:  archbuild check docker-archive:image.tar  vs  cat image.tar
#   2. gzip layers:         archbuild check oci:layout               vs  gzip -dc (one core)
#
# and the peak memory of each check (/usr/bin/time -v). Needs hyperfine, GNU tar, gzip,
# sha256sum and jq-free bash. Usage: integration/bench-check.sh [FIXTURE_DIR]
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
fixture=${1:-$root/target/bench-check}
bin=$root/target/release/archbuild

if [[ ! -x $bin ]]; then
    (cd "$root" && cargo build --release --quiet)
fi
# shellcheck source=fixture-large.sh
source "$root/integration/fixture-large.sh"
fixture_large "$fixture"
cd "$fixture"

size=$(stat -c %s image.tar)
files=$(tar -tf image.tar | grep -c layer.tar || true)
echo "fixture: image.tar $((size / 1048576)) MiB in $files layers; gzip layout $(du -sm layout | cut -f1) MiB"
gz_layers=$(find layout/blobs/sha256 -size +1M | sort)

# --- 1. a docker save stream ----------------------------------------------------------------
hyperfine --warmup 1 --runs 5 -i --export-json save.json \
    -n read "cat image.tar > /dev/null" \
    -n check "$bin check docker-archive:image.tar --json > /dev/null"

# --- 2. gzip layers --------------------------------------------------------------------------
hyperfine --warmup 1 --runs 5 -i --export-json gzip.json \
    -n gzip "for f in $(echo $gz_layers); do gzip -dc \$f; done > /dev/null" \
    -n check "$bin check oci:layout:bench --json > /dev/null"

mean() { grep -o '"mean": *[0-9.e-]*' "$1" | sed -n "${2}p" | grep -o '[0-9.e-]*$'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.0f%%", 100 * a / b }'; }
echo "docker save: check runs at $(ratio "$(mean save.json 1)" "$(mean save.json 2)") of the speed of reading ($(awk -v s="$size" -v t="$(mean save.json 2)" 'BEGIN { printf "%.0f MB/s", s / t / 1e6 }'))"
echo "gzip layers: check runs at $(ratio "$(mean gzip.json 1)" "$(mean gzip.json 2)") of the speed of single-threaded gzip -dc"

# --- peak memory -----------------------------------------------------------------------------
for src in docker-archive:image.tar oci:layout:bench; do
    rss=$( { /usr/bin/time -v "$bin" check "$src" --json > /dev/null || true; } 2>&1 | grep 'Maximum resident' | grep -o '[0-9]*$')
    cpu=$( { /usr/bin/time -f '%P' "$bin" check "$src" --json > /dev/null || true; } 2>&1 | tail -1)
    echo "peak RSS $src: $((rss / 1024)) MiB, CPU $cpu"
done

# --- 3. the daemon's export, what `archbuild build` and `docker-daemon:` read ------------------
if docker version > /dev/null 2>&1; then
    fixture_large "$fixture" --load
    hyperfine --warmup 1 --runs 3 -i --export-json daemon.json \
        -n save "docker save bench/check:1 > /dev/null" \
        -n check "$bin check docker-daemon:bench/check:1 --json > /dev/null"
    echo "docker-daemon: check runs at $(ratio "$(mean daemon.json 1)" "$(mean daemon.json 2)") of the speed of docker save > /dev/null"
    rss=$( { /usr/bin/time -v "$bin" check docker-daemon:bench/check:1 --json > /dev/null || true; } 2>&1 | grep 'Maximum resident' | grep -o '[0-9]*$')
    echo "peak RSS docker-daemon:bench/check:1: $((rss / 1024)) MiB"
fi
