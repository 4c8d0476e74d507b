#!/usr/bin/env bash
# The large fixture of the benchmarks, built once into a folder (default target/bench-check):
#
#   image.tar        `docker save` of bench/check:1, linux/arm64 config, six uncompressed
#                    layers holding real ELF library trees (Debian's cross toolchains:
#                    /usr/aarch64-linux-gnu, /usr/arm-linux-gnueabihf, and the host's
#                    /usr/lib/x86_64-linux-gnu), manifest.json last as docker save writes it
#   image-amd64.tar  bench/check-amd64:1, linux/amd64: the same trees, each layer with one
#                    more file (/etc/archbuild-platform) so that no layer is shared: the second
#                    platform of a two-platform image set
#   layout/          an OCI layout of image.tar's layers gzip-compressed (ref "bench")
#
# With --load, two more platforms are loaded that share image.tar's layers, for a
# four-platform index: bench/check-armv7:1 (linux/arm/v7) and bench/check-ppc64le:1.
#
# Sourced or run: `integration/fixture-large.sh [DIR] [--load]`; with --load both images are
# loaded into the Docker daemon (docker load) unless they are there already.
set -euo pipefail

fixture_large() {
    local fixture=$1 load=${2:-}
    local trees=(usr/aarch64-linux-gnu usr/arm-linux-gnueabihf usr/lib/x86_64-linux-gnu)
    mkdir -p "$fixture"
    (
        cd "$fixture"
        if [[ ! -f image.tar || ! -f image-amd64.tar ]]; then
            rm -rf stage layout && mkdir -p stage layout/blobs/sha256
            local layers=() diff_ids=() amd_ids=() n=0 tree parts half slice sel
            mkdir -p stage/marker/etc && echo linux/amd64 > stage/marker/etc/archbuild-platform
            for tree in "${trees[@]}"; do
                [[ -d /$tree ]] || { echo "missing /$tree (install the Debian cross toolchains)" >&2; exit 2; }
                # Split each tree by its top-level entries into two layers.
                mapfile -t parts < <(cd / && find "$tree" -mindepth 1 -maxdepth 1 | sort)
                half=$(( (${#parts[@]} + 1) / 2 ))
                for slice in 0 1; do
                    if [[ $slice == 0 ]]; then sel=("${parts[@]:0:$half}"); else sel=("${parts[@]:$half}"); fi
                    [[ ${#sel[@]} -gt 0 ]] || continue
                    n=$((n + 1))
                    mkdir -p "stage/l$n" "stage/a$n"
                    tar -C / --numeric-owner --format=pax -cf "stage/l$n/layer.tar" "${sel[@]}"
                    layers+=("l$n/layer.tar")
                    diff_ids+=("\"sha256:$(sha256sum "stage/l$n/layer.tar" | cut -d' ' -f1)\"")
                    cp "stage/l$n/layer.tar" "stage/a$n/layer.tar"
                    tar -C stage/marker --numeric-owner --format=pax -rf "stage/a$n/layer.tar" etc/archbuild-platform
                    amd_ids+=("\"sha256:$(sha256sum "stage/a$n/layer.tar" | cut -d' ' -f1)\"")
                done
            done
            local ids amd list
            ids=$(IFS=,; echo "${diff_ids[*]}")
            amd=$(IFS=,; echo "${amd_ids[*]}")
            echo -n "{\"architecture\":\"arm64\",\"os\":\"linux\",\"config\":{\"Entrypoint\":[\"/usr/aarch64-linux-gnu/lib/ld-linux-aarch64.so.1\"]},\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[$ids]}}" > stage/config.json
            echo -n "{\"architecture\":\"amd64\",\"os\":\"linux\",\"config\":{\"Entrypoint\":[\"/usr/lib/x86_64-linux-gnu/libc.so.6\"]},\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[$amd]}}" > stage/config-amd64.json
            list=$(printf '"%s",' "${layers[@]}")
            echo -n "[{\"Config\":\"config.json\",\"RepoTags\":[\"bench/check:1\"],\"Layers\":[${list%,}]}]" > stage/manifest.json
            # manifest.json last, as docker save writes it.
            (cd stage && tar --format=pax -cf ../image.tar "${layers[@]}" config.json manifest.json)
            list=$(printf '"%s",' "${layers[@]/#l/a}")
            mkdir -p stage/amd && mv stage/a[0-9]* stage/amd/ && cp stage/config-amd64.json stage/amd/config.json
            echo -n "[{\"Config\":\"config.json\",\"RepoTags\":[\"bench/check-amd64:1\"],\"Layers\":[${list%,}]}]" > stage/amd/manifest.json
            (cd stage/amd && tar --format=pax -cf ../../image-amd64.tar "${layers[@]/#l/a}" config.json manifest.json)

            # image.tar's layers gzip-compressed in an OCI layout.
            local descs=() l d size cd_ manifest md
            for l in "${layers[@]}"; do
                gzip -6 -c "stage/$l" > layout/tmp.gz
                d=$(sha256sum layout/tmp.gz | cut -d' ' -f1)
                size=$(stat -c %s layout/tmp.gz)
                mv layout/tmp.gz "layout/blobs/sha256/$d"
                descs+=("{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar+gzip\",\"digest\":\"sha256:$d\",\"size\":$size}")
            done
            cd_=$(sha256sum stage/config.json | cut -d' ' -f1)
            cp stage/config.json "layout/blobs/sha256/$cd_"
            manifest="{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"config\":{\"mediaType\":\"application/vnd.oci.image.config.v1+json\",\"digest\":\"sha256:$cd_\",\"size\":$(stat -c %s stage/config.json)},\"layers\":[$(IFS=,; echo "${descs[*]}")]}"
            echo -n "$manifest" > layout/m.json
            md=$(sha256sum layout/m.json | cut -d' ' -f1)
            mv layout/m.json "layout/blobs/sha256/$md"
            echo -n "{\"schemaVersion\":2,\"manifests\":[{\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"digest\":\"sha256:$md\",\"size\":${#manifest},\"annotations\":{\"org.opencontainers.image.ref.name\":\"bench\"}}]}" > layout/index.json
            echo '{"imageLayoutVersion":"1.0.0"}' > layout/oci-layout
            rm -rf stage
        fi
        if [[ $load == --load ]]; then
            docker image inspect bench/check:1 > /dev/null 2>&1 || docker load -q -i image.tar > /dev/null
            docker image inspect bench/check-amd64:1 > /dev/null 2>&1 || docker load -q -i image-amd64.tar > /dev/null
            docker image inspect bench/check-armv7:1 > /dev/null 2>&1 \
                || retarget image.tar arm v7 bench/check-armv7:1 | docker load -q > /dev/null
            docker image inspect bench/check-ppc64le:1 > /dev/null 2>&1 \
                || retarget image.tar ppc64le "" bench/check-ppc64le:1 | docker load -q > /dev/null
        fi
    )
}

# Writes to stdout a docker save archive of ARCHIVE's layers with the config's architecture
# (and variant) replaced and tagged TAG: another platform's image sharing the same layers.
retarget() {
    python3 - "$@" <<'PY'
import io, json, sys, tarfile
src, arch, variant, tag = sys.argv[1:5]
with tarfile.open(src, "r|") as tin, tarfile.open(fileobj=sys.stdout.buffer, mode="w|", format=tarfile.PAX_FORMAT) as tout:
    for member in tin:
        if member.name not in ("config.json", "manifest.json"):
            tout.addfile(member, tin.extractfile(member) if member.isfile() else None)
            continue
        doc = json.load(tin.extractfile(member))
        if member.name == "config.json":
            doc["architecture"] = arch
            if variant:
                doc["variant"] = variant
        else:
            doc[0]["RepoTags"] = [tag]
        data = json.dumps(doc, separators=(",", ":")).encode()
        member.size = len(data)
        tout.addfile(member, io.BytesIO(data))
PY
}

if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
    root=$(cd "$(dirname "$0")/.." && pwd)
    fixture_large "${1:-$root/target/bench-check}" "${2:-}"
fi
