"""toto_client: a Python client for totod, the Toto forecast daemon.

    from toto_client import Client

    with Client("unix:/run/toto/toto.sock", timeout=30) as client:
        fc = client.forecast([1.0, 2.0, None, 4.0], prediction_length=8, quantiles=[0.1, 0.9])
        fc.mean            # [[...8 values...]]  ([V][h], even for a flat series)
        fc.quantiles[0.9]  # [[...]]

One Client holds one connection. It is thread-safe, and requests are
pipelined: ``submit`` and ``forecast_many`` send without waiting, and
answers are matched to requests by id in whatever order they come back.
Standard library only; numpy is used when you pass arrays or ask for
``as_numpy=True``.
"""

import threading
from typing import Any, Dict, Iterable, List, Mapping, Optional

from ._connection import Call, Connection, deadline_after, remaining
from . import errors as _errors
from ._forecast import Forecast, encode_series, forecast_params, time_axis
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

__version__ = "0.1.0"

# forecast()'s keyword arguments that are protocol params (forecast_params()'s).
_FORECAST_OPTIONS = ("num_samples", "quantiles", "seed", "return_samples", "groups", "timeout_ms", "series_id",
                     "start", "interval", "timestamps")

__all__ = ["Client", "Call", "Forecast"] + [name for name in _errors.__all__ if name != "error_from_response"]


class _Default:
    """Marks "use the client's timeout" apart from None ("wait forever")."""

    def __repr__(self) -> str:
        return "<client default>"


_DEFAULT: Any = _Default()

# The daemon answers Overloaded past max-inflight (256 by default) unanswered
# forecasts per connection; forecast_many stays well below that by default.
_DEFAULT_WINDOW = 128


