#!/usr/bin/env bash
# test_bench_workers.sh - scripts/bench-workers still runs end to end (TAP), on
# the CPU: one worker (cpu) against two (cpu,cpu), and against two totods
# (--split). A smoke test only: it checks the tables and the ratio line come
# out, never how fast anything is.
set -uo pipefail
here="$(cd "$(dirname "$0")/../.." && pwd)"
build="${TOTO_BUILD_DIR:-$here/build}"

echo "1..6"
out="$("$here/scripts/bench-workers" --build-dir "$build" --one cpu --many cpu,cpu \
    --model "$here/tests/data/fixtures/tiny-a" --clients 8 --rounds 2 --duration-s 1 \
    --warmup-s 0 2>&1)"
rc=$?
[ "$rc" -eq 0 ] && echo "ok 1 - bench-workers exits 0" || echo "not ok 1 - bench-workers exits $rc"

# The summary row: clients, 2 rounds each, 2 medians, a ratio "N.NNx".
if grep -Eq '^\| 8 \| [0-9]+ \| [0-9]+ \| [0-9]+ \| [0-9]+ \| [0-9]+ \| [0-9]+ \| [0-9.]+x \| [0-9]+; [0-9]+/[0-9]+ \|$' <<<"$out"; then
    echo "ok 2 - the summary row: 2 rounds each, medians, their ratio, each worker's busy %"
else
    echo "not ok 2 - the summary row is missing or malformed"
fi
[ "$(grep -c '^## ' <<<"$out")" -eq 5 ] && echo "ok 3 - 4 runs (alternated) and the summary" ||
    echo "not ok 3 - expected 4 runs and a summary heading"
grep -q '^# cpu,cpu: 2 worker(s) reported by health' <<<"$out" &&
    echo "ok 4 - health reported both workers of cpu,cpu" ||
    echo "not ok 4 - health did not report 2 workers"
[ "$rc" -eq 0 ] || sed 's/^/# /' <<<"$out"

# --split: cpu,cpu as two totods, the clients spread over their sockets.
out="$("$here/scripts/bench-workers" --build-dir "$build" --one cpu --many cpu,cpu --split \
    --model "$here/tests/data/fixtures/tiny-a" --clients 8 --rounds 1 --duration-s 1 \
    --warmup-s 0 2>&1)"
rc=$?
if [ "$rc" -eq 0 ] && grep -q '^## many (cpu,cpu, one totod per device), round 1' <<<"$out" &&
    grep -Eq '^\| 8 \| [0-9]+ \| [0-9]+ \| [0-9]+ \| [0-9]+ \| [0-9.]+x \| [0-9]+; [0-9]+/[0-9]+ \|$' <<<"$out"; then
    echo "ok 5 - --split: one totod per device, a summary row with both totods' workers"
else
    echo "not ok 5 - --split run failed (exit $rc) or its summary is malformed"
fi
[ "$(grep -c '^# worker 0: cpu' <<<"$out")" -eq 3 ] &&
    echo "ok 6 - --split: each totod reported its worker (1 + 2 lines)" ||
    echo "not ok 6 - expected a worker line from cpu and from each of the two totods"
[ "$rc" -eq 0 ] || sed 's/^/# /' <<<"$out"
