#!/usr/bin/env python3
"""TAP test of the Python client (client/python) against the real daemon.

Starts build/daemon/totod on the tiny-a fixture with a temporary Unix socket
and a free TCP port, then checks forecasts (equal to toto-infer's answer for
the same request), pipelining, threads, typed errors and timeouts. The
client's own machinery (out-of-order matching, read timeouts, broken or
garbled connections) is also checked against small servers made here, since
the real daemon cannot be made to misbehave on demand.

Environment: TOTO_BUILD_DIR (default build/), TOTO_TEST_DATA (default
tests/data), TOTO_TOTOD (a totod binary other than the build's).
"""

import builtins
import json
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "client" / "python"))

import toto_client  # noqa: E402
from toto_client import Client  # noqa: E402

BUILD = Path(os.environ.get("TOTO_BUILD_DIR") or ROOT / "build")
DATA = Path(os.environ.get("TOTO_TEST_DATA") or ROOT / "tests" / "data")
MODEL = DATA / "fixtures" / "tiny-a"
TOTOD = Path(os.environ.get("TOTO_TOTOD") or BUILD / "daemon" / "totod")
TOTO_INFER = BUILD / "model" / "toto-infer"
PATCH = 16  # tiny-a's patch_size
THREADS = "2"  # the same intra-op threads for totod and toto-infer
# float64, where a result does not depend on what shares its batch to 1e-12;
# in float32 some BLAS kernels (MKL, cuBLAS) change the last bits with it.
DTYPE = "float64"
REL_TOL = 1e-12


def close(a, b):
    """Same structure, numbers equal to REL_TOL (relative)."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(close(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(close(x, y) for x, y in zip(a, b))
    if isinstance(a, float) and isinstance(b, float):
        return abs(a - b) <= REL_TOL * max(abs(a), abs(b))
    return a == b


class Tap:
    """Prints TAP lines; remembers whether anything failed."""

    def __init__(self):
        self.run = 0
        self.failed = 0

    def check(self, ok, name, diag=None):
        self.run += 1
        if not ok:
            self.failed += 1
        print("%sok %d - %s" % ("" if ok else "not ", self.run, name), flush=True)
        if not ok and diag:
            self.diag(diag)
        return ok

    def skip(self, name, reason):
        self.run += 1
        print("ok %d - %s # SKIP %s" % (self.run, name, reason), flush=True)

    def diag(self, text):
        for line in str(text).splitlines() or [""]:
            print("# " + line, flush=True)

    def done(self):
        print("1..%d" % self.run, flush=True)
        return 0 if self.failed == 0 and self.run > 0 else 1


def raises(fn, cls):
    """The exception fn() raised if it is a cls, else None (and what happened)."""
    try:
        value = fn()
    except cls as exc:
        return exc, None
    except BaseException as exc:  # noqa: BLE001
        return None, "raised %s: %s" % (type(exc).__name__, exc)
    return None, "returned %r" % (value,)


# -- the daemon and toto-infer -------------------------------------------------


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Daemon:
    """totod on a temporary Unix socket and a free TCP port."""

    def __init__(self, tmp):
        self.sock = os.path.join(tmp, "totod.sock")
        self.port = free_port()
        self.log_path = os.path.join(tmp, "totod.log")
        self.log = open(self.log_path, "wb")
        argv = [str(TOTOD), "--model", str(MODEL), "--unix", self.sock,
                "--tcp", "127.0.0.1:%d" % self.port, "--threads", THREADS, "--dtype", DTYPE]
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=self.log, stderr=self.log)

    def wait_ready(self, seconds=60.0):
        """Until health answers on the Unix socket; False if totod died or took too long."""
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                return False
            try:
                with Client("unix:" + self.sock, timeout=2) as c:
                    c.health()
                    return True
            except toto_client.TotoError:
                time.sleep(0.05)
        return False

    def stop(self):
        """SIGTERM, then SIGKILL if it lingers; returns the exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        return self.proc.returncode

    def log_text(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")[-4000:]
        except OSError:
            return ""


def toto_infer(params):
    """toto-infer's result for a forecast params object (the reference answer)."""
    out = subprocess.run([str(TOTO_INFER), "--model", str(MODEL), "--threads", THREADS,
                          "--dtype", DTYPE],
                         input=json.dumps(params), capture_output=True, text=True, timeout=60)
    if out.returncode != 0:
        raise RuntimeError("toto-infer failed (%d): %s" % (out.returncode, out.stderr.strip()))
    return json.loads(out.stdout)


def same_numbers(fc, ref):
    """Every number the daemon and toto-infer return agrees (REL_TOL)."""
    if not close(fc.mean, ref["mean"]) or not close(fc.median, ref.get("median")):
        return False
    if "quantiles" in ref:
        levels = ref["quantiles"]["levels"]
        if not close([fc.quantiles.get(level) for level in levels], ref["quantiles"]["values"]):
            return False
    elif fc.quantiles:
        return False
    return close(fc.samples, ref.get("samples"))


def shape(a):
    dims = []
    while isinstance(a, list):
        dims.append(len(a))
        a = a[0] if a else None
    return dims


# -- tiny servers for the client's own machinery ---------------------------------


class FakeServer:
    """A TCP server thread that runs handler(conn) for each connection."""

    def __init__(self, handler, backlog=16):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(backlog)
        self.address = "tcp:127.0.0.1:%d" % self.sock.getsockname()[1]
        self.handler = handler
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn):
        try:
            self.handler(conn)
        except (OSError, ValueError):  # the client went away mid-line
            pass
        finally:
            conn.close()

    def close(self):
        self.sock.close()