class Client:
    """A connection to totod.

    ``address``: ``"unix:/path/to.sock"``, ``"tcp:host:port"`` (``tcp:[::1]:port``
    for IPv6), a bare path (a Unix socket) or a ``(host, port)`` tuple.
    ``timeout``: seconds each call may take, sending and waiting included
    (None: no limit); every method takes ``timeout=`` to override it.
    ``connect_timeout`` defaults to ``timeout``.

    Raises ConnectionError (or TimeoutError) when it cannot connect.
    """

    def __init__(self, address: Any, timeout: Optional[float] = None, *, connect_timeout: Any = _DEFAULT):
        self.timeout = timeout
        self._conn = Connection(address, timeout if connect_timeout is _DEFAULT else connect_timeout)
        self.address = self._conn.address

    def __repr__(self) -> str:
        kind, target = self.address
        where = target if kind == "unix" else "%s:%d" % target
        return "<toto_client.Client %s:%s%s>" % (kind, where, " closed" if self.closed else "")

    # -- lifetime -------------------------------------------------------------

    @property
    def closed(self) -> bool:
        """True once closed, or once the connection broke (make a new Client then)."""
        return self._conn.closed

    def close(self) -> None:
        """Closes the connection; calls still waiting fail with ConnectionError."""
        self._conn.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def __del__(self) -> None:
        conn = getattr(self, "_conn", None)
        if conn is not None and not conn.closed:
            try:
                conn.close()
            except Exception:  # noqa: BLE001 - interpreter may be shutting down
                pass

    # -- raw JSON-RPC -----------------------------------------------------------

    def submit(self, method: str, params: Optional[Mapping[str, Any]] = None, *, timeout: Any = _DEFAULT) -> Call:
        """Sends a request now and returns its Call; ``call.result()`` waits for the answer.

        ``timeout`` bounds only the sending here; pass a timeout to
        ``result()`` for the wait.
        """
        return self._conn.submit(method, params, deadline_after(self._timeout(timeout)))

    def call(self, method: str, params: Optional[Mapping[str, Any]] = None, *, timeout: Any = _DEFAULT) -> Any:
        """Sends a request and returns its result (or raises its error)."""
        return self._wait(lambda deadline: self._conn.submit(method, params, deadline), timeout)

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
        Returns how many forecast steps they scored."""
        params = {"series_id": series_id, "values": encode_series(values)}
        params.update(time_axis(start, interval, timestamps))
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
        as_numpy: bool = False,
        timeout: Any = _DEFAULT,
    ) -> Forecast:
        """Forecasts one series ([T] or [V][T]; None/NaN for missing values).

        The parameters are the protocol's (protocol/PROTOCOL.md); ``timeout_ms``
        is the daemon-side budget (DeadlineExceeded if the request waited
        longer in its queue), ``timeout`` the client-side one in seconds
        (TimeoutError). ``as_numpy`` returns numpy arrays instead of lists.
        With ``series_id`` and a time axis (``start`` and ``interval``:
        numbers in seconds, or a datetime and a timedelta; or one of
        ``timestamps`` per step) the daemon remembers the forecast and
        scores it against the values observe() brings later (drift).
        """
        params = forecast_params(series, prediction_length, **self._options(locals()))
        convert = _forecast_converter(as_numpy)
        return self._wait(lambda deadline: self._conn.submit("forecast", params, deadline, convert), timeout)

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
        as_numpy: bool = False,
        timeout: Any = _DEFAULT,
    ) -> Call:
        """Like forecast() but returns at once: ``call.result()`` gives the Forecast."""
        params = forecast_params(series, prediction_length, **self._options(locals()))
        deadline = deadline_after(self._timeout(timeout))
        return self._conn.submit("forecast", params, deadline, _forecast_converter(as_numpy))

    def forecast_many(
        self,
        requests: Iterable[Mapping[str, Any]],
        *,
        timeout: Any = _DEFAULT,
        window: int = _DEFAULT_WINDOW,
        return_exceptions: bool = False,
    ) -> List[Any]:
        """Pipelines many forecasts on this connection; results in request order.

        Each request is a mapping of forecast()'s keyword arguments, e.g.
        ``{"series": s, "prediction_length": 24, "quantiles": [0.5]}``. At
        most ``window`` are unanswered at once, since the daemon refuses
        (Overloaded) past its per-connection in-flight limit. ``timeout``
        bounds the whole batch. With ``return_exceptions`` a failed request
        gives its TotoError in its place instead of raising.
        """
        if window < 1:
            raise ValueError("window must be >= 1, got %r" % (window,))
        deadline = deadline_after(self._timeout(timeout))
        slots = threading.BoundedSemaphore(window)
        calls: List[Call] = []
        try:
            for request in requests:
                if not slots.acquire(timeout=_lock_timeout(deadline)):
                    raise TimeoutError("forecast_many: %d requests still unanswered at the timeout" % window)
                try:
                    call = self.submit_forecast(**request, timeout=remaining(deadline))
                except BaseException:
                    slots.release()
                    raise
                call.add_done_callback(lambda _call: slots.release())
                calls.append(call)
            return [_outcome(call, deadline, return_exceptions) for call in calls]
        except BaseException:
            for call in calls:
                call.cancel()
            raise

    # -- helpers ------------------------------------------------------------------

    def _timeout(self, timeout: Any) -> Optional[float]:
        return self.timeout if timeout is _DEFAULT else timeout

    @staticmethod
    def _options(args: Mapping[str, Any]) -> Dict[str, Any]:
        """The protocol's optional forecast params among a method's arguments."""
        return {name: args[name] for name in _FORECAST_OPTIONS}

    def _wait(self, send: Any, timeout: Any) -> Any:
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


def _forecast_converter(as_numpy: bool) -> Any:
    return lambda result: Forecast.from_result(result, as_numpy=as_numpy)


def _lock_timeout(deadline: Optional[float]) -> float:
    """threading's acquire() spells "no limit" as -1."""
    left = remaining(deadline)
    return -1 if left is None else left


def _outcome(call: Call, deadline: Optional[float], return_exceptions: bool) -> Any:
    try:
        return call.result(remaining(deadline))
    except TimeoutError:
        raise
    except TotoError as exc:
        if return_exceptions:
            return exc
        raise
