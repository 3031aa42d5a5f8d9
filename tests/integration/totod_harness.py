"""totod_harness - runs the real build/daemon/totod for the integration tests.

Python 3 standard library only. Each test script makes a Tap, starts one or
more Daemons (a temporary Unix socket, a TCP port the daemon picks itself and
reports in its log), talks to them with Clients and ends with tap.done().

Environment: TOTO_BUILD_DIR (the meson build directory) and TOTO_TEST_DATA
(tests/data), as meson's test_env sets them.
"""

import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

BUILD = os.environ.get("TOTO_BUILD_DIR") or os.path.join(os.path.dirname(__file__), "../../build")
DATA = os.environ.get("TOTO_TEST_DATA") or os.path.join(os.path.dirname(__file__), "../data")
TOTOD = os.path.join(BUILD, "daemon", "totod")
# totod with its fault-injection hooks (TOTO_FAULT_* variables), built for the tests only.
TOTOD_FAULTY = os.path.join(BUILD, "daemon", "totod-faulty")
TOTO_INFER = os.path.join(BUILD, "model", "toto-infer")
TINY_A = os.path.join(DATA, "fixtures", "tiny-a")
TINY_B = os.path.join(DATA, "fixtures", "tiny-b")

# TOTO_WRAPPER: a command line put before totod's (scripts/test-valgrind sets
# "valgrind --error-exitcode=99 ..."); it slows startup, answers and shutdown
# by SLOW times, and the harness waits that much longer.
WRAPPER = shlex.split(os.environ.get("TOTO_WRAPPER", ""))
SLOW = 20 if WRAPPER else 1

# Error codes (protocol/PROTOCOL.md).
PARSE, INVALID_REQUEST, NO_METHOD, INVALID_PARAMS = -32700, -32600, -32601, -32602
OVERLOADED, DEADLINE, SHUTTING_DOWN, MODEL_ERROR = -32000, -32001, -32002, -32003


class Tap:
    """TAP output: ok N - name / not ok N - name, then the plan."""

    def __init__(self):
        self.n = 0
        self.failed = 0

    def ok(self, cond, name, diag=None):
        self.n += 1
        if not cond:
            self.failed += 1
        print(("ok" if cond else "not ok") + " %d - %s" % (self.n, name), flush=True)
        if not cond and diag is not None:
            for line in str(diag)[:2000].splitlines():
                print("# " + line, flush=True)
        return bool(cond)

    def done(self):
        print("1..%d" % self.n, flush=True)
        sys.exit(1 if self.failed or self.n == 0 else 0)


def series(v, t, seed=0):
    """A smooth V x T series, different per seed."""
    import math

    return [[10 * (i + 1) + math.sin(s / 5.0 + i + seed) + 0.01 * s * (seed + 1) for s in range(t)]
            for i in range(v)]


def forecast(rid, params):
    return {"jsonrpc": "2.0", "id": rid, "method": "forecast", "params": params}


def line(msg):
    return (json.dumps(msg, separators=(",", ":")) + "\n").encode()


# Answers are compared in float64, where the model promises that a request's
# result does not depend on what shares its batch to 1e-12 (relative). In
# float32, BLAS libraries whose kernels depend on the batch size (MKL, cuBLAS)
# may change the last bits, so exact comparisons would test the BLAS.
DTYPE = "float64"
REL_TOL = 1e-12


