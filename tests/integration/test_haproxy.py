#!/usr/bin/env python3
"""test_haproxy - three totod instances behind HAProxy (deploy/haproxy.cfg, unmodified).

Closed-loop clients (the Python client, with its retries) send forecasts
through HAProxy's TCP frontend while one instance is stopped with SIGTERM
(it drains: /ready turns 503, accepted work is answered) and another is
killed with SIGKILL (its connections drop; the client retries elsewhere).
Every forecast of the run must be answered, each compared with the answer
the surviving instance gives directly; the report says how many were retried.
The HTTP frontend is checked with curl, before and after. Skips (TAP) when
haproxy is not installed.
"""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..", "..")
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(ROOT, "client", "python"))
from totod_harness import Daemon, Tap, series  # noqa: E402

import toto_client  # noqa: E402

CONFIG = os.path.join(ROOT, "deploy", "haproxy.cfg")
CLIENTS = 6
RUN_S = 6.0


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_haproxy(daemons):
    rpc, http = free_port(), free_port()
    env = dict(os.environ, TOTO_LB_RPC="127.0.0.1:%d" % rpc, TOTO_LB_HTTP="127.0.0.1:%d" % http)
    for i, d in enumerate(daemons, 1):
        env["TOTOD%d_RPC" % i] = "127.0.0.1:%d" % d.port
        env["TOTOD%d_HTTP" % i] = "127.0.0.1:%d" % d.http_port
        env["TOTOD%d_HTTP_HOST" % i] = "127.0.0.1"
        env["TOTOD%d_HTTP_PORT" % i] = str(d.http_port)
    proc = subprocess.Popen(["haproxy", "-db", "-f", CONFIG], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return proc, rpc, http


def wait_serving(rpc, timeout=20):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with toto_client.Client("tcp:127.0.0.1:%d" % rpc, timeout=2, retries=0) as c:
                c.forecast([1.0, 2.0, 3.0, 4.0] * 8, prediction_length=4)
                return True
        except (toto_client.TotoError, OSError):
            time.sleep(0.2)
    return False


def curl_forecast(http, body):
    p = subprocess.run(["curl", "-sS", "--max-time", "10", "-w", "\n%{http_code}", "-d",
                        json.dumps(body), "http://127.0.0.1:%d/v1/forecast" % http],
                       capture_output=True, text=True, timeout=20)
    text, _, code = p.stdout.rpartition("\n")
    return code, text


class Worker(threading.Thread):
    """One closed-loop client: forecasts of its own series until the run ends."""

    def __init__(self, index, rpc, stop_at):
        super().__init__(daemon=True)
        self.index, self.rpc, self.stop_at = index, rpc, stop_at
        self.answers, self.failures, self.retries = [], [], 0

    def run(self):
        try:
            client = toto_client.Client("tcp:127.0.0.1:%d" % self.rpc, timeout=20, retries=8,
                                        backoff=0.05, max_backoff=1.0)
        except toto_client.TotoError as e:
            self.failures.append("connect: %r" % e)
            return
        n = 0
        while time.time() < self.stop_at:
            s = series(1, 48, seed=self.index * 1000 + n % 7)[0]
            try:
                fc = client.forecast(s, prediction_length=4)
                self.answers.append((n % 7, fc.mean[0]))
            except Exception as e:  # every failure is reported, none may happen
                self.failures.append(repr(e))
            n += 1
        self.retries = client.stats["retries"]
        client.close()


def main():
    tap = Tap()
    if shutil.which("haproxy") is None:
        print("ok 1 - # SKIP haproxy is not installed (apt-get install haproxy)")
        print("1..1")
        return
    daemons = [Daemon("--http", "127.0.0.1:0") for _ in range(3)]
    for d in daemons:
        deadline = time.time() + 10
        while (d.port is None or d.http_port is None) and time.time() < deadline:
            time.sleep(0.05)
    proc, rpc, http = start_haproxy(daemons)
    try:
        up = wait_serving(rpc)
        tap.ok(up, "HAProxy with deploy/haproxy.cfg serves forecasts from three instances",
               proc.stderr.read1(4000).decode(errors="replace") if not up else None)
        body = {"series": [1.0, 2.0, 3.0, 4.0] * 8, "prediction_length": 4}
        code, text = curl_forecast(http, body)
        tap.ok(code == "200" and "mean" in text, "the HTTP frontend balances /v1/forecast", text)

        stop_at = time.time() + RUN_S
        workers = [Worker(i, rpc, stop_at) for i in range(CLIENTS)]
        for w in workers:
            w.start()
        time.sleep(RUN_S / 3)
        term_rc = daemons[0].stop(signal.SIGTERM)
        time.sleep(RUN_S / 6)
        daemons[1].proc.kill()
        daemons[1].wait(10)
        for w in workers:
            w.join(60)
        answered = sum(len(w.answers) for w in workers)
        failures = [f for w in workers for f in w.failures]
        retried = sum(w.retries for w in workers)
        print("# %d forecasts answered through HAProxy, %d retried by the client, %d failed"
              % (answered, retried, len(failures)))
        tap.ok(term_rc == 0, "the instance stopped with SIGTERM drained and exited 0",
               daemons[0].log_text()[-1500:])
        tap.ok(not failures and answered >= 5 * CLIENTS,
               "every forecast of the run was answered (%d, %d by retry) while one instance "
               "drained and one was killed" % (answered, retried), "\n".join(failures[:5]))
        tap.ok(retried > 0, "the killed instance's clients were retried elsewhere (%d)" % retried)

        # The survivor's own answers, to compare every answer of the run with.
        c = daemons[2].client()
        want = {}
        for w in workers:
            for k in range(7):
                s = series(1, 48, seed=w.index * 1000 + k)[0]
                want[(w.index, k)] = c.call("forecast", {"series": s, "prediction_length": 4})[
                    "result"]["mean"][0]
        c.close()
        wrong = sum(1 for w in workers for k, m in w.answers
                    if any(abs(a - b) > 1e-6 * max(1.0, abs(b)) for a, b in zip(m, want[(w.index, k)])))
        tap.ok(wrong == 0, "every answer equals the survivor's for its series (%d differ)" % wrong)
        code, text = curl_forecast(http, body)
        tap.ok(code == "200" and "mean" in text,
               "the HTTP frontend still answers with two instances gone", text)
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        for d in daemons:
            d.stop()
    tap.done()


if __name__ == "__main__":
    main()
