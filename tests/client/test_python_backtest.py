#!/usr/bin/env python3
"""TAP test of the Python client's backtest features against the real daemon.

Checks, on build/daemon/totod with the tiny-a fixture: the address forms and
the context manager, lists and numpy arrays in and out, pipelining
(forecast_many), client-side timeouts, forecast_df on hourly, daily (with
gaps and NaN) and monthly DataFrames and its errors, retries with backoff on
Overloaded (a daemon started with --queue-limit 1 --max-inflight 1), on
ShuttingDown and on a dropped connection (the daemon restarted on the same
socket path), and that ``pip install ./client/python`` gives a working
package. numpy and pandas are optional: without them their checks are
skipped (TAP SKIP) and the logic that does not need them is checked alone.

Environment: TOTO_BUILD_DIR (default build/), TOTO_TEST_DATA (default
tests/data), TOTO_TOTOD (a totod binary other than the build's).
"""

import importlib.util
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from test_python_client import (  # noqa: E402
    DTYPE, MODEL, ROOT, THREADS, TOTOD, FakeServer, Tap, close, raises, read_lines, shape,
)

import toto_client  # noqa: E402
from toto_client import Client  # noqa: E402
from toto_client._frame import regular_step, statistic_name  # noqa: E402
from toto_client._retry import backoff_delay, retry_reason  # noqa: E402

try:
    import numpy as np
except ImportError:
    np = None
try:
    import pandas as pd
except ImportError:
    pd = None

NO_NUMPY = "numpy not installed"
NO_PANDAS = "pandas not installed"
SERIES = [10.0, 11.5, 12.25, 11.0, 13.0, 14.5, 13.75, 15.0, 16.0, 15.5, 17.0, 18.25]
# Forecasts that keep tiny-a busy for about half a second and a second and a half
# on two CPU threads (longer on a slower machine, which only widens the margins).
SLOW = {"series": [float(i % 24) for i in range(512)], "prediction_length": 256, "num_samples": 1536}
SLOWER = dict(SLOW, num_samples=4096)


class Totod:
    """build/daemon/totod on a given Unix socket path (and a TCP port it picks), with extra flags."""

    def __init__(self, sock, *args):
        self.sock = sock
        self.port = None
        self.log = []
        self.ready = threading.Event()
        argv = [str(TOTOD), "--model", str(MODEL), "--unix", sock, "--tcp", "127.0.0.1:0",
                "--threads", THREADS, "--dtype", DTYPE] + list(args)
        env = {k: v for k, v in os.environ.items() if not k.startswith("TOTO_") or k in ("TOTO_TEST_DATA",
                                                                                            "TOTO_BUILD_DIR")}
        env.pop("NOTIFY_SOCKET", None)
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, env=env)
        self.reader = threading.Thread(target=self._read_log, daemon=True)
        self.reader.start()

    def _read_log(self):
        for raw in self.proc.stderr:
            text = raw.decode(errors="replace").rstrip("\n")
            self.log.append(text)
            m = re.search(r"listening on tcp \S+:(\d+)$", text)
            if m:
                self.port = int(m.group(1))
            if text.endswith("totod: ready"):
                self.ready.set()

    def wait_ready(self, seconds=60.0):
        end = time.monotonic() + seconds
        while not self.ready.wait(0.05):
            if self.proc.poll() is not None or time.monotonic() > end:
                return False
        return True

    def stop(self, sig=signal.SIGTERM):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            rc = self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait()
        self.reader.join(5)
        return rc

    def log_text(self):
        return "\n".join(self.log[-40:])


def started(tap, daemon, name):
    return tap.check(daemon.wait_ready(), name, daemon.log_text())


def all_forecasts(results):
    return all(isinstance(r, toto_client.Forecast) for r in results)


# -- without a daemon ---------------------------------------------------------------


