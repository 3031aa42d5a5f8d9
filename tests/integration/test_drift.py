#!/usr/bin/env python3
"""Forecast error drift on a real series (ETTh1's oil temperature, hourly):
rolling forecasts named by series_id with their time axis, the actual values
through the method observe, health degraded once the actuals are made worse
on purpose, and recovered once they are true again (TAP)."""

import calendar
import csv
import json
import os
import tempfile
import time

from totod_harness import DATA, Daemon, Tap

tap = Tap()
HOUR = 3600.0
CONTEXT, HORIZON = 96, 8


def ett_ot():
    """(times in Unix seconds, OT values) of tests/data/series/ETTh1.csv."""
    times, values = [], []
    with open(os.path.join(DATA, "series", "ETTh1.csv")) as f:
        for row in csv.DictReader(f):
            times.append(calendar.timegm(time.strptime(row["date"], "%Y-%m-%d %H:%M:%S")))
            values.append(float(row["OT"]))
    return times, values


def one_round(c, times, x, k, spoil=0.0):
    """Forecast from window k, then observe what came (plus spoil, if any)."""
    a = k * HORIZON
    r = c.call("forecast", {"series": x[a:a + CONTEXT], "prediction_length": HORIZON,
                            "series_id": "ETTh1/OT", "start": times[a], "interval": HOUR})
    actual = [v + spoil for v in x[a + CONTEXT:a + CONTEXT + HORIZON]]
    o = c.call("observe", {"series_id": "ETTh1/OT", "start": times[a + CONTEXT],
                           "interval": HOUR, "values": actual})
    return "result" in r and o.get("result", {}).get("scored") == HORIZON


times, x = ett_ot()
# Small windows keep the test short; a threshold of 3x stays clear of the
# ordinary swings of an untrained model's errors on real data.
d = Daemon("--drift-baseline", "4", "--drift-recent", "3", "--drift-threshold-percent", "300")
c = d.client()
ok = all(one_round(c, times, x, k) for k in range(7))
m = c.call("metrics")["result"]["drift"]
h = c.call("health")["result"]
tap.ok(ok and m["tracked"] == 1 and m["rated"] == 1 and m["ratio"] < 3 and not m["drifting"]
       and h["status"] == "ok",
       "7 rolling forecasts of ETTh1 OT, each scored on its 8 actual hours: baseline and recent "
       "windows full, ratio %.2f, health ok" % m.get("ratio", -1), (m, h))
scale = sum(abs(b - a) for a, b in zip(x[:CONTEXT], x[1:CONTEXT])) / (CONTEXT - 1)
ok = all(one_round(c, times, x, k, spoil=40 * scale) for k in range(7, 10))
m = c.call("metrics")["result"]["drift"]
h = c.call("health")["result"]
why = " ".join(h["reasons"])
tap.ok(ok and m["drifting"] and m["ratio"] > 3 and h["status"] == "degraded"
       and "forecast error drift" in why and "ETTh1/OT" in why,
       "actuals made worse on purpose (+40 steps' worth): drift %.1fx, health degraded with the "
       "series named" % m.get("ratio", -1), (m, why))
ok = all(one_round(c, times, x, k) for k in range(10, 13))
m = c.call("metrics")["result"]["drift"]
h = c.call("health")["result"]
tap.ok(ok and not m["drifting"] and h["status"] == "ok",
       "true actuals again: recovered (ratio %.2f), health ok" % m.get("ratio", -1), (m, h))
# Explicit timestamps instead of start and interval, in forecast and observe alike.
r = c.call("forecast", {"series": x[:CONTEXT], "prediction_length": HORIZON,
                        "series_id": "ETTh1/OT-ts", "timestamps": times[:CONTEXT]})
o = c.call("observe", {"series_id": "ETTh1/OT-ts", "timestamps": times[CONTEXT:CONTEXT + 5],
                       "values": x[CONTEXT:CONTEXT + 5]})
wrong = c.call("forecast", {"series": x[:CONTEXT], "prediction_length": HORIZON,
                            "series_id": "s", "timestamps": times[:CONTEXT - 1]})
tap.ok("result" in r and o.get("result", {}).get("scored") == 5
       and wrong.get("error", {}).get("data", {}).get("field") == "timestamps",
       "timestamps: a forecast and its actuals matched by time (5 scored); one per step or "
       "-32602 naming timestamps", (o, wrong))
bad = c.call("observe", {"series_id": "ETTh1/OT", "start": 0, "values": [1.0]})
tap.ok(bad.get("error", {}).get("data", {}).get("field") in ("start", "interval"),
       "observe without interval: -32602 naming the field", bad)
d.stop()
log = "\n".join(d.log)
tap.ok(log.count("forecast error drift:") == 1 and "forecast error drift over" in log,
       "the episode is logged once when it starts and once when it ends", log[-800:])

# The scores survive a restart: the state file, written at shutdown, read at start.
state = tempfile.mkdtemp()
args = ("--drift-baseline", "4", "--drift-recent", "3", "--state-dir", state)
d = Daemon(*args)
c = d.client()
all(one_round(c, times, x, k) for k in range(7))
before = c.call("metrics")["result"]["drift"]
d.stop()
path = os.path.join(state, "drift.json")
with open(path) as f:
    doc = json.load(f)
tap.ok(doc.get("version") == 1 and len(doc["series"]) == 1
       and not os.path.exists(path + ".tmp"),
       "at shutdown the scores are written to STATE/drift.json (no temporary file left)", doc)
d = Daemon(*args)
after = d.client().call("metrics")["result"]["drift"]
d.stop()
tap.ok(after["rated"] == 1 and abs(after["ratio"] - before["ratio"]) < 1e-9
       and any("restored" in ln for ln in d.log),
       "a restart reads them back: the same ratio %.3f" % before["ratio"], (before, after))
tap.done()
