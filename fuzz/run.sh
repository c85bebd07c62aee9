#!/usr/bin/env bash
# Runs every fuzz target for a bounded time, each seeded from fuzz/seeds/<target> (written by
# `OMNICAST_FUZZ_SEEDS=1 cargo test --test fuzz`), and prints what each did.
#
#   bash fuzz/run.sh                    # every target, 180 s each
#   bash fuzz/run.sh --seconds 30 http frames
#
# Needs the nightly toolchain and cargo-fuzz (`cargo +nightly install cargo-fuzz`). The corpus
# grows in fuzz/corpus/<target> (kept between runs, not committed); a crash or hang lands in
# fuzz/artifacts/<target>/ and fails the run. Keep each one, once fixed, in
# fuzz/regressions/<target>/: `cargo test --test fuzz` replays them.
set -euo pipefail
cd "$(dirname "$0")"

seconds=180
targets=()
while (($#)); do
  case "$1" in
    --seconds) seconds="$2"; shift 2 ;;
    -*) echo "usage: $0 [--seconds N] [target...]" >&2; exit 2 ;;
    *) targets+=("$1"); shift ;;
  esac
done
if ((${#targets[@]} == 0)); then
  mapfile -t targets < <(cargo +nightly fuzz list)
fi

cargo +nightly fuzz build -O
found=0
printf '%-10s %8s %12s %10s %8s %s\n' target seconds executions exec/s corpus findings
for target in "${targets[@]}"; do
  mkdir -p "corpus/$target" "artifacts/$target"
  cp -n "seeds/$target"/* "corpus/$target/" 2>/dev/null || true
  log="artifacts/$target.log"
  status=0
  # -timeout: one input taking 10 s is a hang; -rss_limit_mb: a leak or a blow-up is a finding.
  cargo +nightly fuzz run -O "$target" "corpus/$target" -- \
    -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="artifacts/$target/" >"$log" 2>&1 || status=$?
  runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | tail -1 | grep -o '[0-9]*$' || echo 0)
  rate=$(grep -o 'stat::average_exec_per_sec: *[0-9]*' "$log" | tail -1 | grep -o '[0-9]*$' || echo 0)
  corpus=$(ls "corpus/$target" | wc -l)
  findings=$(ls "artifacts/$target" | wc -l)
  printf '%-10s %8s %12s %10s %8s %s\n' "$target" "$seconds" "$runs" "$rate" "$corpus" "$findings"
  if ((status != 0 || findings > 0)); then
    found=1
    echo "  $target: see $log and artifacts/$target/" >&2
  fi
done
exit $found