def check_helpers(tap):
    tap.check(regular_step([0, 10, 20, 30]) == (10, [0, 1, 2, 3]), "regular_step: a regular sequence")
    tap.check(regular_step([0, 10, 30, 40, 50]) == (10, [0, 1, 3, 4, 5]),
              "regular_step: a gap is a multiple of the most common step", regular_step([0, 10, 30, 40, 50]))
    for times, why in (([0, 10, 25, 40], "irregular"), ([0, 10, 10, 20], "increasing"),
                       ([0, 20, 10], "increasing"), ([5], "fewer than two")):
        exc, what = raises(lambda: regular_step(times), ValueError)
        tap.check(exc is not None and why in str(exc), "regular_step(%r): ValueError (%s)" % (times, why), what or exc)
    names = [statistic_name(q) for q in (0.1, 0.5, 0.9, 0.025, 0.975)]
    tap.check(names == ["q0.1", "q0.5", "q0.9", "q0.025", "q0.975"], "quantile columns are named q<level>", names)

    import random
    rng = random.Random(1)
    ok = True
    for attempt in range(12):
        nominal = min(1.0, 0.05 * 2 ** attempt)
        for _ in range(50):
            d = backoff_delay(attempt, 0.05, 1.0, rng)
            ok = ok and nominal / 2 <= d <= nominal
    tap.check(ok, "backoff_delay: base * 2**n capped, jittered within [half, all] of it")
    cases = [(toto_client.Overloaded("m", code=-32000), "overloaded"),
             (toto_client.ShuttingDown("m", code=-32002), "shutting_down"),
             (toto_client.ConnectionError("dropped"), "disconnected"),
             (toto_client.InvalidParams("m", code=-32602), None),
             (toto_client.DeadlineExceeded("m", code=-32001), None),
             (toto_client.ModelError("m", code=-32003), None),
             (toto_client.ProtocolError("garbage"), None),
             (toto_client.TimeoutError("slow"), None)]
    garbled = toto_client.ConnectionError("closed")
    garbled.__cause__ = toto_client.ProtocolError("garbage")
    cases.append((garbled, None))
    got = [retry_reason(exc) for exc, _ in cases]
    tap.check(got == [want for _, want in cases],
              "retried: Overloaded, ShuttingDown, a dropped connection; never InvalidParams, "
              "DeadlineExceeded, model errors, garbled streams, timeouts", got)

    if pd is None:
        exc, what = raises(lambda: toto_client._frame.prepare_frame([[1.0]]), ImportError)
        tap.check(exc is not None and "pandas" in str(exc),
                  "without pandas the DataFrame methods raise ImportError naming pandas", what or exc)


def check_pipelining_on_the_wire(tap):
    """A server that answers nothing until it has read all 10 requests: only a
    client that writes them all before waiting gets its answers."""
    n = 10

    def handler(conn):
        requests = read_lines(conn, n)
        for req in reversed(requests):
            i = req["params"]["series"][0]
            line = '{"jsonrpc":"2.0","id":%d,"result":{"mean":[[%r]],"median":null}}\n' % (req["id"], i)
            conn.sendall(line.encode())
        conn.makefile("rb").read()

    server = FakeServer(handler)
    with Client(server.address, timeout=5) as c:
        exc = None
        try:
            got = c.forecast_many([{"series": [float(i)], "prediction_length": 1} for i in range(n)])
        except toto_client.TotoError as e:
            exc, got = e, []
    tap.check(exc is None and [f.mean[0][0] for f in got] == [float(i) for i in range(n)],
              "forecast_many writes every request before awaiting an answer", exc)
    server.close()


