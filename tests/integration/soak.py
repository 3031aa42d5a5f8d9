#!/usr/bin/env python3
"""soak.py - totod under mixed load for a while, its memory watched (TAP).

Starts a totod (any binary, any model, any device), then for the whole run:

  - pipeliners (half on the Unix socket, half on TCP) send windows of 32 forecasts
    with distinct ids and read every answer: each id answered exactly once, each
    result equal to the same request's answer alone (within --rel), -32000 the
    only error allowed;
  - two closed-loop clients alternate forecast, health and metrics;
  - churners connect, send a forecast and half a line, and vanish unanswered;
  - a bad client sends malformed lines and invalid params (-32700, -32602);
  - with --http (and curl on PATH), curl POSTs /v1/forecast and GETs /health;
  - every --sample-every seconds: VmRSS, open descriptors and threads of totod
    (/proc/PID/status), its health and queue.

At the end: nothing lost or answered twice, no wrong answer, no undocumented error,
VmRSS growth from the first sample after the warm-up to the last under
--max-growth-mib, descriptors flat, health ok, and exit 0 on SIGTERM.

  tests/integration/soak.py --seconds 60                      # CI (tiny-a, CPU)
  tests/integration/soak.py --minutes 30 --totod build/daemon/totod \\
      --model /srv/toto/Toto-Open-Base-1.0 --device cuda --dtype float32

Python 3 standard library only; prints one TAP line per check and the samples as
comments, and with --json FILE writes every sample and count there.
"""

import argparse
import atexit
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
BUILD = os.environ.get("TOTO_BUILD_DIR") or os.path.join(ROOT, "build")
DATA = os.environ.get("TOTO_TEST_DATA") or os.path.join(ROOT, "tests", "data")
OVERLOADED, PARSE, INVALID_PARAMS = -32000, -32700, -32602


def options():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    g = p.add_mutually_exclusive_group()
    g.add_argument("--minutes", type=float, help="how long (default: 1 minute)")
    g.add_argument("--seconds", type=float, help="how long, in seconds")
    p.add_argument("--totod", default=os.path.join(BUILD, "daemon", "totod"))
    p.add_argument("--model", default=os.path.join(DATA, "fixtures", "tiny-a"))
    p.add_argument("--device", default="cpu")
    p.add_argument("--dtype", default="float64")
    p.add_argument("--totod-arg", action="append", default=[], metavar="ARG",
                   help="one more argument for totod (repeat: --totod-arg=--compile)")
    p.add_argument("--pipeliners", type=int, default=6)
    p.add_argument("--window", type=int, default=32, help="forecasts per pipelined window")
    p.add_argument("--http", action="store_true", help="also curl the HTTP endpoints")
    p.add_argument("--sample-every", type=float, default=5.0, help="seconds between samples")
    p.add_argument("--warmup", type=float, default=None,
                   help="seconds before the memory baseline (default: a sixth of the run, "
                   "at most 60)")
    p.add_argument("--max-growth-mib", type=float, default=16.0,
                   help="allowed VmRSS growth after the warm-up")
    p.add_argument("--rel", type=float, default=None,
                   help="tolerance of a batched answer against the same request alone, "
                   "relative to the forecast's largest value (default 1e-9 in float64, "
                   "2e-2 otherwise)")
    p.add_argument("--json", metavar="FILE", help="write the samples and counts here")
    a = p.parse_args()
    a.duration = a.seconds if a.seconds is not None else 60 * (a.minutes or 1)
    if a.warmup is None:
        a.warmup = min(60.0, a.duration / 6)
    if a.rel is None:
        a.rel = 1e-9 if a.dtype == "float64" else 2e-2
    return a


OPT = options()
N_TAP = [0, 0]
LOCK = threading.Lock()


def ok(cond, name, diag=None):
    N_TAP[0] += 1
    N_TAP[1] += not cond
    print(("ok" if cond else "not ok") + " %d - %s" % (N_TAP[0], name), flush=True)
    if not cond and diag is not None:
        for text in str(diag)[:3000].splitlines():
            print("# " + text, flush=True)
    return bool(cond)


def note(text):
    print("# " + text, flush=True)


def series(v, t, seed):
    import math
    return [[10 * (i + 1) + 3 * math.sin(s / 7.0 + i + seed) + 0.02 * s * (seed % 5)
             for s in range(t)] for i in range(v)]


# The requests of the run: varied shapes, one sampled with a seed (deterministic).
PARAMS = [
    {"series": series(1, 96, 0)[0], "prediction_length": 16},
    {"series": series(3, 200, 1), "prediction_length": 16, "quantiles": [0.1, 0.5, 0.9]},
    {"series": series(2, 64, 2), "prediction_length": 8},
    {"series": series(1, 512, 3)[0], "prediction_length": 64},
    {"series": series(4, 128, 4), "prediction_length": 24, "groups": [0, 0, 1, 1]},
    {"series": series(1, 150, 5)[0], "prediction_length": 96, "num_samples": 16, "seed": 7,
     "quantiles": [0.25, 0.75]},
]


