#!/usr/bin/env bash
# test_toto_infer.sh - toto-infer end to end on the fixture checkpoints (TAP).
# Usage: test_toto_infer.sh PATH/TO/toto-infer   (TOTO_TEST_DATA: tests/data)
# JSON is checked with python3: the shapes of every array, the JSON-RPC
# envelope, and that refusals name the offending field on stderr.
set -u

INFER=${1:?usage: $0 PATH/TO/toto-infer}
DATA=${TOTO_TEST_DATA:-$(cd "$(dirname "$0")/../data" && pwd)}
TINY_A=$DATA/fixtures/tiny-a # P=16, 3 variates in its case file
TINY_B=$DATA/fixtures/tiny-b # P=64
unset TOTO_MODEL

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
OUT=$WORK/out
ERR=$WORK/err
RC=0
N=0
FAILED=0

ok() { # ok NAME CONDITION-COMMAND...
    local name=$1
    shift
    N=$((N + 1))
    if "$@"; then
        echo "ok $N - $name"
    else
        FAILED=$((FAILED + 1))
        echo "not ok $N - $name"
        echo "# exit $RC; stdout: $(head -c 300 "$OUT")"
        echo "# stderr: $(head -c 300 "$ERR")"
    fi
}

# infer INPUT ARGS...: runs toto-infer with INPUT on stdin; sets RC, OUT, ERR.
infer() {
    local input=$1
    shift
    printf '%s' "$input" | "$INFER" "$@" >"$OUT" 2>"$ERR"
    RC=$?
}

# request V T H [EXTRA]: forecast params for V smooth variates of T steps,
# horizon H; EXTRA is more JSON members, e.g. '"num_samples": 8'.
request() {
    python3 - "$1" "$2" "$3" "${4:-}" <<'EOF'
import json, math, sys
v, t, h, extra = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
series = [[10 * (i + 1) + math.sin(s / 5.0 + i) + 0.01 * s for s in range(t)] for i in range(v)]
params = dict(series=series, prediction_length=h)
params.update(json.loads("{" + extra + "}"))
print(json.dumps(params))
EOF
}

# stdout_is PYTHON-EXPR: the expression holds for d = the JSON on stdout.
# shape(x) gives the dims of a rectangular array of finite numbers, else None.
stdout_is() {
    python3 - "$OUT" "$1" <<'EOF' 2>>"$ERR"
import json, math, sys
def shape(x):
    if isinstance(x, list):
        inner = [shape(e) for e in x]
        if not x or any(s is None or s != inner[0] for s in inner):
            return None
        return [len(x)] + inner[0]
    ok = isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)
    return [] if ok else None
with open(sys.argv[1]) as f:
    d = json.load(f)
sys.exit(0 if eval(sys.argv[2]) else 1)
EOF
}

exit_is() { [ "$RC" -eq "$1" ]; }
stderr_has() { grep -qF -- "$1" "$ERR"; }
stdout_matches() { grep -Eq -- "$1" "$OUT"; }
failed_with() { [ "$RC" -ne 0 ] && grep -qF -- "$1" "$ERR"; }

# --- the command line ---------------------------------------------------

infer '' --version
ok "--version prints the version" eval 'exit_is 0 && stdout_matches "^toto-infer [0-9]+\.[0-9]+\.[0-9]+$"'

infer '' --help
ok "--help prints usage" eval 'exit_is 0 && stdout_matches "--model DIR"'

infer "$(request 1 32 4)"
ok "no --model and no TOTO_MODEL: usage error" eval 'exit_is 2 && stderr_has "--model"'

infer "$(request 1 32 4)" --model "$WORK/no-such-model"
ok "a missing model directory is an error naming it" failed_with "$WORK/no-such-model"

infer "$(request 1 32 4)" --model "$TINY_A" --frobnicate
ok "an unknown option is a usage error" eval 'exit_is 2 && stderr_has "--frobnicate"'

# --- forecasts ------------------------------------------------------------

infer "$(request 3 150 40)" --model "$TINY_A"
ok "mean forecast on tiny-a succeeds" exit_is 0
ok "mean is [V][h] = [3][40]" stdout_is 'shape(d["mean"]) == [3, 40]'
ok "mean past the first patch has no median" stdout_is 'd["median"] is None'
ok "no quantiles or samples unless asked" stdout_is '"quantiles" not in d and "samples" not in d'
ok "result names the model" stdout_is 'd["model"]["path"] and d["model"]["num_params"] > 0'

infer "$(request 3 150 40)" --model "$TINY_A" --dtype float64
ok "float64 mean forecast is [3][40]" stdout_is 'shape(d["mean"]) == [3, 40] and d["model"]["dtype"] == "float64"'

infer '{"series": [1.5, 2, null, 4, 3.5, 5, 4.5, 6], "prediction_length": 5}' --model "$TINY_A"
ok "a flat series with a missing value is one variate: mean [1][5]" stdout_is 'shape(d["mean"]) == [1, 5]'

TOTO_MODEL=$TINY_A infer "$(request 1 20 3)"
ok "TOTO_MODEL stands in for --model" stdout_is 'shape(d["mean"]) == [1, 3]'

