#!/usr/bin/env python3
"""test_io_threads - request lines parsed off the loop (--io-threads).

Under load (16 or more forecasts owed) totod hands long request lines to its
parse threads; these checks keep it there with connections that pipeline,
then check what a client can see: every request answered once and right,
each connection's requests dispatched in the order sent (errors answered at
dispatch come back in order), parse errors and batch arrays as before,
connections that close with lines at the threads, SIGTERM under load, and
the metric that counts the lines (0 with --io-threads 0).
"""

import json
import os
import signal
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from totod_harness import Daemon, TINY_A, Tap, close, infer, line, series  # noqa: E402

PIPELINE = 24  # in flight per connection: 2 connections keep 16+ owed


def forecast_msg(rid, seed, t=96, horizon=8):
    return {"jsonrpc": "2.0", "id": rid, "method": "forecast",
            "params": {"series": series(1, t, seed=seed), "prediction_length": horizon}}


def pipelined(d, n_conns, per_conn, result, lock):
    """n_conns connections, each keeping PIPELINE forecasts in flight."""

    def run(ci):
        c = d.client()
        sent = got = 0
        while got < per_conn:
            while sent < per_conn and sent - got < PIPELINE:
                c.send(forecast_msg("%d-%d" % (ci, sent), (ci + sent) % 5))
                sent += 1
            m = c.recv()
            got += 1
            with lock:
                result.setdefault(m.get("id"), []).append(m)
        c.close()

    threads = [threading.Thread(target=run, args=(ci,)) for ci in range(n_conns)]
    for t in threads:
        t.start()
    return threads


def metric(d, name):
    c = d.client()
    m = c.call("metrics")["result"]
    c.close()
    return m[name]


def check_answers(tap, d, want):
    result, lock = {}, threading.Lock()
    for t in pipelined(d, 4, 200, result, lock):
        t.join(180)
    wrong = [rid for rid, ms in result.items()
             if len(ms) != 1 or "result" not in ms[0]
             or not close(ms[0]["result"]["mean"], want[sum(map(int, rid.split("-"))) % 5]["mean"])]
    tap.ok(len(result) == 800 and not wrong,
           "800 pipelined forecasts on 4 connections: each answered once, equal to toto-infer's "
           "(%d wrong)" % len(wrong), [result[r] for r in wrong[:2]])
    off = metric(d, "lines_parsed_off_loop")
    tap.ok(off > 0, "lines_parsed_off_loop counts the lines the threads parsed (%d)" % off)
    return off


def check_order(tap, d):
    """Refusals are answered at dispatch: their order is the dispatch order."""
    result, lock = {}, threading.Lock()
    load = pipelined(d, 2, 300, result, lock)
    c = d.client()
    bad = []
    for k in range(60):
        # Long and short lines alternate: a short one alone would parse inline.
        m = forecast_msg("bad-%d" % k, k % 5, t=96 if k % 2 == 0 else 4)
        m["params"]["prediction_length"] = 0  # refused at dispatch, after the parse
        bad.append(m)
    c.send(*bad)
    answers = [c.recv() for _ in range(60)]
    ids = [a["id"] for a in answers]
    c.close()
    for t in load:
        t.join(180)
    tap.ok(ids == ["bad-%d" % k for k in range(60)],
           "60 refused forecasts pipelined under load: answered in the order sent", ids[:10])
    # The long ones' params were typed by a parse thread, the short ones' on
    # the loop: the same refusal either way.
    errors = [a.get("error", {}) for a in answers]
    same = all(e.get("code") == -32602 and e.get("data", {}).get("field") == "prediction_length"
               and e.get("message", "").startswith("prediction_length:")
               and e.get("message") == errors[0].get("message") for e in errors)
    tap.ok(same, "and each refusal names prediction_length, alike from the threads and the loop",
           errors[:2])
    # Values judged by a parse thread (no model needed), limits by the loop:
    # every value missing is refused on series, and a series over the model's
    # limit still on its limit first (long lines under load, then one short).
    load = pipelined(d, 2, 200, result, lock)
    c = d.client()
    empty = {"jsonrpc": "2.0", "id": "empty", "method": "forecast",
             "params": {"series": [None] * 300, "prediction_length": 8}}
    wide = {"jsonrpc": "2.0", "id": "wide", "method": "forecast",
            "params": {"series": [[None] * 4] * 600, "prediction_length": 8}}
    short = {"jsonrpc": "2.0", "id": "short", "method": "forecast",
             "params": {"series": [None] * 4, "prediction_length": 8}}
    c.send(empty, wide, short)
    got = {a["id"]: a.get("error", {}) for a in (c.recv(), c.recv(), c.recv())}
    c.close()
    for t in load:
        t.join(180)
    missing = "series: no observed value (every value is missing)"
    tap.ok(got["empty"].get("message") == missing and got["short"].get("message") == missing
           and "variates, the limit is" in got["wide"].get("message", ""),
           "a series with every value missing: refused alike from the threads and the loop; "
           "one over the variates' limit refused on the limit first", got)


