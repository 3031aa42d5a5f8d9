#!/usr/bin/env python3
"""totod's life: configuration and its precedence, startup on stale and live
sockets, --stdio, sd_notify, and SIGTERM with every request answered once (TAP)."""

import json
import os
import signal
import socket
import subprocess
import tempfile
import threading
import time

from totod_harness import (SHUTTING_DOWN, TINY_A, TOTOD, Daemon, Tap, close, forecast,
                           line, series)

tap = Tap()
SMALL = {"series": [1, 2, 3, 4, 5, 6, 7, 8], "prediction_length": 3}


def clean_env(**extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOTO_")
           and k != "NOTIFY_SOCKET"}
    env.update(extra)
    return env


def run(args, env=None, stdin=None, timeout=30):
    return subprocess.run([TOTOD] + args, input=stdin, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, env=env or clean_env(), timeout=timeout)


def check_config():
    tmp = tempfile.mkdtemp()
    conf = os.path.join(tmp, "totod.conf")
    with open(conf, "w") as f:
        f.write("# comment\n\nmax-inflight = 5\nqueue_limit = 7\ngrace-ms = 9\n"
                "model = %s\n" % TINY_A)
    env = clean_env(TOTO_CONFIG=conf, TOTO_MAX_INFLIGHT="6", TOTO_QUEUE_LIMIT="8")
    r = run(["--check-config", "--max-inflight", "4", "--max-line-bytes=1M"], env=env)
    cfg = json.loads(r.stdout) if r.returncode == 0 else {}
    got = {k: (cfg.get(k) or {}).get("value") for k in
           ("max-inflight", "queue-limit", "grace-ms", "max-line-bytes", "threads")}
    src = {k: (cfg.get(k) or {}).get("source") for k in got}
    tap.ok(got == {"max-inflight": 4, "queue-limit": 8, "grace-ms": 9,
                   "max-line-bytes": 1 << 20, "threads": 0}
           and src == {"max-inflight": "flag", "queue-limit": "env", "grace-ms": "file",
                       "max-line-bytes": "flag", "threads": "default"},
           "--check-config: flag beats env beats file beats default", (r.returncode, got, src))
    tap.ok(cfg.get("config", {}).get("value") == conf and cfg["untrained"]["value"] is False,
           "--check-config names the config file and the model's label")
    for args, env, needle, name in [
            (["--max-inflight", "0"], None, "--max-inflight", "flag out of range"),
            (["--device", "tpu"], None, "--device", "bad device"),
            ([], clean_env(TOTO_QUEUE_LIMIT="lots"), "TOTO_QUEUE_LIMIT", "bad env value"),
            (["--tcp", "nowhere"], None, "--tcp", "bad address"),
            (["--model", "/nonexistent"], None, "--model", "missing model"),
            (["--frobnicate"], None, "--frobnicate", "unknown flag"),
            (["--compile-mode", "turbo"], None, "--compile-mode", "bad compile mode"),
            ([], clean_env(TOTO_COMPUTE_DTYPE="half"), "TOTO_COMPUTE_DTYPE", "bad compute dtype"),
            (["--config", "/nonexistent.conf"], None, "/nonexistent.conf", "missing file")]:
        r = run(["--check-config"] + args, env=env)
        tap.ok(r.returncode == 2 and needle in r.stderr.decode(),
               "invalid (%s): exit 2, message names %s" % (name, needle), r.stderr.decode())
    with open(conf, "a") as f:
        f.write("max-batch-tokens = -3\n")
    r = run(["--check-config"], env=clean_env(TOTO_CONFIG=conf))
    tap.ok(r.returncode == 2 and conf + ":7: max-batch-tokens" in r.stderr.decode(),
           "a bad file value is reported with file:line and key", r.stderr.decode())
    r = run(["--help"])
    tap.ok(r.returncode == 0 and b"--max-batch-tokens" in r.stdout and b"TOTO_GRACE_MS" in
           r.stdout and b"GET /health" in r.stdout, "--help lists flags and variables")
    r = run(["--version"])
    tap.ok(r.returncode == 0 and r.stdout.startswith(b"totod "), "--version")