def check_install(tap, daemon):
    """pip install --target of client/python (a copy, so no build files land in the tree)."""
    if importlib.util.find_spec("setuptools") is None:
        tap.skip("pip install ./client/python", "no build backend: setuptools is not installed")
        return
    has_bdist_wheel = (importlib.util.find_spec("wheel") is not None
                       or importlib.util.find_spec("setuptools.command.bdist_wheel") is not None)
    if not has_bdist_wheel:
        import setuptools
        tap.skip("pip install ./client/python",
                 "setuptools %s builds wheels only with the 'wheel' package, which is not installed "
                 "(setuptools >= 70.1 needs none)" % setuptools.__version__)
        return
    tmp = tempfile.mkdtemp(prefix="toto-client-install-")
    try:
        src = os.path.join(tmp, "src")
        site = os.path.join(tmp, "site")
        shutil.copytree(ROOT / "client" / "python", src, ignore=shutil.ignore_patterns("__pycache__", "build",
                                                                                        "*.egg-info"))
        if importlib.util.find_spec("pip") is not None:
            how = "pip install --target --no-deps --no-build-isolation --no-index"
            cmd = [sys.executable, "-m", "pip", "install", "--quiet", "--target", site, "--no-deps",
                   "--no-build-isolation", "--no-index", src]
        else:
            how = "setuptools.build_meta.build_wheel, then unpacked (no pip)"
            cmd = [sys.executable, "-c", "import sys; from setuptools import build_meta as b; "
                   "print(b.build_wheel(sys.argv[1]))", os.path.join(tmp, "dist")]
        out = subprocess.run(cmd, cwd=src, capture_output=True, text=True, timeout=240)
        if not tap.check(out.returncode == 0, "the package builds and installs (%s)" % how,
                         out.stdout[-2000:] + out.stderr[-2000:]):
            return
        if not os.path.isdir(site):
            wheel = os.path.join(tmp, "dist", out.stdout.strip().splitlines()[-1])
            with zipfile.ZipFile(wheel) as z:
                z.extractall(site)
        meta = ""
        for entry in os.listdir(site):
            if entry.endswith(".dist-info"):
                with open(os.path.join(site, entry, "METADATA"), encoding="utf-8") as f:
                    meta = f.read()
        requires = [line for line in meta.splitlines() if line.startswith("Requires-Dist:")]
        tap.check("Version: %s" % toto_client.__version__ in meta and all("extra ==" in r for r in requires)
                  and os.path.isfile(os.path.join(site, "toto_client", "py.typed")),
                  "installed metadata: the package's version, no required dependency, py.typed", meta[:1500])
        probe = ("import sys, toto_client\n"
                 "with toto_client.Client(sys.argv[1], timeout=30) as c:\n"
                 "    fc = c.forecast([1.0, 2.0, 3.0, 4.0], 2)\n"
                 "print(toto_client.__file__, toto_client.__version__, len(fc.mean[0]))\n")
        env = dict(os.environ, PYTHONPATH=site)
        out = subprocess.run([sys.executable, "-c", probe, "unix:" + daemon.sock], cwd=tmp, env=env,
                             capture_output=True, text=True, timeout=60)
        words = out.stdout.split()
        tap.check(out.returncode == 0 and len(words) == 3 and words[0].startswith(site)
                  and words[1] == toto_client.__version__ and words[2] == "2",
                  "the installed package imports from the target and forecasts", out.stdout + out.stderr)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# -- the main daemon -------------------------------------------------------------------


def check_client_basics(tap, daemon):
    addresses = ["unix:" + daemon.sock, daemon.sock, "tcp:127.0.0.1:%d" % daemon.port, ("127.0.0.1", daemon.port)]
    means = []
    clients = []
    for address in addresses:
        with Client(address, timeout=30) as c:
            means.append(c.forecast(SERIES, 4).mean)
            clients.append(c)
    tap.check(all(m == means[0] for m in means) and shape(means[0]) == [1, 4] and type(means[0]) is list,
              "unix:PATH, a bare path, tcp:HOST:PORT and (host, port) give the same forecast (lists in, lists out)",
              means)
    tap.check(all(c.closed for c in clients), "the context manager closes each client")
    exc, what = raises(lambda: clients[0].forecast(SERIES, 4), toto_client.ConnectionError)
    tap.check(exc is not None, "a closed client raises ConnectionError (it does not reconnect)", what)

    if np is None:
        tap.skip("numpy arrays in, numpy arrays out", NO_NUMPY)
        return
    with Client("unix:" + daemon.sock, timeout=30) as c:
        fc = c.forecast(np.array(SERIES), 4, quantiles=np.array([0.1, 0.9]))
        as_lists = c.forecast(np.array(SERIES), 4, as_numpy=False)
        multi = c.forecast(np.array([SERIES, [np.nan] + SERIES[1:]]), 3)
    tap.check(isinstance(fc.mean, np.ndarray) and fc.mean.shape == (1, 4) and fc.mean.tolist() == means[0]
              and fc.quantiles[0.9].shape == (1, 4),
              "a numpy array in gives numpy arrays out, equal to the lists' forecast")
    tap.check(type(as_lists.mean) is list and isinstance(multi.mean, np.ndarray) and multi.mean.shape == (2, 3),
              "as_numpy=False gives lists; a [V][T] array with NaN gives [V][h]")
    with Client("unix:" + daemon.sock, timeout=30, as_numpy=True) as c:
        fc = c.forecast(SERIES, 4)
        many = c.forecast_many([{"series": SERIES, "prediction_length": 4}])
    tap.check(isinstance(fc.mean, np.ndarray) and isinstance(many[0].mean, np.ndarray),
              "Client(as_numpy=True): numpy arrays out for lists in")


