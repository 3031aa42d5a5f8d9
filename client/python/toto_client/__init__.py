"""toto_client: a Python client for totod, the Toto forecast daemon.

    from toto_client import Client

    with Client("unix:/run/toto/toto.sock", timeout=30) as client:
        fc = client.forecast([1.0, 2.0, None, 4.0], prediction_length=8, quantiles=[0.1, 0.9])
        fc.mean            # [[...8 values...]]  ([V][h], even for a flat series)
        fc.quantiles[0.9]  # [[...]]
        out = client.forecast_df(df, 24)   # pandas in, pandas out (needs pandas)

One Client holds one connection at a time. It is thread-safe, and requests
are pipelined: ``submit`` and ``forecast_many`` send without waiting, and
answers are matched to requests by id in whatever order they come back.
Forecasts refused as Overloaded or ShuttingDown, or cut off by a dropped
connection, are sent again after a jittered exponential backoff (``retries``),
on a new connection to the same address when the old one is gone.
Standard library only; numpy and pandas are used when present.
"""

import heapq
import queue
import random
import threading
import time
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

from ._connection import Call, Connection, deadline_after, remaining
from . import errors as _errors
from ._forecast import Forecast, encode_series, forecast_params, time_axis
from ._frame import PreparedFrame, forecast_frame, prepare_frame, statistic_name
from ._retry import RETRY_REASONS, backoff_delay, retry_reason
from .errors import (
    ConnectionError,
    DeadlineExceeded,
    InternalError,
    InvalidParams,
    InvalidRequest,
    MethodNotFound,
    ModelError,
    Overloaded,
    ParseError,
    ProtocolError,
    RPCError,
    ShuttingDown,
    TimeoutError,
    TotoError,
)

__version__ = "0.2.0"

__all__ = ["Client", "Call", "Forecast", "read_token_file", "statistic_name"] + [
    name for name in _errors.__all__ if name != "error_from_response"
]


class _Default:
    """Marks "use the client's setting" apart from None (e.g. "wait forever")."""

    def __repr__(self) -> str:
        return "<client default>"


_DEFAULT: Any = _Default()

# The daemon answers Overloaded past max-inflight (256 by default) unanswered
# forecasts per connection; forecast_many stays well below that by default.
_DEFAULT_WINDOW = 128

# forecast_df's sampled paths when quantiles reach past the model's first patch.
DEFAULT_DF_SAMPLES = 256

# The time axis fields a daemon older than drift tracking refuses as unknown.
_TIME_AXIS_FIELDS = ("start", "interval", "timestamps")

# One forecast to send: its params, and how to turn its result into the answer.
_Item = Tuple[Dict[str, Any], Callable[[Any], Any]]


