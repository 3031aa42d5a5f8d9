#!/usr/bin/env python3
"""JSON-RPC on a running totod: every method, every error code, batches,
notifications, line limits, deadlines and overload (TAP)."""

import json
import os
import shutil
import socket
import tempfile
import time

from totod_harness import (DEADLINE, DATA, INVALID_PARAMS, INVALID_REQUEST, NO_METHOD,
                           OVERLOADED, PARSE, TINY_A, Daemon, Tap, forecast, line, series)

tap = Tap()
SMALL = {"series": [1, 2, 3, 4, 5, 6, 7, 8], "prediction_length": 3}


def error_of(answer):
    return (answer or {}).get("error") or {}


def methods(d):
    c = d.client()
    h = c.call("health")["result"]
    tap.ok(h["status"] == "ok" and h["path"] == "compiled" and h["device"] == "cpu"
           and h["untrained"] is False and h["model"] == TINY_A and "uptime_s" in h
           and h["version"] and h["queue_depth"] == 0, "health reports status, model, path", h)
    info = c.call("info", {})["result"]
    tap.ok(info["model"]["config"]["patch_size"] == 16 and info["model"]["limits"]["max_variates"]
           == 512 and info["config"]["max-inflight"] == 256 and info["model"]["num_params"] > 0,
           "info reports the model, its limits and the effective config", info)
    r = c.call("forecast", dict(SMALL, quantiles=[0.1, 0.9], series_id="abc"))
    res = r.get("result", {})
    t = res.get("timing", {})
    tap.ok(len(res.get("mean", [[]])[0]) == 3 and res["quantiles"]["levels"] == [0.1, 0.9]
           and t.get("batch_size", 0) >= 1 and t.get("queue_ms", -1) >= 0
           and t.get("model_ms", -1) >= 0 and res.get("series_id") == "abc"
           and r["id"] == "c3", "forecast answers with timing and series_id", r)
    tap.ok(res.get("model", {}).get("path") == "compiled",
           "the answer names the path that computed it (compiled by default)", res.get("model"))
    m = c.call("metrics")["result"]
    tap.ok(m["requests"]["forecast"] >= 1 and m["requests"]["health"] >= 1
           and m["batches"] >= 1 and m["batch_size"]["count"] >= 1
           and m["latency_ms"]["model"]["count"] >= 1 and "queue_depth" in m
           and set(m["latency_ms"]) == {"queue", "model", "total"}, "metrics has counters", m)
    r = c.call("forecast", dict(SMALL), rid=None)
    tap.ok("result" in r, "forecast over the Unix socket")
    t = d.client("tcp")
    r = t.call("forecast", dict(SMALL), rid=42)
    tap.ok(r.get("id") == 42 and "result" in r, "forecast over TCP keeps a numeric id", r)
    c.close()
    t.close()


def errors(d):
    c = d.client()
    c.send(b'{"jsonrpc":"2.0","id":1,"method":"health"\n')
    e = c.recv()
    tap.ok(error_of(e).get("code") == PARSE and e["id"] is None, "malformed JSON: -32700", e)
    c.send(b"\x00\xff garbage\n")
    tap.ok(error_of(c.recv()).get("code") == PARSE, "binary garbage: -32700")
    for bad, name in [({"id": 1, "method": "health"}, "no jsonrpc"),
                      ({"jsonrpc": "1.0", "id": 1, "method": "health"}, "jsonrpc 1.0"),
                      ({"jsonrpc": "2.0", "id": 1, "method": 5}, "method not a string"),
                      ({"jsonrpc": "2.0", "id": [1], "method": "health"}, "id an array"),
                      ({"jsonrpc": "2.0", "id": 1, "method": "health", "params": 3}, "params 3"),
                      (17, "a bare number")]:
        c.send(bad)
        e = c.recv()
        tap.ok(error_of(e).get("code") == INVALID_REQUEST, "invalid request (%s): -32600" % name, e)
    e = c.call("forecasts")
    tap.ok(error_of(e).get("code") == NO_METHOD and e["error"]["data"]["method"] == "forecasts",
           "unknown method: -32601", e)
    cases = [({"series": [1, 2, 3]}, "prediction_length"),
             (dict(SMALL, prediction_lenght=2), "prediction_lenght"),
             (dict(SMALL, series=[1, "x", 3]), "series[1]"),
             (dict(SMALL, quantiles=[0.5, 1.5]), "quantiles[1]"),
             (dict(SMALL, prediction_length=5000), "prediction_length"),
             (dict(SMALL, timeout_ms=-1), "timeout_ms"),
             (dict(SMALL, series_id=[1]), "series_id")]
    for params, field in cases:
        e = c.call("forecast", params)
        err = error_of(e)
        tap.ok(err.get("code") == INVALID_PARAMS and err.get("data", {}).get("field") == field,
               "invalid params: -32602 with data.field %s" % field, e)
    e = c.call("forecast", [1, 2])
    tap.ok(error_of(e).get("code") == INVALID_PARAMS, "forecast params as an array: -32602", e)
    tap.ok(c.call("health")["result"]["status"] == "ok", "connection still serves after errors")
    c.close()


