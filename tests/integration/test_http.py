#!/usr/bin/env python3
"""totod's HTTP endpoints (--http) driven by the real curl binary and by raw
sockets: every endpoint, keep-alive, pipelining, chunked bodies,
100-continue, every error status, Prometheus text, and shutdown (TAP)."""

import json
import os
import re
import signal
import socket
import subprocess
import time

from totod_harness import (DEADLINE, INVALID_PARAMS, INVALID_REQUEST, OVERLOADED, PARSE,
                           SHUTTING_DOWN, TINY_A, TOTOD, Daemon, Tap, series, strip_daemon)

tap = Tap()
SMALL = {"series": [1, 2, 3, 4, 5, 6, 7, 8], "prediction_length": 3}
HTTP = ("--http", "127.0.0.1:0")


def curl(*args, data=None, timeout=20):
    """(exit status, stdout text, stderr text) of curl -sS args."""
    p = subprocess.run(["curl", "-sS", *args], input=data, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=timeout)
    return p.returncode, p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace")


def curl_json(url, *args, body=None):
    """(HTTP status, parsed JSON body or None, headers text) via curl."""
    extra = ["--data-binary", "@-"] if body is not None else []
    data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
    rc, out, err = curl("-D", "/dev/stderr", "-w", "\n%{http_code}", *extra, *args, url, data=data)
    text, _, code = out.rpartition("\n")
    try:
        doc = json.loads(text)
    except ValueError:
        doc = None
    return int(code or 0), doc, err


class Raw:
    """One HTTP/1.1 connection on a plain socket, for pipelining and slow reading."""

    def __init__(self, port, timeout=20):
        self.s = socket.create_connection(("127.0.0.1", port))
        self.s.settimeout(timeout)
        self.buf = b""

    def send(self, data):
        self.s.sendall(data)

    def _fill(self):
        chunk = self.s.recv(1 << 16)
        if not chunk:
            raise EOFError
        self.buf += chunk

    def response(self):
        """(status, headers dict with lower-case names, body bytes), or None at EOF."""
        try:
            while b"\r\n\r\n" not in self.buf:
                self._fill()
        except EOFError:
            return None
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.decode().split("\r\n")
        status = int(lines[0].split()[1])
        headers = {k.lower(): v.strip() for k, v in (x.split(":", 1) for x in lines[1:])}
        n = int(headers.get("content-length", 0))
        while len(self.buf) < n:
            self._fill()
        body, self.buf = self.buf[:n], self.buf[n:]
        return status, headers, body

    def close(self):
        self.s.close()


def request(method, path, body=b"", headers=()):
    head = "%s %s HTTP/1.1\r\nHost: t\r\n" % (method, path)
    for h in headers:
        head += h + "\r\n"
    if body or method == "POST":
        head += "Content-Length: %d\r\n" % len(body)
    return head.encode() + b"\r\n" + body


def post(params, headers=()):
    return request("POST", "/v1/forecast", json.dumps(params).encode(), headers)


def error_of(doc):
    return (doc or {}).get("error") or {}


SAMPLE = re.compile(r'^[a-zA-Z_:][a-zA-Z0-9_:]*'
                    r'(\{[a-zA-Z_][a-zA-Z0-9_]*="(\\.|[^"\\])*"'
                    r'(,[a-zA-Z_][a-zA-Z0-9_]*="(\\.|[^"\\])*")*\})?'
                    r' (-?[0-9.]+([eE][-+]?[0-9]+)?|NaN|[+-]Inf)$')
COMMENT = re.compile(r"^# (HELP [a-zA-Z_:][a-zA-Z0-9_:]* .*|"
                     r"TYPE [a-zA-Z_:][a-zA-Z0-9_:]* (counter|gauge|histogram))$")


def prom(text):
    """{(name, frozenset(labels)): value} of Prometheus text; None if a line is malformed."""
    out = {}
    for ln in text.splitlines():
        if ln.startswith("#"):
            if not COMMENT.match(ln):
                return None
            continue
        if not SAMPLE.match(ln):
            return None
        series, value = ln.rsplit(" ", 1)
        name, _, labels = series.partition("{")
        pairs = frozenset(re.findall(r'([a-zA-Z_]+)="((?:\\.|[^"\\])*)"', labels))
        out[(name, pairs)] = float(value)
    return out