class Client:
    """A connection to totod.

    ``address``: ``"unix:/path/to.sock"``, ``"tcp:host:port"`` (``tcp:[::1]:port``
    for IPv6), a bare path (a Unix socket) or a ``(host, port)`` tuple.
    ``timeout``: seconds each call may take, sending, retries and waiting
    included (None: no limit); every method takes ``timeout=`` to override it.
    ``connect_timeout`` defaults to ``timeout``.

    ``retries``: how many times a forecast is sent again after Overloaded,
    ShuttingDown or a dropped connection (0: never), waiting
    ``backoff * 2**n`` seconds (capped at ``max_backoff``, jittered to
    between half and all of that) before retry n+1. Other errors (invalid
    params, DeadlineExceeded, model errors) are never retried. Forecast
    methods take ``retries=`` to override it.

    ``reconnect``: when the connection has dropped, the next call connects
    again to the same address (True), or raises ConnectionError (False).

    ``as_numpy``: the default of forecast()'s ``as_numpy`` (None: numpy
    arrays out when a numpy array came in).

    ``token`` (or ``token_file``, read as the daemon reads its
    ``auth-token-file``): presented with the ``auth`` method on every new
    connection; a daemon with ``auth-token-file`` needs it over TCP
    (docs/security.md). A wrong token raises the daemon's -32004 error.

    ``stats`` counts what the client did to get answers (see its doc).
    Raises ConnectionError (or TimeoutError) when it cannot connect.
    """

    def __init__(
        self,
        address: Any,
        timeout: Optional[float] = None,
        *,
        connect_timeout: Any = _DEFAULT,
        retries: int = 3,
        backoff: float = 0.05,
        max_backoff: float = 2.0,
        reconnect: bool = True,
        as_numpy: Optional[bool] = None,
        token: Optional[str] = None,
        token_file: Optional[str] = None,
    ) -> None:
        if retries < 0:
            raise ValueError("retries must be >= 0, got %r" % (retries,))
        if backoff < 0 or max_backoff < 0:
            raise ValueError("backoff and max_backoff must be >= 0")
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.reconnect = reconnect
        self.as_numpy = as_numpy
        self._address_arg = address
        self._connect_timeout = timeout if connect_timeout is _DEFAULT else connect_timeout
        self._token = read_token_file(token_file) if token_file is not None else token
        self._conn_lock = threading.Lock()  # _conn, _retired, _user_closed
        self._conn: Optional[Connection] = self._open(self._connect_timeout)
        self._retired: List[Connection] = []  # told us ShuttingDown; closed once drained
        self._user_closed = False
        self.address = self._conn.address
        self._stats_lock = threading.Lock()
        self._stats: Dict[str, int] = {"retries": 0, "reconnects": 0}
        self._stats.update({reason: 0 for reason in RETRY_REASONS})
        self._patch_size: Optional[int] = None
        self._time_axis_ok = True
        self._rng = random.Random()

    def __repr__(self) -> str:
        kind, target = self.address
        where = target if kind == "unix" else "%s:%d" % target
        return "<toto_client.Client %s:%s%s>" % (kind, where, " closed" if self.closed else "")

    # -- lifetime -------------------------------------------------------------

    @property
    def closed(self) -> bool:
        """True once close() was called, or while the connection is broken
        (the next call then connects again, unless ``reconnect`` is False)."""
        conn = self._conn
        return self._user_closed or (conn is not None and conn.closed)

    @property
    def stats(self) -> Dict[str, int]:
        """A copy of the counters: ``retries`` (forecasts sent again), and why:
        ``overloaded``, ``shutting_down``, ``disconnected``; ``reconnects``
        (new connections after the first)."""
        with self._stats_lock:
            return dict(self._stats)

    def close(self) -> None:
        """Closes the connection; calls still waiting fail with ConnectionError."""
        with self._conn_lock:
            self._user_closed = True
            conns = self._retired + ([self._conn] if self._conn is not None else [])
            self._retired = []
        for conn in conns:
            conn.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def __del__(self) -> None:
        for conn in [getattr(self, "_conn", None)] + list(getattr(self, "_retired", [])):
            if conn is not None and not conn.closed:
                try:
                    conn.close()
                except Exception:  # noqa: BLE001 - interpreter may be shutting down
                    pass

    # -- raw JSON-RPC -----------------------------------------------------------

    def submit(self, method: str, params: Optional[Mapping[str, Any]] = None, *, timeout: Any = _DEFAULT) -> Call:
        """Sends a request now and returns its Call; ``call.result()`` waits for the answer.

        ``timeout`` bounds only the connecting and sending here; pass a
        timeout to ``result()`` for the wait. Never retried.
        """
        deadline = deadline_after(self._timeout(timeout))
        return self._connection(deadline).submit(method, params, deadline)

    def call(self, method: str, params: Optional[Mapping[str, Any]] = None, *, timeout: Any = _DEFAULT) -> Any:
        """Sends a request and returns its result (or raises its error). Never retried."""
        return self._wait(lambda deadline: self._connection(deadline).submit(method, params, deadline), timeout)

    def health(self, *, timeout: Any = _DEFAULT) -> Dict[str, Any]:
        """The daemon's liveness and readiness (see its documentation for the fields)."""
        return self.call("health", {}, timeout=timeout)

    def info(self, *, timeout: Any = _DEFAULT) -> Dict[str, Any]:
        """The model and the limits in force (max_prediction_length, patch_size, ...)."""
        return self.call("info", {}, timeout=timeout)

    def metrics(self, *, timeout: Any = _DEFAULT) -> Dict[str, Any]:
        """The daemon's counters and latency histograms."""
        return self.call("metrics", {}, timeout=timeout)

    def observe(
        self,
        series_id: Any,
        values: Any,
        *,
        start: Any = None,
        interval: Any = None,
        timestamps: Any = None,
        timeout: Any = _DEFAULT,
    ) -> int:
        """Actual values of a series ([n] or [V][n]; None/NaN missing) at the
        times ``start + i * interval`` or ``timestamps``: the daemon scores its
        remembered forecasts of ``series_id`` with them (forecast error drift).
        Returns how many forecast steps they scored. Never retried (a second
        delivery would score nothing)."""
        params = {"series_id": series_id, "values": encode_series(values)}
        params.update(time_axis(start, interval, timestamps))
        return self.call("observe", params, timeout=timeout)["scored"]

    def observe_df(
        self,
        series_id: Any,
        df: Any,
        *,
        columns: Optional[Sequence[Any]] = None,
        freq: Any = None,
        timeout: Any = _DEFAULT,
    ) -> int:
        """observe() for a DataFrame of actual values (as forecast_df takes:
        one column per variate, a DatetimeIndex; NaN missing), on the same
        time axis forecast_df() sent, so they score its forecasts of
        ``series_id``. Pass ``freq`` when the index alone cannot tell it (one
        row); use the ``columns`` that were forecast, in the same order.
        Returns how many forecast steps they scored (each variate's step counts)."""
        frame = prepare_frame(df, columns, freq)
        params = {"series_id": series_id, "values": frame.series}
        params.update(frame.time_axis)
        return self.call("observe", params, timeout=timeout)["scored"]

    def use_compiled(self, *, timeout: Any = _DEFAULT) -> str:
        """After the daemon fell back to its eager path: back to the compiled one."""
        return self.call("use_compiled", {}, timeout=timeout)["path"]

    # -- forecasts ----------------------------------------------------------------

    def forecast(
        self,
        series: Any,
        prediction_length: int,
        *,
        num_samples: int = 0,
        quantiles: Optional[Iterable[float]] = None,
        seed: Optional[int] = None,
        return_samples: bool = False,
        groups: Optional[Iterable[int]] = None,
        timeout_ms: Optional[int] = None,
        series_id: Any = None,
        start: Any = None,
        interval: Any = None,
        timestamps: Any = None,
        as_numpy: Optional[bool] = None,
        timeout: Any = _DEFAULT,
        retries: Any = _DEFAULT,
    ) -> Forecast:
        """Forecasts one series ([T] or [V][T] lists, or a numpy array; None/NaN
        for missing values).

        The parameters are the protocol's (protocol/PROTOCOL.md); ``timeout_ms``
        is the daemon-side budget (DeadlineExceeded if the request waited
        longer in its queue), ``timeout`` the client-side one in seconds
        (TimeoutError), retries and backoff included. ``as_numpy``: True for
        float64 numpy arrays in the Forecast, False for lists, None (default,
        unless the Client says otherwise) for numpy arrays exactly when
        ``series`` is a numpy array. With ``series_id`` and a time axis
        (``start`` and ``interval``: numbers in seconds, or a datetime and a
        timedelta; or one of ``timestamps`` per step) the daemon remembers the
        forecast and scores it against the values observe() brings later.
        ``retries`` overrides the client's for this call.
        """
        item = _forecast_item(series, prediction_length, **self._item_options(locals()))
        return self._run([item], timeout, retries, window=1, return_exceptions=False, what="forecast")[0]

    def submit_forecast(
        self,
        series: Any,
        prediction_length: int,
        *,
        num_samples: int = 0,
        quantiles: Optional[Iterable[float]] = None,
        seed: Optional[int] = None,
        return_samples: bool = False,
        groups: Optional[Iterable[int]] = None,
        timeout_ms: Optional[int] = None,
        series_id: Any = None,
        start: Any = None,
        interval: Any = None,
        timestamps: Any = None,
        as_numpy: Optional[bool] = None,
        timeout: Any = _DEFAULT,
    ) -> Call:
        """Like forecast() but returns at once: ``call.result()`` gives the Forecast.

        One send, never retried (use forecast_many for pipelining with retries).
        """
        params, convert = _forecast_item(series, prediction_length, **self._item_options(locals()))
        deadline = deadline_after(self._timeout(timeout))
        return self._connection(deadline).submit("forecast", params, deadline, convert)

    def forecast_many(
        self,
        requests: Iterable[Mapping[str, Any]],
        *,
        timeout: Any = _DEFAULT,
        window: int = _DEFAULT_WINDOW,
        return_exceptions: bool = False,
        retries: Any = _DEFAULT,
    ) -> List[Any]:
        """Pipelines many forecasts on this connection; results in request order.

        Each request is a mapping of forecast()'s keyword arguments, e.g.
        ``{"series": s, "prediction_length": 24, "quantiles": [0.5]}``. Up to
        ``window`` requests are written before the first answer is awaited,
        and a new one is written as each answer comes, since the daemon
        refuses (Overloaded) past its per-connection in-flight limit. Each
        request is retried on its own (``retries``, backoff as for the client)
        while the others go on. ``timeout`` bounds the whole batch. With
        ``return_exceptions`` a failed request gives its TotoError in its
        place instead of raising (TimeoutError is raised all the same).
        """
        if window < 1:
            raise ValueError("window must be >= 1, got %r" % (window,))
        default_numpy = self.as_numpy
        items = [_forecast_item(**_with_default_numpy(request, default_numpy)) for request in requests]
        return self._run(items, timeout, retries, window, return_exceptions, what="forecast_many")

    # -- DataFrames (pandas) --------------------------------------------------------

    def forecast_df(
        self,
        df: Any,
        prediction_length: int,
        *,
        num_samples: Optional[int] = None,
        quantiles: Optional[Sequence[float]] = (0.1, 0.5, 0.9),
        seed: Optional[int] = None,
        columns: Optional[Sequence[Any]] = None,
        freq: Any = None,
        groups: Optional[Iterable[int]] = None,
        series_id: Any = None,
        timeout_ms: Optional[int] = None,
        timeout: Any = _DEFAULT,
        retries: Any = _DEFAULT,
    ) -> Any:
        """Forecasts a pandas DataFrame: one column per variate, a DatetimeIndex.

        The frequency is ``freq`` if given, else ``df.index.freq``, else
        ``pandas.infer_freq(df.index)``, else the most common difference
        between timestamps; rows missing from that grid, and NaN values, are
        sent as missing. ``columns`` picks the variates (default: all).
        The index's time axis is sent too (``start`` and ``interval``: seconds
        since the epoch, or for calendar frequencies such as months a count of
        steps), so with a ``series_id`` the daemon tracks the forecast's error
        when observe_df() brings the actual values.

        Returns a DataFrame indexed by the ``prediction_length`` timestamps
        after the last row (at the frequency, same name and time zone), with
        columns ``(variate, statistic)`` (a MultiIndex named ``variate``,
        ``statistic``): for each variate ``"mean"``, ``"median"`` (absent when
        the daemon gives none: a mean forecast past the first patch) and
        ``"q0.1"``-style columns, one per quantile level in the order asked.
        ``out[name]`` is one variate's statistics; ``out.xs("mean", axis=1,
        level="statistic")`` the means with the original column names.
        ``out.attrs["toto"]`` holds the model, timing, series_id and freq.

        ``num_samples`` None: 0 (exact first-patch statistics) when
        ``prediction_length`` fits in the model's first patch or no quantiles
        are asked, else DEFAULT_DF_SAMPLES (256) sampled paths.

        Raises ImportError without pandas; ValueError for a non-datetime
        index, an irregular index whose frequency cannot be inferred,
        non-numeric columns; the daemon's errors as forecast() does.
        """
        request = {k: v for k, v in locals().items() if k not in ("self", "timeout", "retries")}
        return self.forecast_df_many([request], timeout=timeout, retries=retries, window=1)[0]

    def forecast_df_many(
        self,
        requests: Iterable[Mapping[str, Any]],
        *,
        timeout: Any = _DEFAULT,
        window: int = _DEFAULT_WINDOW,
        return_exceptions: bool = False,
        retries: Any = _DEFAULT,
    ) -> List[Any]:
        """forecast_df() for many DataFrames, pipelined like forecast_many().

        Each request is a mapping of forecast_df()'s keyword arguments, e.g.
        ``{"df": history.loc[:cutoff], "prediction_length": 24}`` (one per
        backtest window). Results (DataFrames) in request order; with
        ``return_exceptions`` a failed request gives its TotoError in its place.
        """
        if window < 1:
            raise ValueError("window must be >= 1, got %r" % (window,))
        deadline = deadline_after(self._timeout(timeout))
        prepared: List[Tuple[PreparedFrame, int]] = []
        items: List[_Item] = []
        for request in requests:
            frame, horizon, params = self._df_params(deadline, **request)
            prepared.append((frame, horizon))
            items.append((params, _forecast_converter(True)))
        if not self._time_axis_ok:
            items = [(_without_time_axis(params), convert) for params, convert in items]
        results = self._run(items, remaining(deadline), retries, window, True, "forecast_df")
        refused = [i for i, r in enumerate(results) if _refuses_time_axis(r)]
        if refused:
            # A daemon older than drift tracking: send those again without the time axis.
            self._time_axis_ok = False
            again = self._run([(_without_time_axis(items[i][0]), items[i][1]) for i in refused],
                              remaining(deadline), retries, window, True, "forecast_df")
            for i, result in zip(refused, again):
                results[i] = result
        out: List[Any] = []
        for (frame, horizon), result in zip(prepared, results):
            if isinstance(result, BaseException):
                if not return_exceptions:
                    raise result
                out.append(result)
            else:
                out.append(forecast_frame(frame, result, horizon))
        return out

    def _df_params(
        self,
        deadline: Optional[float],
        df: Any,
        prediction_length: int,
        *,
        num_samples: Optional[int] = None,
        quantiles: Optional[Sequence[float]] = (0.1, 0.5, 0.9),
        seed: Optional[int] = None,
        columns: Optional[Sequence[Any]] = None,
        freq: Any = None,
        groups: Optional[Iterable[int]] = None,
        series_id: Any = None,
        timeout_ms: Optional[int] = None,
    ) -> Tuple[PreparedFrame, int, Dict[str, Any]]:
        """One forecast_df request as (the prepared frame, the horizon, params)."""
        frame = prepare_frame(df, columns, freq)
        quantiles = None if quantiles is None else list(quantiles)
        if num_samples is None:
            num_samples = 0
            if quantiles and prediction_length > self._first_patch(deadline):
                num_samples = DEFAULT_DF_SAMPLES
        params = forecast_params(frame.series, prediction_length, num_samples=num_samples, quantiles=quantiles,
                                 seed=seed, groups=groups, timeout_ms=timeout_ms, series_id=series_id)
        params.update(frame.time_axis)
        return frame, int(prediction_length), params

    def _first_patch(self, deadline: Optional[float]) -> int:
        """The model's patch_size (from info(), asked once); 0 when unknown."""
        if self._patch_size is None:
            try:
                config = self.info(timeout=remaining(deadline))["model"]["config"]
                self._patch_size = int(config["patch_size"])
            except (KeyError, TypeError, ValueError, RPCError):
                self._patch_size = 0
        return self._patch_size

    # -- helpers ------------------------------------------------------------------

    def _timeout(self, timeout: Any) -> Optional[float]:
        return self.timeout if timeout is _DEFAULT else timeout

    def _item_options(self, args: Mapping[str, Any]) -> Dict[str, Any]:
        """forecast()'s arguments other than series and prediction_length, for _forecast_item."""
        options = {k: v for k, v in args.items() if k not in ("self", "series", "prediction_length",
                                                             "timeout", "retries")}
        if options["as_numpy"] is None:
            options["as_numpy"] = self.as_numpy
        return options

    def _count(self, name: str) -> None:
        with self._stats_lock:
            self._stats[name] += 1

    def _connection(self, deadline: Optional[float]) -> Connection:
        """The live connection: a new one to the same address if it dropped (or
        was retired after ShuttingDown), unless reconnect is off."""
        with self._conn_lock:
            if self._user_closed:
                raise ConnectionError("the client is closed")
            conn = self._conn
            if conn is not None and not conn.closed:
                return conn
            if conn is not None and not self.reconnect:
                conn._raise_if_closed()
            self._reap()
            connect_timeout = self._connect_timeout
            left = remaining(deadline)
            if left is not None:
                connect_timeout = left if connect_timeout is None else min(connect_timeout, left)
            new = self._open(connect_timeout)
            if conn is not None:
                conn.close()
            self._conn = new
            self._count("reconnects")
            return new

    def _open(self, connect_timeout: Optional[float]) -> Connection:
        """A new connection, the token presented (the ``auth`` method) when one
        was given: a daemon with ``auth-token-file`` needs it over TCP."""
        conn = Connection(self._address_arg, connect_timeout)
        if self._token is None:
            return conn
        try:
            conn.submit("auth", {"token": self._token}, deadline_after(connect_timeout)).result(
                connect_timeout)
        except BaseException:
            conn.close()
            raise
        return conn

    def _retire(self, conn: Connection) -> None:
        """After ShuttingDown: the next requests go on a new connection, while
        those already sent on this one still get their answers."""
        with self._conn_lock:
            if self._conn is conn and self.reconnect:
                self._retired.append(conn)
                self._conn = None
            self._reap()

    def _reap(self) -> None:
        """Closes retired connections that are broken or have nothing pending (lock held)."""
        keep = []
        for conn in self._retired:
            if conn.closed or not conn._pending:
                conn.close()
            else:
                keep.append(conn)
        self._retired = keep

    def _wait(self, send: Callable[[Optional[float]], Call], timeout: Any) -> Any:
        """Sends through send(deadline), waits for the answer by the same deadline.

        On timeout the call is cancelled, so a late answer is dropped rather
        than kept forever.
        """
        seconds = self._timeout(timeout)
        deadline = deadline_after(seconds)
        call = send(deadline)
        try:
            return call.result(remaining(deadline))
        except TimeoutError:
            if call.cancel():
                raise TimeoutError("no answer to %s (id %d) within %s s" % (call.method, call.id, seconds)) from None
            return call.result(0)  # the answer came just as we gave up

    def _run(
        self,
        items: List[_Item],
        timeout: Any,
        retries: Any,
        window: int,
        return_exceptions: bool,
        what: str,
    ) -> List[Any]:
        """Sends forecasts, at most ``window`` unanswered at once, retrying each
        retryable failure after its own backoff; results in item order.

        Everything is written as soon as the window allows, before any answer
        is awaited; answers are taken as they come. The deadline covers the
        whole run: sending, waiting and backoff.
        """
        retries = self.retries if retries is _DEFAULT else retries
        if retries < 0:
            raise ValueError("retries must be >= 0, got %r" % (retries,))
        seconds = self._timeout(timeout)
        deadline = deadline_after(seconds)
        results: List[Any] = [None] * len(items)
        attempts = [0] * len(items)
        ready: List[Tuple[float, int, int]] = [(0.0, i, i) for i in range(len(items))]  # (not before, order, item)
        order = len(items)
        inflight: Dict[int, Call] = {}
        answered: "queue.SimpleQueue[Tuple[int, Call]]" = queue.SimpleQueue()
        left_to_do = len(items)

        def failed(i: int, exc: BaseException, conn: Optional[Connection]) -> None:
            """Schedules item i again after its backoff, or records (or raises) its error."""
            nonlocal left_to_do, order
            reason = retry_reason(exc)
            if reason is not None and attempts[i] < retries and not self._user_closed:
                delay = backoff_delay(attempts[i], self.backoff, self.max_backoff, self._rng)
                if deadline is None or time.monotonic() + delay < deadline:
                    attempts[i] += 1
                    with self._stats_lock:
                        self._stats["retries"] += 1
                        self._stats[reason] += 1
                    if reason == "shutting_down" and conn is not None:
                        self._retire(conn)
                    heapq.heappush(ready, (time.monotonic() + delay, order, i))
                    order += 1
                    return
            if not return_exceptions or not isinstance(exc, TotoError):
                raise exc
            results[i] = exc
            left_to_do -= 1

        try:
            while left_to_do:
                while ready and len(inflight) < window and ready[0][0] <= time.monotonic():
                    _, _, i = heapq.heappop(ready)
                    params, convert = items[i]
                    conn = None
                    try:
                        conn = self._connection(deadline)
                        call = conn.submit("forecast", params, deadline, convert)
                    except ConnectionError as exc:  # could not connect, or the connection broke
                        failed(i, exc, conn)
                        continue
                    inflight[i] = call
                    call.add_done_callback(lambda c, i=i: answered.put((i, c)))
                wait = remaining(deadline)
                if ready and len(inflight) < window:
                    until_next = max(0.0, ready[0][0] - time.monotonic())
                    wait = until_next if wait is None else min(wait, until_next)
                try:
                    i, call = answered.get(timeout=wait)
                except queue.Empty:
                    if deadline is not None and time.monotonic() >= deadline and left_to_do:
                        raise self._timed_out(what, inflight, left_to_do, seconds) from None
                    continue
                if inflight.get(i) is not call:
                    continue
                del inflight[i]
                exc = call.exception(0)
                if exc is None:
                    results[i] = call.result(0)
                    left_to_do -= 1
                else:
                    failed(i, exc, call._conn)
            return results
        finally:
            for call in inflight.values():
                call.cancel()

    @staticmethod
    def _timed_out(what: str, inflight: Mapping[int, Call], left: int, seconds: Optional[float]) -> TimeoutError:
        if what == "forecast" and inflight:
            call = next(iter(inflight.values()))
            return TimeoutError("no answer to forecast (id %d) within %s s" % (call.id, seconds))
        return TimeoutError("%s: %d requests still unanswered at the timeout (%s s)" % (what, left, seconds))


