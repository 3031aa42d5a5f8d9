#!/usr/bin/env python3
"""totod under pipelined load on Unix and TCP at once: 16 connections x 200
pipelined forecasts with distinct ids per round, every request answered
exactly once (ids counted), only documented errors (-32000 overloaded: 3200
requests outrun queue-limit 1024), every result equal to the same request's
answer alone, and resident memory (VmRSS) and descriptors flat over the
rounds: measured after a warm-up round and after the rest (TAP).

Usage: test_load_rss.py [ROUNDS]   (default 12; each round 3200 requests)
"""

import sys
import threading
import time

from totod_harness import OVERLOADED, Daemon, Tap, close, forecast, series, strip_daemon

tap = Tap()
ROUNDS = int(sys.argv[1]) if len(sys.argv) > 1 else 12
CONNS, PER_CONN = 16, 200  # half on the Unix socket, half on TCP
GROWTH_MIB = 8.0  # bound on VmRSS growth from after warm-up to the end
PARAMS = [{"series": series(1 + i % 3, 24 + 9 * i, i), "prediction_length": 4 + 3 * i}
          for i in range(6)]
PARAMS.append({"series": series(2, 40, 9), "prediction_length": 20, "num_samples": 8, "seed": 5,
               "quantiles": [0.1, 0.9]})


def vmrss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for text in f:
            if text.startswith("VmRSS:"):
                return int(text.split()[1])
    return -1


def fds(pid):
    import os
    return len(os.listdir("/proc/%d/fd" % pid))


def pipeline(d, kind, k, rnd, out):
    """Sends PER_CONN forecasts at once (ids unique over the whole run), reads every answer."""
    answers = []
    try:
        c = d.client(kind, timeout=120)
        c.send(*[forecast("r%d-%s%d-%d" % (rnd, kind, k, i), PARAMS[(k + i) % len(PARAMS)])
                 for i in range(PER_CONN)])
        for _ in range(PER_CONN):
            a = c.recv()
            if a is None:
                break
            answers.append(a)
        c.close()
    except OSError as e:
        answers.append({"exception": repr(e)})
    out[(kind, k)] = answers


def one_round(d, rnd, alone, tally):
    out = {}
    threads = [threading.Thread(target=pipeline, args=(d, kind, k, rnd, out))
               for kind in ("unix", "tcp") for k in range(CONNS // 2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(180)
    for (kind, k), answers in out.items():
        want_ids = {"r%d-%s%d-%d" % (rnd, kind, k, i) for i in range(PER_CONN)}
        got_ids = [a.get("id") for a in answers]
        tally["sent"] += PER_CONN
        tally["answered"] += len(answers)
        tally["duplicates"] += len(got_ids) - len(set(got_ids))
        tally["missing"] += len(want_ids - set(got_ids))
        tally["unknown"] += len(set(got_ids) - want_ids)
        for a in answers:
            if "result" in a:
                tally["results"] += 1
                i = int(a["id"].rsplit("-", 1)[1])
                if not close(strip_daemon(a["result"]), alone[(k + i) % len(PARAMS)]):
                    tally["wrong"] += 1
            elif a.get("error", {}).get("code") == OVERLOADED:
                tally["overloaded"] += 1
            else:
                tally["other"] += 1
                tally.setdefault("examples", []).append(a)


with Daemon() as d:
    pid = d.proc.pid
    c = d.client()
    alone = [strip_daemon(c.call("forecast", p)["result"]) for p in PARAMS]
    c.close()
    tally = {k: 0 for k in ("sent", "answered", "duplicates", "missing", "unknown", "results",
                            "overloaded", "wrong", "other")}
    t0 = time.time()
    one_round(d, 0, alone, tally)  # warm-up: allocator arenas, buffers, libtorch caches
    rss = [vmrss_kb(pid)]
    fd0 = fds(pid)
    for rnd in range(1, ROUNDS + 1):
        one_round(d, rnd, alone, tally)
        rss.append(vmrss_kb(pid))
    took = time.time() - t0
    fd1 = fds(pid)
    print("# %d rounds of %d connections x %d pipelined forecasts in %.1f s: %d results, %d "
          "overloaded (-32000)" % (ROUNDS + 1, CONNS, PER_CONN, took, tally["results"],
                                   tally["overloaded"]))
    print("# VmRSS (MiB) after warm-up and each round: %s"
          % " ".join("%.1f" % (r / 1024) for r in rss))
    tap.ok(tally["answered"] == tally["sent"] and not tally["missing"] and not tally["duplicates"]
           and not tally["unknown"],
           "%d requests on %d Unix + %d TCP connections: every id answered exactly once"
           % (tally["sent"], CONNS // 2, CONNS // 2),
           {k: v for k, v in tally.items() if k != "examples"})
    tap.ok(tally["other"] == 0 and tally["results"] > tally["sent"] // 4,
           "only documented errors: %d results, %d -32000 overloaded (queue-limit 1024), "
           "nothing else" % (tally["results"], tally["overloaded"]),
           tally.get("examples", [])[:3])
    tap.ok(tally["wrong"] == 0, "every result equals the same request's answer alone "
           "(float64, 1e-12)", tally["wrong"])
    growth = (rss[-1] - rss[0]) / 1024
    tap.ok(growth < GROWTH_MIB,
           "VmRSS flat: %.1f MiB after warm-up, %.1f MiB after %d more rounds (%d requests): "
           "%+.1f MiB (bound %.0f)" % (rss[0] / 1024, rss[-1] / 1024, ROUNDS,
                                       ROUNDS * CONNS * PER_CONN, growth, GROWTH_MIB), rss)
    tap.ok(fd1 <= fd0, "open descriptors flat: %d after warm-up, %d at the end" % (fd0, fd1))
    h = d.client().call("health")["result"]
    tap.ok(h["status"] == "ok" and h["inflight"] == 0 and h["queue_depth"] == 0,
           "health ok, nothing left in flight", h)
    tap.ok(d.stop() == 0, "exit 0")
tap.done()
