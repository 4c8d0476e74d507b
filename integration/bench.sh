#!/usr/bin/env bash
# Runs every benchmark of the repository on a release build, each comparing archbuild with the
# tool a user would otherwise use, on the same machine in the same run. Figures go to
# target/bench/*.txt; the README quotes them as ratios.
set -euo pipefail
cd "$(dirname "$0")/.."
bash integration/prereqs.sh
# The tools archbuild is compared with, and hyperfine, from Debian's packages.
for tool in buildah hyperfine; do
  command -v "$tool" >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$tool" >/dev/null \
    || { echo "bench: needs $tool (apt-get install $tool)" >&2; exit 1; }
done
cargo build --release --quiet
mkdir -p target/bench
for bench in integration/bench-*.sh; do
  name=$(basename "$bench" .sh)
  echo "== $name" >&2
  bash "$bench" 2>&1 | tee "target/bench/$name.txt"
done
