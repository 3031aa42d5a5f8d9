#!/usr/bin/env python3
"""TAP test of the C client library (client/totoclient.h) against the real daemon.

Runs tests/client/c_client_driver.c (its path is the first argument), which
calls the library and prints what it got as JSON, against build/daemon/totod
on the tiny-a fixture. Forecasts are compared with the answers the Python
harness client gets from the same daemon for the same request. A timeout is
provoked with a socket made here that never answers, a lost connection by
killing a daemon while a call waits.

Environment: TOTO_BUILD_DIR, TOTO_TEST_DATA (as meson's test_env sets them).
"""

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))

from totod_harness import Daemon, Tap, close, series  # noqa: E402

DRIVER = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
    os.environ.get("TOTO_BUILD_DIR", "build"), "tests", "c_client_driver")
tap = Tap()


def drive(*args, stdin=None, timeout=60):
    """The driver's one JSON line for args (a dict)."""
    out = subprocess.run([DRIVER] + [str(a) for a in args], input=stdin, timeout=timeout,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    text = out.stdout.decode()
    try:
        if out.returncode == 0:
            return json.loads(text.strip().splitlines()[-1])
    except (ValueError, IndexError):
        pass
    return {"kind": "driver failed", "rc": out.returncode, "stdout": text[-2000:],
            "stderr": out.stderr.decode()[-2000:]}


def spec_params(spec):
    """The forecast params a spec stands for (what the harness sends)."""
    return {k: v for k, v in spec.items() if k != "inf_at"}


def reference(daemon, specs):
    """The harness client's result for each spec, pipelined on one connection
    in rounds of 128 (below totod's max-inflight, 256)."""
    c = daemon.client()
    answers = {}
    for start in range(0, len(specs), 128):
        part = range(start, min(start + 128, len(specs)))
        c.send(*[{"jsonrpc": "2.0", "id": i, "method": "forecast",
                  "params": spec_params(specs[i])} for i in part])
        for _ in part:
            msg = c.recv()
            answers[msg["id"]] = msg
    c.close()
    return [answers[i] for i in range(len(specs))]


def is_ok(got):
    return got.get("kind") == "OK"


def check_unit():
    out = subprocess.run([DRIVER, "unit"], stdout=subprocess.PIPE, timeout=30)
    lines = out.stdout.decode().splitlines()
    checks = [ln for ln in lines if ln.startswith("ok ") or ln.startswith("not ok ")]
    for i, ln in enumerate(lines):
        if ln.startswith("ok ") or ln.startswith("not ok "):
            diag = "\n".join(x for x in lines[i + 1:i + 4] if x.startswith("#"))
            tap.ok(ln.startswith("ok "), "unit: " + ln.split(" - ", 1)[-1], diag)
    tap.ok(out.returncode == 0 and len(checks) >= 20, "unit: driver passed all its checks",
           out.stdout.decode())


def check_raw_calls(d):
    unix, tcp = "unix:" + d.sock, "tcp:127.0.0.1:%d" % d.port
    got = drive("call", unix, "health", "-", -1)
    res = got.get("result") or {}
    tap.ok(is_ok(got) and res.get("status") == "ok" and
           {"model", "device", "queue_depth", "version", "uptime_s"} <= res.keys(),
           "health over unix:PATH: status ok and its keys", got)
    tap.ok("\n" not in (got.get("result_text") or "\n"), "result_json is one line of JSON", got)
    got = drive("call", tcp, "info", "{}", 5000)
    res = got.get("result") or {}
    tap.ok(is_ok(got) and {"version", "model", "config"} <= res.keys() and
           "limits" in res.get("model", {}), "info over tcp:HOST:PORT: version, model.limits, config",
           got)
    got = drive("call", d.sock, "metrics", "-", -1)
    res = got.get("result") or {}
    tap.ok(is_ok(got) and {"requests", "errors", "batches", "latency_ms"} <= res.keys() and
           res["requests"].get("metrics", 0) >= 1, "metrics over a bare path: counters", got)
    got = drive("call", "tcp::%d" % d.port, "health", '{"verbose": true}', 0)
    tap.ok(is_ok(got) and got["result"].get("status") == "ok",
           "tcp::PORT (loopback) with params, no timeout", got)
    got = drive("call", unix, "health", "[1, 2", -1)
    tap.ok(got.get("kind") == "EINVAL" and "not JSON" in got.get("message", "") and
           got.get("after_kind") == "OK", "params that are not JSON: EINVAL, client still usable",
           got)
    got = drive("call", unix, "health", "[1, 2]", -1)
    tap.ok(got.get("kind") == "EINVAL" and "object" in got.get("message", ""),
           "params that are not an object: EINVAL", got)
    got = drive("call", unix, "no_such_method", "-", -1)
    tap.ok(got.get("kind") == "ESERVER" and got.get("rpc_code") == -32601 and
           got.get("after_kind") == "OK", "an unknown method: ESERVER -32601, still usable", got)


def check_connect_errors():
    got = drive("call", "tcp:127.0.0.1", "health", "-", -1)
    tap.ok(got.get("stage") == "open" and got.get("kind") == "EADDRESS" and
           "no port" in got.get("message", ""), "tcp address without port: EADDRESS 'no port'", got)
    got = drive("call", "toto.sock", "health", "-", -1)
    tap.ok(got.get("kind") == "EADDRESS" and "toto.sock" in got.get("message", ""),
           "a name without '/': EADDRESS naming it", got)
    got = drive("call", "tcp:127.0.0.1:99999", "health", "-", -1)
    tap.ok(got.get("kind") == "EADDRESS" and "99999" in got.get("message", ""),
           "a port out of range: EADDRESS naming it", got)
    missing = os.path.join(tempfile.mkdtemp(prefix="totoc-"), "missing.sock")
    got = drive("call", "unix:" + missing, "health", "-", -1)
    tap.ok(got.get("stage") == "open" and got.get("kind") == "ECONNECT" and
           missing in got.get("message", "") and "No such file" in got.get("message", ""),
           "a missing socket: ECONNECT naming the path and the reason", got)
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    got = drive("call", "tcp:127.0.0.1:%d" % port, "health", "-", -1)
    tap.ok(got.get("kind") == "ECONNECT" and "refused" in got.get("message", "").lower(),
           "a closed TCP port: ECONNECT, refused", got)


def check_forecast(d, name, spec, want_median=True):
    got = drive("forecast", "unix:" + d.sock, json.dumps(spec))
    ref = reference(d, [spec])[0].get("result")
    res = got.get("result") or {}
    tap.ok(is_ok(got) and ref is not None and close(res.get("mean"), ref["mean"]),
           name + ": mean equals the harness client's", {"c": got, "python": ref})
    if ref is None or not is_ok(got):
        return res
    tap.ok((res["median"] is not None) == want_median and close(res["median"], ref["median"]),
           name + ": median " + ("equals the harness client's" if want_median else "null"), got)
    if "quantiles" in spec:
        tap.ok(res["levels"] == ref["quantiles"]["levels"] and
               close(res["quantiles"], ref["quantiles"]["values"]),
               name + ": quantile levels and values equal the harness client's", got)
    tap.ok(res["model_path"] == ref["model"]["path"] and res["model_device"] == "cpu" and
           res["batch_size"] >= 1 and res["model_ms"] > 0 and got.get("after_kind") == "OK",
           name + ": model path, device and timing read", got)
    return res


def check_forecasts(d):
    base = {"series": series(2, 40), "prediction_length": 8}
    check_forecast(d, "2 variates, h 8", base)
    res = check_forecast(d, "exact quantiles", dict(base, quantiles=[0.1, 0.5, 0.9]))
    if res.get("quantiles"):
        tap.ok(close(res["quantiles"][1], res["median"]), "quantile 0.5 equals the median", res)
    check_forecast(d, "sampled quantiles (32 samples, seed 7, h 20)",
                   dict(base, prediction_length=20, num_samples=32, seed=7, quantiles=[0.1, 0.9]))
    check_forecast(d, "mean forecast past the first patch", dict(base, prediction_length=20),
                   want_median=False)
    gappy = series(1, 48, seed=3)
    gappy[0][5] = gappy[0][6] = gappy[0][30] = None
    check_forecast(d, "missing values (NaN sent as null)",
                   {"series": gappy, "prediction_length": 4})
    got = drive("forecast", "unix:" + d.sock, json.dumps(
        {"series": series(1, 20), "prediction_length": 2, "series_id": 'cpu "load"',
         "timeout_ms": 60000}))
    tap.ok(is_ok(got) and got["result"]["series_id"] == 'cpu "load"',
           "series_id (with a quote) echoed, timeout_ms accepted", got)


def check_forecast_errors(d):
    got = drive("forecast", "unix:" + d.sock,
                json.dumps({"series": series(1, 20), "prediction_length": 0}))
    tap.ok(got.get("kind") == "ESERVER" and got.get("rpc_code") == -32602 and
           got.get("field") == "prediction_length" and "prediction_length" in got["message"] and
           got.get("result") is None, "prediction_length 0: ESERVER -32602, field prediction_length",
           got)
    tap.ok(got.get("after_kind") == "OK", "the client is still usable after ESERVER", got)
    got = drive("forecast", "unix:" + d.sock,
                json.dumps({"series": series(1, 20), "prediction_length": 2, "inf_at": 5}))
    tap.ok(got.get("kind") == "EINVAL" and got.get("field") == "series[0][5]" and
           got.get("after_kind") == "OK", "an infinite value: EINVAL series[0][5], nothing sent",
           got)


def check_many(d, n, bad):
    specs = [{"series": series(1 + i % 2, 24 + i % 5, seed=i), "prediction_length": 3 + i % 4}
             for i in range(n)]
    if bad is not None:
        specs[bad]["prediction_length"] = 0
    path = os.path.join(d.dir, "many.json")
    with open(path, "w") as f:
        json.dump(specs, f)
    got = drive("many", "unix:" + d.sock, path, timeout=110)
    items = got.get("items") or []
    refs = reference(d, specs)
    wrong = [i for i, (it, ref) in enumerate(zip(items, refs)) if i != bad and not (
        it["kind"] == "OK" and close(it["result"]["mean"], ref["result"]["mean"]))]
    tap.ok(len(items) == n and not wrong,
           "forecast_many of %d: every good request's mean equals its own single answer" % n,
           {"wrong": wrong[:5], "first": items[wrong[0]] if wrong else None,
            "got": got if not items else None})
    if bad is None:
        tap.ok(got.get("rc") == "OK", "forecast_many of %d (over max_inflight): returns OK" % n,
               got.get("rc"))
        return
    it = items[bad] if len(items) > bad else {}
    tap.ok(it.get("kind") == "ESERVER" and it.get("rpc_code") == -32602 and
           it.get("field") == "prediction_length" and it.get("result") is None,
           "forecast_many: the bad request alone fails, -32602 prediction_length", it)
    tap.ok(got.get("rc") == "ESERVER" and got.get("after_kind") == "OK",
           "forecast_many returns the first failure (ESERVER); client still usable", got.get("rc"))


def check_timeout():
    tmp = tempfile.mkdtemp(prefix="totoc-")
    path = os.path.join(tmp, "silent.sock")
    silent = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    silent.bind(path)
    silent.listen(4)  # never accepts, never answers
    got = drive("timeout", "unix:" + path, 400)
    ms = got.get("elapsed_ms", -1)
    tap.ok(got.get("kind") == "ETIMEOUT" and got.get("result_is_null") and
           "400 ms" in got.get("message", ""), "a silent daemon: ETIMEOUT naming the timeout", got)
    tap.ok(380 <= ms <= 400 + 1500, "the timeout came after 400 ms (+ slack): %.0f ms" % ms, got)
    after = got.get("after") or {}
    tap.ok(after.get("kind") == "EIO" and "earlier error" in after.get("message", ""),
           "after a timeout the client is closed: EIO", after)
    silent.close()


def check_killed():
    d = Daemon()
    proc = subprocess.Popen([DRIVER, "hold", "unix:" + d.sock,
                             json.dumps({"series": series(1, 32), "prediction_length": 4})],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    first = proc.stdout.readline().decode().strip()
    os.kill(d.proc.pid, signal.SIGSTOP)  # it keeps the request unread
    proc.stdin.write(b"go\n")
    proc.stdin.flush()
    time.sleep(0.3)
    os.kill(d.proc.pid, signal.SIGKILL)
    try:
        out, _ = proc.communicate(timeout=30)
        got = json.loads(out.decode().strip().splitlines()[-1])
    except (subprocess.TimeoutExpired, ValueError, IndexError) as exc:
        proc.kill()
        got = {"error": repr(exc)}
    d.stop()
    tap.ok(first == "connected" and got.get("kind") == "EIO" and
           "connection lost" in got.get("message", ""),
           "the daemon killed mid-call: EIO, connection lost", got)
    tap.ok(got.get("after_kind") == "EIO", "later calls on that client: EIO", got)


def main():
    check_unit()
    check_connect_errors()
    check_timeout()
    with Daemon() as d:
        check_raw_calls(d)
        check_forecasts(d)
        check_forecast_errors(d)
        check_many(d, 100, 50)
        check_many(d, 600, None)
    check_killed()
    tap.done()


if __name__ == "__main__":
    main()