# ---- the daemon ----

class Totod:
    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="totod-soak-")
        self.sock = os.path.join(self.dir, "toto.sock")
        cmd = [OPT.totod, "--model", OPT.model, "--device", OPT.device, "--dtype", OPT.dtype,
               "--unix", self.sock, "--tcp", "127.0.0.1:0"]
        if OPT.http:
            cmd += ["--http", "127.0.0.1:0"]
        cmd += OPT.totod_arg
        env = {k: v for k, v in os.environ.items()
               if not k.startswith("TOTO_") and k != "NOTIFY_SOCKET"}
        self.log, self.port, self.http_port = [], None, None
        self.ready = threading.Event()
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, env=env)
        atexit.register(self.kill)  # never left running, whatever ends the script
        threading.Thread(target=self._read, daemon=True).start()
        deadline = time.time() + 900  # a cold GPU warms its compiled path first
        while not self.ready.wait(0.1):
            if self.proc.poll() is not None or time.time() > deadline:
                sys.exit("totod did not start: %s\n%s" % (cmd, "\n".join(self.log[-30:])))

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def _read(self):
        for raw in self.proc.stderr:
            text = raw.decode(errors="replace").rstrip("\n")
            self.log.append(text)
            m = re.search(r"listening on (tcp|http) \S+:(\d+)$", text)
            if m and m.group(1) == "tcp":
                self.port = int(m.group(2))
            elif m:
                self.http_port = int(m.group(2))
            if text.endswith("totod: ready"):
                self.ready.set()

    def status(self):
        out = {}
        with open("/proc/%d/status" % self.proc.pid) as f:
            for text in f:
                k, _, v = text.partition(":")
                if k in ("VmRSS", "VmHWM", "Threads"):
                    out[k] = int(v.split()[0])
        out["fds"] = len(os.listdir("/proc/%d/fd" % self.proc.pid))
        return out


class Conn:
    def __init__(self, d, kind, timeout=300):
        if kind == "unix":
            self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.s.connect(d.sock)
        else:
            self.s = socket.create_connection(("127.0.0.1", d.port))
        self.s.settimeout(timeout)
        self.buf = b""

    def send(self, msgs):
        self.s.sendall(b"".join(m if isinstance(m, bytes) else
                                (json.dumps(m, separators=(",", ":")) + "\n").encode()
                                for m in msgs))

    def recv(self):
        while b"\n" not in self.buf:
            chunk = self.s.recv(1 << 20)
            if not chunk:
                return None
            self.buf += chunk
        text, self.buf = self.buf.split(b"\n", 1)
        return json.loads(text)

    def call(self, method, params=None, rid=1):
        msg = {"jsonrpc": "2.0", "id": rid, "method": method}
        if params is not None:
            msg["params"] = params
        self.send([msg])
        return self.recv()

    def close(self):
        self.s.close()


def fc(rid, p):
    return {"jsonrpc": "2.0", "id": rid, "method": "forecast", "params": p}


# ---- answers ----

def numbers(result):
    return {k: result.get(k) for k in ("mean", "median", "quantiles", "samples")}


def flat(x):
    if isinstance(x, dict):
        for v in x.values():
            yield from flat(v)
    elif isinstance(x, list):
        for v in x:
            yield from flat(v)
    elif isinstance(x, (int, float)) and not isinstance(x, bool):
        yield float(x)
    else:
        yield x


def agree(got, want, scale):
    a, b = list(flat(got)), list(flat(want))
    if len(a) != len(b):
        return False
    for x, y in zip(a, b):
        if isinstance(x, float) and isinstance(y, float):
            if abs(x - y) > OPT.rel * scale:
                return False
        elif x != y:
            return False
    return True


class Tally:
    def __init__(self):
        self.c = {}
        self.examples = []

    def add(self, key, n=1, example=None):
        with LOCK:
            self.c[key] = self.c.get(key, 0) + n
            if example is not None and len(self.examples) < 5:
                self.examples.append(example)


T = Tally()
STOP = threading.Event()


