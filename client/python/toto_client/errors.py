"""Exceptions raised by toto_client.

Every exception the client raises on purpose derives from :class:`TotoError`,
so ``except toto_client.TotoError`` catches them all. Errors the daemon
answered with (JSON-RPC error objects) become one class per code, so callers
can decide what to do by type rather than by comparing numbers:

* fix the request, do not retry: :class:`ParseError`, :class:`InvalidRequest`,
  :class:`MethodNotFound`, :class:`InvalidParams`;
* retry later, with backoff: :class:`Overloaded`, :class:`ShuttingDown`
  (on another daemon or after a restart), :class:`ModelError`,
  :class:`InternalError`;
* give up or allow more time: :class:`DeadlineExceeded`, :class:`TimeoutError`.

:class:`TimeoutError` and :class:`ConnectionError` also derive from the
built-in exceptions of the same name, so code written against plain sockets
keeps working.
"""

import builtins
from typing import Any, Dict, Optional, Type

__all__ = [
    "TotoError",
    "TimeoutError",
    "ConnectionError",
    "ProtocolError",
    "RPCError",
    "ParseError",
    "InvalidRequest",
    "MethodNotFound",
    "InvalidParams",
    "InternalError",
    "Overloaded",
    "DeadlineExceeded",
    "ShuttingDown",
    "ModelError",
    "error_from_response",
]


class TotoError(Exception):
    """Base of every toto_client error.

    ``code``, ``message`` and ``data`` mirror a JSON-RPC error object; for
    errors found by the client itself (timeouts, broken connections) ``code``
    and ``data`` are None.
    """

    code: Optional[int] = None

    def __init__(self, message: str, *, code: Optional[int] = None, data: Any = None):
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.data = data

    def __str__(self) -> str:
        if self.code is None:
            return self.message
        return "[%d] %s" % (self.code, self.message)


class TimeoutError(TotoError, builtins.TimeoutError):  # noqa: A001 - deliberate shadowing
    """A call did not finish within its client-side timeout.

    The request may still run on the daemon; its late answer is dropped.
    """


class ConnectionError(TotoError, builtins.ConnectionError):  # noqa: A001
    """Could not connect, or the connection broke or was closed.

    Calls that were waiting when the connection broke get this error: their
    requests may or may not have run. Forecasts have no side effects, so they
    are safe to send again on a new :class:`toto_client.Client`.
    """


class ProtocolError(ConnectionError):
    """The daemon sent something that is not a JSON-RPC 2.0 response line.

    The stream can no longer be trusted, so the connection is closed.
    """


class RPCError(TotoError):
    """An error response from the daemon (a JSON-RPC error object).

    Unknown codes get this class itself; known codes get a subclass.
    """


class ParseError(RPCError):
    """-32700: the daemon could not parse a line as JSON. A client bug."""

    code = -32700


class InvalidRequest(RPCError):
    """-32600: not a JSON-RPC 2.0 request object. A client bug."""

    code = -32600


class MethodNotFound(RPCError):
    """-32601: the daemon has no such method (it may be older than the client)."""

    code = -32601


class InvalidParams(RPCError):
    """-32602: a parameter broke a rule; ``field`` names it (e.g. ``series[1][7]``).

    Retrying the same request gives the same error.
    """

    code = -32602

    @property
    def field(self) -> Optional[str]:
        """The parameter at fault, from ``error.data.field``, or None."""
        if isinstance(self.data, dict):
            field = self.data.get("field")
            if isinstance(field, str):
                return field
        return None


class InternalError(RPCError):
    """-32603: the model failed on a valid request (toto-infer's code for it)."""

    code = -32603


class Overloaded(RPCError):
    """-32000: a queue, in-flight or connection limit was reached. Retry with backoff."""

    code = -32000


class DeadlineExceeded(RPCError):
    """-32001: the request's ``timeout_ms`` passed before the model started it."""

    code = -32001


class ShuttingDown(RPCError):
    """-32002: the daemon is stopping. Reconnect (to it after restart, or elsewhere) and retry."""

    code = -32002


class ModelError(RPCError):
    """-32003: the model failed on a valid request (out of memory, device error)."""

    code = -32003


_BY_CODE: Dict[int, Type[RPCError]] = {
    cls.code: cls  # type: ignore[misc]
    for cls in (
        ParseError,
        InvalidRequest,
        MethodNotFound,
        InvalidParams,
        InternalError,
        Overloaded,
        DeadlineExceeded,
        ShuttingDown,
        ModelError,
    )
}


def error_from_response(error: Any) -> RPCError:
    """Builds the typed exception for a response's ``error`` member.

    Tolerates a malformed error object (the caller still learns that the call
    failed) rather than hiding the failure behind a ProtocolError.
    """
    if not isinstance(error, dict):
        return RPCError("malformed error object: %r" % (error,))
    code = error.get("code")
    message = error.get("message")
    if not isinstance(message, str):
        message = "(no message)"
    data = error.get("data")
    if not isinstance(code, int) or isinstance(code, bool):
        return RPCError(message, data=data)
    cls = _BY_CODE.get(code, RPCError)
    return cls(message, code=code, data=data)
