#!/usr/bin/env python3
"""test_backtest.py - scripts/backtest end to end on the real daemon (TAP).

Runs scripts/backtest --start-daemon on the tiny-a fixture (random weights:
the accuracy is meaningless, but every number is computed for real) with two
real series, horizons 8 and 16, three origins and two repeats per path, then
checks what it wrote: the report's tables, metrics.csv (finite numbers,
coverage in [0, 1]), the naive and seasonal-naive baselines against an
independent computation from the raw CSV, the compiled and eager passes, and
the PNGs (chunks, CRCs, the inflated image size, some ink). Also: a CSV with
rows that do not parse (reported with their line numbers, skipped) and bad
--series specs (non-zero exit, a message naming the spec).

Python 3 standard library only. Environment: TOTO_BUILD_DIR, TOTO_TEST_DATA.
"""

import csv
import datetime
import math
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import time
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
from totod_harness import BUILD, DATA, TINY_A, Tap  # noqa: E402

BACKTEST = os.path.join(ROOT, "scripts", "backtest")
TOTOD = os.path.join(BUILD, "daemon", "totod")
SERIES = os.path.join(DATA, "series")
EPOCH = datetime.datetime(1970, 1, 1)


def run(args, timeout=120):
    t0 = time.time()
    p = subprocess.run([sys.executable, BACKTEST] + args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=timeout)
    return p.returncode, p.stdout.decode(), p.stderr.decode(), time.time() - t0


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def finite(text):
    try:
        return math.isfinite(float(text))
    except ValueError:
        return False


def png_problems(path):
    """[] for a valid 8-bit RGB PNG with some non-white pixels, else what is wrong."""
    data = open(path, "rb").read()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        return ["bad signature"]
    chunks, pos = [], 8
    while pos + 12 <= len(data):
        (n,) = struct.unpack(">I", data[pos:pos + 4])
        kind, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + n]
        (crc,) = struct.unpack(">I", data[pos + 8 + n:pos + 12 + n])
        if zlib.crc32(kind + body) & 0xFFFFFFFF != crc:
            return ["bad CRC in chunk %r" % kind]
        chunks.append((kind, body))
        pos += 12 + n
    if pos != len(data):
        return ["%d trailing bytes" % (len(data) - pos)]
    if not chunks or chunks[0][0] != b"IHDR" or chunks[-1][0] != b"IEND":
        return ["chunks %s: IHDR first and IEND last expected" % [k for k, _ in chunks]]
    w, h, depth, ctype, comp, filt, interlace = struct.unpack(">IIBBBBB", chunks[0][1])
    if (depth, ctype, comp, filt, interlace) != (8, 2, 0, 0, 0):
        return ["not 8-bit RGB without interlace: %r" % ((depth, ctype, comp, filt, interlace),)]
    raw = zlib.decompress(b"".join(b for k, b in chunks if k == b"IDAT"))
    if len(raw) != w * h * 3 + h:
        return ["IDAT inflates to %d bytes, expected %d x %d x 3 + %d = %d" % (len(raw), w, h, h, w * h * 3 + h)]
    ink = 0
    for y in range(h):
        row = raw[y * (w * 3 + 1):(y + 1) * (w * 3 + 1)]
        if row[0] > 4:
            return ["row %d: filter type %d" % (y, row[0])]
        if row[0] == 0:
            ink += sum(1 for b in row[1:] if b != 255)
    if ink == 0:
        return ["every pixel is white"]
    return []


def epoch_of(text):
    fmt = "%Y-%m-%d %H:%M" if " " in text else "%Y-%m-%d"
    return int((datetime.datetime.strptime(text, fmt) - EPOCH).total_seconds())