infer "$(request 4 300 130 '"groups": [0, 0, 1, 1]')" --model "$TINY_B"
ok "tiny-b with groups: mean is [4][130]" stdout_is 'shape(d["mean"]) == [4, 130]'

RPC="{\"jsonrpc\": \"2.0\", \"id\": 42, \"method\": \"forecast\", \"params\": $(request 2 64 8)}"
infer "$RPC" --model "$TINY_A"
ok "JSON-RPC request answered with the same id" stdout_is 'd["jsonrpc"] == "2.0" and d["id"] == 42 and "error" not in d'
ok "JSON-RPC result holds mean [2][8]" stdout_is 'shape(d["result"]["mean"]) == [2, 8]'

RPC="{\"jsonrpc\": \"2.0\", \"id\": \"req-7\", \"method\": \"forecast\", \"params\": $(request 1 64 8)}"
infer "$RPC" --model "$TINY_A"
ok "a string id comes back unchanged" stdout_is 'd["id"] == "req-7" and shape(d["result"]["mean"]) == [1, 8]'

# Within the first patch (h <= P = 16) median and quantiles are exact, no samples needed.
infer "$(request 2 100 16 '"quantiles": [0.1, 0.5, 0.9]')" --model "$TINY_A"
ok "exact quantiles in the first patch: levels as asked" stdout_is 'd["quantiles"]["levels"] == [0.1, 0.5, 0.9]'
ok "exact quantiles: values [L][V][h] = [3][2][16]" stdout_is 'shape(d["quantiles"]["values"]) == [3, 2, 16]'
ok "exact median is [2][16]" stdout_is 'shape(d["median"]) == [2, 16]'
ok "exact quantiles increase with the level" stdout_is 'all(a <= b <= c for a, b, c in zip(*[sum(q, []) for q in d["quantiles"]["values"]]))'

SAMPLED=$(request 2 100 40 '"num_samples": 16, "quantiles": [0.25, 0.75], "seed": 7, "return_samples": true')
infer "$SAMPLED" --model "$TINY_A"
ok "sampled forecast: quantiles [2][2][40]" stdout_is 'shape(d["quantiles"]["values"]) == [2, 2, 40]'
ok "sampled forecast: median [2][40]" stdout_is 'shape(d["median"]) == [2, 40]'
ok "return_samples: samples [N][V][h] = [16][2][40]" stdout_is 'shape(d["samples"]) == [16, 2, 40]'
cp "$OUT" "$WORK/first"
infer "$SAMPLED" --model "$TINY_A"
ok "same seed, same input: the same output" cmp -s "$OUT" "$WORK/first"

# --- refusals: non-zero exit, the field named on stderr -------------------

infer "$(request 1 32 0)" --model "$TINY_A"
ok "prediction_length 0 refused" eval 'exit_is 2 && stderr_has "prediction_length"'

infer "$(request 1 32 4 '"quantiles": [0.5, 1.5]')" --model "$TINY_A"
ok "quantile 1.5 refused" eval 'exit_is 2 && stderr_has "quantiles[1]"'

infer '{"series": [[1, 2, 3], [4, 5]], "prediction_length": 2}' --model "$TINY_A"
ok "variates of different lengths refused" eval 'exit_is 2 && stderr_has "series[1]" && stderr_has "same length"'

infer '{"series": [[1, 2, 3], [4, 5, "NaN"]], "prediction_length": 2}' --model "$TINY_A"
ok "a string value refused, naming series[1][2]" eval 'exit_is 2 && stderr_has "series[1][2]"'

infer "$(request 1 32 4 '"horizon": 4')" --model "$TINY_A"
ok "an unknown field refused by name" eval 'exit_is 2 && stderr_has "horizon"'

infer "$(request 1 32 4 '"timeout_ms": 1000, "series_id": "cpu.load"')" --model "$TINY_A"
ok "the daemon's fields timeout_ms and series_id are accepted" stdout_is 'shape(d["mean"]) == [1, 4]'

infer "$(request 1 32 100000000)" --model "$TINY_A"
ok "prediction_length above the model's limit refused" eval 'exit_is 2 && stderr_has "prediction_length"'

infer "$(request 1 32 40 '"quantiles": [0.5]')" --model "$TINY_A"
ok "quantiles past the first patch without samples refused" exit_is 2

infer '{"series": [1, 2, 3], "prediction_length": 2' --model "$TINY_A"
ok "malformed JSON refused" eval 'exit_is 2 && stderr_has "stdin"'

infer '{"jsonrpc": "2.0", "id": 5, "method": "forecast", "params": {"series": [1, 2], "prediction_length": -1}}' --model "$TINY_A"
ok "JSON-RPC invalid params: error -32602 with data.field" eval 'exit_is 2 && stdout_is "d[\"id\"] == 5 and d[\"error\"][\"code\"] == -32602 and d[\"error\"][\"data\"][\"field\"] == \"prediction_length\""'

infer '{"jsonrpc": "2.0", "id": 6, "method": "predict", "params": {}}' --model "$TINY_A"
ok "JSON-RPC unknown method: error -32601" eval 'exit_is 2 && stdout_is "d[\"id\"] == 6 and d[\"error\"][\"code\"] == -32601"'

echo "1..$N"
[ "$FAILED" -eq 0 ]
