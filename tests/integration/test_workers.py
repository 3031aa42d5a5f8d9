#!/usr/bin/env python3
"""test_workers - several inference workers (--device with a list) sharing one queue.

On the CPU, `--device cpu,cpu` gives two workers with a model each, as
`cuda:all` gives one per GPU: both take batches, every answer equals
toto-infer's, health/info/metrics list them (per_worker). A broken worker
(totod-faulty, TOTO_FAULT_BROKEN_WORKER) leaves the rotation after 3 failed
model calls, its requests answered with the error, and the other serves on;
health is degraded and says which. A reload swaps every worker's model.
Bad device lists are refused at start. On a machine with several GPUs,
--device cuda:all serves on each.
"""

import os
import re
import signal
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from totod_harness import (DTYPE, TINY_A, TOTOD, TOTOD_FAULTY, Daemon, Tap, close, forecast,  # noqa: E402
                           infer, series)

MODEL_ERROR = -32003


def load(d, clients=6, per_client=30, horizon=8):
    """Closed-loop load from threads; {(client, k): result or error}."""
    answers, lock = {}, threading.Lock()

    def run(ci):
        c = d.client()
        for k in range(per_client):
            s = series(1, 48, seed=(ci * 7 + k) % 5)
            msg = c.call("forecast", {"series": s, "prediction_length": horizon})
            with lock:
                answers[(ci, k)] = msg
        c.close()

    threads = [threading.Thread(target=run, args=(ci,)) for ci in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    return answers


def expected(horizon=8):
    return {seed: infer(TINY_A, {"series": series(1, 48, seed=seed), "prediction_length": horizon})
            for seed in range(5)}


def prom_workers(d):
    """{(family, worker, device): value} of the totod_worker_* series in GET /metrics (curl)."""
    p = subprocess.run(["curl", "-sS", "--fail-with-body", "http://127.0.0.1:%d/metrics" % d.http_port],
                       capture_output=True, text=True, timeout=20)
    out = {}
    for m in re.finditer(r'^(totod_worker_\w+)\{worker="(\d+)",device="([^"]*)"\} (\S+)$',
                         p.stdout, re.M):
        out[(m.group(1), int(m.group(2)), m.group(3))] = float(m.group(4))
    return out


def check_worker_metrics(tap, d):
    """Per-worker Prometheus series equal per_worker's, and busy seconds grow with work."""
    c = d.client()
    pw = c.call("metrics")["result"]["per_worker"]
    c.close()
    before = prom_workers(d)
    same = all(before.get(("totod_worker_batches_total", w["index"], w["device"])) == w["batches"]
               and before.get(("totod_worker_in_rotation", w["index"], w["device"])) == 1
               and before.get(("totod_worker_failed_batches_total", w["index"], w["device"])) == 0
               for w in pw)
    busy = [before.get(("totod_worker_busy_seconds_total", w["index"], w["device"]), 0) for w in pw]
    tap.ok(len(pw) == 2 and same and all(0 < b < 120 for b in busy)
           and all(abs(w["busy_seconds_total"] - b) < 1 for w, b in zip(pw, busy)),
           "GET /metrics: totod_worker_* by worker and device, as per_worker (busy %s s)" % busy,
           before)
    load(d, clients=2, per_client=10)
    after = prom_workers(d)
    grown = sum(after[("totod_worker_busy_seconds_total", w["index"], w["device"])]
                > before[("totod_worker_busy_seconds_total", w["index"], w["device"])] for w in pw)
    tap.ok(grown >= 1, "totod_worker_busy_seconds_total grows with forecasts", after)


def check_two_workers(tap, want):
    with Daemon("--device", "cpu,cpu", "--threads", "1", "--http", "127.0.0.1:0") as d:
        c = d.client()
        h = c.call("health")["result"]
        info = c.call("info")["result"]
        c.close()
        pw = h.get("per_worker", [])
        tap.ok(len(pw) == 2 and all(w["device"] == "cpu" and w["in_rotation"] for w in pw)
               and info["workers"] == 2 and len(info["per_worker"]) == 2,
               "--device cpu,cpu: two workers in health and info", h)
        answers = load(d)
        wrong = [k for k, m in answers.items()
                 if "result" not in m or not close(m["result"]["mean"],
                                                  want[(k[0] * 7 + k[1]) % 5]["mean"])]
        tap.ok(len(answers) == 180 and not wrong,
               "180 forecasts from 6 clients: every one equals toto-infer's (%d differ)"
               % len(wrong), wrong[:3])
        c = d.client()
        m = c.call("metrics")["result"]
        c.close()
        batches = [w["batches"] for w in m["per_worker"]]
        tap.ok(all(b > 0 for b in batches), "both workers took batches (%s)" % batches)
        check_worker_metrics(tap, d)
        d.proc.send_signal(signal.SIGHUP)
        deadline = time.time() + 20
        while time.time() < deadline and d.log_text().count("the model before the reload is freed") < 2:
            time.sleep(0.1)
        tap.ok(d.log_text().count("the model before the reload is freed") == 2,
               "SIGHUP: both workers swapped their model", d.log_text()[-1500:])
        answers = load(d, clients=2, per_client=10)
        tap.ok(all("result" in m for m in answers.values()), "forecasts after the reload")


def check_broken_worker(tap, want):
    env = {"TOTO_FAULT_BROKEN_WORKER": "1"}
    with Daemon("--device", "cpu,cpu", "--threads", "1", binary=TOTOD_FAULTY, env=env) as d:
        answers = load(d)
        results = [m for m in answers.values() if "result" in m]
        errors = [m for m in answers.values() if "error" in m]
        tap.ok(len(answers) == 180 and len(results) + len(errors) == 180
               and all(m["error"]["code"] == MODEL_ERROR and "broken" in m["error"]["message"]
                       for m in errors),
               "a broken worker: all 180 answered (%d results, %d model errors naming the fault)"
               % (len(results), len(errors)), errors[:2])
        c = d.client()
        h = c.call("health")["result"]
        c.close()
        pw = h.get("per_worker", [])
        reason = [r for r in h["reasons"] if "worker 1 (cpu) out of rotation" in r]
        tap.ok(h["status"] == "degraded" and reason and not pw[1]["in_rotation"]
               and pw[0]["in_rotation"] and pw[1]["failed_batches"] == 3,
               "health: degraded, worker 1 out of rotation after 3 failed calls", h)
        answers = load(d, clients=4, per_client=20)
        wrong = [k for k, m in answers.items()
                 if "result" not in m or not close(m["result"]["mean"],
                                                  want[(k[0] * 7 + k[1]) % 5]["mean"])]
        tap.ok(not wrong, "then every forecast is answered by worker 0, correctly (%d wrong)"
               % len(wrong), [answers[k] for k in wrong[:2]])
        tap.ok("out of rotation; 1 worker(s) serve on" in d.log_text(), "the log says so")


def check_bad_devices(tap):
    for spec, want_rc, words in (("cpu,gpu", 2, "cpu,gpu"), ("cpu,", 2, "cpu,"),
                                 ("cuda:all", 1, "no CUDA device")):
        if spec == "cuda:all" and cuda_devices() > 0:
            continue  # a GPU machine: cuda:all is valid there (check_all_gpus)
        p = subprocess.run([TOTOD, "--model", TINY_A, "--dtype", DTYPE, "--unix", "none",
                            "--device", spec], capture_output=True, text=True, timeout=60)
        tap.ok(p.returncode == want_rc and words in p.stderr,
               "--device %s: refused (exit %d), named" % (spec, want_rc), p.stderr[-500:])


def cuda_devices():
    """How many CUDA devices nvidia-smi lists (0 without one)."""
    try:
        p = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return 0
    return sum(1 for line in p.stdout.splitlines() if line.startswith("GPU ")) if p.returncode == 0 else 0


def near(a, b, tol=2e-2):
    """Two mean forecasts agree to tol of their scale (bfloat16 products may
    round differently in another batch composition)."""
    a = [x for row in a for x in row]
    b = [x for row in b for x in row]
    scale = max(max(abs(x) for x in a), max(abs(x) for x in b), 1e-12)
    return len(a) == len(b) and all(abs(x - y) <= tol * scale for x, y in zip(a, b))


def check_all_gpus(tap):
    """--device cuda:all on a machine with several GPUs: a worker per GPU, each
    opened, warmed and serving on its own device (CUDA's current device is per
    thread: a model on cuda:1 once ran its kernels against cuda:0's memory)."""
    n = cuda_devices()
    if n < 2:
        print("# cuda:all with several GPUs: skipped, %d CUDA device(s) here" % n)
        return
    with Daemon("--device", "cuda:all", "--dtype", "float32") as d:
        c = d.client()
        pw = c.call("health")["result"].get("per_worker", [])
        c.close()
        tap.ok(len(pw) == n and sorted(w["device"] for w in pw) == ["cuda:%d" % i for i in range(n)]
               and all(w["in_rotation"] and w["path"] == "compiled" for w in pw),
               "cuda:all: %d workers, one per GPU, compiled, in rotation" % n, pw)
        answers = load(d, clients=3 * n, per_client=40)
        by_seed = {}
        for (ci, k), m in answers.items():
            by_seed.setdefault((ci * 7 + k) % 5, []).append(m)
        same = all("result" in m for m in answers.values()) and all(
            near(m["result"]["mean"], ms[0]["result"]["mean"])
            for ms in by_seed.values() for m in ms)
        tap.ok(len(answers) == 120 * n and same,
               "%d forecasts over %d GPUs: all answered, the same series alike on every GPU"
               % (len(answers), n), list(answers.values())[:2])
        c = d.client()
        batches = [w["batches"] for w in c.call("metrics")["result"]["per_worker"]]
        c.close()
        tap.ok(all(b > 0 for b in batches), "every GPU took batches (%s)" % batches)
    tap.ok(d.proc.returncode == 0, "cuda:all: exits 0 on SIGTERM", d.log_text()[-1500:])


def main():
    tap = Tap()
    want = expected()
    check_two_workers(tap, want)
    check_broken_worker(tap, want)
    check_bad_devices(tap)
    check_all_gpus(tap)
    tap.done()


if __name__ == "__main__":
    main()