def batches(d):
    c = d.client()
    c.send([forecast(1, SMALL), {"jsonrpc": "2.0", "method": "health"},
            {"jsonrpc": "2.0", "id": 2, "method": "health"}, forecast(3, {"series": [1]}),
            {"jsonrpc": "2.0", "id": 4, "method": "nope"}, 5])
    a = c.recv()
    by_id = {x["id"]: x for x in a} if isinstance(a, list) else {}
    tap.ok(isinstance(a, list) and len(a) == 5 and "result" in by_id.get(1, {})
           and "result" in by_id.get(2, {}) and error_of(by_id.get(3)).get("code") == INVALID_PARAMS
           and error_of(by_id.get(4)).get("code") == NO_METHOD
           and error_of(by_id.get(None)).get("code") == INVALID_REQUEST,
           "a batch array is answered as one array, notifications left out", a)
    c.send(b"[]\n")
    e = c.recv()
    tap.ok(isinstance(e, dict) and error_of(e).get("code") == INVALID_REQUEST,
           "empty batch: one -32600", e)
    c.send([{"jsonrpc": "2.0", "method": "health"}, {"jsonrpc": "2.0", "method": "forecast",
                                                      "params": SMALL}])
    c.send({"jsonrpc": "2.0", "method": "nope"}, {"jsonrpc": "2.0", "method": "metrics"})
    c.send({"jsonrpc": "2.0", "id": "after", "method": "health"})
    a = c.recv()
    tap.ok(a.get("id") == "after", "notifications (alone, in batches, unknown) get no answer", a)
    c.close()


def line_limit():
    with Daemon("--max-line-bytes", "1024", model=TINY_A) as d:
        c = d.client()
        c.send({"jsonrpc": "2.0", "id": 1, "method": "health"})
        ok = c.recv()
        c.send(b'{"jsonrpc":"2.0","id":2,"method":"health","params":{"x":"' + b"a" * 5000 + b'"}}\n')
        e = c.recv()
        err = error_of(e)
        eof = c.recv_line()
        tap.ok("result" in ok and err.get("code") == INVALID_REQUEST
               and err.get("data", {}).get("limit") == "max-line-bytes" and eof is None,
               "line over max-line-bytes: an error, then the connection closes", (e, eof))
        c2 = d.client()
        c2.send(b"x" * 3000)  # no newline at all
        e = c2.recv()
        tap.ok(error_of(e).get("code") == INVALID_REQUEST and c2.recv_line() is None,
               "a partial line over the limit is refused too", e)
        exactly = {"jsonrpc": "2.0", "id": 3, "method": "health"}
        text = line(exactly)[:-1]
        text = text[:-1] + b"," + b'"pad":"' + b"p" * (1024 - len(text) - 9) + b'"}'
        c3 = d.client()
        c3.send(text + b"\n")
        a = c3.recv()
        tap.ok(len(text) == 1024 and a and a.get("id") == 3,
               "a line of exactly max-line-bytes is served", (len(text), a))
        tap.ok(d.client().call("health")["result"]["status"] == "ok",
               "the daemon serves others after closing a connection")