def sockets():
    tmp = tempfile.mkdtemp()
    path = os.path.join(tmp, "stale.sock")
    s = socket.socket(socket.AF_UNIX)
    s.bind(path)
    s.close()  # the file stays, nobody listens: stale
    d = Daemon("--unix", path, tcp=False, unix=False)
    c = socket.socket(socket.AF_UNIX)
    c.connect(path)
    mode = os.stat(path).st_mode & 0o777
    tap.ok("replaced the stale socket" in d.log_text() and mode == 0o660,
           "a stale socket file is replaced; the new one is mode 0660", (oct(mode), d.log_text()))
    c.close()
    r = run(["--model", TINY_A, "--unix", path], timeout=30)
    tap.ok(r.returncode == 1 and b"another process is listening" in r.stderr,
           "a live socket makes a second daemon refuse to start", r.stderr.decode())
    tap.ok(os.path.exists(path), "the refused daemon left the live socket alone")
    tap.ok(d.stop() == 0 and not os.path.exists(path), "on SIGTERM the socket file is removed")
    plain = os.path.join(tmp, "plain")
    open(plain, "w").close()
    r = run(["--model", TINY_A, "--unix", plain])
    tap.ok(r.returncode == 1 and b"not a socket" in r.stderr and os.path.exists(plain),
           "a non-socket file at the path is refused, not removed", r.stderr.decode())


def stdio():
    msgs = [line({"jsonrpc": "2.0", "id": 1, "method": "health"}),
            line([forecast(2, SMALL), forecast(3, SMALL)]),
            b"not json\n",
            line(forecast(4, SMALL))[:-1]]  # the last line has no newline
    r = run(["--model", TINY_A, "--stdio"], stdin=b"".join(msgs))
    answers = [json.loads(x) for x in r.stdout.splitlines()]
    ids = sorted(str(a["id"]) if isinstance(a, dict) else "batch" for a in answers)
    tap.ok(r.returncode == 0 and ids == ["1", "4", "None", "batch"],
           "--stdio: answers everything, then exits 0 at EOF", (r.returncode, r.stdout[:500],
                                                                r.stderr.decode()[-500:]))
    tap.ok(b"listening" not in r.stderr, "--stdio opens no socket")
    fd = os.open(tempfile.mkdtemp(), os.O_RDONLY)  # a directory: neither a file nor a stream
    try:
        p = subprocess.run([TOTOD, "--model", TINY_A, "--stdio"], stdin=fd,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=clean_env())
    finally:
        os.close(fd)
    tap.ok(p.returncode == 1 and b"--stdio needs" in p.stderr,
           "--stdio on a directory as stdin: a clear error", p.stderr.decode())
    # A closed stdin must not be mistaken for whatever totod opens next.
    p = subprocess.run([TOTOD, "--model", TINY_A, "--stdio"], preexec_fn=lambda: os.close(0),
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=clean_env())
    tap.ok(p.returncode == 2 and b"stdin is closed" in p.stderr,
           "--stdio with stdin closed: exit 2 and a clear error", (p.returncode, p.stderr.decode()))


