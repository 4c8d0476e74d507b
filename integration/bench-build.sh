#!/usr/bin/env bash
# Build benchmark: a large context (real library trees, hundreds of MB, thousands of files,
# hard links kept) built for linux/amd64 and linux/arm64 by `archbuild build`:
#   - cold two-platform build against the two single-platform builds one after the other,
#   - a no-change rebuild of both platforms, and a rebuild after one small file changed,
#   - the client's peak memory (/usr/bin/time -v),
#   - `buildah build --platform linux/amd64,linux/arm64` on the same context, cold.
# `archbuild build --no-output` is measured (build and check, no OCI layout), as buildah build
# stores its images locally and compresses nothing.
# Usage: integration/bench-build.sh [ARCHBUILD_BINARY]   (default target/release/archbuild)
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:-$PWD/target/release/archbuild}
[ -x "$bin" ] || cargo build --release --quiet
work=$(mktemp -d /tmp/archbuild-bench.XXXXXX)
trap 'rm -rf "$work"; buildah rmi -f archbuild-bench-buildah >/dev/null 2>&1 || true' EXIT

ctx="$work/ctx"
mkdir -p "$ctx/data"
for tree in /usr/lib/x86_64-linux-gnu /usr/lib/gcc /usr/share/doc; do
  [ -d "$tree" ] && cp -a "$tree" "$ctx/data/" 2>/dev/null || true
done
echo "small" > "$ctx/data/changing.txt"
cat > "$ctx/Dockerfile" <<'EOF'
FROM scratch
ARG TARGETARCH
COPY data/ /data/
EOF
for platforms in both amd64 arm64; do
  case $platforms in
    both) list='"linux/amd64", "linux/arm64"' ;;
    *) list="\"linux/$platforms\"" ;;
  esac
  cat > "$ctx/$platforms.toml" <<EOF
[defaults]
platforms = [$list]
[images.bench]
context = "."
dockerfile = "Dockerfile"
tags = ["bench"]
# The context is this machine's amd64 libraries, in both images on purpose: the check would
# (rightly) refuse the arm64 one, and this benchmark measures the build stage.
check = { ignore = ["/data/**"] }
EOF
done
size=$(du -sh --apparent-size "$ctx/data" | cut -f1)
files=$(find "$ctx/data" -type f | wc -l)
echo "context: $size, $files files"

cold() { docker builder prune -af >/dev/null 2>&1; rm -rf "$ctx/.archbuild"; }
# Runs archbuild with CONFIG; prints "SECONDS PEAK_KB".
timed() {
  local config=$1; shift
  ( cd "$ctx" && /usr/bin/time -f "%e %M" -o "$work/time" "$bin" --config "$config" build --no-output --progress plain "$@" >/dev/null 2>"$work/log" ) \
    || { cat "$work/log" >&2; exit 1; }
  cat "$work/time"
}

cold; read -r both_s both_kb < <(timed both.toml)
cold; read -r amd_s amd_kb < <(timed amd64.toml)
cold; read -r arm_s arm_kb < <(timed arm64.toml)
cold; timed both.toml >/dev/null
read -r again_s again_kb < <(timed both.toml)
echo "changed" >> "$ctx/data/changing.txt"
read -r changed_s changed_kb < <(timed both.toml)

buildah rmi -f archbuild-bench-buildah >/dev/null 2>&1 || true
if /usr/bin/time -f "%e" -o "$work/buildah.time" buildah build --layers=false \
    --platform linux/amd64,linux/arm64 --manifest archbuild-bench-buildah \
    -f "$ctx/Dockerfile" "$ctx" >/dev/null 2>"$work/buildah.log"; then
  buildah_s=$(cat "$work/buildah.time")
else
  tail -5 "$work/buildah.log" >&2
  buildah_s=NA
fi

sum=$(echo "$amd_s + $arm_s" | bc)
echo "cold two-platform build:         ${both_s}s (peak ${both_kb} KB)"
echo "single builds one after another: ${sum}s (amd64 ${amd_s}s, arm64 ${arm_s}s; peak ${amd_kb}/${arm_kb} KB)"
echo "no-change rebuild, both:         ${again_s}s (peak ${again_kb} KB)"
echo "one small file changed, both:    ${changed_s}s (peak ${changed_kb} KB)"
echo "buildah --platform both, cold:   ${buildah_s}s"
if [ "$buildah_s" != NA ]; then
  echo "archbuild/buildah (cold):        $(echo "scale=2; $both_s / $buildah_s" | bc)"
fi
docker rmi -f bench:bench archbuild-local/bench:bench-linux-amd64 archbuild-local/bench:bench-linux-arm64 >/dev/null 2>&1 || true