def sample(m, name, **labels):
    return m.get((name, frozenset(labels.items())))


def endpoints(d):
    url = "http://127.0.0.1:%d" % d.http_port
    rpc = d.client()
    code, h, _ = curl_json(url + "/health", "--fail-with-body")
    want = rpc.call("health")["result"]
    tap.ok(code == 200 and h and h["status"] == "ok" and h["path"] == "compiled"
           and h["model"] == TINY_A and h["device"] == "cpu" and "uptime_s" in h
           and h["version"] and h["untrained"] is False and h["queue_depth"] == 0
           and set(h) == set(want), "GET /health: 200 with the health method's object", h)
    rc, out, err = curl("-I", url + "/health")
    tap.ok(rc == 0 and out.startswith("HTTP/1.1 200") and "Content-Length:" in out,
           "HEAD /health: the headers only", out)
    code, r, _ = curl_json(url + "/ready", "--fail-with-body")
    tap.ok(code == 200 and r == {"ready": True}, "GET /ready: 200 {\"ready\":true} once warm", r)

    params = dict(SMALL, quantiles=[0.1, 0.9], series_id="s-1", timeout_ms=5000)
    code, res, hdrs = curl_json(url + "/v1/forecast", "--fail-with-body", body=params)
    via_rpc = rpc.call("forecast", params)["result"]
    tap.ok(code == 200 and res and strip_daemon(res) == strip_daemon(via_rpc)
           and res["series_id"] == "s-1" and res["timing"]["batch_size"] >= 1
           and "application/json" in hdrs, "POST /v1/forecast: the same result as JSON-RPC",
           (res, via_rpc))
    series = {"series": [[1.0 + (i % 7) * 0.5 for i in range(400)]] * 2, "prediction_length": 4}
    body = json.dumps(series).encode()
    code, chunked, err = curl_json(url + "/v1/forecast", "-v", "-H",
                                   "Transfer-Encoding: chunked", body=body)
    tap.ok(code == 200 and "Transfer-Encoding: chunked" in err
           and strip_daemon(chunked) == strip_daemon(rpc.call("forecast", series)["result"]),
           "a chunked POST is decoded and answered", err[-800:])
    t0 = time.time()
    code, cont, err = curl_json(url + "/v1/forecast", "-v", "-H", "Expect: 100-continue",
                                body=body)
    tap.ok(code == 200 and "100 Continue" in err and time.time() - t0 < 0.9
           and strip_daemon(cont) == strip_daemon(chunked),
           "Expect: 100-continue is answered at once (%d-byte body)" % len(body), err[-800:])
    rpc.close()


def keep_alive_and_pipelining(d):
    url = "http://127.0.0.1:%d" % d.http_port
    rc, out, _ = curl("-o", "/dev/null", "-w", "%{num_connects} ", url + "/health",
                      "-o", "/dev/null", url + "/ready")
    tap.ok(rc == 0 and out.split() == ["1", "0"],
           "keep-alive: curl reuses one connection for two URLs", out)
    c = Raw(d.http_port)
    c.send(request("GET", "/health") + post(dict(SMALL, series_id="p")) + request("GET", "/ready")
           + post({"series": [1]}) + request("GET", "/nope"))
    got = [c.response() for _ in range(5)]
    statuses = [g[0] for g in got if g]
    bodies = [json.loads(g[2]) for g in got if g]
    tap.ok(statuses == [200, 200, 200, 400, 404] and bodies[1].get("series_id") == "p"
           and bodies[2] == {"ready": True} and "status" in bodies[0],
           "pipelined requests on one socket are answered in order", statuses)
    tap.ok(got[0][1].get("keep-alive") == "timeout=30",
           "keep-alive responses announce the idle timeout (Keep-Alive: timeout=30)", got[0][1])
    c.send(request("GET", "/ready", headers=["Connection: close"]))
    last = c.response()
    tap.ok(last and last[0] == 200 and last[1].get("connection") == "close"
           and c.response() is None, "Connection: close is honoured", last)
    c.close()
    h10 = Raw(d.http_port)
    h10.send(b"GET /ready HTTP/1.0\r\n\r\n")
    r = h10.response()
    tap.ok(r and r[0] == 200 and h10.response() is None, "HTTP/1.0 without keep-alive closes", r)
    h10.close()