def read_lines(conn, n):
    """The first n request lines on conn, parsed."""
    f = conn.makefile("rb")
    return [json.loads(f.readline()) for _ in range(n)]


def answer_reversed(n):
    """A handler that reads n requests, then answers them last first."""

    def handler(conn):
        requests = read_lines(conn, n)
        for req in reversed(requests):
            line = {"jsonrpc": "2.0", "id": req["id"], "result": {"echo": req["params"]}}
            conn.sendall((json.dumps(line) + "\n").encode())
        conn.makefile("rb").read()  # until the client closes

    return handler


# -- the checks -------------------------------------------------------------------


def check_basics(tap, daemon):
    with Client("unix:" + daemon.sock, timeout=30) as c:
        health = c.health()
        tap.check(isinstance(health, dict) and health.get("status") == "ok",
                  "health over unix: a dict with status ok", health)
        info = c.info()
        tap.check(isinstance(info, dict) and isinstance(info.get("model"), dict), "info: a dict with the model", info)
        metrics = c.metrics()
        tap.check(isinstance(metrics, dict) and metrics.get("requests", {}).get("health", 0) >= 1,
                  "metrics: a dict that counted the health requests", metrics)
    tap.check(c.closed, "the context manager closes the client")
    with Client(daemon.sock, timeout=30) as c:
        tap.check(isinstance(c.health(), dict), "a bare path is a Unix socket address")