def stdio_requests(n):
    """n forecasts (ids f0..), a malformed line, a batch array, a notification, health;
    the last line has no newline. Returns (bytes, the ids that must be answered)."""
    msgs = [line(forecast("f%d" % i, dict(SMALL, series=series(1, 8 + i % 40, i)[0])))
            for i in range(n)]
    msgs.insert(n // 3, b"{not json\n")
    msgs.insert(n // 2, line([forecast("b1", SMALL), {"jsonrpc": "2.0", "id": "b2",
                                                       "method": "health"},
                              {"jsonrpc": "2.0", "method": "forecast", "params": SMALL}]))
    msgs.insert(n // 2 + 1, line({"jsonrpc": "2.0", "method": "health"}))  # notification
    msgs.append(line({"jsonrpc": "2.0", "id": "last", "method": "health"})[:-1])
    want = ["f%d" % i for i in range(n)] + [None, "b1", "b2", "last"]
    return b"".join(msgs), want


def answered_ids(out):
    """(ids of every answer, batch members included, in order; the answers by id)."""
    ids, by_id = [], {}
    for text in out.splitlines():
        doc = json.loads(text)
        for a in doc if isinstance(doc, list) else [doc]:
            ids.append(a.get("id"))
            by_id[a.get("id")] = a
    return ids, by_id


def without_timing(a):
    return {k: ({kk: vv for kk, vv in v.items() if kk != "timing"} if k == "result" else v)
            for k, v in a.items()}


def stdio_files():
    """--stdio with regular files: stdin a file, stdout a file (and the mixes)."""
    tmp = tempfile.mkdtemp()
    n = 300  # above --max-inflight: the one client waits for answers instead of -32000
    data, want = stdio_requests(n)
    src, dst = os.path.join(tmp, "requests.jsonl"), os.path.join(tmp, "out.jsonl")
    with open(src, "wb") as f:
        f.write(data)
    args = ["--model", TINY_A, "--dtype", "float64", "--stdio", "--max-inflight", "40"]
    with open(src, "rb") as fin, open(dst, "wb") as fout:
        p = subprocess.run([TOTOD] + args, stdin=fin, stdout=fout, stderr=subprocess.PIPE,
                           env=clean_env(), timeout=120)
    with open(dst, "rb") as f:
        out = f.read()
    ids, by_id = answered_ids(out)
    tap.ok(p.returncode == 0 and sorted(map(str, ids)) == sorted(map(str, want)),
           "--stdio < file > file: every id answered exactly once, exit 0",
           (p.returncode, len(ids), len(want), p.stderr.decode()[-800:]))
    failed = [a for i, a in by_id.items() if str(i).startswith("f") and "result" not in a]
    tap.ok(not failed and by_id.get(None, {}).get("error", {}).get("code") == -32700,
           "--stdio < file: every forecast computed (none refused by max-inflight), the "
           "malformed line answered -32700", failed[:2])
    batch = [json.loads(t) for t in out.splitlines() if t.startswith(b"[")]
    tap.ok(len(batch) == 1 and sorted(a["id"] for a in batch[0]) == ["b1", "b2"],
           "--stdio < file: the batch array answered as one array", batch)

    # The same bytes through a pipe: the same forecasts (one framing path; health differs).
    r = run(args, stdin=data, timeout=120)
    _, piped = answered_ids(r.stdout)
    differ = [k for k in by_id if k not in ("b2", "last")
              and not close(without_timing(piped.get(k, {})), without_timing(by_id[k]))]
    tap.ok(r.returncode == 0 and piped.keys() == by_id.keys() and not differ,
           "--stdio: a file and a pipe of the same requests get the same answers",
           (r.returncode, len(piped), len(by_id), differ[:3]))

    # stdin a file read from where the shell left it, stdout a pipe.
    with open(src, "rb") as fin:
        skip = len(data.split(b"\n", 1)[0]) + 1
        os.lseek(fin.fileno(), skip, os.SEEK_SET)  # past the first request
        p = subprocess.run([TOTOD] + args, stdin=fin, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, env=clean_env(), timeout=120)
    ids, _ = answered_ids(p.stdout)
    tap.ok(p.returncode == 0 and "f0" not in ids and len(ids) == len(want) - 1,
           "--stdio < file: reads from the file's current position; stdout a pipe",
           (p.returncode, len(ids)))

    # stdin a pipe, stdout a file opened for appending: what was there stays.
    with open(dst, "wb") as f:
        f.write(b"kept\n")
    with open(dst, "ab") as fout:
        p = subprocess.run([TOTOD] + args, input=data, stdout=fout, stderr=subprocess.PIPE,
                           env=clean_env(), timeout=120)
    with open(dst, "rb") as f:
        first, rest = f.read().split(b"\n", 1)
    ids, _ = answered_ids(rest)
    tap.ok(p.returncode == 0 and first == b"kept" and len(ids) == len(want),
           "--stdio >> file: answers appended after what the file held",
           (p.returncode, first, len(ids)))

    with open(os.devnull, "rb") as null:
        p = subprocess.run([TOTOD] + args, stdin=null, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, env=clean_env(), timeout=60)
    tap.ok(p.returncode == 0 and p.stdout == b"", "--stdio < /dev/null: no answers, exit 0",
           (p.returncode, p.stdout[:200], p.stderr.decode()[-400:]))
    if os.path.exists("/dev/full"):  # every write fails: answers lost, so not exit 0
        with open(src, "rb") as fin, open("/dev/full", "wb") as full:
            p = subprocess.run([TOTOD] + args, stdin=fin, stdout=full, stderr=subprocess.PIPE,
                               env=clean_env(), timeout=60)
        tap.ok(p.returncode == 1 and b"could not be written" in p.stderr,
               "--stdio > /dev/full: exit 1, the lost answers said in the log",
               (p.returncode, p.stderr.decode()[-600:]))


def notify():
    tmp = tempfile.mkdtemp()
    path = os.path.join(tmp, "notify")
    ns = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    ns.bind(path)
    ns.settimeout(20)
    d = Daemon(env={"NOTIFY_SOCKET": path})
    warming = ns.recv(4096).decode()
    first = ns.recv(4096).decode()
    d.proc.send_signal(signal.SIGTERM)
    second = ns.recv(4096).decode()
    rc = d.wait()
    tap.ok("STATUS=warming: opening" in warming and "EXTEND_TIMEOUT_USEC=300000000" in warming
           and "READY=1" not in warming,
           "sd_notify STATUS=warming and EXTEND_TIMEOUT_USEC before the model is open", warming)
    tap.ok("READY=1" in first and "STATUS=serving" in first, "sd_notify READY=1 once serving",
           first)
    tap.ok("STOPPING=1" in second and rc == 0, "sd_notify STOPPING=1 on SIGTERM", second)


def drain():
    """SIGTERM while work is queued: it finishes; new forecasts get -32002."""
    d = Daemon("--batch-delay-us", "400000", "--grace-ms", "5000")
    c = d.client()
    c.send(forecast("queued", SMALL))
    time.sleep(0.1)
    d.proc.send_signal(signal.SIGTERM)
    time.sleep(0.1)
    c.send(forecast("new", SMALL))
    first = c.recv()
    second = c.recv()
    eof = c.recv_line()
    tap.ok(first and first["id"] == "new" and first["error"]["code"] == SHUTTING_DOWN,
           "after SIGTERM a new forecast is answered -32002 at once", first)
    tap.ok(second and second["id"] == "queued" and "result" in second and eof is None,
           "the queued one still runs within the grace period, then the connection closes",
           (second, eof))
    tap.ok(d.wait() == 0, "drained daemon exits 0 by itself")
    # A grace period too short: what is still queued is answered -32002.
    d = Daemon("--batch-delay-us", "1000000", "--grace-ms", "50")
    c = d.client()
    c.send(forecast("q1", SMALL), forecast("q2", SMALL))
    time.sleep(0.1)
    d.proc.send_signal(signal.SIGTERM)
    a, b = c.recv(), c.recv()
    tap.ok(a and b and {a["id"], b["id"]} == {"q1", "q2"}
           and a["error"]["code"] == b["error"]["code"] == SHUTTING_DOWN,
           "grace period over: queued requests answered -32002", (a, b))
    tap.ok(d.wait() == 0, "exit 0 after the grace period")


def sigterm_under_load():
    d = Daemon("--batch-delay-us", "2000", "--max-batch-size", "4", "--grace-ms", "300")
    n_clients, per_client = 16, 20
    clients = [d.client(timeout=30) for _ in range(n_clients)]
    for k, c in enumerate(clients):
        c.send(*[forecast("%d-%d" % (k, i), {"series": series(2, 48, i)[0],
                                             "prediction_length": 20, "num_samples": 8})
                 for i in range(per_client)])
    watcher = d.client()
    deadline = time.time() + 20
    while watcher.call("metrics")["result"]["requests"]["forecast"] < n_clients * per_client:
        if time.time() > deadline:
            break
        time.sleep(0.01)
    watcher.close()
    d.proc.send_signal(signal.SIGTERM)
    seen = {}
    bad = []
    refused = 0
    for c in clients:
        while True:
            a = c.recv()
            if a is None:
                break
            seen[a["id"]] = seen.get(a["id"], 0) + 1
            if "result" not in a and a["error"]["code"] != SHUTTING_DOWN:
                bad.append(a)
            refused += "result" not in a
    rc = d.wait()
    want = {"%d-%d" % (k, i) for k in range(n_clients) for i in range(per_client)}
    twice = [k for k, v in seen.items() if v != 1]
    tap.ok(set(seen) == want and not twice and not bad,
           "SIGTERM under load: every accepted request answered exactly once (%d results, "
           "%d -32002)" % (len(seen) - refused, refused),
           (len(seen), len(want), twice[:5], bad[:2]))
    tap.ok(rc == 0 and not os.path.exists(d.sock), "exit 0 and the socket file is gone",
           (rc, d.log_text()[-800:]))


check_config()
sockets()
stdio()
stdio_files()
notify()
drain()
sigterm_under_load()
tap.done()