def pipeliner(d, kind, k, ref):
    rng = random.Random(k)
    w = 0
    while not STOP.is_set():
        try:
            c = Conn(d, kind)
        except OSError as e:
            T.add("connect failed", example=repr(e))
            time.sleep(0.5)
            continue
        for _ in range(50):  # 50 windows a connection, then a fresh one
            if STOP.is_set():
                break
            picks = [rng.randrange(len(PARAMS)) for _ in range(OPT.window)]
            ids = ["%s%d-%d-%d" % (kind, k, w, i) for i in range(OPT.window)]
            w += 1
            try:
                c.send([fc(rid, PARAMS[p]) for rid, p in zip(ids, picks)])
                T.add("sent", len(ids))
                seen = {}
                for _ in ids:
                    a = c.recv()
                    if a is None:
                        break
                    seen[a.get("id")] = seen.get(a.get("id"), 0) + 1
                    check_answer(a, ids, picks, ref)
            except (OSError, ValueError) as e:
                T.add("connection errors", example=repr(e))
                break
            T.add("lost", sum(1 for rid in ids if rid not in seen))
            T.add("duplicates", sum(v - 1 for v in seen.values()))
            T.add("unknown ids", sum(1 for rid in seen if rid not in ids))
        c.close()


def check_answer(a, ids, picks, ref):
    if "result" in a:
        T.add("results")
        try:
            p = picks[ids.index(a["id"])]
        except ValueError:
            return
        want, scale = ref[p]
        if not agree(numbers(a["result"]), want, scale):
            T.add("wrong", example=("wrong", a["id"], str(a)[:400]))
    elif a.get("error", {}).get("code") == OVERLOADED:
        T.add("overloaded")
    else:
        T.add("undocumented errors", example=a)


def closed_loop(d, kind, ref):
    c = Conn(d, kind)
    i = 0
    while not STOP.is_set():
        i += 1
        p = i % len(PARAMS)
        a = c.call("forecast", PARAMS[p], rid="cl%d" % i)
        T.add("sent")
        if a is None:
            T.add("lost")
            break
        check_answer(a, ["cl%d" % i], [p], ref)
        for method in ("health", "metrics"):
            a = c.call(method, rid=method)
            T.add("calls")
            if not a or "result" not in a:
                T.add("undocumented errors", example=a)
    c.close()


def churner(d):
    i = 0
    while not STOP.wait(0.1):
        i += 1
        try:
            c = Conn(d, "unix" if i % 2 else "tcp")
            c.send([fc("gone", PARAMS[i % len(PARAMS)]),
                    b'{"jsonrpc":"2.0","id":"half","method":"forec'])
            c.close()
            T.add("vanished clients")
        except OSError as e:
            T.add("connect failed", example=repr(e))


def bad_client(d):
    c = Conn(d, "tcp")
    while not STOP.wait(0.25):
        c.send([b"{not json\n"])
        a = c.recv()
        e = c.call("forecast", {"series": [1, 2, 3], "prediction_length": 0}, rid="bad")
        T.add("bad lines", 2)
        if (a or {}).get("error", {}).get("code") != PARSE or \
                (e or {}).get("error", {}).get("code") != INVALID_PARAMS:
            T.add("undocumented errors", example=(a, e))
    c.close()


