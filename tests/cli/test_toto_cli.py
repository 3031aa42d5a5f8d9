#!/usr/bin/env python3
"""test_toto_cli - the `toto` CLI (build/client/toto) against the real totod.

Every command: health, info, metrics (pretty and --json), bench (by count,
by duration, a request file, --json, two daemons at once), forecast (CSV files from
tests/data/series: newest-first rows, gaps, odd timestamps; bad rows; stdin;
table, CSV and JSON output; --plot to a PNG checked chunk by chunk), and the
documented exit statuses with their messages (docs/toto-cli.md).
"""

import csv
import io
import json
import os
import struct
import subprocess
import sys
import tempfile
import zlib

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
from totod_harness import BUILD, DATA, Daemon, Tap, forecast  # noqa: E402

TOTO = os.path.join(BUILD, "client", "toto")
SERIES = os.path.join(DATA, "series")


def run(*args, stdin=None, env=None):
    """Runs toto; (exit status, stdout, stderr)."""
    full_env = dict(os.environ)
    full_env.pop("TOTO_ADDRESS", None)
    full_env.update(env or {})
    p = subprocess.run([TOTO] + list(args), input=stdin, capture_output=True, text=True,
                       timeout=120, env=full_env)
    return p.returncode, p.stdout, p.stderr


def check_status_commands(tap, d):
    addr = "unix:" + d.sock
    rc, out, err = run("health", "--address", addr)
    tap.ok(rc == 0 and "status: ok" in out and "queue_depth: " in out,
           "health: pretty, status ok, exit 0", out + err)
    rc, out, err = run("health", "--socket", d.sock, "--json")
    ok = rc == 0
    try:
        ok = ok and json.loads(out)["status"] == "ok"
    except ValueError:
        ok = False
    tap.ok(ok, "health --socket --json: the daemon's JSON", out + err)
    rc, out, err = run("info", "--address", "tcp:127.0.0.1:%d" % d.port)
    tap.ok(rc == 0 and "model.limits.max_prediction_length: " in out and "model.config.patch_size: 16" in out,
           "info over TCP: nested keys joined with dots", out[:2000] + err)
    rc, out, err = run("metrics", "--socket", d.sock, "--json")
    try:
        m = json.loads(out)
        ok = rc == 0 and m["requests"]["health"] >= 2 and m["requests"]["info"] >= 1
    except (ValueError, KeyError, TypeError):
        ok = False
    tap.ok(ok, "metrics --json counts the health and info calls just made", out[:2000] + err)
    rc, out, err = run("health", env={"TOTO_ADDRESS": addr})
    tap.ok(rc == 0 and "status: ok" in out, "the address from $TOTO_ADDRESS", out + err)
    missing = os.path.join(d.dir, "nothing.sock")
    rc, out, err = run("health", "--socket", missing)
    tap.ok(rc == 1 and missing in err, "a missing socket: exit 1, the path named", err)
    rc, out, err = run("health", "--address", "ftp:somewhere")
    tap.ok(rc == 2 and "ftp:somewhere" in err, "a bad address: exit 2, named", err)
    rc, out, err = run("info", "--bogus", "1")
    tap.ok(rc == 2 and "--bogus" in err, "an unknown option: exit 2, named", err)
    for cmd in ("health", "info", "metrics", "bench", "forecast"):
        rc, out, err = run(cmd, "--help")
        tap.ok(rc == 0 and out.startswith("usage: toto " + cmd) and "Exit status" in out,
               "toto %s --help: usage and exit statuses" % cmd, out + err)
    rc, out, err = run("frobnicate")
    tap.ok(rc == 2 and "frobnicate" in err, "an unknown command: exit 2, named", err)