def check_forecasts(tap, daemon):
    series = [10.0, 11.5, 12.25, 11.0, 13.0, 14.5, 13.75, 15.0, 16.0, 15.5, 17.0, 18.25]
    with Client("unix:" + daemon.sock, timeout=30) as c:
        fc = c.forecast(series, 5, quantiles=[0.1, 0.5, 0.9], series_id="unix-1")
    ref = toto_infer({"series": series, "prediction_length": 5, "quantiles": [0.1, 0.5, 0.9]})
    tap.check(shape(fc.mean) == [1, 5] and shape(fc.median) == [1, 5],
              "unix: a flat series gives mean and median of shape [1][h]", shape(fc.mean))
    tap.check(same_numbers(fc, ref), "unix: numbers equal toto-infer's for the same request",
              "daemon %s\ntoto-infer %s" % (fc.raw, ref))
    tap.check(list(fc.quantiles) == [0.1, 0.5, 0.9] and shape(fc.quantiles[0.9]) == [1, 5],
              "quantiles: keyed by level in the order asked, each [V][h]", fc.quantiles)
    tap.check(isinstance(fc.model, dict) and fc.model.get("device") and fc.model.get("dtype"),
              "forecast carries the model's info", fc.model)
    tap.check(isinstance(fc.timing, dict) and fc.series_id == "unix-1",
              "forecast carries timing and echoes series_id", (fc.timing, fc.series_id))

    multi = [[1.0, 2.0, None, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0],
             [5.0, float("nan"), 4.0, 3.5, 3.0, 2.5, 2.0, 1.5, 1.0, 0.5],
             [0.0, 1.0, 0.0, 1.0, 0.0, 1.0, 0.0, 1.0, 0.0, 1.0]]
    sent = [[None if v is None or v != v else v for v in row] for row in multi]
    with Client("tcp:127.0.0.1:%d" % daemon.port, timeout=30) as c:
        fc = c.forecast(multi, 3, groups=[0, 0, 1])
    ref = toto_infer({"series": sent, "prediction_length": 3, "groups": [0, 0, 1]})
    tap.check(shape(fc.mean) == [3, 3], "tcp: three variates give shape [3][h]", shape(fc.mean))
    tap.check(same_numbers(fc, ref), "tcp: None and NaN sent as null; numbers equal toto-infer's",
              "daemon %s\ntoto-infer %s" % (fc.raw, ref))

    params = {"series": series, "prediction_length": PATCH + 4, "num_samples": 16, "seed": 7,
              "quantiles": [0.25, 0.75], "return_samples": True}
    with Client(("127.0.0.1", daemon.port), timeout=30) as c:
        fc = c.forecast(**params)
    ref = toto_infer(params)
    tap.check(shape(fc.samples) == [16, 1, PATCH + 4], "samples are [N][V][h]", shape(fc.samples))
    tap.check(same_numbers(fc, ref), "sampled forecast past the first patch equals toto-infer's (same seed)",
              "daemon %s\ntoto-infer %s" % (fc.raw, ref))
    with Client(("127.0.0.1", daemon.port), timeout=30) as c:
        tap.check(c.forecast(series, PATCH + 4).median is None,
                  "a mean forecast past the first patch has median None")


def pipeline_requests(n):
    """n distinct requests: the horizon and series_id tell each answer apart."""
    out = []
    for i in range(n):
        base = float(i % 7)
        out.append({"series": [base + math.sin(t / 3.0) for t in range(24)],
                    "prediction_length": 1 + i % 9, "series_id": "req-%d" % i})
    return out


