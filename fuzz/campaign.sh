#!/usr/bin/env bash
# A fuzzing campaign over every target: each runs for SECONDS (default 600) on one core,
# starting from the committed seeds (seeds/TARGET) and the local corpus (corpus/TARGET,
# not committed), with libFuzzer's memory limit, so that a reader that allocates without
# bound fails the run like a crash would. With --update-seeds, inputs that reach new
# coverage are merged into seeds/ (which tests/fuzz_seeds.rs replays on stable).
# Needs `cargo install cargo-fuzz` and a nightly toolchain. Prints one summary line a target.
set -euo pipefail
cd "$(dirname "$0")"
seconds=600
update=false
targets=()
for arg in "$@"; do
  case "$arg" in
    --update-seeds) update=true ;;
    [0-9]*) seconds="$arg" ;;
    *) targets+=("$arg") ;;
  esac
done
if [ ${#targets[@]} -eq 0 ]; then
  targets=(elf_inspect layer_scan docker_archive project_file dockerfile audit_documents)
fi
cargo +nightly fuzz build -O "${targets[@]/#/}" >/dev/null 2>&1 || cargo +nightly fuzz build -O
for t in "${targets[@]}"; do
  mkdir -p "corpus/$t" "seeds/$t" "artifacts/$t"
  log="artifacts/$t/run.log"
  status=0
  cargo +nightly fuzz run -O "$t" "corpus/$t" "seeds/$t" -- \
    -max_total_time="$seconds" -rss_limit_mb=2048 -malloc_limit_mb=1024 -timeout=10 \
    -max_len=65536 -print_final_stats=1 >"$log" 2>&1 || status=$?
  runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo "?")
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | grep -o '[0-9]*' || echo "?")
  if [ "$status" -eq 0 ]; then verdict=clean; else verdict="FAILED (see $log and artifacts/$t)"; fi
  echo "$t: ${seconds}s, $runs runs, coverage $cov edges, corpus $(ls "corpus/$t" | wc -l) inputs: $verdict"
  if $update && [ "$status" -eq 0 ]; then
    cargo +nightly fuzz run -O "$t" -- -merge=1 "seeds/$t" "corpus/$t" >/dev/null 2>&1 || true
  fi
done
