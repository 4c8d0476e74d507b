#!/usr/bin/env bash
# A loopback registry with empty storage for the benchmarks (Debian's docker-registry, the
# CNCF distribution registry), sourced by bench-publish.sh and bench-release.sh. The caller
# sets $work (a folder removed at exit) and calls stop_registry in its own cleanup.
#   start_registry   sets $addr (127.0.0.1:PORT), $reg_dir and $reg_pid
#   stop_registry    stops it, if one runs
reg_pid=

start_registry() {
    local dir port
    dir=$(mktemp -d "$work/registry.XXXX")
    port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    addr=127.0.0.1:$port
    reg_dir=$dir
    printf 'version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: %s\nhttp:\n  addr: %s\n' \
        "$dir/data" "$addr" > "$dir/config.yml"
    docker-registry serve "$dir/config.yml" > "$dir/log" 2>&1 &
    reg_pid=$!
    for _ in $(seq 100); do curl -sf "http://$addr/v2/" > /dev/null && return; sleep 0.1; done
    cat "$dir/log" >&2
    exit 2
}

stop_registry() {
    if [[ -n $reg_pid ]]; then kill "$reg_pid" 2> /dev/null; wait "$reg_pid" 2> /dev/null || true; fi
    reg_pid=
}