def check_bench(tap, d, tmp):
    rc, out, err = run("bench", "--socket", d.sock, "--workload", "small", "--clients", "3",
                       "--count", "40", "--format", "kv")
    kv = dict(l.split("=", 1) for l in out.splitlines() if "=" in l)
    tap.ok(rc == 0 and int(kv.get("requests", 0)) >= 40 and kv.get("errors") == "0" and
           kv.get("clients") == "3", "bench --count 40 with 3 clients: at least 40 answers, no error",
           out + err)
    reqs = os.path.join(tmp, "requests.jsonl")
    with open(reqs, "w") as f:
        f.write("# two requests, sent in turn\n")
        f.write(json.dumps({"series": [1.0, 2.0, 3.0, 2.5] * 8, "prediction_length": 4}) + "\n\n")
        f.write(json.dumps(forecast(9, {"series": [[1.0, 2.0] * 20, [3.0, 1.0] * 20],
                                        "prediction_length": 16})) + "\n")
    js = os.path.join(tmp, "bench.json")
    rc, out, err = run("bench", "--socket", d.sock, "--requests", reqs, "--clients", "2",
                       "--duration-s", "0.5", "--json", js)
    try:
        with open(js) as f:
            j = json.load(f)
        ok = rc == 0 and j["requests"] > 0 and j["errors"] == 0 and j["latency_ms"]["p50"] > 0
    except (OSError, ValueError, KeyError):
        ok = False
    tap.ok(ok and "| clients |" in out, "bench --requests FILE --json: a table and the JSON file",
           out + err)
    with open(reqs, "a") as f:
        f.write("{\"series\": [1, 2\n")
    rc, out, err = run("bench", "--socket", d.sock, "--requests", reqs, "--count", "1")
    tap.ok(rc == 2 and "requests.jsonl:5" in err, "a bad request file: exit 2, its line named", err)
    bad = os.path.join(tmp, "bad.jsonl")
    with open(bad, "w") as f:
        f.write(json.dumps({"series": [1.0, 2.0], "prediction_length": 0}) + "\n")
    rc, out, err = run("bench", "--socket", d.sock, "--requests", bad, "--count", "1")
    tap.ok(rc == 1 and "prediction_length" in err, "refused requests: exit 1, the daemon's message",
           err)
    rc, out, err = run("bench", "--workload", "nope")
    tap.ok(rc == 2 and "seed, mean64, long, ett, small" in err, "an unknown workload lists the presets",
           err)


def forecasts_served(d):
    rc, out, err = run("metrics", "--socket", d.sock, "--json")
    return json.loads(out)["requests"]["forecast"] if rc == 0 else -1


def check_bench_addresses(tap, d):
    """--address given twice: the clients are spread over both daemons."""
    with Daemon() as d2:
        before = (forecasts_served(d), forecasts_served(d2))
        rc, out, err = run("bench", "--socket", d.sock, "--address", "unix:" + d2.sock,
                           "--workload", "small", "--clients", "4", "--count", "40", "--format", "kv")
        after = (forecasts_served(d), forecasts_served(d2))
        grew = [a - b for a, b in zip(after, before)]
        tap.ok(rc == 0 and "errors=0" in out and all(g >= 10 for g in grew),
               "bench with two addresses: 4 clients spread over two daemons (%s forecasts each)"
               % grew, out + err)
    rc, out, err = run("bench", *(["--socket", d.sock] * 17), "--count", "1")
    tap.ok(rc == 2 and "--socket" in err and "at most 16 addresses" in err,
           "more than 16 addresses: exit 2, the limit named", err)


def png_pixels(path):
    """(width, height, rows of RGB bytes) of a PNG written by toto, every chunk's CRC checked."""
    with open(path, "rb") as f:
        data = f.read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG signature"
    pos, idat, width, height = 8, b"", 0, 0
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        kind, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length:pos + 12 + length])
        assert zlib.crc32(kind + body) == crc, "bad CRC in chunk %r" % kind
        if kind == b"IHDR":
            width, height, depth, ctype = struct.unpack(">IIBB", body[:10])
            assert depth == 8 and ctype == 2, "expected 8-bit RGB"
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    raw = zlib.decompress(idat)
    assert len(raw) == height * (1 + 3 * width), "IDAT holds %d bytes" % len(raw)
    rows = [raw[y * (1 + 3 * width) + 1:(y + 1) * (1 + 3 * width)] for y in range(height)]
    return width, height, rows


def colours(rows):
    found = set()
    for r in rows[::3]:
        for x in range(0, len(r), 9):
            found.add((r[x] << 16) | (r[x + 1] << 8) | r[x + 2])
    return found


def table_rows(out):
    return [l.split() for l in out.splitlines()[1:] if l.strip()]


