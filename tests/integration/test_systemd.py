#!/usr/bin/env python3
"""totod under systemd: the watchdog pings (stopped while a model call hangs
longer than WatchdogSec: totod-faulty's TOTO_FAULT_STUCK_MS), STATUS lines,
reload on SIGHUP under load, socket activation through
systemd-socket-activate, and the unit files checked by systemd-analyze
verify (TAP)."""

import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import threading

from totod_harness import (TINY_A, TINY_B, TOTOD, TOTOD_FAULTY, Daemon, Tap, forecast, line,
                           series)

tap = Tap()
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def notify_socket():
    path = os.path.join(tempfile.mkdtemp(), "notify")
    ns = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    ns.bind(path)
    return ns, path


def messages(ns, seconds):
    """(time, text) of every datagram received within seconds."""
    out, end = [], time.monotonic() + seconds
    while time.monotonic() < end:
        ns.settimeout(max(0.01, end - time.monotonic()))
        try:
            out.append((time.monotonic(), ns.recv(4096).decode()))
        except socket.timeout:
            break
    return out


def watchdog():
    """A stuck worker (totod-faulty: TOTO_FAULT_STUCK_MS hangs the first model
    call 1.2 s) stops the pings of a 0.3 s watchdog; they resume after it."""
    interval, stuck = 0.3, 1.2
    ns, path = notify_socket()
    d = Daemon(binary=TOTOD_FAULTY,
               env={"NOTIFY_SOCKET": path, "WATCHDOG_USEC": str(int(interval * 1e6)),
                    "TOTO_FAULT_STUCK_MS": str(int(stuck * 1e3))})
    idle = [m for m in messages(ns, 4 * interval) if "WATCHDOG=1" in m[1]]
    tap.ok(len(idle) >= 3, "WATCHDOG=1 every quarter interval while idle (%d in %.2f s)"
           % (len(idle), 4 * interval))
    c = d.client()
    c.send(forecast(1, {"series": series(1, 64), "prediction_length": 8}))
    busy = messages(ns, stuck + 2 * interval)
    answer = c.recv()
    pings = [when for when, text in busy if "WATCHDOG=1" in text]
    gaps = [b - a for a, b in zip(pings, pings[1:])]
    tap.ok("result" in answer and gaps and max(gaps) > 2 * interval,
           "a stuck worker: no pings while its call hangs (longest gap %.2f s, interval %.2f s)"
           % (max(gaps or [0]), interval))
    after = [m for m in messages(ns, 2 * interval) if "WATCHDOG=1" in m[1]]
    tap.ok(len(after) >= 2, "pings resume once the call is answered (%d)" % len(after))
    d.stop()
    log = "\n".join(d.log)
    tap.ok("not pinging the systemd watchdog" in log and "answer again" in log,
           "the stuck worker and its recovery are logged", log[-800:])


def status_lines():
    """STATUS= follows health: degraded, with the reason, once the objective is missed."""
    ns, path = notify_socket()
    d = Daemon("--latency-objective-ms", "1", env={"NOTIFY_SOCKET": path})
    c = d.client()
    for i in range(12):
        c.call("forecast", {"series": series(1, 256), "prediction_length": 128,
                            "num_samples": 128})
    got = [text for _, text in messages(ns, 3.0)]
    degraded = [t for t in got if t.startswith("STATUS=degraded: p99 latency")]
    tap.ok(degraded and "latency-objective-ms 1" in degraded[0],
           "STATUS=degraded: the reason, sent when health turns degraded", got)
    d.stop()