def check_pipelining(tap, daemon):
    requests = pipeline_requests(200)
    with Client("unix:" + daemon.sock, timeout=60) as c:
        # references one at a time, for the 63 distinct (series, horizon) pairs
        refs = {}
        for r in requests:
            key = (r["series"][0], r["prediction_length"])
            if key not in refs:
                refs[key] = c.forecast(r["series"], r["prediction_length"]).mean
        order = []
        calls = []
        for r in requests:
            call = c.submit("forecast", r)
            call.add_done_callback(lambda call: order.append(call.id))
            calls.append(call)
        results = [call.result(60) for call in reversed(calls)][::-1]
        ok = all(res["series_id"] == r["series_id"] and shape(res["mean"]) == [1, r["prediction_length"]]
                 and close(res["mean"], refs[(r["series"][0], r["prediction_length"])])
                 for res, r in zip(results, requests))
        tap.check(ok, "pipelining: 200 requests on one connection, each answer matched to its request")
        ids = [call.id for call in calls]
        tap.diag("answers arrived %s" % ("out of order" if order != ids else "in order"))

        many = c.forecast_many(requests[:50], window=16)
        tap.check(all(isinstance(f, toto_client.Forecast) and f.series_id == r["series_id"]
                      and close(f.mean, refs[(r["series"][0], r["prediction_length"])])
                      for f, r in zip(many, requests)) and len(many) == 50,
                  "forecast_many: 50 forecasts, results in request order")

        mixed = c.forecast_many([requests[0], {"series": [1.0], "prediction_length": 0}, requests[1]],
                                return_exceptions=True)
        tap.check(isinstance(mixed[1], toto_client.InvalidParams) and mixed[0].series_id == "req-0"
                  and mixed[2].series_id == "req-1",
                  "forecast_many(return_exceptions=True): a failed request gives its error in place", mixed)

        failures = []

        def worker(t):
            try:
                for k in range(25):
                    r = requests[(t * 25 + k) % len(requests)]
                    f = c.forecast(**r)
                    if f.series_id != r["series_id"] or not close(f.mean, refs[(r["series"][0], r["prediction_length"])]):
                        failures.append("thread %d: %s got %s" % (t, r["series_id"], f.series_id))
            except Exception as exc:  # noqa: BLE001
                failures.append("thread %d: %r" % (t, exc))

        threads = [threading.Thread(target=worker, args=(t,)) for t in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        tap.check(not failures, "8 threads x 25 forecasts share one client", "\n".join(failures[:5]))


def check_errors(tap, daemon):
    with Client("unix:" + daemon.sock, timeout=30) as c:
        exc, what = raises(lambda: c.forecast([1.0, 2.0, 3.0], 0), toto_client.InvalidParams)
        tap.check(exc is not None and exc.code == -32602 and exc.field == "prediction_length"
                  and isinstance(exc, toto_client.TotoError),
                  "prediction_length 0: InvalidParams, code -32602, field 'prediction_length'", what or exc)
        exc, what = raises(lambda: c.call("forecast", {"series": [1.0], "prediction_length": 2, "bogus": 1}),
                           toto_client.InvalidParams)
        tap.check(exc is not None and exc.field == "bogus", "an unknown param: InvalidParams naming it", what or exc)
        exc, what = raises(lambda: c.call("nope", {}), toto_client.MethodNotFound)
        tap.check(exc is not None and exc.code == -32601 and isinstance(exc.message, str),
                  "call('nope'): MethodNotFound, code -32601", what or exc)
        exc, what = raises(lambda: c.forecast([1.0, 2.0, 3.0], 2, timeout_ms=0), toto_client.DeadlineExceeded)
        tap.check(exc is not None and exc.code == -32001, "timeout_ms=0: DeadlineExceeded, code -32001", what or exc)
        exc, what = raises(lambda: c.forecast([1.0, 2.0], 2, quantiles=[float("nan")]), ValueError)
        tap.check(exc is not None, "NaN outside the series is refused before sending (ValueError)", what)
        exc, what = raises(lambda: c.forecast([1.0, float("inf")], 2), ValueError)
        tap.check(exc is not None and "series[1]" in str(exc), "an infinite value is refused, naming it", what or exc)
        tap.check(isinstance(c.forecast([1.0, 2.0, 3.0], 2), toto_client.Forecast),
                  "the connection still works after errors")

    with socket.socket(socket.AF_UNIX) as raw:
        raw.settimeout(10)
        raw.connect(daemon.sock)
        raw.sendall(b'{"jsonrpc":"2.0","id":1,"method":\n')
        line = raw.makefile("rb").readline()
    err = toto_client.errors.error_from_response(json.loads(line).get("error"))
    tap.check(isinstance(err, toto_client.ParseError) and err.code == -32700,
              "a line that is not JSON: the daemon's answer maps to ParseError", line)

    mapping = {-32700: toto_client.ParseError, -32600: toto_client.InvalidRequest,
               -32601: toto_client.MethodNotFound, -32602: toto_client.InvalidParams,
               -32603: toto_client.InternalError, -32000: toto_client.Overloaded,
               -32001: toto_client.DeadlineExceeded, -32002: toto_client.ShuttingDown,
               -32003: toto_client.ModelError}
    ok = all(type(toto_client.errors.error_from_response({"code": k, "message": "m"})) is cls
             and issubclass(cls, toto_client.RPCError) and issubclass(cls, toto_client.TotoError)
             for k, cls in mapping.items())
    other = toto_client.errors.error_from_response({"code": -1, "message": "m", "data": {"x": 1}})
    tap.check(ok and type(other) is toto_client.RPCError and other.data == {"x": 1},
              "every error code maps to its class; unknown codes to RPCError")


def check_timeouts(tap):
    port = free_port()
    start = time.monotonic()
    exc, what = raises(lambda: Client("tcp:127.0.0.1:%d" % port, timeout=2), toto_client.ConnectionError)
    tap.check(exc is not None and isinstance(exc, builtins.ConnectionError) and time.monotonic() - start < 2,
              "connecting to a closed port: ConnectionError (a builtins.ConnectionError)", what)
    missing = os.path.join(tempfile.gettempdir(), "toto-no-such-%d.sock" % os.getpid())
    exc, what = raises(lambda: Client("unix:" + missing), toto_client.ConnectionError)
    tap.check(exc is not None, "connecting to a missing Unix socket: ConnectionError", what)

    # A listener whose accept queue is full drops new SYNs: connect hangs.
    full = socket.socket()
    full.bind(("127.0.0.1", 0))
    full.listen(0)
    fillers = []
    for _ in range(4):
        s = socket.socket()
        s.setblocking(False)
        s.connect_ex(full.getsockname())
        fillers.append(s)
    time.sleep(0.1)
    start = time.monotonic()
    exc, what = raises(lambda: Client("tcp:127.0.0.1:%d" % full.getsockname()[1], timeout=0.5),
                       toto_client.TimeoutError)
    took = time.monotonic() - start
    tap.check(exc is not None and isinstance(exc, builtins.TimeoutError) and took < 3,
              "connect timeout on a listener that never accepts: TimeoutError after %.2f s" % took, what)
    for s in fillers + [full]:
        s.close()

    # A listener that accepts (the kernel does) but never answers.
    mute = socket.socket()
    mute.bind(("127.0.0.1", 0))
    mute.listen(8)
    with Client("tcp:127.0.0.1:%d" % mute.getsockname()[1], timeout=0.3) as c:
        start = time.monotonic()
        exc, what = raises(c.health, toto_client.TimeoutError)
        took = time.monotonic() - start
        tap.check(exc is not None and 0.25 <= took < 2,
                  "read timeout: a call with no answer raises TimeoutError after %.2f s" % took, what)
        exc, what = raises(lambda: c.info(timeout=0.1), toto_client.TimeoutError)
        tap.check(exc is not None and not c.closed, "a per-call timeout overrides the client's; still open", what)
        call = c.submit("health", {})
        exc, what = raises(lambda: call.result(0.1), toto_client.TimeoutError)
        tap.check(exc is not None and not call.done() and call.cancel() and call.cancelled(),
                  "submit(): result(timeout) raises TimeoutError and the call can be cancelled", what)
    mute.close()


def check_machinery(tap):
    server = FakeServer(answer_reversed(20))
    with Client(server.address, timeout=10) as c:
        calls = [c.submit("echo", {"n": i}) for i in range(20)]
        got = [call.result(10)["echo"]["n"] for call in calls]
    tap.check(got == list(range(20)), "answers in reverse order are matched to their requests by id", got)
    server.close()

    def close_after_one(conn):
        read_lines(conn, 1)

    server = FakeServer(close_after_one)
    with Client(server.address, timeout=10) as c:
        exc, what = raises(c.health, toto_client.ConnectionError)
        tap.check(exc is not None and c.closed, "the daemon closing mid-call: ConnectionError, client closed", what)
        exc, what = raises(c.health, toto_client.ConnectionError)
        tap.check(exc is not None, "calls on a broken connection raise ConnectionError", what)
    server.close()

    def garble(conn):
        read_lines(conn, 1)
        conn.sendall(b"this is not json\n")
        time.sleep(1)

    server = FakeServer(garble)
    with Client(server.address, timeout=10) as c:
        exc, what = raises(c.health, toto_client.ConnectionError)
        tap.check(exc is not None and isinstance(exc.__cause__, toto_client.ProtocolError),
                  "a garbled answer: ConnectionError caused by ProtocolError", what or repr(exc.__cause__))
    server.close()

    server = FakeServer(answer_reversed(3))
    c = Client(server.address, timeout=10)
    pending = c.submit("echo", {})
    c.close()
    exc, what = raises(lambda: pending.result(5), toto_client.ConnectionError)
    tap.check(exc is not None, "close() fails the calls still waiting with ConnectionError", what)
    server.close()


def check_numpy(tap, daemon):
    try:
        import numpy as np
    except ImportError:
        tap.skip("numpy arrays in, numpy arrays out", "numpy not installed")
        return
    rows = np.array([[1.0, 2.0, np.nan, 4.0, 5.0, 6.0], [6.0, 5.0, 4.0, 3.0, 2.0, 1.0]])
    with Client("unix:" + daemon.sock, timeout=30) as c:
        from_lists = c.forecast([[1.0, 2.0, None, 4.0, 5.0, 6.0], [6.0, 5.0, 4.0, 3.0, 2.0, 1.0]], 4)
        from_numpy = c.forecast(rows, 4, quantiles=np.array([0.5]), groups=np.array([0, 1]) * 0, as_numpy=True)
    tap.check(isinstance(from_numpy.mean, np.ndarray) and from_numpy.mean.shape == (2, 4)
              and from_numpy.quantiles[0.5].shape == (2, 4)
              and from_numpy.mean.tolist() == from_lists.mean,
              "numpy arrays in (NaN as missing), numpy arrays out with as_numpy=True")


def check_drift_and_admin(tap, daemon):
    import datetime
    hours = [20.0 + (i % 24) * 0.5 for i in range(72)]
    t0 = datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc)
    step = datetime.timedelta(hours=1)
    with Client("unix:" + daemon.sock, timeout=30) as c:
        fc = c.forecast(hours[:48], 6, series_id="py-drift", start=t0, interval=step)
        scored = c.observe("py-drift", hours[48:54], start=t0 + 48 * step, interval=step)
        again = c.observe("py-drift", hours[48:54],
                          timestamps=[t0 + (48 + i) * step for i in range(6)])
        tracked = c.metrics()["drift"]["tracked"]
        tap.check(fc.mean is not None and scored == 6 and again == 0 and tracked >= 1,
                  "forecast with a time axis (datetime, timedelta), observe() scores its 6 steps "
                  "once (start+interval, then timestamps)", (scored, again, tracked))
        try:
            c.observe("py-drift", [1.0])
            tap.check(False, "observe() without a time axis raises InvalidParams")
        except toto_client.InvalidParams as exc:
            tap.check("start" in str(exc), "observe() without a time axis raises InvalidParams naming start", exc)
        tap.check(c.use_compiled() == "compiled", "use_compiled(): the daemon is on its compiled path")