def errors(d):
    url = "http://127.0.0.1:%d" % d.http_port
    code, e, _ = curl_json(url + "/v1/forecast", body=dict(SMALL, prediction_lenght=2))
    tap.ok(code == 400 and error_of(e).get("code") == INVALID_PARAMS
           and e["error"]["data"]["field"] == "prediction_lenght",
           "invalid params: 400 with the JSON-RPC error object", e)
    code, e, _ = curl_json(url + "/v1/forecast", body=b'{"series": [1, 2')
    tap.ok(code == 400 and error_of(e).get("code") == PARSE, "a body that is not JSON: 400", e)
    code, e, _ = curl_json(url + "/v1/forecast", body=b"[1, 2]")
    tap.ok(code == 400 and error_of(e).get("code") == INVALID_PARAMS,
           "a body that is not an object: 400", e)
    code, e, _ = curl_json(url + "/v2/forecast")
    tap.ok(code == 404 and error_of(e).get("message"), "unknown path: 404", e)
    code, e, hdrs = curl_json(url + "/v1/forecast")
    tap.ok(code == 405 and re.search(r"(?im)^Allow: POST\r?$", hdrs), "GET /v1/forecast: 405 "
           "with Allow: POST", hdrs)
    code, e, hdrs = curl_json(url + "/metrics", "-X", "DELETE")
    tap.ok(code == 405 and re.search(r"(?im)^Allow: GET, HEAD\r?$", hdrs),
           "DELETE /metrics: 405 with Allow: GET, HEAD", hdrs)
    code, e, hdrs = curl_json(url + "/health", "-H", "X-Big: " + "a" * 20000)
    tap.ok(code == 431 and error_of(e).get("code") == INVALID_REQUEST
           and re.search(r"(?im)^Connection: close\r?$", hdrs),
           "headers over 16 KiB: 431, connection closed", (code, e))
    c = Raw(d.http_port)
    c.send(b"GET /health HTTP/1.1\nHost: t\n\n")
    r = c.response()
    tap.ok(r and r[0] == 400 and c.response() is None, "malformed HTTP: 400, then closed", r)
    c.close()


def metrics(d):
    url = "http://127.0.0.1:%d" % d.http_port
    rc, text, err = curl("--fail-with-body", "-D", "/dev/stderr", url + "/metrics")
    before = prom(text)
    tap.ok(rc == 0 and "text/plain; version=0.0.4" in err, "GET /metrics: text/plain 0.0.4", err)
    tap.ok(before is not None, "every line is Prometheus text (HELP, TYPE, samples)", text[:3000])
    before = before or {}
    types = dict(re.findall(r"(?m)^# TYPE (\S+) (\S+)$", text))
    tap.ok(all(n.endswith("_total") for n, t in types.items() if t == "counter")
           and types.get("totod_batch_size") == "histogram"
           and types.get("totod_latency_seconds") == "histogram"
           and types.get("totod_queue_depth") == "gauge"
           and types.get("totod_compiled_captures_after_warmup_total") == "counter"
           and types.get("totod_compiled_eager_fallbacks_total") == "counter",
           "metric types and names", types)
    info = [k for k in before if k[0] == "totod_info"]
    labels = dict(info[0][1]) if info else {}
    tap.ok(len(info) == 1 and labels.get("path") == "compiled" and labels.get("device") == "cpu"
           and labels.get("untrained") == "false" and labels.get("model") == TINY_A
           and "version" in labels and "dtype" in labels and before[info[0]] == 1,
           "totod_info labels what is served", info)
    phases_ok = all(sample(before, "totod_latency_seconds_bucket", phase=p, le="+Inf")
                    == sample(before, "totod_latency_seconds_count", phase=p)
                    for p in ("queue", "model", "total"))
    tap.ok(phases_ok and sample(before, "totod_uptime_seconds") > 0
           and sample(before, "totod_batch_size_bucket", le="+Inf") is not None,
           "histograms: +Inf bucket equals _count; uptime", text[:2000])
    curl_json(url + "/v1/forecast", body=SMALL)
    curl_json(url + "/v1/forecast", body={"series": [1]})
    after = prom(curl("--fail-with-body", url + "/metrics")[1]) or {}

    def grew(name, **labels):
        return (sample(after, name, **labels) or 0) > (sample(before, name, **labels) or 0)

    tap.ok(grew("totod_requests_total", method="forecast") and grew("totod_batches_total")
           and grew("totod_errors_total", code=str(INVALID_PARAMS))
           and grew("totod_latency_seconds_count", phase="model")
           and grew("totod_batch_size_count")
           and grew("totod_requests_total", method="metrics"),
           "counters grow after requests", [k for k in after if after[k] != before.get(k)])


