#!/usr/bin/env python3
"""totod under load: 32 pipelining clients get toto-infer's exact answers,
batching never changes an answer, vanishing and slow clients hurt nobody (TAP)."""

import concurrent.futures
import json
import selectors
import threading
import time

from totod_harness import TINY_A, TINY_B, Daemon, Tap, close, forecast, infer, series, strip_daemon

tap = Tap()

# A few distinct requests (toto-infer costs a process start each).
REQUESTS_A = [
    {"series": series(1, 40, 0)[0], "prediction_length": 8},
    {"series": series(3, 70, 1), "prediction_length": 12, "quantiles": [0.1, 0.5, 0.9]},
    {"series": series(2, 33, 2), "prediction_length": 24, "num_samples": 16, "seed": 7,
     "quantiles": [0.25, 0.75], "return_samples": True},
    {"series": series(4, 50, 3), "prediction_length": 5, "groups": [0, 0, 1, 1]},
    {"series": [1.0, None, 3.5, 4.0, None, 6.0, 7.5, 8.0, 9.0], "prediction_length": 17},
    {"series": series(1, 200, 4)[0], "prediction_length": 40, "num_samples": 8, "seed": 3},
]
REQUESTS_B = [
    {"series": series(4, 130, 5), "prediction_length": 70, "groups": [0, 0, 1, 1]},
    {"series": series(2, 64, 6), "prediction_length": 10, "num_samples": 4, "seed": 11},
]


def expected(model, requests):
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        return list(pool.map(lambda p: infer(model, p), requests))


def pipelining_client(d, k, per_client, requests, out):
    """Sends all its requests at once, then reads every answer (any order)."""
    c = d.client(timeout=60)
    ids = {}
    msgs = []
    for n in range(per_client):
        which = (k + n) % len(requests)
        rid = "k%d-%d" % (k, n)
        ids[rid] = which
        msgs.append(forecast(rid, requests[which]))
    c.send(*msgs)
    answers = {}
    for _ in range(per_client):
        a = c.recv()
        if a is None:
            break
        answers[a["id"]] = a
    c.close()
    out[k] = (ids, answers)


