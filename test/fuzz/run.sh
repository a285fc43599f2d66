#!/usr/bin/env bash
# The fuzz suite of scripts/test (docs/fuzzing.md): builds build-fuzz/, then for each fuzzer
# (a) every seed (test/fuzz/corpus/<h>) and regression (test/fuzz/regressions/<h>) input once,
# (b) fuzzing from the seeds for FUZZ_SECONDS (default 15; a minute for the four), in a
# temporary corpus. A crash, leak, UB report or harness check fails its step. Ends with
# "fuzz: N passed, M failed" (two steps a fuzzer).
set -uo pipefail
shopt -s nullglob
cd "$(dirname "$0")/../.."
seconds=${FUZZ_SECONDS:-15}
passed=0
failed=0
tmp=$(mktemp -d /tmp/medix-fuzz.XXXXXX)
trap 'rm -rf "$tmp"' EXIT

if ! scripts/build --fuzz; then
  echo "fuzz: the build of build-fuzz/ failed"
  echo "fuzz: 0 passed, 1 failed"
  exit 1
fi

result() {
  if [ "$1" -eq 0 ]; then
    passed=$((passed + 1))
    echo "ok   $2"
  else
    failed=$((failed + 1))
    echo "FAIL $2 (exit $1); its output:"
    grep -v '^"\|^#[0-9].*\(NEW\|REDUCE\|pulse\)' "$3" | tail -40 | sed 's/^/     /'
  fi
}

for h in pipeline config apply intent; do
  fuzzer=build-fuzz/test/fuzz/fuzz-$h
  dict=test/fuzz/json.dict
  extra=()
  [ "$h" = pipeline ] && dict=test/fuzz/pipeline.dict && extra=(-max_len=16384)

  inputs=(test/fuzz/corpus/"$h"/* test/fuzz/regressions/"$h"/*)
  log=$tmp/$h-replay.log
  "$fuzzer" "${inputs[@]}" >"$log" 2>&1
  result $? "$h: ${#inputs[@]} seed and regression inputs" "$log"

  mkdir -p "$tmp/corpus-$h" "$tmp/findings-$h"
  log=$tmp/$h-fuzz.log
  "$fuzzer" -max_total_time="$seconds" -print_final_stats=1 -timeout=20 -rss_limit_mb=4096 -dict="$dict" "${extra[@]}" \
    -artifact_prefix="$tmp/findings-$h/" "$tmp/corpus-$h" test/fuzz/corpus/"$h" >"$log" 2>&1
  rc=$?
  execs=$(awk '/^stat::number_of_executed_units:/ { print $2 }' "$log")
  cov=$(grep -E '(DONE|INITED) +cov: ' "$log" | tail -1 | sed -E 's/.* cov: ([0-9]+) ft: ([0-9]+).*/cov \1, ft \2/')
  result $rc "$h: fuzzed ${seconds} s: ${execs:-0} executions, ${cov:-no coverage line}" "$log"
  if [ $rc -ne 0 ]; then
    for f in "$tmp/findings-$h"/*; do
      [ -f "$f" ] || continue
      mkdir -p build-fuzz/findings/"$h"
      cp "$f" build-fuzz/findings/"$h"/
      echo "     finding kept in build-fuzz/findings/$h/$(basename "$f")"
    done
  fi
done
# Pipeline fuzzers that died leave EAL's runtime directory.
for d in /var/run/dpdk/medix-fuzz-*; do
  [ -d "$d" ] && ! kill -0 "${d##*-}" 2>/dev/null && rm -rf "$d"
done
echo "fuzz: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