def check_errors_and_batches(tap, d, want):
    result, lock = {}, threading.Lock()
    load = pipelined(d, 2, 200, result, lock)
    c = d.client()
    long_bad = b'{"jsonrpc":"2.0","id":"x","method":"forecast","params":{"series":[[' + \
        b"1.0," * 400 + b"oops]]}}\n"
    c.send(long_bad)
    err = c.recv()
    batch = [forecast_msg("b%d" % k, k) for k in range(3)]
    c.send(json.dumps(batch).encode() + b"\n")
    answer = c.recv()
    c.close()
    for t in load:
        t.join(180)
    tap.ok(err.get("error", {}).get("code") == -32700 and "at byte" in err["error"]["message"],
           "a long malformed line under load: -32700 with the byte", err)
    ok = isinstance(answer, list) and sorted(a["id"] for a in answer) == ["b0", "b1", "b2"] and all(
        close(a["result"]["mean"], want[int(a["id"][1:])]["mean"]) for a in answer)
    tap.ok(ok, "a batch array under load: one array, every member right", answer)


def check_close_early(tap, d):
    """Connections that send many lines and close at once; the others are served on."""
    result, lock = {}, threading.Lock()
    load = pipelined(d, 2, 200, result, lock)
    for _ in range(10):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(d.sock)
        s.sendall(b"".join(line(forecast_msg(k, k % 5)) for k in range(40)))
        s.close()
    for t in load:
        t.join(180)
    tap.ok(len(result) == 400 and all(len(v) == 1 and "result" in v[0] for v in result.values()),
           "10 connections closed with 40 lines each in flight: the others' 400 answered",
           len(result))
    c = d.client()
    h = c.call("health")["result"]
    c.close()
    tap.ok(h["status"] == "ok", "and totod is healthy", h)