def reload_under_load():
    """SIGHUP: a new model opens beside the serving one and takes over between
    batches; every request is answered; a failed reload keeps the old model."""
    ns, path = notify_socket()
    conf = os.path.join(tempfile.mkdtemp(), "totod.conf")
    with open(conf, "w") as f:
        f.write("model = %s\n" % TINY_A)
    d = Daemon("--config", conf, model=None, env={"NOTIFY_SOCKET": path})
    messages(ns, 0.5)  # READY and the first STATUS
    results, stop = [], threading.Event()

    def load(k):
        c = d.client()
        i = 0
        while not stop.is_set():
            a = c.call("forecast", {"series": series(1, 48, seed=k), "prediction_length": 4})
            results.append(a)
            i += 1

    threads = [threading.Thread(target=load, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    time.sleep(0.3)
    with open(conf, "w") as f:
        f.write("model = %s\n" % TINY_B)
    d.proc.send_signal(signal.SIGHUP)
    got = [t for _, t in messages(ns, 5.0)]
    time.sleep(0.3)
    stop.set()
    for t in threads:
        t.join(30)
    info = d.client().call("info")["result"]
    answered = [a for a in results if "result" in a]
    names = {a["result"].get("model", {}).get("name") for a in answered}
    tap.ok(len(answered) == len(results) and len(results) > 20,
           "reload under load: every one of %d requests answered with a result" % len(results),
           [a for a in results if "result" not in a][:2])
    tap.ok(any("RELOADING=1" in t for t in got) and any("READY=1" in t for t in got)
           and info["model"]["name"].rstrip("/").endswith("tiny-b"),
           "RELOADING=1, then READY=1 on the new model (tiny-a -> tiny-b)", (got, info["model"]))
    tap.ok(len(names) == 2, "answers came from both models, none lost in between", names)
    with open(conf, "w") as f:
        f.write("model = /nonexistent-model\n")
    d.proc.send_signal(signal.SIGHUP)
    got = [t for _, t in messages(ns, 3.0)]
    a = d.client().call("forecast", {"series": series(1, 48), "prediction_length": 4})
    info = d.client().call("info")["result"]
    d.stop()
    log = "\n".join(d.log)
    tap.ok("result" in a and info["model"]["name"].rstrip("/").endswith("tiny-b")
           and ("reload failed" in log or "not valid" in log) and "nonexistent-model" in log,
           "a failed reload keeps the serving model and says why", (got, log[-600:]))


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def activation():
    tool = shutil.which("systemd-socket-activate")
    if not tool:
        tap.ok(True, "# SKIP systemd-socket-activate not installed")
        return
    tmp = tempfile.mkdtemp()
    path, port = os.path.join(tmp, "act.sock"), free_port()
    cmd = [tool, "-l", path, "-l", "127.0.0.1:%d" % port, "--fdname=rpc:http", "--",
           TOTOD, "--model", TINY_A, "--dtype", "float32", "--unix", "none"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOTO_")
           and k != "NOTIFY_SOCKET"}
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, env=env)
    for _ in range(100):  # the tool binds, then waits for the first connection
        if os.path.exists(path):
            break
        time.sleep(0.05)
    c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    c.settimeout(60)
    c.connect(path)  # starts totod, which inherits both listening sockets
    c.sendall(line(forecast(7, {"series": series(1, 64), "prediction_length": 8})))
    answer = json.loads(c.makefile("rb").readline())
    tap.ok(answer.get("id") == 7 and "result" in answer,
           "socket activation: a forecast over the inherited Unix socket", answer)
    health = subprocess.run(["curl", "-s", "--max-time", "20",
                             "http://127.0.0.1:%d/health" % port],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    tap.ok(health.returncode == 0 and json.loads(health.stdout or b"{}").get("status") == "ok",
           "socket activation: GET /health over the inherited TCP socket named http",
           health.stdout[:300])
    c.close()
    proc.send_signal(signal.SIGTERM)
    err = proc.communicate(timeout=60)[1].decode(errors="replace")
    tap.ok(proc.returncode == 0 and "socket activation, fd 3" in err
           and "socket activation, fd 4" in err,
           "both sockets came from systemd (fd 3, 4); exit 0", err[-800:])
    tap.ok(os.path.exists(path), "the activated socket file is systemd's: left in place")


def unit_files():
    tool = shutil.which("systemd-analyze")
    if not tool:
        tap.ok(True, "# SKIP systemd-analyze not installed")
        return
    tmp = tempfile.mkdtemp()
    for name in ("toto.service", "toto.socket"):
        with open(os.path.join(ROOT, name)) as f:
            text = f.read()
        # The installed path does not exist here: verify against the build's binary.
        text = text.replace("/usr/local/bin/totod", TOTOD)
        with open(os.path.join(tmp, name), "w") as f:
            f.write(text)
    for name in ("toto.service", "toto.socket"):
        r = subprocess.run([tool, "verify", "--man=false", os.path.join(tmp, name)],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
        tap.ok(r.returncode == 0 and not r.stdout.strip(),
               "systemd-analyze verify %s: clean" % name, r.stdout.decode()[-600:])


watchdog()
status_lines()
reload_under_load()
activation()
unit_files()
tap.done()