def run_clients(d, n_clients, per_client, requests):
    out = {}
    threads = [threading.Thread(target=pipelining_client, args=(d, k, per_client, requests, out))
               for k in range(n_clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    return out


def check_load(d, model, requests, want, n_clients, per_client, label):
    out = run_clients(d, n_clients, per_client, requests)
    total = mismatched = missing = 0
    batch_sizes = set()
    diag = None
    for k, (ids, answers) in out.items():
        for rid, which in ids.items():
            total += 1
            a = answers.get(rid)
            if a is None or "result" not in a:
                missing += 1
                diag = diag or a
                continue
            batch_sizes.add(a["result"]["timing"]["batch_size"])
            if not close(strip_daemon(a["result"]), want[which]):
                mismatched += 1
                diag = diag or (which, a["result"], want[which])
    tap.ok(len(out) == n_clients and missing == 0 and total == n_clients * per_client,
           "%s: %d clients x %d pipelined requests all answered" % (label, n_clients, per_client),
           (len(out), missing, diag))
    tap.ok(mismatched == 0, "%s: every answer equals toto-infer's (float64, 1e-12)" % label, diag)
    tap.ok(max(batch_sizes or {0}) > 1,
           "%s: requests were batched (sizes seen %s)" % (label, sorted(batch_sizes)))
    # With requests waiting behind a batch, its answers were written by the
    # encoder thread while the next batch ran (and were still all correct).
    m = d.client().call("metrics")["result"]
    tap.ok(0 < m["batches_encoded_async"] <= m["batches"],
           "%s: the encoder thread answered batches while the next ran (%d of %d)"
           % (label, m["batches_encoded_async"], m["batches"]), m)


def batch_invariance(d, requests, want):
    """The same requests alone (batch of 1) and amid a crowd give the same answer."""
    c = d.client()
    alone = []
    for p in requests:
        a = c.call("forecast", p)
        alone.append(a["result"])
    tap.ok(all(a["timing"]["batch_size"] == 1 for a in alone)
           and close([strip_daemon(a) for a in alone], want),
           "alone (batch size 1) each request equals toto-infer's answer")
    # Now each of them inside batches of mixed neighbours, sent by several clients at once.
    out = run_clients(d, 8, 12, requests)
    seen_in_batches = set()
    differ = 0
    for ids, answers in out.values():
        for rid, which in ids.items():
            r = answers.get(rid, {}).get("result")
            if r is None or not close(strip_daemon(r), strip_daemon(alone[which])):
                differ += 1
            elif r["timing"]["batch_size"] > 1:
                seen_in_batches.add(which)
    tap.ok(differ == 0 and len(seen_in_batches) == len(requests),
           "batch invariance: in batches of mixed requests every answer is unchanged",
           (differ, seen_in_batches))


def vanishing_client(d):
    for _ in range(5):
        c = d.client()
        c.send(*[forecast(i, REQUESTS_A[i % len(REQUESTS_A)]) for i in range(20)])
        c.close()  # gone before any answer
    time.sleep(0.3)
    c = d.client()
    a = c.call("forecast", REQUESTS_A[0])
    h = c.call("health")["result"]
    tap.ok("result" in a and h["status"] == "ok" and d.proc.poll() is None,
           "clients vanishing mid-request: the daemon keeps serving others", (a, h))


def slow_reader():
    """A client that never reads is stopped being read; others are not stalled.

    max-inflight bounds the slow client's share of the queue; its answers (big: 64
    variates) pile up past max-write-buffer, and the daemon stops reading it.
    """
    with Daemon("--max-inflight", "4", "--max-write-buffer", "65536") as d:
        slow = d.client()
        big = {"series": series(64, 16, 9), "prediction_length": 64}
        sent = [0]

        def flood():
            try:
                while sent[0] < 5000:
                    slow.send(forecast(sent[0], big))
                    sent[0] += 1
            except OSError:
                pass

        t = threading.Thread(target=flood, daemon=True)
        t.start()
        time.sleep(1.0)
        fast = d.client()
        t0 = time.time()
        ok = all("result" in fast.call("forecast", REQUESTS_A[0]) for _ in range(10))
        elapsed = time.time() - t0
        tap.ok(ok and elapsed < 3, "a slow reader does not stall another client (%.2fs)" % elapsed)
        tap.ok(sent[0] < 5000, "backpressure: the slow reader's requests stopped being read "
               "(%d of 5000 sent)" % sent[0])
        slow.close()
        tap.ok(fast.call("health")["result"]["status"] == "ok", "still serving after it left")
        fast.close()
        tap.ok(d.stop() == 0, "slow-reader daemon exits 0")


def answers_in_arrival_order(clients, total, timeout=60):
    """Reads the named clients' sockets as answers arrive: [(name, answer), ...]."""
    sel = selectors.DefaultSelector()
    for name, c in clients.items():
        sel.register(c.s, selectors.EVENT_READ, name)
    order = []
    deadline = time.time() + timeout
    while len(order) < total and time.time() < deadline:
        for key, _ in sel.select(1):
            c = clients[key.data]
            chunk = c.s.recv(1 << 20)
            if not chunk:
                sel.unregister(c.s)
                continue
            c.buf += chunk
            while b"\n" in c.buf:
                text, c.buf = c.buf.split(b"\n", 1)
                order.append((key.data, json.loads(text)))
    sel.close()
    return order


def fairness():
    """One connection pipelines 200 forecasts, then a second sends one. The queue takes
    connections round-robin, so the second's answer comes back after a handful of the
    first's, not after all 200; the first's own answers keep their order."""
    n = 200
    with Daemon("--max-batch-size", "8") as d:
        a, b = d.client(timeout=60), d.client(timeout=60)
        params = {"series": series(1, 256, 0)[0], "prediction_length": 64}
        a.send(*[forecast("a%d" % i, params) for i in range(n)])
        b.send(forecast("b", params))
        order = answers_in_arrival_order({"a": a, "b": b}, n + 1)
        names = [who for who, _ in order]
        before_b = names.index("b") if "b" in names else None
        tap.ok(before_b is not None and before_b < n // 4,
               "fairness: a second connection's one request is answered after %s of the "
               "first connection's %d pipelined ones (FIFO would make it %d)"
               % (before_b, n, n), names.count("a"))
        a_ids = [ans.get("id") for who, ans in order if who == "a"]
        tap.ok(a_ids == ["a%d" % i for i in range(n)],
               "the first connection's answers keep its order (one worker)", a_ids[:10])
        results = {ans.get("id"): ans.get("result") for _, ans in order}
        tap.ok(all(results.get(k) for k in results) and len(results) == n + 1
               and close(strip_daemon(results["b"]), strip_daemon(results["a0"]))
               and close(strip_daemon(results["b"]), strip_daemon(results["a%d" % (n - 1)])),
               "every request computed; the same params give the same answer in any batch",
               [k for k, v in results.items() if not v][:5])
        a.close()
        b.close()
        tap.ok(d.stop() == 0, "fairness daemon exits 0")


want_a = expected(TINY_A, REQUESTS_A)
want_b = expected(TINY_B, REQUESTS_B)
with Daemon("--batch-delay-us", "3000", "--max-write-buffer", "65536") as d:
    check_load(d, TINY_A, REQUESTS_A, want_a, 32, 8, "tiny-a")
    batch_invariance(d, REQUESTS_A, want_a)
    vanishing_client(d)
    tap.ok(d.stop() == 0, "tiny-a daemon exits 0")
with Daemon("--batch-delay-us", "3000", model=TINY_B) as d:
    check_load(d, TINY_B, REQUESTS_B, want_b, 8, 6, "tiny-b")
    tap.ok(d.stop() == 0, "tiny-b daemon exits 0")
slow_reader()
fairness()
tap.done()