def check_forecast(tap, d, tmp):
    sock = d.sock
    aapl = os.path.join(SERIES, "WIKI-AAPL.csv")
    rc, out, err = run("forecast", "--socket", sock, "--csv", aapl, "--time-column", "Date",
                       "--value-column", "Close", "--horizon", "3", "--output", "csv")
    rows = list(csv.reader(io.StringIO(out)))
    ok = rc == 0 and rows and rows[0][:4] == ["time", "variate", "mean", "median"]
    # Newest-first rows: the forecast continues after the newest date, 2018-03-27 (a Tuesday).
    ok = ok and [r[0] for r in rows[1:]] == ["2018-03-28", "2018-03-29", "2018-03-30"]
    tap.ok(ok, "AAPL (newest first, daily): the forecast starts the day after the newest row",
           out + err)

    # The same series as the daemon sees it: compare with a direct forecast of the last
    # 64 closes of the file, oldest first, weekend gaps filled with null.
    with open(aapl) as f:
        recs = sorted((r["Date"], float(r["Close"])) for r in csv.DictReader(f))
    import datetime
    last = datetime.date.fromisoformat(recs[-1][0])
    by_day = dict(recs)
    days = [last - datetime.timedelta(days=i) for i in range(63, -1, -1)]
    series = [by_day.get(day.isoformat()) for day in days]
    c = d.client()
    direct = c.call("forecast", {"series": series, "prediction_length": 3})["result"]["mean"][0]
    c.close()
    rc, out, err = run("forecast", "--socket", sock, "--csv", aapl, "--time-column", "Date",
                       "--value-column", "Close", "--horizon", "3", "--context", "64",
                       "--output", "json")
    try:
        j = json.loads(out)
        ok = rc == 0 and all(abs(a - b) <= 1e-9 * abs(b) for a, b in zip(j["mean"][0], direct))
        ok = ok and j["times"] == ["2018-03-28", "2018-03-29", "2018-03-30"]
        ok = ok and j["variates"] == ["Close"] and j["median"] is not None
    except (ValueError, KeyError, TypeError):
        ok = False
    tap.ok(ok, "--context 64 --output json: the daemon's answer for the same 64 days "
           "(weekends missing), with the times", out + err)

    btc = os.path.join(SERIES, "Binance_BTCUSDT_1h.csv")
    rc, out, err = run("forecast", "--socket", sock, "--csv", btc, "--time-column", "date",
                       "--value-column", "close", "--horizon", "2")
    tap.ok(rc == 2 and "duplicate time" in err and "Binance_BTCUSDT_1h.csv:" in err,
           "BTCUSDT's duplicate hours are an error naming the lines", err[-500:])
    png = os.path.join(tmp, "btc.png")
    rc, out, err = run("forecast", "--socket", sock, "--csv", btc, "--time-column", "unix",
                       "--value-column", "close", "--value-column", "open", "--duplicates", "last",
                       "--holdout", "24", "--plot", png)
    rows = table_rows(out)
    ok = rc == 0 and len(rows) == 48 and out.splitlines()[0].split()[-1] == "actual"
    ok = ok and err.count("\n") <= 12 and "more" in err
    tap.ok(ok, "BTCUSDT by its mixed s/ms unix column, 2 variates, --holdout 24: 48 rows with "
           "actuals; warnings capped", out[:800] + err[-800:])
    try:
        w, h, pix = png_pixels(png)
        found = colours(pix)
        ok = w == 960 and h >= 480 and 0x2B4C7E in found and 0xD9480F in found
    except (AssertionError, OSError, zlib.error) as e:
        ok, found = False, e
    tap.ok(ok, "--plot: a valid PNG (CRCs, IDAT size) with the context and median colours",
           str(found)[:300])

    ett = os.path.join(SERIES, "ETTh1.csv")
    rc, out, err = run("forecast", "--socket", sock, "--csv", ett, "--time-column", "date",
                       "--value-column", "HUFL", "--value-column", "OT", "--horizon", "20",
                       "--samples", "32", "--quantiles", "0.1,0.9", "--seed", "5")
    rows = table_rows(out)
    ok = rc == 0 and len(rows) == 40 and rows[0][:2] == ["2018-06-26", "20:00:00"]
    ok = ok and out.splitlines()[0].split()[2:] == ["mean", "median", "q0.1", "q0.9"]
    ok = ok and all(float(r[5]) <= float(r[6]) for r in rows)
    tap.ok(ok, "ETTh1 (oldest first, hourly), 2 variates, sampled quantiles past the patch",
           out[:600] + err)
    rc2, out2, err2 = run("forecast", "--socket", sock, "--csv", ett, "--time-column", "date",
                          "--value-column", "HUFL", "--value-column", "OT", "--horizon", "20",
                          "--samples", "32", "--quantiles", "0.1,0.9", "--seed", "5")
    tap.ok(rc2 == 0 and out2 == out, "the same seed gives the same table", out2[:300] + err2)

    # Plain numbers on stdin, and a CSV on stdin.
    rc, out, err = run("forecast", "--socket", sock, "--horizon", "4",
                       stdin="1 2 3\n4, 5 nan\n7 8 9 10 11 12\n")
    rows = table_rows(out)
    tap.ok(rc == 0 and [r[0] for r in rows] == ["+1", "+2", "+3", "+4"],
           "plain numbers on stdin (nan missing): steps +1..+4", out + err)
    text = "when,v\n2024-01-03T00:00:00Z,3\n2024-01-01T00:00:00Z,1\n2024-01-02T00:00:00Z,2\n"
    rc, out, err = run("forecast", "--socket", sock, "--csv", "-", "--time-column", "when",
                       "--value-column", "v", "--horizon", "2", "--output", "csv", stdin=text)
    rows = list(csv.reader(io.StringIO(out)))
    tap.ok(rc == 0 and [r[0] for r in rows[1:]] == ["2024-01-04", "2024-01-05"],
           "a CSV on stdin, rows out of order, ISO times with Z", out + err)