def slow_reader():
    """A client that does not read: it alone stalls, and gets every answer later."""
    with Daemon(*HTTP, "--max-write-buffer", "4096", tcp=False) as d:
        c = Raw(d.http_port)
        c.send(request("GET", "/metrics") * 300)
        time.sleep(0.3)
        code, h, _ = curl_json("http://127.0.0.1:%d/health" % d.http_port)
        tap.ok(code == 200 and h["connections"] == 2, "others are served while one does not read")
        got = [c.response() for _ in range(300)]
        tap.ok(all(g and g[0] == 200 for g in got), "the slow reader gets all 300 answers")
        c.close()


def limits_and_overload():
    with Daemon(*HTTP, "--max-line-bytes", "1024", "--queue-limit", "1", "--batch-delay-us",
                "400000", "--max-connections", "3", tcp=False) as d:
        url = "http://127.0.0.1:%d" % d.http_port
        big = json.dumps({"series": [1.5] * 400, "prediction_length": 2}).encode()
        code, e, hdrs = curl_json(url + "/v1/forecast", "-H", "Expect:", body=big)
        tap.ok(code == 413 and error_of(e).get("data", {}).get("limit") == "max-line-bytes",
               "a body over max-line-bytes: 413", (code, e))
        code, e, _ = curl_json(url + "/v1/forecast", "-H", "Transfer-Encoding: chunked", body=big)
        tap.ok(code == 413, "a chunked body over the limit: 413", (code, e))
        code, e, _ = curl_json(url + "/v1/forecast", "-H", "Expect: 100-continue", body=big)
        tap.ok(code == 413, "over the limit with Expect: 413 instead of 100 Continue", (code, e))
        # The worker waits 400 ms for a batch to fill: the first one sits in the queue.
        late = Raw(d.http_port)
        late.send(post(dict(SMALL, timeout_ms=1)))
        time.sleep(0.05)
        code, e, hdrs = curl_json(url + "/v1/forecast", body=SMALL)
        tap.ok(code == 429 and error_of(e).get("code") == OVERLOADED
               and re.search(r"(?im)^Retry-After: \d+\r?$", hdrs), "queue full: 429, Retry-After",
               (code, e, hdrs))
        r = late.response()
        tap.ok(r and r[0] == 504 and error_of(json.loads(r[2])).get("code") == DEADLINE,
               "timeout_ms passed while queued: 504", r)
        extra = [Raw(d.http_port) for _ in range(2)]
        time.sleep(0.1)
        r = Raw(d.http_port)
        got = r.response()
        tap.ok(got and got[0] == 429 and r.response() is None,
               "beyond max-connections: 429, then closed", got)
        for x in extra + [late, r]:
            x.close()