def check_pipelining(tap, daemon):
    requests = [{"series": [float(i % 5) + 0.1 * t for t in range(32)], "prediction_length": 1 + i % 4,
                 "series_id": "pipe-%d" % i} for i in range(40)]
    with Client("unix:" + daemon.sock, timeout=60) as c:
        many = c.forecast_many(requests)
        one = c.forecast(**requests[7])
    tap.check(len(many) == 40 and all(f.series_id == r["series_id"] and shape(f.mean) == [1, r["prediction_length"]]
                                      for f, r in zip(many, requests)) and close(many[7].mean, one.mean),
              "forecast_many: 40 forecasts, results in request order, equal to one-at-a-time answers")
    sizes = [f.timing.get("batch_size", 1) for f in many]
    tap.check(max(sizes) > 1, "forecast_many pipelines: the daemon batched requests of one connection "
              "together (largest batch %d)" % max(sizes), sizes)


def check_timeouts(tap, daemon):
    with Client("unix:" + daemon.sock, timeout=0.05, connect_timeout=10) as c:
        start = time.monotonic()
        exc, what = raises(lambda: c.forecast(**SLOW), toto_client.TimeoutError)
        took = time.monotonic() - start
        tap.check(exc is not None and took < 0.5 and c.stats["retries"] == 0,
                  "the client's default timeout: a slow forecast raises TimeoutError after %.2f s, "
                  "not retried" % took, what)
        fc = c.forecast(**SLOW, timeout=60)
        tap.check(shape(fc.mean) == [1, 256] and not c.closed,
                  "a per-call timeout overrides the default; the connection stays usable")
        exc, what = raises(lambda: c.forecast_many([SLOW, SLOW], timeout=0.05), toto_client.TimeoutError)
        tap.check(exc is not None, "forecast_many(timeout=...) bounds the whole batch", what)


def check_errors_not_retried(tap, daemon):
    with Client("unix:" + daemon.sock, timeout=30, retries=5, backoff=0.01) as c:
        exc, what = raises(lambda: c.forecast(SERIES, 0), toto_client.InvalidParams)
        first = c.stats["retries"]
        exc2, what2 = raises(lambda: c.forecast(SERIES, 2, timeout_ms=0), toto_client.DeadlineExceeded)
        tap.check(exc is not None and exc.code == -32602 and exc2 is not None and exc2.code == -32001
                  and first == 0 and c.stats["retries"] == 0,
                  "InvalidParams (-32602) and DeadlineExceeded (-32001) are raised at once, never retried",
                  (what or exc, what2 or exc2, c.stats))


def hourly_frame(rows=48, columns=("load", "temp")):
    index = pd.date_range("2024-03-01", periods=rows, freq="h", name="time")
    data = {name: [10.0 * (k + 1) + ((t * (k + 3)) % 7) * 0.5 for t in range(rows)] for k, name in enumerate(columns)}
    return pd.DataFrame(data, index=index)


def frame_lists(df):
    """The DataFrame's columns as the [V][T] lists forecast() takes, NaN as None."""
    return [[None if v != v else float(v) for v in df[name].tolist()] for name in df.columns]


def same_as_forecast(out, fc, names):
    """Every statistic column of out equals the Forecast's numbers for that variate."""
    for v, name in enumerate(names):
        if not close(out[(name, "mean")].tolist(), list(fc.mean[v])):
            return False
        if fc.median is not None and not close(out[(name, "median")].tolist(), list(fc.median[v])):
            return False
        for level, values in fc.quantiles.items():
            if not close(out[(name, statistic_name(level))].tolist(), list(values[v])):
                return False
    return True