def check_forecast_file_order(tap, d):
    rc, out, err = run("forecast", "--socket", d.sock, "--csv", "-", "--delimiter", ";",
                       "--value-column", "b", "--horizon", "2", stdin="a;b\n1;2\n3;4\n5;6\n")
    rows = table_rows(out)
    c = d.client()
    direct = c.call("forecast", {"series": [2, 4, 6], "prediction_length": 2})["result"]["mean"][0]
    c.close()
    ok = rc == 0 and [r[0] for r in rows] == ["+1", "+2"]
    ok = ok and all(abs(float(r[2]) - m) <= 1e-5 * abs(m) for r, m in zip(rows, direct))
    tap.ok(ok, "no time column, ';' delimiter: the rows in file order, the daemon's forecast",
           out + err)


def check_forecast_long_gap(tap, d, tmp):
    """A gap of decades in hourly rows: only the last --context steps are laid out."""
    path = os.path.join(tmp, "gap.csv")
    with open(path, "w") as f:
        f.write("time,v\n1990-01-01 00:00,1\n2024-01-01 00:00,2\n2024-01-01 01:00,3\n"
                "2024-01-01 02:00,4\n")
    rc, out, err = run("forecast", "--socket", d.sock, "--csv", path, "--time-column", "time",
                       "--value-column", "v", "--horizon", "2", "--context", "100")
    rows = table_rows(out)
    tap.ok(rc == 0 and [r[1] for r in rows] == ["03:00:00", "04:00:00"],
           "a 34-year gap in hourly rows: the last 100 steps laid out, forecast at once",
           out + err)