def main():
    tap = Tap()
    check_machinery(tap)
    check_timeouts(tap)
    if not tap.check(TOTOD.is_file() and TOTO_INFER.is_file(),
                     "totod and toto-infer are built", "missing %s or %s" % (TOTOD, TOTO_INFER)):
        return tap.done()
    tmp = tempfile.mkdtemp(prefix="toto-client-")
    daemon = Daemon(tmp)
    try:
        if not tap.check(daemon.wait_ready(), "totod starts and answers health on its Unix socket",
                         daemon.log_text()):
            return tap.done()
        check_basics(tap, daemon)
        check_forecasts(tap, daemon)
        check_pipelining(tap, daemon)
        check_errors(tap, daemon)
        check_numpy(tap, daemon)
        check_drift_and_admin(tap, daemon)
        tap.check(daemon.proc.poll() is None, "totod is still running after all that", daemon.log_text())
    except Exception as exc:  # noqa: BLE001 - report, don't crash the TAP stream
        import traceback

        tap.check(False, "the test ran to the end", "%r\n%s" % (exc, traceback.format_exc()))
    finally:
        status = daemon.stop()
        if tap.failed:
            tap.diag("totod exited %s; its log:\n%s" % (status, daemon.log_text()))
        shutil.rmtree(tmp, ignore_errors=True)
    return tap.done()


if __name__ == "__main__":
    sys.exit(main())