def close(a, b, rel=REL_TOL):
    """a and b have the same structure and their numbers agree to rel."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(close(a[k], b[k], rel) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(close(x, y, rel) for x, y in zip(a, b))
    if isinstance(a, float) and isinstance(b, float):
        return abs(a - b) <= rel * max(abs(a), abs(b))
    return a == b


def infer(model, params):
    """toto-infer's result for the same params, as a dict."""
    out = subprocess.run([TOTO_INFER, "--model", model, "--dtype", DTYPE],
                         input=json.dumps(params).encode(),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
    if out.returncode != 0:
        raise RuntimeError("toto-infer failed: %s" % out.stderr.decode())
    return json.loads(out.stdout)


def strip_daemon(result):
    """A forecast result without the fields only the daemon adds."""
    return {k: v for k, v in result.items() if k not in ("timing", "series_id")}


class Daemon:
    """One totod process with a Unix socket and a TCP port in a temp dir."""

    def __init__(self, *args, model=TINY_A, env=None, unix=True, tcp=True, wait=True,
                 binary=None):
        self.dir = tempfile.mkdtemp(prefix="totod-test-")
        self.sock = os.path.join(self.dir, "toto.sock")
        cmd = WRAPPER + [binary or TOTOD] + (["--model", model] if model else [])
        if "--dtype" not in args:
            cmd += ["--dtype", DTYPE]
        cmd += ["--unix", self.sock if unix else "none"]
        if tcp:
            cmd += ["--tcp", "127.0.0.1:0"]
        cmd += list(args)
        full_env = dict(os.environ)
        for k in list(full_env):
            if k.startswith("TOTO_") and k not in ("TOTO_TEST_DATA", "TOTO_BUILD_DIR"):
                del full_env[k]
        full_env.pop("NOTIFY_SOCKET", None)
        full_env.update(env or {})
        self.cmd = cmd
        self.log = []
        self.port = None
        self.http_port = None  # with "--http", "127.0.0.1:0" among args
        self.ready = threading.Event()
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, env=full_env)
        self.reader = threading.Thread(target=self._read_log, daemon=True)
        self.reader.start()
        if wait:
            self.wait_ready()

    def _read_log(self):
        for raw in self.proc.stderr:
            text = raw.decode(errors="replace").rstrip("\n")
            self.log.append(text)
            m = re.search(r"listening on tcp \S+:(\d+)$", text)
            if m:
                self.port = int(m.group(1))
            m = re.search(r"listening on http \S+:(\d+)$", text)
            if m:
                self.http_port = int(m.group(1))
            if text.endswith("totod: ready"):
                self.ready.set()

    def wait_ready(self, timeout=30):
        deadline = time.time() + timeout * SLOW
        while not self.ready.is_set():
            if self.proc.poll() is not None or time.time() > deadline:
                raise RuntimeError("totod did not start: %s\n%s" % (self.cmd, self.log_text()))
            self.ready.wait(0.05)

    def log_text(self):
        time.sleep(0.05)
        return "\n".join(self.log)

    def client(self, kind="unix", timeout=20):
        return Client(self, kind, timeout * SLOW)

    def stop(self, sig=signal.SIGTERM, timeout=30):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            rc = self.proc.wait(timeout * SLOW)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait()
        self.reader.join(5)
        return rc

    def wait(self, timeout=30):
        """The exit status once it exits by itself (None if it does not)."""
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None
        self.reader.join(5)
        return rc

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


class Client:
    """A line-oriented JSON-RPC client on the daemon's Unix socket or TCP port."""

    def __init__(self, daemon, kind="unix", timeout=20):
        if kind == "unix":
            self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.s.connect(daemon.sock)
        else:
            self.s = socket.create_connection(("127.0.0.1", daemon.port))
        self.s.settimeout(timeout)
        self.buf = b""
        self.next_id = 0

    def send(self, *msgs):
        self.s.sendall(b"".join(m if isinstance(m, bytes) else line(m) for m in msgs))

    def recv_line(self):
        """The next line (bytes, no newline), or None at EOF."""
        while b"\n" not in self.buf:
            chunk = self.s.recv(1 << 20)
            if not chunk:
                return None
            self.buf += chunk
        text, self.buf = self.buf.split(b"\n", 1)
        return text

    def recv(self):
        text = self.recv_line()
        return None if text is None else json.loads(text)

    def call(self, method, params=None, rid=None):
        if rid is None:
            self.next_id += 1
            rid = "c%d" % self.next_id
        msg = {"jsonrpc": "2.0", "id": rid, "method": method}
        if params is not None:
            msg["params"] = params
        self.send(msg)
        return self.recv()

    def close(self):
        self.s.close()
