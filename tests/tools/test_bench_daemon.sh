#!/usr/bin/env bash
# test_bench_daemon.sh - scripts/bench-daemon --quick still runs end to end (TAP).
# A smoke test only: it checks that a table with a positive throughput comes out,
# never how fast anything is (benchmarks are not timed tests).
set -uo pipefail
here="$(cd "$(dirname "$0")/../.." && pwd)"
build="${TOTO_BUILD_DIR:-$here/build}"

echo "1..6"
out="$("$here/scripts/bench-daemon" --build-dir "$build" --quick --clients 1,8 \
    --model "$here/tests/data/fixtures/tiny-a" 2>&1)"
rc=$?
[ "$rc" -eq 0 ] && echo "ok 1 - bench-daemon --quick exits 0" ||
    echo "not ok 1 - bench-daemon --quick exits $rc"

rows="$(grep -E '^\| (1|8) \|' <<<"$out")"
[ "$(wc -l <<<"$rows")" -eq 2 ] && echo "ok 2 - one table row per client count" ||
    echo "not ok 2 - expected rows for 1 and 8 clients"

# Column 3 of a row ("| clients | forecasts/s | ...") is the throughput.
if awk -F'|' 'NF < 4 || !($3 + 0 > 0) { bad = 1 } END { exit bad || NR != 2 }' <<<"$rows"; then
    echo "ok 3 - throughput is a number > 0 in every row"
else
    echo "not ok 3 - throughput missing or zero"
fi
# The socket floor is measured in the same run and subtracted in its own column.
if grep -Eq '^# socket floor .*: p50 [0-9.]+ µs' <<<"$out" &&
    awk -F'|' '!($8 ~ /^ *-?[0-9]+ *$/) { bad = 1 } END { exit bad }' <<<"$rows"; then
    echo "ok 4 - socket floor measured and an above-floor column in every row"
else
    echo "not ok 4 - socket floor line or above-floor column missing"
fi
# The held floor: the echo busy as long as the model, measured after the table.
if grep -Eq '^# held floor \(the echo busy [0-9]+ µs per answer, as the model\): p50 [0-9.]+ µs' <<<"$out"; then
    echo "ok 5 - held floor measured with the model's time"
else
    echo "not ok 5 - held floor line missing"
fi
# The last column: the one worker's busy share of the level, a percentage.
if awk -F'|' '!($15 ~ /^ *[0-9]+ *$/ && $15 + 0 > 0 && $15 + 0 <= 100) { bad = 1 } END { exit bad }' <<<"$rows"; then
    echo "ok 6 - the worker's busy % in every row (0-100, > 0)"
else
    echo "not ok 6 - busy % column missing or out of range"
fi
[ "$rc" -eq 0 ] || sed 's/^/# /' <<<"$out"