def check_forecast_df(tap, daemon):
    with Client("unix:" + daemon.sock, timeout=60) as c:
        if pd is None:
            exc, what = raises(lambda: c.forecast_df([[1.0]], 2), ImportError)
            tap.check(exc is not None and "pandas" in str(exc) and not c.closed,
                      "forecast_df without pandas: ImportError naming pandas; the client is unharmed", what or exc)
            for name in ("hourly DataFrame with NaN", "daily DataFrame with missing rows", "monthly DataFrame",
                         "forecast_df past the first patch", "forecast_df's time axis and observe()",
                         "observe_df on a calendar frequency",
                         "forecast_df errors", "forecast_df_many"):
                tap.skip(name, NO_PANDAS)
            return

        df = hourly_frame()
        df.iloc[5, 0] = float("nan")
        df.iloc[20, 1] = float("nan")
        out = c.forecast_df(df, 6)
        fc = c.forecast(frame_lists(df), 6, quantiles=[0.1, 0.5, 0.9])
        want_index = pd.date_range(df.index[-1] + pd.Timedelta(hours=1), periods=6, freq="h", name="time")
        want_columns = [(v, s) for v in ("load", "temp") for s in ("mean", "median", "q0.1", "q0.5", "q0.9")]
        tap.check(out.index.equals(want_index) and out.index.freq == want_index.freq and out.index.name == "time",
                  "hourly: the result's index continues the input's at its frequency", out.index)
        tap.check(list(out.columns) == want_columns and list(out.columns.names) == ["variate", "statistic"],
                  "hourly: columns (variate, statistic): mean, median, q0.1, q0.5, q0.9", list(out.columns))
        tap.check(same_as_forecast(out, fc, ["load", "temp"]),
                  "hourly with NaN: the numbers equal forecast() of the same values with None", out)
        tap.check(out.attrs["toto"]["freq"] in ("H", "h") and out.attrs["toto"]["model"].get("dtype") == DTYPE,
                  "out.attrs['toto'] carries the frequency and the model", out.attrs)
        sub = c.forecast_df(df, 3, columns=["temp"], quantiles=None)
        tap.check(list(sub.columns) == [("temp", "mean"), ("temp", "median")]
                  and close(sub[("temp", "mean")].tolist(), c.forecast(frame_lists(df[["temp"]]), 3).mean[0]),
                  "columns= picks the variates; quantiles=None gives mean and median only", list(sub.columns))

        days = pd.date_range("2023-01-01", periods=40, freq="D")
        daily = pd.DataFrame({"sales": [100.0 + (t % 7) * 3 + t * 0.5 for t in range(40)]}, index=days)
        daily.iloc[11, 0] = float("nan")
        gappy = daily.drop(daily.index[[3, 4, 25]])  # no freq any more, and infer_freq fails
        out = c.forecast_df(gappy, 5)
        full = frame_lists(daily)
        for i in (3, 4, 25):
            full[0][i] = None
        fc = c.forecast(full, 5, quantiles=[0.1, 0.5, 0.9])
        tap.check(gappy.index.freq is None and out.index.equals(pd.date_range("2023-02-10", periods=5, freq="D"))
                  and same_as_forecast(out, fc, ["sales"]),
                  "daily with missing rows and NaN: the step is the most common difference, the missing days "
                  "are sent as null", out)
        inferred = daily.copy()
        inferred.index = pd.DatetimeIndex(list(daily.index))  # freq None, regular: infer_freq finds it
        out = c.forecast_df(inferred, 2)
        tap.check(inferred.index.freq is None and out.index[0] == pd.Timestamp("2023-02-10")
                  and out.index.freqstr == "D", "daily without index.freq: pandas.infer_freq finds it", out.index)
        series_out = c.forecast_df(daily["sales"], 2)
        tap.check(list(series_out.columns.get_level_values(0).unique()) == ["sales"],
                  "a pandas Series is forecast as one variate named after it", list(series_out.columns))

        months = pd.date_range("2019-01-01", periods=36, freq="MS")
        monthly = pd.DataFrame({"v": [50.0 + (t % 12) * 2.0 for t in range(36)]}, index=months)
        out_m = c.forecast_df(monthly, 3, series_id="df-monthly")
        tap.check(list(out_m.index) == list(pd.date_range("2022-01-01", periods=3, freq="MS")),
                  "monthly (a calendar frequency): the result is indexed by month starts", out_m.index)

        long = c.forecast_df(df, 20, seed=3)
        fc = c.forecast(frame_lists(df), 20, num_samples=toto_client.DEFAULT_DF_SAMPLES, seed=3,
                        quantiles=[0.1, 0.5, 0.9])
        tap.check(len(long) == 20 and ("load", "q0.9") in long.columns and ("load", "median") in long.columns
                  and same_as_forecast(long, fc, ["load", "temp"]),
                  "past the first patch, forecast_df samples (%d paths) so that quantiles exist"
                  % toto_client.DEFAULT_DF_SAMPLES)

        out = c.forecast_df(df, 6, series_id="df-hourly")
        scored = c.observe("df-hourly", [[1.0] * 6, [2.0] * 6], start=out.index[0].to_pydatetime(),
                           interval=pd.Timedelta(hours=1).to_pytimedelta())
        c.forecast_df(df, 6, series_id="df-hourly-2")
        actual = pd.DataFrame({"load": [1.0] * 4, "temp": [2.0, float("nan"), 2.0, 2.0]}, index=out.index[2:6])
        scored_df = c.observe_df("df-hourly-2", actual)
        tap.check(scored == 12 and scored_df == 7,
                  "forecast_df sends the index as the time axis (seconds): observe() at the result's "
                  "timestamps scores all 6 x 2 steps, observe_df() the 7 non-missing of its 4 rows",
                  (scored, scored_df))
        one_month = pd.DataFrame({"v": [7.0]}, index=pd.DatetimeIndex(["2022-02-01"]))
        scored_m = c.observe_df("df-monthly", one_month, freq="MS")
        scored_m += c.observe_df("df-monthly", pd.DataFrame({"v": [1.0, 3.0]}, index=out_m.index[[0, 2]]),
                                 freq="MS")
        tap.check(scored_m == 3, "monthly (a calendar frequency, counted in steps): observe_df() of the "
                  "forecast months scores all 3 steps (one row with freq=, then two with a gap)", scored_m)

        errors = [
            ("a RangeIndex", lambda: c.forecast_df(df.reset_index(drop=True), 2), "DatetimeIndex"),
            ("an irregular index", lambda: c.forecast_df(pd.DataFrame(
                {"x": [1.0, 2.0, 3.0, 4.0, 5.0]},
                index=pd.to_datetime(["2024-01-01 00:00", "2024-01-01 01:00", "2024-01-01 02:30",
                                      "2024-01-01 04:10", "2024-01-01 07:00"])), 2), "irregular"),
            ("a text column", lambda: c.forecast_df(df.assign(label="x"), 2), "'label' is not numeric"),
            ("an unsorted index", lambda: c.forecast_df(df.iloc[::-1], 2), "increasing"),
            ("an unknown column", lambda: c.forecast_df(df, 2, columns=["nope"]), "nope"),
            ("one row and no freq", lambda: c.forecast_df(pd.DataFrame(
                {"x": [1.0]}, index=pd.DatetimeIndex(["2024-01-01"])), 2), "freq="),
        ]
        bad = []
        for name, fn, needle in errors:
            exc, what = raises(fn, ValueError)
            if exc is None or needle not in str(exc):
                bad.append("%s: %s" % (name, what or exc))
        tap.check(not bad, "forecast_df raises a clear ValueError for a non-datetime index, an irregular index, "
                  "a non-numeric column, an unsorted index, an unknown column, one row without freq", "\n".join(bad))
        exc, what = raises(lambda: c.forecast_df(df, 0), toto_client.InvalidParams)
        tap.check(exc is not None and exc.field == "prediction_length" and c.stats["retries"] == 0,
                  "forecast_df passes the daemon's InvalidParams through, not retried", what or exc)

        cutoffs = [24, 30, 36, 42]
        outs = c.forecast_df_many([{"df": df.iloc[:k], "prediction_length": 4, "quantiles": [0.5]} for k in cutoffs])
        tap.check(len(outs) == 4 and all(o.index[0] == df.index[k] and len(o) == 4 for o, k in zip(outs, cutoffs))
                  and all(list(o.columns) == [(v, s) for v in ("load", "temp") for s in ("mean", "median", "q0.5")]
                          for o in outs),
                  "forecast_df_many: one DataFrame per backtest window, each starting after its cutoff")


