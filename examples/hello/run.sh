#!/usr/bin/env bash
# Builds the example's static programs for amd64 and arm64, then runs `archbuild build`:
# BuildKit per platform, the ELF check of every program, and an OCI layout in .archbuild/oci.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bash "$here/../../integration/prereqs.sh"
mkdir -p "$here/bin"
musl-gcc -static -Os -s -DARCH='"amd64"' -o "$here/bin/hello-amd64" "$here/hello.c"
aarch64-linux-gnu-gcc -static -Os -s -DARCH='"arm64"' -o "$here/bin/hello-arm64" "$here/hello.c"
cd "$here"
cargo run --quiet --manifest-path "$here/../../Cargo.toml" -- build "$@"