def main():
    tap = Tap()
    tmp = tempfile.mkdtemp(prefix="test-backtest-")
    out = os.path.join(tmp, "out")
    try:
        rc, so, se, took = run(["--start-daemon", "--model", TINY_A, "--totod", TOTOD,
                                "--series", "BTCUSDT=%s:date:close" % os.path.join(SERIES, "Binance_BTCUSDT_1h.csv"),
                                "--series", "ETTh1-OT=%s:date:OT" % os.path.join(SERIES, "ETTh1.csv"),
                                "--horizons", "8,16", "--context", "256", "--origins", "3", "--samples", "32",
                                "--repeats", "2", "--seed", "7", "--out", out])
        tap.ok(rc == 0, "backtest --start-daemon on tiny-a exits 0 (%.1f s)" % took, se)
        if rc != 0:
            tap.done()

        report = open(os.path.join(out, "report.md")).read()
        for heading in ("## Series", "## Accuracy against the baselines", "## Compiled vs eager", "## Latency",
                        "## Plots"):
            tap.ok(heading in report, "report.md has %s" % heading)
        tap.ok("| series | h | origins | MAE Toto | MAE naive | MAE s-naive | MASE Toto" in report,
               "report.md has the accuracy table")
        acc_rows = [l for l in report.splitlines()
                    if l.startswith("| BTCUSDT | 8 |") or l.startswith("| ETTh1-OT | 16 |")]
        tap.ok(len(acc_rows) == 2, "the accuracy table has a row per series and horizon", report)
        tap.ok("| series | p50 ms h=8 eager / compiled | p50 ms h=16 eager / compiled |" in report
               and report.count("| BTCUSDT | ") >= 3 and report.count("| ETTh1-OT | ") >= 3,
               "report.md has the compiled vs eager table with both series", report)
        tap.ok("| compiled | 8 |" in report and "| eager | 16 |" in report,
               "report.md has latency rows for both paths", report)
        tap.ok("command: `" in report and "--start-daemon" in report and "- date: " in report
               and "tiny-a" in report and "device: " in report,
               "report.md names the command, the date, the model and the device")
        tap.ok("**warning** BTCUSDT:" in report and "repeat a time already seen" in report,
               "report.md warns about BTCUSDT's repeated timestamps, with line numbers")

        metrics = read_csv(os.path.join(out, "metrics.csv"))
        tap.ok(len(metrics) == 12, "metrics.csv: 2 series x 2 horizons x 3 methods = %d rows" % len(metrics))
        bad = [r for r in metrics for k in ("mae", "mase", "crps", "scaled_crps", "rel_mase_vs_seasonal_naive")
               if not finite(r[k])]
        tap.ok(not bad, "metrics.csv: every MAE, MASE, CRPS and relative MASE is a finite number", bad[:3])
        cover = [float(r["coverage_80"]) for r in metrics if r["method"] == "toto"]
        tap.ok(len(cover) == 4 and all(0.0 <= c <= 1.0 for c in cover), "coverage of the 80%% interval in [0, 1]: %s"
               % cover)
        tap.ok(all(r["coverage_80"] == "" for r in metrics if r["method"] != "toto"),
               "no coverage for the point baselines")
        tap.ok(all(abs(float(r["rel_mase_vs_seasonal_naive"]) - 1) < 1e-12 for r in metrics
                   if r["method"] == "seasonal_naive"), "the seasonal naive's relative MASE is 1")
        tap.ok(all(abs(float(r["crps"]) - float(r["mae"])) <= 1e-9 * float(r["mae"]) for r in metrics
                   if r["method"] != "toto"), "a point baseline's CRPS is its MAE")
        tap.ok(all(int(r["origins"]) == 3 and int(r["points"]) == 3 * int(r["horizon"]) for r in metrics),
               "3 origins per series, every step scored")

        # The baselines, independently, from the raw CSVs.
        origins = read_csv(os.path.join(out, "origins.csv"))
        ett = read_csv(os.path.join(SERIES, "ETTh1.csv"))
        ot = [float(r["OT"]) for r in ett]
        pos = {r["date"][:16]: i for i, r in enumerate(ett)}
        row = [r for r in origins if r["series"] == "ETTh1-OT" and r["horizon"] == "16" and r["method"] == "naive"][-1]
        i, h = pos[row["origin_time"]], 16
        want = sum(abs(ot[i + j] - ot[i - 1]) for j in range(h)) / h
        tap.ok(abs(float(row["mae"]) - want) <= 1e-9 * want,
               "ETTh1 OT at %s: the naive MAE %s = %.12g computed here" % (row["origin_time"], row["mae"], want))
        row = [r for r in origins if r["series"] == "ETTh1-OT" and r["horizon"] == "16"
               and r["method"] == "seasonal_naive"][0]
        i = pos[row["origin_time"]]
        want = sum(abs(ot[i + j] - ot[i + j - 24]) for j in range(h)) / h
        tap.ok(abs(float(row["mae"]) - want) <= 1e-9 * want,
               "ETTh1 OT at %s: the seasonal naive MAE (24 h) %s = %.12g computed here"
               % (row["origin_time"], row["mae"], want))
        scale = sum(abs(ot[k] - ot[k - 1]) for k in range(i - 255, i)) / 255
        tap.ok(abs(float(row["mase"]) - want / scale) <= 1e-9 * want / scale,
               "ETTh1 OT at %s: MASE over the context's one-step naive MAE" % row["origin_time"])
        # BTCUSDT through its unix column (ms or s): the first row of each time in the file.
        btc = {}
        for r in read_csv(os.path.join(SERIES, "Binance_BTCUSDT_1h.csv")):
            t = float(r["unix"])
            btc.setdefault(int(t / 1000 if t > 1e11 else t), float(r["close"]))
        row = [r for r in origins if r["series"] == "BTCUSDT" and r["horizon"] == "8" and r["method"] == "naive"][1]
        t0 = epoch_of(row["origin_time"])
        want = sum(abs(btc[t0 + 3600 * j] - btc[t0 - 3600]) for j in range(8)) / 8
        tap.ok(abs(float(row["mae"]) - want) <= 1e-9 * want,
               "BTCUSDT at %s: the naive MAE %s = %.12g computed here" % (row["origin_time"], row["mae"], want))

        paths = [r for r in read_csv(os.path.join(out, "paths.csv")) if r["horizon"] == "all"]
        tap.ok(sorted((r["path"], r["repeat"]) for r in paths if r["series"] == "BTCUSDT")
               == [("compiled", "0"), ("compiled", "1"), ("eager", "0"), ("eager", "1")],
               "two passes on each path", paths)
        tap.ok([r["seed"] for r in paths if r["series"] == "BTCUSDT" and r["path"] == "eager"] == ["7", "8"],
               "repeat r uses seed + r")
        tap.ok(len(paths) == 8 and all(finite(r["mae"]) and float(r["client_p50_ms"]) > 0 for r in paths),
               "every pass has a finite MAE and a latency")
        lat = read_csv(os.path.join(out, "latency.csv"))
        tap.ok({r["path"] for r in lat} == {"compiled", "eager"}
               and all(0 < float(r["client_p50_ms"]) <= float(r["client_p90_ms"]) <= float(r["client_p99_ms"])
                       and float(r["model_p50_ms"]) > 0 for r in lat),
               "latency.csv: client p50 <= p90 <= p99 and the daemon's model_ms, on both paths", lat)

        for name in ("fan-BTCUSDT.png", "error-BTCUSDT.png", "fan-ETTh1-OT.png", "error-ETTh1-OT.png"):
            path = os.path.join(out, name)
            problems = png_problems(path) if os.path.exists(path) else ["missing"]
            tap.ok(not problems, "%s is a valid PNG with something drawn" % name, problems)
            tap.ok("(%s)" % name in report, "report.md shows %s" % name)

        # A CSV with problems: newest first, 12-hour clock, a row whose time does not
        # parse (line 10), a value that is not a number (line 20), an hour left out.
        bad_csv = os.path.join(tmp, "odd.csv")
        rows = []
        for k in range(300, 0, -1):
            if k == 150:  # the gap: this hour is absent
                continue
            t = EPOCH + datetime.timedelta(hours=400000 + k)
            rows.append([t.strftime("%Y-%m-%d %I-%p"), "%.3f" % (10 + math.sin(k / 4.0))])
        rows[10 - 2][0] = "not a time"  # line 10 (the header is line 1)
        rows[20 - 2][1] = "abc"  # line 20
        with open(bad_csv, "w") as f:
            f.write("when,value\n" + "".join("%s,%s\n" % tuple(r) for r in rows))
        out2 = os.path.join(tmp, "out2")
        rc, so, se, _ = run(["--start-daemon", "--model", TINY_A, "--totod", TOTOD, "--series", "odd=%s:when:value"
                             % bad_csv, "--horizons", "8", "--origins", "2", "--samples", "8", "--repeats", "0",
                             "--out", out2])
        tap.ok(rc == 0, "a CSV with rows that do not parse still runs", se)
        rep2 = open(os.path.join(out2, "report.md")).read() if rc == 0 else ""
        tap.ok("does not parse as a time were skipped (lines 10)" in rep2,
               "the row whose time does not parse is reported with its line number", rep2)
        tap.ok("is not a number were skipped (lines 20)" in rep2,
               "the row whose value is not a number is reported with its line number", rep2)
        tap.ok("| odd | " in rep2 and "| 1h | 3 |" in rep2,
               "the 12-hour clock parses, hourly grid, 3 missing steps (gap + 2 skipped rows)", rep2)
        tap.ok("Not measured: --repeats 0." in rep2, "--repeats 0: no compiled vs eager")
        tap.ok("## Geometric mean MASE" in rep2 and "| toto | 1 |" in rep2,
               "report.md has the geometric mean MASE table", rep2)

        # --holdout-fraction 0.1: the 300 hours span 299; origins only from hour 0.9 * 299 on.
        out3 = os.path.join(tmp, "out3")
        rc, so, se, _ = run(["--start-daemon", "--model", TINY_A, "--totod", TOTOD, "--series", "odd=%s:when:value"
                             % bad_csv, "--horizons", "8", "--origins", "20", "--samples", "8", "--repeats", "0",
                             "--holdout-fraction", "0.1", "--out", out3])
        held = [r for r in read_csv(os.path.join(out3, "origins.csv")) if r["method"] == "toto"] if rc == 0 else []
        first = (400000 + 1) * 3600
        cut = first + 0.9 * 299 * 3600
        tap.ok(rc == 0 and len(held) == 3
               and all(epoch_of(r["origin_time"]) >= cut for r in held),
               "--holdout-fraction 0.1 keeps the 3 origins inside the last 10%% of the time span", held)

        for spec, word in (("nonsense", "expected NAME=FILE:TIME_COL:VALUE_COL"),
                           ("x=%s:date:nope" % os.path.join(SERIES, "ETTh1.csv"), "no column 'nope'"),
                           ("x=/nonexistent.csv:date:OT", "no such file")):
            rc, so, se, _ = run(["--start-daemon", "--model", TINY_A, "--series", spec, "--out",
                                 os.path.join(tmp, "bad")])
            tap.ok(rc != 0 and spec in se and word in se,
                   "bad --series %r: exit %d, the message names it (%s)" % (spec, rc, se.strip()[:120]), se)
        tap.ok(not os.path.exists(os.path.join(tmp, "bad")), "a bad spec writes nothing")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    tap.done()


if __name__ == "__main__":
    main()
