#!/usr/bin/env bash
# Builds the fuzz targets, then either replays the checked-in corpus (CI) or
# explores for a bounded time (by hand); prints executions, exec/s and crashes
# per target and exits non-zero if any target crashed (the input is saved
# under fuzz/artifacts/, the whole log next to it as TARGET.log).
#
#   fuzz/run.sh replay [TARGET...]        every corpus input once (-runs=0):
#                                         deterministic, what CI runs
#   fuzz/run.sh [SECONDS] [TARGET...]     random exploration from the corpus;
#                                         SECONDS defaults to $FUZZ_SECONDS or 30
#   FUZZ_MERGE=1 fuzz/run.sh 300          long run by hand; new inputs that add
#                                         coverage are merged into fuzz/corpus/
#
# CI never explores: a random run can stop on a bug it happens to reach, so a
# correct tree would pass or fail by chance. What exploration finds goes into
# the corpus (FUZZ_MERGE=1, or copy the crash input there once fixed), and
# from then on every CI run replays it.
#
# No sanitizer: the bridge forbids `unsafe`, so AddressSanitizer would only
# re-check dependencies' unsafe code at half the speed and twice the build time.
# Debug assertions (overflow checks included) are on, as cargo-fuzz defaults.
set -euo pipefail
cd "$(dirname "$0")"

secs=${1:-${FUZZ_SECONDS:-30}}
[ $# -gt 0 ] && shift
if [ "$secs" = replay ]; then
  budget=(-runs=0)
else
  budget=(-max_total_time="$secs")
fi
# Stable Rust is enough without a sanitizer (no -Z flags). Do not set
# RUSTC_BOOTSTRAP here: cargo fingerprints it, so it forces a full rebuild.
flags=(--sanitizer none --debug-assertions)

if ! command -v cargo-fuzz >/dev/null; then
  echo "== installing cargo-fuzz"
  cargo install cargo-fuzz --locked
fi

targets=("$@")
[ ${#targets[@]} -eq 0 ] && mapfile -t targets < <(cargo fuzz list)

echo "== build (${targets[*]})"
start=$(date +%s)
cargo fuzz build "${flags[@]}"
echo "build took $(($(date +%s) - start)) s"

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
failed=()
rows=()
for t in "${targets[@]}"; do
  echo "== $t: ${budget[*]}"
  mkdir -p "corpus/$t" "$scratch/$t"
  dict=()
  [ -f "dict/$t.dict" ] && dict=("-dict=dict/$t.dict")
  log="$scratch/$t.log"
  # New inputs go to the scratch directory (the first one named), so a CI run
  # never writes into the checkout.
  status=0
  cargo fuzz run "${flags[@]}" "$t" "$scratch/$t" "corpus/$t" -- \
    "${budget[@]}" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    "${dict[@]}" >"$log" 2>&1 || status=$?
  stat() { sed -n "s/^stat::$1: *//p" "$log" | tail -1; }
  execs=$(stat number_of_executed_units)
  rate=$(stat average_exec_per_sec)
  crashes=0
  if [ "$status" -ne 0 ]; then
    crashes=1
    failed+=("$t")
    # The whole panic message (it follows the `panicked at` line), then the
    # end of the log; the full log is kept beside the crash input.
    grep -E -A 25 "panicked at" "$log" | head -60 || true
    grep -E "ERROR: libFuzzer|SUMMARY|Test unit written" "$log" | head -20 || true
    tail -40 "$log"
    mkdir -p "artifacts/$t"
    cp "$log" "artifacts/$t.log"
    echo "full log: fuzz/artifacts/$t.log"
  fi
  rows+=("$(printf '%-10s %12s %8s %8s %10s' "$t" "${execs:-?}" "${rate:-?}" "$crashes" "$(ls "$scratch/$t" | wc -l)")")
  if [ "${FUZZ_MERGE:-0}" = 1 ] && [ "$status" -eq 0 ] && [ "$secs" != replay ]; then
    cargo fuzz run "${flags[@]}" "$t" "corpus/$t" "$scratch/$t" -- -merge=1 >>"$log" 2>&1
    echo "corpus/$t now holds $(ls "corpus/$t" | wc -l) inputs"
  fi
done

echo
printf '%-10s %12s %8s %8s %10s\n' target executions exec/s crashes new-inputs
printf '%s\n' "${rows[@]}"
if [ ${#failed[@]} -gt 0 ]; then
  echo "CRASHED: ${failed[*]} (inputs in fuzz/artifacts/; reproduce with: cargo fuzz run ${flags[*]} TARGET fuzz/artifacts/TARGET/crash-…)"
  exit 1
fi