def check_forecast_errors(tap, d, tmp):
    sock = d.sock
    bad = os.path.join(tmp, "bad.csv")
    with open(bad, "w") as f:
        f.write("time,value\n2024-01-01 00:00,1\n2024-01-01 01:00,abc\n2024-01-01 02:00,3\n"
                "2024-01-01 03:00,4\n")
    rc, out, err = run("forecast", "--socket", sock, "--csv", bad, "--time-column", "time",
                       "--value-column", "value", "--horizon", "2")
    tap.ok(rc == 2 and "bad.csv:3" in err and "abc" in err and out == "",
           "a malformed row: exit 2, its line and text named, nothing printed", err)
    rc, out, err = run("forecast", "--socket", sock, "--csv", bad, "--time-column", "time",
                       "--value-column", "value", "--horizon", "2", "--skip-bad-rows")
    tap.ok(rc == 0 and "bad.csv:3" in err and len(table_rows(out)) == 2,
           "--skip-bad-rows: the row skipped with a warning, the forecast printed", out + err)
    rc, out, err = run("forecast", "--socket", sock, "--csv", bad, "--time-column", "time",
                       "--value-column", "price", "--horizon", "2")
    tap.ok(rc == 2 and "price" in err and "value" in err,
           "an unknown column: exit 2, the available columns listed", err)
    rc, out, err = run("forecast", "--socket", sock, "--csv", os.path.join(tmp, "none.csv"),
                       "--time-column", "t", "--value-column", "v", "--horizon", "2")
    tap.ok(rc == 2 and "none.csv" in err, "a missing file: exit 2, named", err)
    rc, out, err = run("forecast", "--socket", sock, "--horizon", "100000", stdin="1 2 3 4\n")
    tap.ok(rc == 2 and "prediction_length" in err and "4096" in err,
           "a request the daemon refuses: exit 2 with its message and limit", err)
    rc, out, err = run("forecast", "--socket", sock, "--horizon", "2", "--quantiles", "0.5,x")
    tap.ok(rc == 2 and "--quantiles" in err, "a malformed --quantiles list: exit 2, named", err)
    rc, out, err = run("forecast", "--socket", sock, "--horizon", "2", "--quantiles", "0.5,2",
                       stdin="1 2 3 4\n")
    tap.ok(rc == 2 and "quantiles[1]" in err, "a level the daemon refuses: exit 2, the field named",
           err)
    rc, out, err = run("forecast", "--socket", sock, "--holdout", "10", stdin="1 2 3\n")
    tap.ok(rc == 2 and "--holdout" in err, "--holdout longer than the series: exit 2", err)
    rc, out, err = run("forecast", "--socket", os.path.join(tmp, "no.sock"), "--horizon", "2",
                       stdin="1 2 3\n")
    tap.ok(rc == 1 and "no.sock" in err, "no daemon: exit 1, the socket named", err)
    rc, out, err = run("forecast", "--socket", sock, "--horizon", "2", "--plot",
                       os.path.join(tmp, "nodir", "x.png"), stdin="1 2 3 4 5 6\n")
    tap.ok(rc == 1 and "x.png" in err, "an unwritable --plot file: exit 1, named", err)


def check_token(tap, tmp):
    """A daemon with auth-token-file: the CLI presents --token-file ($TOTO_TOKEN_FILE)."""
    good, bad = os.path.join(tmp, "token"), os.path.join(tmp, "wrong")
    for path, text in ((good, "s3cret-token-0123456789\n"), (bad, "not-the-token-0123456789\n")):
        with open(path, "w") as f:
            f.write(text)
        os.chmod(path, 0o600)
    with Daemon("--auth-token-file", good) as d:
        tcp = "tcp:127.0.0.1:%d" % d.port
        rc, out, err = run("health", "--address", tcp)
        tap.ok(rc == 2 and "-32004" in err, "TCP without a token: exit 2, unauthorized", err)
        rc, out, err = run("health", "--address", tcp, "--token-file", good)
        tap.ok(rc == 0 and "status: ok" in out, "--token-file: the token presented, answered",
               out + err)
        rc, out, err = run("forecast", "--address", tcp, "--horizon", "2", stdin="1 2 3 4\n",
                           env={"TOTO_TOKEN_FILE": good})
        tap.ok(rc == 0 and len(table_rows(out)) == 2, "$TOTO_TOKEN_FILE for forecast", out + err)
        rc, out, err = run("metrics", "--address", tcp, "--token-file", bad)
        tap.ok(rc == 2 and "wrong token" in err, "a wrong token: exit 2, said", err)
        rc, out, err = run("bench", "--address", tcp, "--token-file", good, "--workload", "small",
                           "--count", "10", "--clients", "2", "--format", "kv")
        tap.ok(rc == 0 and "errors=0" in out, "bench --token-file over TCP", out + err)
        rc, out, err = run("bench", "--address", tcp, "--workload", "small", "--count", "2")
        tap.ok(rc == 1 and "unauthorized" in err, "bench without the token: exit 1, said", err)
        rc, out, err = run("health", "--socket", d.sock)
        tap.ok(rc == 0, "the Unix socket needs no token", out + err)


def main():
    tap = Tap()
    with tempfile.TemporaryDirectory() as tmp, Daemon() as d:
        check_status_commands(tap, d)
        check_bench(tap, d, tmp)
        check_bench_addresses(tap, d)
        check_forecast(tap, d, tmp)
        check_forecast_file_order(tap, d)
        check_forecast_long_gap(tap, d, tmp)
        check_forecast_errors(tap, d, tmp)
        check_token(tap, tmp)
    tap.done()


if __name__ == "__main__":
    main()
