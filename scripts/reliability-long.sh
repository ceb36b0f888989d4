#!/usr/bin/env bash
# The long run of the reliability suite (docs/reliability.md): the random-moment campaigns with
# RELIABILITY_TRIALS trials each (default 1000: kill -9, and signals spread over SIGINT, SIGTERM
# and SIGHUP), then every other reliability file once. Needs root, strace, util-linux, e2fsprogs.
# Usage: scripts/reliability-long.sh [results-dir]      (about an hour on 2 cores)
set -euo pipefail
cd "$(dirname "$0")/.."
export RELIABILITY_TRIALS="${RELIABILITY_TRIALS:-1000}"
out="${1:-reliability-results}"
mkdir -p "$out"
npx tsc -p tsconfig.build.json
status=0
# The same files as the CI-sized command in docs/reliability.md, the campaigns first.
for f in test/system/crash.test.ts test/system/signals.test.ts test/system/concurrency.test.ts \
         test/system/faults.test.ts test/system/durability.test.ts test/system/bad-input.test.ts \
         test/system/lost-output.test.ts test/system/full-disk.test.ts test/system/hostile-state.test.ts \
         test/system/special-files.test.ts test/system/source-swap.test.ts \
         test/system/releases-other-filesystem.test.ts test/system/remote-staging.test.ts \
         test/system/fleet-releases-other-filesystem.test.ts \
         test/unit/release-id.test.ts test/unit/release-order.test.ts test/unit/lock.test.ts \
         test/unit/journal.test.ts test/unit/paths.test.ts; do
  name="$(basename "$f" .test.ts)"
  start=$(date +%s)
  if node --import tsx --test "$f" >"$out/$name.tap" 2>&1; then result=pass; else result=FAIL; status=1; fi
  # The campaigns print their tallies as TAP diagnostics.
  printf '%-34s %-4s %5ss  %s\n' "$name" "$result" "$(( $(date +%s) - start ))" \
    "$(grep -E '^# [0-9]+ (kills|signals|rollback kills):' "$out/$name.tap" | sed 's/^# //' | tr '\n' ' ')" | tee -a "$out/summary.txt"
done
exit "$status"