def read_token_file(path: str) -> str:
    """The token in a file as the daemon reads it: the first line, trimmed."""
    with open(path, encoding="utf-8") as f:
        token = f.readline().strip()
    if not token:
        raise ValueError("token file %s: no token on its first line" % path)
    return token


def _forecast_item(
    series: Any,
    prediction_length: int,
    *,
    num_samples: int = 0,
    quantiles: Optional[Iterable[float]] = None,
    seed: Optional[int] = None,
    return_samples: bool = False,
    groups: Optional[Iterable[int]] = None,
    timeout_ms: Optional[int] = None,
    series_id: Any = None,
    start: Any = None,
    interval: Any = None,
    timestamps: Any = None,
    as_numpy: Optional[bool] = None,
) -> _Item:
    """A forecast request's params and result converter (forecast()'s keywords)."""
    numpy_out = _is_numpy_array(series) if as_numpy is None else bool(as_numpy)
    params = forecast_params(series, prediction_length, num_samples=num_samples, quantiles=quantiles, seed=seed,
                             return_samples=return_samples, groups=groups, timeout_ms=timeout_ms,
                             series_id=series_id, start=start, interval=interval, timestamps=timestamps)
    return params, _forecast_converter(numpy_out)


def _with_default_numpy(request: Mapping[str, Any], default: Optional[bool]) -> Dict[str, Any]:
    out = dict(request)
    if out.get("as_numpy") is None:
        out["as_numpy"] = default
    return out


def _is_numpy_array(value: Any) -> bool:
    cls = type(value)
    return cls.__name__ == "ndarray" and cls.__module__.split(".")[0] == "numpy"


def _forecast_converter(as_numpy: bool) -> Callable[[Any], Forecast]:
    return lambda result: Forecast.from_result(result, as_numpy=as_numpy)


def _without_time_axis(params: Mapping[str, Any]) -> Dict[str, Any]:
    return {k: v for k, v in params.items() if k not in _TIME_AXIS_FIELDS}


def _refuses_time_axis(result: Any) -> bool:
    """An InvalidParams for an unknown start/interval/timestamps field."""
    return (isinstance(result, InvalidParams) and result.field in _TIME_AXIS_FIELDS
            and "unknown" in result.message)
