#!/usr/bin/env bash
# test_plot_bench_model.sh - scripts/plot-bench-model turns a toto-bench table
# into a well-formed SVG with one bar group per workload (TAP).
set -uo pipefail
here="$(cd "$(dirname "$0")/../.." && pwd)"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

echo "1..4"
cat >"$tmp/in.md" <<'TABLE'
| workload | B x V | context | horizon | samples | eager ms | compiled ms | compiled vs eager | upstream eager ms | upstream compiled ms | vs upstream compiled |
| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |
| seed | 1x1 | 512 | 8 | 1024 | 4.5 | 0.8 | 5.6x | 87.0 | 79.0 | 94x |
| long | 1x1 | 2048 | 336 | 256 | 34.7 | 5.9 | 5.8x | 195.0 | 160.0 | 27x |
TABLE
"$here/scripts/plot-bench-model" "$tmp/in.md" "$tmp/out.svg"
rc=$?
[ "$rc" -eq 0 ] && echo "ok 1 - exits 0" || echo "not ok 1 - exits $rc"
python3 -c "import sys, xml.dom.minidom as m; m.parse(sys.argv[1])" "$tmp/out.svg" 2>/dev/null &&
    echo "ok 2 - the SVG is well-formed XML" || echo "not ok 2 - the SVG does not parse"
n="$(grep -oE '<rect x="120" y="[0-9]+" width="[0-9]+\.[0-9]"' "$tmp/out.svg" | wc -l)"
[ "$n" -eq 6 ] && echo "ok 3 - three bars for each of the two workloads" ||
    echo "not ok 3 - $n bars, expected 6"
echo "| nothing |" >"$tmp/empty.md"
if "$here/scripts/plot-bench-model" "$tmp/empty.md" "$tmp/none.svg" 2>/dev/null; then
    echo "not ok 4 - a file without a table is refused"
else
    echo "ok 4 - a file without a table is refused"
fi