def overload_and_deadline():
    # The worker waits 400 ms for each batch to fill, so requests sit in the queue.
    with Daemon("--queue-limit", "2", "--max-inflight", "1", "--batch-delay-us", "400000",
                "--max-connections", "4") as d:
        a, b, c = d.client(), d.client(), d.client()
        a.send(forecast("late", dict(SMALL, timeout_ms=1)))
        a.send(forecast("a2", SMALL))
        e = a.recv()
        tap.ok(e["id"] == "a2" and error_of(e).get("code") == OVERLOADED
               and e["error"]["data"]["limit"] == "max-inflight",
               "beyond max-inflight on one connection: -32000 at once", e)
        b.send(forecast("b1", SMALL))
        time.sleep(0.05)
        t0 = time.time()
        c.send(forecast("c1", SMALL))
        e = c.recv()
        tap.ok(e["id"] == "c1" and error_of(e).get("code") == OVERLOADED
               and e["error"]["data"]["limit"] == "queue-limit" and time.time() - t0 < 0.3,
               "queue full: -32000 overloaded at once", e)
        late = a.recv()
        tap.ok(late["id"] == "late" and error_of(late).get("code") == DEADLINE,
               "timeout_ms passed while queued: -32001 deadline exceeded", late)
        b1 = b.recv()
        tap.ok(b1["id"] == "b1" and b1["result"]["timing"]["batch_size"] == 1,
               "the request queued with it still runs (the expired one is not computed)", b1)
        m = a.call("metrics")["result"]
        tap.ok(m["expired"] == 1 and m["errors"]["-32001"] == 1 and m["errors"]["-32000"] == 2,
               "metrics count the refusals and the expired request", m)
        fourth = d.client()
        tap.ok("result" in fourth.call("health"), "connections within the limit are served")
        fifth = d.client("tcp")
        e = fifth.recv()
        tap.ok(error_of(e).get("code") == OVERLOADED and fifth.recv_line() is None
               and e["error"]["data"]["limit"] == "max-connections",
               "beyond max-connections: -32000, then closed", e)


def no_polling():
    """The loop and the worker only sleep and wake: every answer still comes."""
    with Daemon("--handoff-poll-us", "0", "--model-end-poll-us", "0") as d:
        c = d.client()
        for i in range(20):
            c.send({"jsonrpc": "2.0", "id": i, "method": "forecast", "params": SMALL})
        ids = sorted(c.recv()["id"] for _ in range(20))
        cfg = d.client().call("info")["result"]["config"]
        tap.ok(ids == list(range(20)) and cfg["handoff-poll-us"] == 0
               and cfg["model-end-poll-us"] == 0,
               "with polling off, 20 pipelined forecasts are all answered", ids)


def default_model():
    with Daemon(model=None, tcp=False, env={"TOTO_DISABLE_COMPILE": "1"}) as d:
        h = d.client().call("health")["result"]
        info = d.client().call("info")["result"]
        f = d.client().call("forecast", dict(SMALL))["result"]
        tap.ok(info["config"]["disable-compile"] is True and h["path"] == "eager"
               and info["compile"]["available"] is False and f["model"]["path"] == "eager"
               and "compiled path off (TOTO_DISABLE_COMPILE" in d.log_text(),
               "TOTO_DISABLE_COMPILE=1 is honoured and reported", info["config"])
        tap.ok(h["untrained"] is False and h["model"].endswith("models/default"),
               "no --model: the bundled model, trained (issue 8), not labelled untrained", h)
        tap.ok("UNTRAINED" not in d.log_text(), "the startup log does not say untrained")


def untrained_marker():
    # A checkpoint directory with an UNTRAINED file is labelled untrained.
    with tempfile.TemporaryDirectory() as tmp:
        for f in ("config.json", "model.safetensors"):
            shutil.copy(os.path.join(TINY_A, f), tmp)
        open(os.path.join(tmp, "UNTRAINED"), "w").close()
        with Daemon(model=tmp, tcp=False, env={"TOTO_DISABLE_COMPILE": "1"}) as d:
            h = d.client().call("health")["result"]
            tap.ok(h["untrained"] is True and "UNTRAINED" in d.log_text(),
                   "a model directory with an UNTRAINED marker is labelled untrained", h)


with Daemon() as d:
    methods(d)
    errors(d)
    batches(d)
    log = d.log_text()
    tap.ok("<6>totod: ready" in log and "path compiled" in log and "compiled path: mode" in log,
           "journald prefixes; path and compiled plan logged", log)
    c = d.client().call("info")["result"]["compile"]
    tap.ok(c["available"] and c["path"] == "compiled" and c["runs"] > 0
           and c["captures_after_warmup"] == 0 and c["eager_fallbacks"] == 0
           and c["compute_dtype"] == "float64",
           "info: the compiled path served the forecasts; no capture after warm-up", c)
    tap.ok("1, 2, 3" not in log and "[1," not in log, "series values are not logged", log)
    rc = d.stop()
    tap.ok(rc == 0, "SIGTERM: exit 0", rc)
line_limit()
overload_and_deadline()
no_polling()
default_model()
untrained_marker()
tap.done()