def http_client(d, ref):
    body = json.dumps(PARAMS[0])
    want, scale = ref[0]
    while not STOP.wait(0.3):
        r = subprocess.run(["curl", "-sS", "--max-time", "120", "-w", "\n%{http_code}",
                            "--data-binary", body,
                            "http://127.0.0.1:%d/v1/forecast" % d.http_port],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        text, _, code = r.stdout.decode(errors="replace").rpartition("\n")
        T.add("http forecasts")
        if code == "429":
            T.add("overloaded")
        elif code != "200" or not agree(numbers(json.loads(text)), want, scale):
            T.add("wrong", example=("http", code, text[:300], r.stderr[:200]))
        h = subprocess.run(["curl", "-sS", "--max-time", "60", "-o", "/dev/null", "-w",
                            "%{http_code}", "http://127.0.0.1:%d/health" % d.http_port],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        T.add("http health")
        if h.stdout != b"200":
            T.add("undocumented errors", example=("GET /health", h.stdout, h.stderr[:200]))


def main():
    if OPT.http and not shutil.which("curl"):
        note("curl not found: no HTTP clients")
        OPT.http = False
    d = Totod()
    note("totod %s, model %s on %s (%s), %.0f s, pid %d"
         % (OPT.totod, OPT.model, OPT.device, OPT.dtype, OPT.duration, d.proc.pid))
    c = Conn(d, "unix")
    ref = []
    for p in PARAMS:  # each request alone: the reference for every batched answer
        a = c.call("forecast", p)
        if "result" not in a:
            sys.exit("a reference request failed: %s" % a)
        r = a["result"]
        want = numbers(r)
        scale = max([1.0] + [abs(x) for x in flat(want) if isinstance(x, float)])
        ref.append((want, scale))
    info = c.call("info")["result"]
    note("model: %s, path %s" % (info["model"].get("name"), info["model"].get("path")))
    threads = [threading.Thread(target=pipeliner, args=(d, "unix" if k % 2 else "tcp", k, ref))
               for k in range(OPT.pipeliners)]
    threads += [threading.Thread(target=closed_loop, args=(d, kind, ref))
                for kind in ("unix", "tcp")]
    threads += [threading.Thread(target=churner, args=(d,)),
                threading.Thread(target=bad_client, args=(d,))]
    if OPT.http:
        threads.append(threading.Thread(target=http_client, args=(d, ref)))
    t0 = time.time()
    for t in threads:
        t.daemon = True
        t.start()
    samples = []
    baseline = None
    while True:
        now = time.time() - t0
        s = d.status()
        h = c.call("health")["result"]
        s.update(t=round(now, 1), status=h["status"], queue=h["queue_depth"],
                 inflight=h["inflight"], connections=h["connections"],
                 sent=T.c.get("sent", 0))
        samples.append(s)
        if baseline is None and now >= OPT.warmup:
            baseline = s
        note("t=%6.1f s  VmRSS %8.1f MiB  fds %4d  threads %3d  %-8s queue %4d  conns %3d  "
             "sent %d" % (now, s["VmRSS"] / 1024, s["fds"], s["Threads"], h["status"],
                          h["queue_depth"], h["connections"], s["sent"]))
        if now >= OPT.duration or d.proc.poll() is not None:
            break
        time.sleep(min(OPT.sample_every, max(0.05, OPT.duration - now)))
    STOP.set()
    for t in threads:
        t.join(300)
    # Idle again: the last sample, after every client is gone.
    deadline = time.time() + 120
    while time.time() < deadline:
        h = c.call("health")["result"]
        if h["inflight"] == 0 and h["connections"] == 1:
            break
        time.sleep(0.1)
    end = d.status()
    end.update(t=round(time.time() - t0, 1), status=h["status"], connections=h["connections"])
    samples.append(end)
    m = c.call("metrics")["result"]
    c.close()
    elapsed = time.time() - t0
    d.proc.send_signal(signal.SIGTERM)
    try:
        rc = d.proc.wait(120)
    except subprocess.TimeoutExpired:
        d.proc.kill()
        rc = "killed"
    counts = dict(sorted(T.c.items()))
    note("counts: %s" % json.dumps(counts))
    note("metrics: requests %s, errors %s, batches %d, connections %s"
         % (m["requests"], m["errors"], m["batches"], m["connections"]))
    base = baseline or samples[0]
    growth = (end["VmRSS"] - base["VmRSS"]) / 1024
    rate = growth / max(1e-9, (end["t"] - base["t"]) / 3600)
    note("VmRSS %.1f MiB after the %.0f s warm-up, %.1f MiB at the end (%+.1f MiB%s); "
         "peak (VmHWM) %.1f MiB" % (base["VmRSS"] / 1024, base["t"], end["VmRSS"] / 1024, growth,
                                   ", %+.1f MiB/h" % rate if end["t"] - base["t"] >= 600 else "",
                                   end["VmHWM"] / 1024))
    sent = counts.get("sent", 0)
    ok(sent > 0 and counts.get("lost", 0) == 0 and counts.get("duplicates", 0) == 0
       and counts.get("unknown ids", 0) == 0 and counts.get("connection errors", 0) == 0,
       "%.0f s of mixed load: %d forecasts sent, every one answered exactly once" % (elapsed, sent),
       (counts, T.examples))
    ok(counts.get("wrong", 0) == 0, "every answer equals the same request's answer alone "
       "(rel %g)" % OPT.rel, T.examples)
    ok(counts.get("undocumented errors", 0) == 0 and counts.get("connect failed", 0) == 0,
       "only documented errors: %d results, %d -32000 overloaded, %d bad lines answered "
       "-32700/-32602" % (counts.get("results", 0), counts.get("overloaded", 0),
                          counts.get("bad lines", 0)), T.examples)
    ok(growth < OPT.max_growth_mib,
       "VmRSS flat: %+.1f MiB from t=%.0f s to the end (bound %.0f MiB)"
       % (growth, base["t"], OPT.max_growth_mib), [(s["t"], s["VmRSS"]) for s in samples])
    ok(end["fds"] <= base["fds"] + 2,
       "open descriptors flat: %d after the warm-up, %d at the end" % (base["fds"], end["fds"]))
    ok(end["status"] == "ok" and end["connections"] == 1,
       "idle again at the end: health ok, only the watcher connected", end)
    ok(rc == 0, "SIGTERM: exit 0", (rc, "\n".join(d.log[-20:])))
    if OPT.json:
        with open(OPT.json, "w") as f:
            json.dump({"options": vars(OPT), "samples": samples, "counts": counts,
                       "metrics": m, "rss_growth_mib": growth, "rss_mib_per_hour": rate}, f,
                      indent=1)
    print("1..%d" % N_TAP[0], flush=True)
    return 1 if N_TAP[1] else 0


if __name__ == "__main__":
    sys.exit(main())