def check_writes(tap, d, want):
    """Answers written by the helpers: counted; big ones and unread ones still whole."""
    before = metric(d, "answers_written_off_loop")
    result, lock = {}, threading.Lock()
    for t in pipelined(d, 16, 100, result, lock):
        t.join(180)
    after = metric(d, "answers_written_off_loop")
    tap.ok(len(result) == 1600 and all(len(v) == 1 and "result" in v[0] for v in result.values())
           and after > before,
           "16 connections, 1600 forecasts: all answered; answers_written_off_loop %d -> %d"
           % (before, after))
    # Answers far larger than a socket's buffer: the kernel takes part, libuv the rest.
    big = {"jsonrpc": "2.0", "method": "forecast",
           "params": {"series": series(1, 96, seed=1), "prediction_length": 64,
                      "num_samples": 512, "return_samples": True, "seed": 7}}
    load = pipelined(d, 2, 200, result, lock)
    c = d.client()
    c.send(*[dict(big, id="big-%d" % k) for k in range(6)])
    answers = [c.recv() for _ in range(6)]
    c.close()
    for t in load:
        t.join(180)
    sizes = [len(json.dumps(a)) for a in answers]
    # Whole: every path of every answer, and the same mean (same seed; the
    # last bits of sampled paths may depend on the batch sizes).
    same = all(len(a.get("result", {}).get("samples", [])) == 512
               and all(len(p) == 1 and len(p[0]) == 64 for p in a["result"]["samples"])
               and close(a["result"]["mean"], answers[0]["result"]["mean"], 1e-9)
               for a in answers)
    tap.ok(sorted(a["id"] for a in answers) == ["big-%d" % k for k in range(6)] and same
           and min(sizes) > 300000,
           "6 answers of ~%d KB under load: whole (512 paths x 64 steps each), same mean" % (min(sizes) // 1000),
           {"ids": [a.get("id") for a in answers], "sizes": sizes, "same": same,
            "errors": [a.get("error") for a in answers]})
    # A client that reads nothing for a while: its answers wait, then all arrive.
    load = pipelined(d, 2, 200, result, lock)
    c = d.client()
    c.send(*[forecast_msg("slow-%d" % k, k % 5) for k in range(200)])
    time.sleep(1.0)
    got = [c.recv() for _ in range(200)]
    c.close()
    for t in load:
        t.join(180)
    tap.ok(sorted(m["id"] for m in got) == sorted("slow-%d" % k for k in range(200))
           and all(close(m["result"]["mean"], want[int(m["id"][5:]) % 5]["mean"]) for m in got),
           "a client that reads late: its 200 answers all arrive, right")


def check_sigterm(tap):
    with Daemon("--io-threads", "2", "--grace-ms", "20000") as d:
        result, lock = {}, threading.Lock()
        counts = []

        clients = [d.client() for _ in range(3)]  # connected before the signal

        def run(ci):
            c = clients[ci]
            msgs = [forecast_msg("%d-%d" % (ci, k), k % 5) for k in range(150)]
            c.send(*msgs)
            n = 0
            while c.recv() is not None:
                n += 1
            with lock:
                counts.append(n)

        threads = [threading.Thread(target=run, args=(ci,)) for ci in range(3)]
        for t in threads:
            t.start()
        while metric(d, "lines_parsed_off_loop") == 0:
            pass
        d.proc.send_signal(signal.SIGTERM)
        for t in threads:
            t.join(120)
        rc = d.proc.wait(60)
        tap.ok(counts == [150, 150, 150] and rc == 0,
               "SIGTERM with lines at the parse threads: all 450 answered, exit 0 (%s, rc %s)"
               % (counts, rc), d.log_text()[-1500:])


def main():
    tap = Tap()
    want = {seed: infer(TINY_A, {"series": series(1, 96, seed=seed), "prediction_length": 8})
            for seed in range(5)}
    # Write helpers poll 10 x handoff-poll-us after a round: long enough here
    # (a CPU model call takes milliseconds) for them to be awake at the next.
    with Daemon("--io-threads", "2", "--handoff-poll-us", "2000") as d:
        check_answers(tap, d, want)
        check_order(tap, d)
        check_errors_and_batches(tap, d, want)
        check_close_early(tap, d)
        check_writes(tap, d, want)
    check_sigterm(tap)
    with Daemon("--io-threads", "0") as d:
        result, lock = {}, threading.Lock()
        for t in pipelined(d, 2, 100, result, lock):
            t.join(120)
        tap.ok(len(result) == 200 and metric(d, "lines_parsed_off_loop") == 0
               and metric(d, "answers_written_off_loop") == 0,
               "--io-threads 0: 200 forecasts, no line parsed or answer written off the loop")
    tap.done()


if __name__ == "__main__":
    main()
