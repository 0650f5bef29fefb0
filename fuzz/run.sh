#!/usr/bin/env bash
# Run every fuzz target (or those named) for SECONDS each with AFL++ over its
# corpus (fuzz/corpus/TARGET), then say per target how many inputs it ran and
# what it found; exit 1 if anything crashed or hung. `make fuzz` and `make
# test` call this after `cargo afl build` (target/afl: an instrumented build
# cannot share the normal target directory).
#
#   fuzz/run.sh SECONDS [TARGET...]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:?seconds per target}
shift
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  mapfile -t targets < <(ls fuzz/corpus)
fi
out=target/afl/out
found=0
for t in "${targets[@]}"; do
  rm -rf "$out/$t"
  mkdir -p "$out"
  # No UI, no CPU-governor or core-pattern checks (a CI container may not
  # allow changing either); what the run did is read from fuzzer_stats.
  AFL_NO_UI=1 AFL_SKIP_CPUFREQ=1 AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1 AFL_QUIET=1 \
    cargo afl fuzz -i "fuzz/corpus/$t" -o "$out/$t" -V "$seconds" "target/afl/release/$t" >"$out/$t.log" 2>&1 || {
      echo "fuzz $t: afl-fuzz failed (log: $out/$t.log)"; tail -5 "$out/$t.log"; exit 1; }
  stats="$out/$t/default/fuzzer_stats"
  execs=$(awk -F: '/^execs_done/ {gsub(/ /,"",$2); print $2}' "$stats")
  paths=$(awk -F: '/^corpus_count/ {gsub(/ /,"",$2); print $2}' "$stats")
  crashes=$(find "$out/$t/default/crashes" -name 'id:*' 2>/dev/null | wc -l)
  hangs=$(find "$out/$t/default/hangs" -name 'id:*' 2>/dev/null | wc -l)
  echo "fuzz $t: $execs inputs in ${seconds} s, $paths in its corpus now, $crashes crashes, $hangs hangs"
  if [ "$crashes" -gt 0 ] || [ "$hangs" -gt 0 ]; then
    found=1
    for f in "$out/$t"/default/crashes/id:* "$out/$t"/default/hangs/id:*; do
      [ -e "$f" ] && echo "  $f"
    done
  fi
done
if [ "$found" -ne 0 ]; then
  echo "the fuzzers found inputs that crash or hang (above): add each to fuzz/corpus/TARGET once fixed"
  exit 1
fi