def shutdown():
    d = Daemon(*HTTP, "--batch-delay-us", "500000", "--grace-ms", "5000", tcp=False)
    url = "http://127.0.0.1:%d" % d.http_port
    idle = Raw(d.http_port)
    idle.send(request("GET", "/ready"))
    first = idle.response()
    fc = subprocess.Popen(["curl", "-sS", "-w", "\n%{http_code}", "--data-binary", "@-",
                           url + "/v1/forecast"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE)
    fc.stdin.write(json.dumps(SMALL).encode())
    fc.stdin.close()
    time.sleep(0.2)
    d.proc.send_signal(signal.SIGTERM)
    time.sleep(0.1)
    idle.send(request("GET", "/ready"))
    ready = idle.response()
    tap.ok(first and first[0] == 200 and ready and ready[0] == 503
           and json.loads(ready[2])["ready"] is False
           and ready[1].get("connection") == "close",
           "/ready: 200, then 503 once shutting down (and the connection closes)", ready)
    out = fc.stdout.read().decode()
    fc.wait(20)
    body, _, code = out.rpartition("\n")
    tap.ok(code == "200" and "mean" in json.loads(body or "{}"),
           "SIGTERM with an HTTP forecast in flight: it is still answered", out)
    rc = curl("http://127.0.0.1:%d/health" % d.http_port)[0]
    tap.ok(rc == 7, "the HTTP listener is closed", rc)
    tap.ok(d.wait() == 0, "exit 0 after the drain")
    idle.close()
    # A forecast that arrives on an open connection after SIGTERM: 503.
    d = Daemon(*HTTP, "--batch-delay-us", "500000", "--grace-ms", "5000", tcp=False)
    a, b = Raw(d.http_port), Raw(d.http_port)
    a.send(post(SMALL))
    time.sleep(0.1)
    d.proc.send_signal(signal.SIGTERM)
    time.sleep(0.1)
    b.send(post(SMALL))
    r = b.response()
    tap.ok(r and r[0] == 503 and error_of(json.loads(r[2])).get("code") == SHUTTING_DOWN,
           "a forecast after SIGTERM: 503", r)
    r = a.response()
    tap.ok(r and r[0] == 200 and d.wait() == 0, "the queued one is answered; exit 0", r)
    a.close()
    b.close()


def closed_after(conn, limit=5.0):
    """Seconds until the peer closes conn (EOF or reset) with no bytes sent, else None."""
    t0 = time.monotonic()
    conn.s.settimeout(limit)
    try:
        data = conn.s.recv(1 << 16)
    except ConnectionResetError:
        data = b""
    except socket.timeout:
        return None
    return time.monotonic() - t0 if data == b"" else None


def trickle_until_answered(conn, first, drip, every=0.05, limit=5.0):
    """Sends first, then one byte of drip every `every` s until totod answers.
    Returns (seconds from the first byte to the answer, the response or None)."""
    t0 = time.monotonic()
    conn.send(first)
    conn.s.settimeout(every)
    for i in range(int(limit / every)):
        try:
            conn.buf += conn.s.recv(1 << 16)
            break
        except socket.timeout:
            pass
        try:
            conn.send(drip[i % len(drip):i % len(drip) + 1])
        except OSError:
            break
    took = time.monotonic() - t0
    conn.s.settimeout(5)
    try:
        return took, conn.response()
    except OSError:
        return took, None


def idle_timeout():
    """--http-idle-timeout-ms: idle and slow connections close; in-flight work never does."""
    ms = 300
    # batch-delay-us makes every forecast wait 1 s in the queue: in flight past the timeout.
    with Daemon(*HTTP, "--http-idle-timeout-ms", str(ms), "--batch-delay-us", "1000000",
                tcp=False) as d:
        idle = Raw(d.http_port)
        took = closed_after(idle)
        tap.ok(took is not None and 0.25 <= took < 2.5,
               "idle timeout: a connection that sends nothing is closed after ~%d ms" % ms, took)
        idle.close()

        ka = Raw(d.http_port)
        answers = []
        for _ in range(6):  # 6 x 150 ms: well past the timeout in total, never idle that long
            ka.send(request("GET", "/health"))
            answers.append(ka.response())
            time.sleep(0.15)
        statuses = [a[0] if a else None for a in answers]
        tap.ok(statuses == [200] * 6 and answers[0][1].get("keep-alive") == "timeout=0",
               "keep-alive requests within the timeout all work on one connection "
               "(Keep-Alive: timeout=0 for %d ms)" % ms, (statuses, answers[0]))
        took = closed_after(ka)
        tap.ok(took is not None and 0.1 <= took < 2.5,
               "... and the connection closes once idle for the timeout after the last", took)
        ka.close()

        busy = Raw(d.http_port)
        t0 = time.monotonic()
        busy.send(post(SMALL))
        r = busy.response()
        waited = time.monotonic() - t0
        busy.send(request("GET", "/ready"))
        again = busy.response()
        tap.ok(r and r[0] == 200 and waited >= 0.9 and again and again[0] == 200,
               "a forecast in flight for ~1 s (over the timeout) is answered and the "
               "connection stays usable", (r and r[0], waited, again))
        busy.close()

        slow = Raw(d.http_port)
        took, r = trickle_until_answered(slow, b"G", b"ET /health HTTP/1.1\r\nX-Slow: yes")
        doc = json.loads(r[2]) if r else {}
        tap.ok(r and r[0] == 408 and r[1].get("connection") == "close"
               and error_of(doc).get("data", {}).get("limit") == "http-idle-timeout-ms"
               and 0.25 <= took < 2.5 and slow.response() is None,
               "a head trickled a byte every 50 ms: 408 and closed ~%d ms after its first "
               "byte" % ms, (took, r))
        slow.close()

        body = Raw(d.http_port)
        head = b"POST /v1/forecast HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\n{"
        took, r = trickle_until_answered(body, head, b" ")
        tap.ok(r and r[0] == 408 and 0.25 <= took < 2.5 and body.response() is None,
               "a body trickled a byte every 50 ms: 408 and closed", (took, r))
        body.close()
        r = subprocess.run(["curl", "-sS", "http://127.0.0.1:%d/ready" % d.http_port],
                           stdout=subprocess.PIPE, timeout=20)
        tap.ok(r.returncode == 0 and json.loads(r.stdout) == {"ready": True},
               "curl still gets answers from that daemon")

    with Daemon(*HTTP, "--http-idle-timeout-ms", "0", tcp=False) as d:
        never = Raw(d.http_port)
        time.sleep(0.6)
        never.send(request("GET", "/ready"))
        r = never.response()
        tap.ok(r and r[0] == 200 and "keep-alive" not in r[1],
               "--http-idle-timeout-ms 0: no timeout, no Keep-Alive header", r)
        never.close()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOTO_")}
    env["TOTO_HTTP_IDLE_TIMEOUT_MS"] = "1234"
    r = subprocess.run([TOTOD, "--model", TINY_A, "--check-config"], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, env=env, timeout=30)
    cfg = json.loads(r.stdout) if r.returncode == 0 else {}
    tap.ok(cfg.get("http-idle-timeout-ms") == {"value": 1234, "source": "env"},
           "--check-config shows http-idle-timeout-ms (from TOTO_HTTP_IDLE_TIMEOUT_MS)",
           (r.returncode, cfg.get("http-idle-timeout-ms"), r.stderr))


def latency_windows():
    """/health, /metrics: the rolling windows, and latency-objective-ms turning health degraded."""
    # Several ms each even on a fast machine: over an objective of 1 ms.
    heavy = {"series": series(1, 256), "prediction_length": 128, "num_samples": 128}
    with Daemon(*HTTP) as d:
        c = d.client()
        for i in range(12):
            c.call("forecast", heavy)
        url = "http://127.0.0.1:%d" % d.http_port
        code, h, _ = curl_json(url + "/health", "--fail-with-body")
        w = ((h or {}).get("latency_windows") or {}).get("compiled", {})
        total = w.get("1m", {}).get("total", {})
        tap.ok(code == 200 and h["status"] == "ok" and h["reasons"] == [] and total.get("count") == 12
               and 0 < total["p50"] <= total["p90"] <= total["p99"]
               and w["15m"]["model"]["count"] == 12,
               "GET /health: 1m and 15m windows of the compiled path, p50 <= p90 <= p99; no "
               "objective, status ok", h)
        m = prom(curl("--fail-with-body", url + "/metrics")[1]) or {}
        p99 = sample(m, "totod_latency_window_seconds", path="compiled", phase="total",
                     window="1m", quantile="0.99")
        tap.ok(p99 is not None and abs(p99 - total.get("p99", 0) / 1e3) < 1e-6,
               "GET /metrics: totod_latency_window_seconds agrees with /health", p99)
    with Daemon(*HTTP, "--latency-objective-ms", "1") as d:
        c = d.client()
        for i in range(12):
            c.call("forecast", heavy)
        code, h, _ = curl_json("http://127.0.0.1:%d/health" % d.http_port)
        reasons = (h or {}).get("reasons", [])
        tap.ok(code == 200 and h["status"] == "degraded" and len(reasons) == 1
               and "latency-objective-ms 1" in reasons[0],
               "latency-objective-ms 1: health degraded, the reason names the p99 and the limit",
               h and reasons)
        info = c.call("info")["result"]
        tap.ok(info["latency_windows"]["compiled"]["1m"]["total"]["count"] == 12,
               "info has the windows too")


with Daemon(*HTTP) as d:
    endpoints(d)
    keep_alive_and_pipelining(d)
    errors(d)
    metrics(d)
    tap.ok(d.stop() == 0, "SIGTERM: exit 0")
latency_windows()
slow_reader()
limits_and_overload()
shutdown()
idle_timeout()
tap.done()