# -- overload, shutdown, restarts ---------------------------------------------------------


def check_overload(tap, tmp):
    daemon = Totod(os.path.join(tmp, "busy.sock"), "--queue-limit", "1", "--max-inflight", "1")
    try:
        if not started(tap, daemon, "totod starts with --queue-limit 1 --max-inflight 1"):
            return
        address = "unix:" + daemon.sock
        requests = [{"series": [float(i) + 0.25 * t for t in range(32)], "prediction_length": 8,
                     "series_id": "busy-%d" % i} for i in range(20)]
        with Client(address, timeout=60, retries=0) as c:
            results = c.forecast_many(requests, return_exceptions=True)
            refused = [r for r in results if isinstance(r, toto_client.Overloaded)]
            others = [r for r in results if not isinstance(r, (toto_client.Overloaded, toto_client.Forecast))]
            tap.check(refused and not others and all(r.code == -32000 for r in refused) and c.stats["retries"] == 0,
                      "retries=0: %d of 20 pipelined forecasts fail with Overloaded (-32000)" % len(refused),
                      results)
            exc, what = raises(lambda: c.forecast_many(requests[:4]), toto_client.Overloaded)
            tap.check(exc is not None, "without return_exceptions the Overloaded error is raised", what)

        with Client(address, timeout=60, retries=60, backoff=0.005, max_backoff=0.05) as c:
            results = c.forecast_many(requests)
            stats = c.stats
        tap.check(all_forecasts(results) and [r.series_id for r in results] == [r["series_id"] for r in requests]
                  and stats["retries"] > 0 and stats["overloaded"] == stats["retries"],
                  "with retries every pipelined forecast succeeds (stats: %r)" % stats, results)

        failures = []
        retried = []

        def worker(t):
            try:
                with Client(address, timeout=60, retries=60, backoff=0.005, max_backoff=0.05) as own:
                    for k in range(5):
                        r = requests[(t * 5 + k) % len(requests)]
                        if own.forecast(**r).series_id != r["series_id"]:
                            failures.append("thread %d: wrong answer" % t)
                    retried.append(own.stats["retries"])
            except Exception as exc:  # noqa: BLE001
                failures.append("thread %d: %r" % (t, exc))

        shared = Client(address, timeout=60, retries=60, backoff=0.005, max_backoff=0.05)

        def shared_worker(t):
            try:
                for k in range(5):
                    r = requests[(t * 3 + k) % len(requests)]
                    if shared.forecast(**r).series_id != r["series_id"]:
                        failures.append("shared %d: wrong answer" % t)
            except Exception as exc:  # noqa: BLE001
                failures.append("shared %d: %r" % (t, exc))

        threads = [threading.Thread(target=worker, args=(t,)) for t in range(4)]
        threads += [threading.Thread(target=shared_worker, args=(t,)) for t in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        total = sum(retried) + shared.stats["retries"]
        shared.close()
        tap.check(not failures and total > 0,
                  "8 threads (4 clients of their own, 4 sharing one) x 5 concurrent forecasts all succeed "
                  "with retries (%d retries)" % total, "\n".join(failures[:5]))
    finally:
        daemon.stop()


def check_restarts(tap, tmp):
    sock = os.path.join(tmp, "restart.sock")
    first = Totod(sock)
    if not started(tap, first, "totod starts on a fixed socket path"):
        first.stop()
        return
    c = Client("unix:" + sock, timeout=60)
    stiff = Client("unix:" + sock, timeout=60, reconnect=False)
    before = c.forecast(SERIES, 3).mean
    stiff.forecast(SERIES, 3)
    rc = first.stop()
    second = Totod(sock)
    daemons = [second]
    try:
        if not started(tap, second, "totod restarts on the same socket path (the first exited %s)" % rc):
            return
        after = c.forecast(SERIES, 3)
        tap.check(close(after.mean, before) and c.stats["reconnects"] == 1 and not c.closed,
                  "after a restart the next forecast reconnects to the same path and succeeds", c.stats)
        exc, what = raises(lambda: stiff.forecast(SERIES, 3, retries=0), toto_client.ConnectionError)
        tap.check(exc is not None and stiff.closed, "reconnect=False: the dropped connection raises ConnectionError",
                  what)
        health = c.health()
        tap.check(health.get("status") in ("ok", "degraded"), "other methods use the new connection too")

        # Forecasts keep going while the daemon is restarted under them.
        rider = Client("unix:" + sock, timeout=60, retries=100, backoff=0.02, max_backoff=0.3)
        stop_riding = threading.Event()
        outcome = {"ok": 0, "errors": []}

        def ride():
            while not stop_riding.is_set():
                try:
                    rider.forecast(SERIES, 3, series_id="rider")
                    outcome["ok"] += 1
                except Exception as exc:  # noqa: BLE001
                    outcome["errors"].append(repr(exc))
                    return

        thread = threading.Thread(target=ride)
        thread.start()
        time.sleep(0.3)
        second.stop()
        time.sleep(0.3)  # nothing listens for a while
        third = Totod(sock)
        daemons.append(third)
        third_ok = third.wait_ready()
        ok_before = outcome["ok"]
        time.sleep(1.0)  # longer than the longest backoff: the rider is back on the new daemon
        stop_riding.set()
        thread.join(60)
        stats = rider.stats
        tap.check(third_ok and not outcome["errors"] and outcome["ok"] > ok_before and stats["retries"] > 0
                  and stats["reconnects"] >= 1,
                  "forecasts in a loop ride out a restart: retried (%d) and reconnected (%d), none failed"
                  % (stats["retries"], stats["reconnects"]), (outcome, stats, third.log_text()))
        rider.close()

        # ShuttingDown: a forecast sent during the grace period is refused, retried on a
        # new connection once a new daemon listens; the one already running still answers.
        if not third_ok:
            return
        late = Client("unix:" + sock, timeout=60, retries=100, backoff=0.05, max_backoff=0.3)
        slow = late.submit_forecast(**SLOWER)
        time.sleep(0.2)
        third.proc.send_signal(signal.SIGTERM)
        time.sleep(0.1)
        result = {}

        def send_late():
            try:
                result["fc"] = late.forecast(SERIES, 3)
            except Exception as exc:  # noqa: BLE001
                result["error"] = exc

        sender = threading.Thread(target=send_late)
        sender.start()
        rc = third.stop()
        fourth = Totod(sock)
        daemons.append(fourth)
        fourth.wait_ready()
        sender.join(60)
        exc, what = raises(lambda: slow.result(30), BaseException)
        stats = late.stats
        tap.check(isinstance(result.get("fc"), toto_client.Forecast) and stats["shutting_down"] >= 1,
                  "a forecast answered ShuttingDown (-32002) during the grace period is retried on a new "
                  "connection and succeeds (stats %r; totod exited %s)" % (stats, rc), (result, fourth.log_text()))
        tap.check(exc is None and "returned" in (what or "") and shape(slow.result(0).mean) == [1, 256],
                  "the forecast running at SIGTERM still gets its answer on the old connection", what)
        late.close()
    finally:
        c.close()
        stiff.close()
        for d in daemons:
            d.stop()


def main():
    tap = Tap()
    tap.diag("numpy %s, pandas %s" % ("present" if np is not None else "absent",
                                      "present" if pd is not None else "absent"))
    check_helpers(tap)
    check_pipelining_on_the_wire(tap)
    if not tap.check(TOTOD.is_file(), "totod is built", "missing %s" % TOTOD):
        return tap.done()
    tmp = tempfile.mkdtemp(prefix="toto-backtest-")
    daemon = Totod(os.path.join(tmp, "main.sock"), "--batch-delay-us", "3000")
    try:
        if not started(tap, daemon, "totod starts (tiny-a, unix and tcp)"):
            return tap.done()
        check_client_basics(tap, daemon)
        check_pipelining(tap, daemon)
        check_timeouts(tap, daemon)
        check_errors_not_retried(tap, daemon)
        check_forecast_df(tap, daemon)
        check_install(tap, daemon)
        check_overload(tap, tmp)
        check_restarts(tap, tmp)
        tap.check(daemon.proc.poll() is None, "the main totod is still running after all that", daemon.log_text())
    except Exception as exc:  # noqa: BLE001 - report, don't crash the TAP stream
        import traceback

        tap.check(False, "the test ran to the end", "%r\n%s" % (exc, traceback.format_exc()))
    finally:
        status = daemon.stop()
        if tap.failed:
            tap.diag("main totod exited %s; its log:\n%s" % (status, daemon.log_text()))
        shutil.rmtree(tmp, ignore_errors=True)
    return tap.done()


if __name__ == "__main__":
    sys.exit(main())
