#!/usr/bin/env python3
"""A failing compiled path: the requests it failed run again on the eager
path and are answered, totod stays there (health degraded, logged, counted)
until the method use_compiled; shadow checks of the compiled path against
the eager one, and their fallback. Through totod-faulty, the test build
whose TOTO_FAULT_COMPILED_FAILS makes that many compiled model calls fail
and TOTO_FAULT_SHADOW_OFFSET adds to every shadow score (TAP)."""

import time

from totod_harness import TOTOD_FAULTY, TINY_A, Daemon, Tap, close, forecast, infer, series

tap = Tap()
MODEL_ERROR = -32003
REQUESTS = [{"series": series(1, 40 + 7 * i, seed=i), "prediction_length": 6} for i in range(8)]


def path_of(result):
    return result["model"]["path"]


def fallback():
    want = [infer(TINY_A, p) for p in REQUESTS]
    d = Daemon(binary=TOTOD_FAULTY, env={"TOTO_FAULT_COMPILED_FAILS": "1"})
    c = d.client()
    before = c.call("health")["result"]
    tap.ok(before["status"] == "ok" and before["path"] == "compiled",
           "before: health ok on the compiled path", before)
    c.send(*[forecast(i, p) for i, p in enumerate(REQUESTS)])  # pipelined: batched
    answers = {a["id"]: a for a in (c.recv() for _ in REQUESTS)}
    results = [answers.get(i, {}).get("result") for i in range(len(REQUESTS))]
    tap.ok(all(r is not None for r in results),
           "every request of the failed call is answered with a result", answers)
    tap.ok(all(r and path_of(r) == "eager" for r in results)
           and all(close(r["mean"], w["mean"], rel=1e-9) for r, w in zip(results, want)),
           "... computed by the eager path, equal to toto-infer's (compiled) answers to 1e-9")
    h = c.call("health")["result"]
    reasons = " ".join(h["reasons"])
    tap.ok(h["status"] == "degraded" and h["path"] == "eager"
           and "compiled path failed (injected fault" in reasons and "use_compiled" in reasons,
           "health degraded on the eager path, the reason says why and what brings it back", h)
    m = c.call("metrics")["result"]
    tap.ok(m["fallbacks"] == 1, "metrics: fallbacks 1", m.get("fallbacks"))
    later = c.call("forecast", REQUESTS[0])["result"]
    tap.ok(path_of(later) == "eager", "later forecasts stay on the eager path")
    back = c.call("use_compiled")
    h = c.call("health")["result"]
    again = c.call("forecast", REQUESTS[0])["result"]
    tap.ok(back.get("result") == {"path": "compiled"} and h["status"] == "ok"
           and h["reasons"] == [] and path_of(again) == "compiled",
           "use_compiled: back on the compiled path, health ok", (back, h))
    d.stop()
    log = "\n".join(d.log)
    tap.ok("the compiled path failed" in log and "back on the compiled path" in log,
           "the fallback and the return are logged", log[-600:])


def no_compiled_path():
    d = Daemon(env={"TOTO_DISABLE_COMPILE": "1"})
    a = d.client().call("use_compiled")
    tap.ok(a.get("error", {}).get("code") == MODEL_ERROR and "compiled" in a["error"]["message"],
           "use_compiled without a compiled path: -32003 saying why", a)
    d.stop()


def shadow_metrics(d):
    return d.client().call("metrics")["result"]


def one_at_a_time(d, n, until=None):
    """n forecasts, each alone (the worker idles between them, so shadows run)."""
    c = d.client()
    for i in range(n):
        c.call("forecast", REQUESTS[i % len(REQUESTS)])
        time.sleep(0.05)
        if until and until():
            return


def shadows_agree():
    d = Daemon("--shadow-every", "1", "--shadow-idle-ms", "10", binary=TOTOD_FAULTY)
    one_at_a_time(d, 5)
    time.sleep(0.2)
    m = shadow_metrics(d)
    h = d.client().call("health")["result"]
    sh = m["shadow"]
    tap.ok(sh["checks"] >= 3 and sh["max"] < 1e-9 and sh["over_in_a_row"] == 0
           and h["status"] == "ok" and h["path"] == "compiled",
           "shadow checks (every compiled forecast): compiled = eager, health ok", sh)
    d.stop()


def shadows_wait_for_a_lull():
    """Under a steady stream of requests (gaps far below shadow-idle-ms) no check runs."""
    d = Daemon("--shadow-every", "1", "--shadow-idle-ms", "2000", binary=TOTOD_FAULTY)
    one_at_a_time(d, 8)
    busy = shadow_metrics(d)["shadow"]["checks"]
    time.sleep(2.5)
    lull = shadow_metrics(d)["shadow"]["checks"]
    tap.ok(busy == 0 and lull == 1,
           "shadow checks wait for a lull: none between requests, one after 2 s idle (%d, %d)"
           % (busy, lull))
    d.stop()


def shadows_diverge():
    d = Daemon("--shadow-every", "1", "--shadow-idle-ms", "10", "--shadow-fallback-after", "2",
               binary=TOTOD_FAULTY,
               env={"TOTO_FAULT_SHADOW_OFFSET": "0.5"})
    c = d.client()
    one_at_a_time(d, 10, until=lambda: c.call("health")["result"]["path"] == "eager")
    h = c.call("health")["result"]
    m = c.call("metrics")["result"]
    reasons = " ".join(h["reasons"])
    tap.ok(h["status"] == "degraded" and h["path"] == "eager" and "shadow checks" in reasons
           and "2 times in a row" in reasons and m["fallbacks"] == 1
           and m["shadow"]["last"] >= 0.5,
           "two shadow scores over tolerance in a row: fallback to the eager path", (h, m["shadow"]))
    after = c.call("forecast", REQUESTS[0])["result"]
    tap.ok(path_of(after) == "eager", "forecasts go on, on the eager path")
    d.stop()


fallback()
no_compiled_path()
shadows_agree()
shadows_wait_for_a_lull()
shadows_diverge()
tap.done()
