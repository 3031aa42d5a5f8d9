"""One JSON-RPC connection to totod: sockets, framing, and matching answers to calls.

The daemon answers requests in whatever order they finish (a short forecast
batched later can overtake a long one), so every request gets a unique id and
a :class:`Call` waits for the answer carrying that id. A background thread
reads answer lines and completes calls; writers share a lock so two requests
never interleave on the wire. The socket is non-blocking and every wait is a
poll with a deadline, so one stuck peer can never hang a caller past its
timeout.
"""

import concurrent.futures
import json
import logging
import os
import select
import socket
import threading
import time
from typing import Any, Callable, Dict, List, Optional, Tuple, Union

from .errors import ConnectionError, ProtocolError, TimeoutError, error_from_response

__all__ = ["Call", "Connection", "parse_address", "deadline_after", "remaining"]

_log = logging.getLogger("toto_client")

_RECV_BYTES = 1 << 16
_MSG_NOSIGNAL = getattr(socket, "MSG_NOSIGNAL", 0)

Address = Union[Tuple[str, str], Tuple[str, Tuple[str, int]]]


def parse_address(address: Any) -> Address:
    """Splits an address into ("unix", path) or ("tcp", (host, port)).

    Accepts ``unix:/path``, ``tcp:host:port``, ``tcp:[v6]:port``, a bare path
    (a Unix socket, as the daemon's --unix flag takes), a ``(host, port)``
    tuple, or an ``os.PathLike``.
    """
    if isinstance(address, tuple) and len(address) == 2:
        host, port = address
        return ("tcp", (str(host), _port(port, address)))
    if isinstance(address, os.PathLike):
        address = os.fspath(address)
    if not isinstance(address, str) or not address:
        raise ValueError("address must be 'unix:PATH', 'tcp:HOST:PORT' or a path, got %r" % (address,))
    if address.startswith("unix:"):
        path = address[len("unix:") :]
        if not path:
            raise ValueError("address %r names no socket path" % address)
        return ("unix", path)
    if address.startswith("tcp:"):
        hostport = address[len("tcp:") :]
        host, sep, port = hostport.rpartition(":")
        if not sep or not port:
            raise ValueError("address %r: expected tcp:HOST:PORT" % address)
        if host.startswith("[") and host.endswith("]"):
            host = host[1:-1]
        return ("tcp", (host or "127.0.0.1", _port(port, address)))
    return ("unix", address)


def _port(port: Any, address: Any) -> int:
    try:
        value = int(port)
    except (TypeError, ValueError):
        raise ValueError("address %r: bad port %r" % (address, port)) from None
    if not 0 < value < 65536:
        raise ValueError("address %r: port %d out of range" % (address, value))
    return value


def deadline_after(timeout: Optional[float]) -> Optional[float]:
    """A monotonic deadline ``timeout`` seconds from now (None: never)."""
    if timeout is None:
        return None
    if timeout < 0:
        raise ValueError("timeout must be >= 0 or None, got %r" % (timeout,))
    return time.monotonic() + timeout


def remaining(deadline: Optional[float]) -> Optional[float]:
    """Seconds left until deadline, never negative (None: no deadline)."""
    if deadline is None:
        return None
    return max(0.0, deadline - time.monotonic())


def _wait_fd(sock: socket.socket, writable: bool, timeout: Optional[float]) -> bool:
    """Waits until sock is readable (or writable); False when timeout passed.

    poll() where the platform has it: select() fails on descriptors past
    FD_SETSIZE, which a busy process can easily reach.
    """
    if hasattr(select, "poll"):
        poller = select.poll()
        poller.register(sock, select.POLLOUT if writable else select.POLLIN)
        ms = None if timeout is None else max(0, int(timeout * 1000 + 0.999))
        return bool(poller.poll(ms))
    rlist, wlist = ([], [sock]) if writable else ([sock], [])
    r, w, _ = select.select(rlist, wlist, [], timeout)
    return bool(r or w)


def _open_socket(address: Address, timeout: Optional[float]) -> socket.socket:
    """Connects within timeout; raises ConnectionError or TimeoutError."""
    kind, target = address
    shown = "unix:%s" % target if kind == "unix" else "tcp:%s:%d" % target  # type: ignore[str-format]
    try:
        if kind == "unix":
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                sock.settimeout(timeout)
                sock.connect(target)
            except BaseException:
                sock.close()
                raise
        else:
            sock = socket.create_connection(target, timeout=timeout)  # type: ignore[arg-type]
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except socket.timeout:
        raise TimeoutError("connecting to %s: no answer within %s s" % (shown, timeout)) from None
    except OSError as exc:
        raise ConnectionError("connecting to %s: %s" % (shown, exc.strerror or exc)) from exc
    sock.setblocking(False)
    return sock


class Call:
    """The pending answer to one request; like ``concurrent.futures.Future``.

    ``result(timeout)`` raises toto_client.TimeoutError when the answer has
    not come in time; the call stays pending, so you may wait again or
    ``cancel()`` it (its answer is then dropped).
    """

    def __init__(self, conn: "Connection", call_id: int, method: str, convert: Optional[Callable[[Any], Any]]):
        self.id = call_id
        self.method = method
        self._conn = conn
        self._convert = convert
        self._done = threading.Event()
        self._lock = threading.Lock()
        self._value: Any = None
        self._error: Optional[BaseException] = None
        self._callbacks: List[Callable[["Call"], Any]] = []

    def __repr__(self) -> str:
        state = "pending" if not self.done() else ("error" if self._error else "done")
        return "<Call id=%d method=%s %s>" % (self.id, self.method, state)

    def done(self) -> bool:
        """True once the call has its answer, its error, or was cancelled."""
        return self._done.is_set()

    def cancelled(self) -> bool:
        """True if cancel() stopped the wait before the answer came."""
        return isinstance(self._error, concurrent.futures.CancelledError)

    def result(self, timeout: Optional[float] = None) -> Any:
        """The call's result; raises its error, or TimeoutError after timeout seconds."""
        self._wait(timeout)
        if self._error is not None:
            raise self._error
        return self._value

    def exception(self, timeout: Optional[float] = None) -> Optional[BaseException]:
        """The call's error (None on success); TimeoutError after timeout seconds."""
        self._wait(timeout)
        return self._error

    def add_done_callback(self, fn: Callable[["Call"], Any]) -> None:
        """Calls fn(call) once done: at once if it already is, else on the reader thread."""
        with self._lock:
            if not self._done.is_set():
                self._callbacks.append(fn)
                return
        _run_callback(fn, self)

    def cancel(self) -> bool:
        """Stops waiting: drops the answer when it comes. False if already done.

        The daemon is not told: the request may still run there.
        """
        if not self._conn._forget(self.id):
            return False
        return self._finish(None, concurrent.futures.CancelledError("call %d cancelled" % self.id))

    def _wait(self, timeout: Optional[float]) -> None:
        if not self._done.wait(timeout):
            raise TimeoutError("no answer to %s (id %d) within %s s" % (self.method, self.id, timeout))

    def _set_result(self, raw: Any) -> None:
        if self._convert is None:
            self._finish(raw, None)
            return
        try:
            value = self._convert(raw)
        except (TypeError, ValueError, KeyError, AttributeError) as exc:
            self._finish(None, ProtocolError("malformed %s result: %s" % (self.method, exc)))
            return
        self._finish(value, None)

    def _set_error(self, error: BaseException) -> None:
        self._finish(None, error)

    def _finish(self, value: Any, error: Optional[BaseException]) -> bool:
        with self._lock:
            if self._done.is_set():
                return False
            self._value, self._error = value, error
            callbacks, self._callbacks = self._callbacks, []
            self._done.set()
        for fn in callbacks:
            _run_callback(fn, self)
        return True


def _run_callback(fn: Callable[[Call], Any], call: Call) -> None:
    """A callback's exception is logged, never allowed to kill the reader thread."""
    try:
        fn(call)
    except Exception:  # noqa: BLE001 - user code
        _log.exception("toto_client: done-callback of call %d raised", call.id)


class Connection:
    """A connected socket, its reader thread, and the calls awaiting answers."""

    def __init__(self, address: Any, connect_timeout: Optional[float]):
        self.address = parse_address(address)
        self._sock = _open_socket(self.address, connect_timeout)
        self._lock = threading.Lock()  # _pending, _next_id, _closed_reason
        self._send_lock = threading.Lock()  # one writer at a time on the wire
        self._pending: Dict[int, Call] = {}
        self._next_id = 1
        self._closed_reason: Optional[str] = None
        self._closed_cause: Optional[BaseException] = None
        self._orphan: Optional[BaseException] = None  # an error answer with id null
        self._reader = threading.Thread(target=self._read_loop, name="toto_client-reader", daemon=True)
        self._reader.start()

    @property
    def closed(self) -> bool:
        """True once the connection broke or was closed (it is never reopened)."""
        return self._closed_reason is not None

    def submit(
        self,
        method: str,
        params: Any,
        deadline: Optional[float],
        convert: Optional[Callable[[Any], Any]] = None,
    ) -> Call:
        """Sends one request and returns its Call without waiting for the answer.

        Only the sending honours ``deadline`` here (a peer that stops reading
        fills the socket buffer); the caller waits for the answer itself.
        """
        with self._lock:
            self._raise_if_closed()
            call_id = self._next_id
            self._next_id += 1
        line = _encode_request(call_id, method, params)
        call = Call(self, call_id, method, convert)
        with self._lock:
            self._raise_if_closed()
            self._pending[call_id] = call
        try:
            self._send_line(line, deadline)
        except BaseException:
            self._forget(call_id)
            raise
        return call

    def close(self, reason: str = "the client closed the connection") -> None:
        """Fails waiting calls with ConnectionError and releases the socket."""
        self._fail(reason)
        if threading.current_thread() is not self._reader:
            self._reader.join()
        with self._send_lock:
            self._sock.close()

    def _raise_if_closed(self) -> None:
        if self._closed_reason is not None:
            exc = ConnectionError(self._closed_reason)
            raise exc from self._closed_cause

    def _forget(self, call_id: int) -> bool:
        with self._lock:
            return self._pending.pop(call_id, None) is not None

    def _send_line(self, line: bytes, deadline: Optional[float]) -> None:
        """Writes one whole line, or breaks the connection trying.

        A line cut in half would corrupt every later request, so a timeout
        after the first byte closes the connection; a timeout before it
        leaves the connection usable.
        """
        if not self._send_lock.acquire(timeout=-1 if deadline is None else remaining(deadline)):
            raise TimeoutError("could not send within the timeout: other requests hold the connection")
        try:
            self._raise_if_closed()
            view = memoryview(line)
            while view:
                try:
                    sent = self._sock.send(view, _MSG_NOSIGNAL)
                except (BlockingIOError, InterruptedError):
                    sent = 0
                except OSError as exc:
                    reason = "sending failed: %s" % (exc.strerror or exc)
                    self._fail(reason, exc)
                    raise ConnectionError(reason) from exc
                if sent:
                    view = view[sent:]
                    continue
                if not _wait_fd(self._sock, True, remaining(deadline)):
                    if len(view) < len(line):
                        self._fail("a request was cut off by its timeout while being sent")
                    raise TimeoutError("the daemon did not take the request within the timeout")
        finally:
            self._send_lock.release()

    def _read_loop(self) -> None:
        """Reads answer lines until EOF, an error, or close()."""
        buf = bytearray()
        try:
            while self._closed_reason is None:
                _wait_fd(self._sock, False, None)
                try:
                    chunk = self._sock.recv(_RECV_BYTES)
                except (BlockingIOError, InterruptedError):
                    continue
                if not chunk:
                    self._fail("the daemon closed the connection")
                    return
                start = len(buf)
                buf += chunk
                pos = 0
                newline = buf.find(b"\n", start)
                while newline >= 0:
                    self._dispatch(bytes(buf[pos:newline]))
                    pos = newline + 1
                    newline = buf.find(b"\n", pos)
                del buf[:pos]
        except ProtocolError as exc:
            self._fail(exc.message, exc)
        except OSError as exc:
            self._fail("reading failed: %s" % (exc.strerror or exc), exc)
        except Exception as exc:  # noqa: BLE001 - never leave calls waiting forever
            self._fail("reader thread failed: %r" % (exc,), exc)

    def _dispatch(self, line: bytes) -> None:
        """Completes the call that one answer line belongs to."""
        line = line.strip()
        if not line:
            return
        try:
            message = json.loads(line)
        except ValueError:
            raise ProtocolError("the daemon sent a line that is not JSON: %r" % line[:200]) from None
        for answer in message if isinstance(message, list) else [message]:
            self._dispatch_one(answer)

    def _dispatch_one(self, answer: Any) -> None:
        if not isinstance(answer, dict) or ("result" not in answer and "error" not in answer):
            raise ProtocolError("the daemon sent a line that is not a JSON-RPC response: %r" % (answer,))
        call_id = answer.get("id")
        with self._lock:
            if call_id is None and len(self._pending) == 1:
                # An answer without id (the daemon could not read the request) can
                # only be for the request waiting, when exactly one is.
                call_id = next(iter(self._pending))
            call = self._pending.pop(call_id, None) if isinstance(call_id, int) else None
        if "error" in answer:
            error = error_from_response(answer["error"])
            if call is None:
                if call_id is None:
                    self._orphan = error
                _log.debug("toto_client: dropped error answer for id %r: %s", call_id, error)
                return
            call._set_error(error)
        elif call is not None:
            call._set_result(answer["result"])

    def _fail(self, reason: str, cause: Optional[BaseException] = None) -> None:
        """Marks the connection dead (once) and fails every waiting call."""
        with self._lock:
            if self._closed_reason is not None:
                return
            self._closed_reason = reason
            self._closed_cause = cause if cause is not None else self._orphan
            pending, self._pending = self._pending, {}
        try:
            self._sock.shutdown(socket.SHUT_RDWR)  # wakes the reader; the daemon sees EOF
        except OSError:
            pass
        for call in pending.values():
            exc = ConnectionError("%s before %s (id %d) was answered" % (reason, call.method, call.id))
            exc.__cause__ = self._closed_cause
            call._set_error(exc)


def _encode_request(call_id: int, method: str, params: Any) -> bytes:
    """One compact request line. NaN and Infinity are not JSON: refuse them here."""
    if not isinstance(method, str):
        raise TypeError("method must be a str, got %r" % (method,))
    request = {"jsonrpc": "2.0", "id": call_id, "method": method, "params": {} if params is None else params}
    try:
        text = json.dumps(request, separators=(",", ":"), allow_nan=False, ensure_ascii=False)
    except ValueError as exc:
        raise ValueError("request params hold a value JSON cannot carry: %s" % exc) from None
    return text.encode("utf-8") + b"\n"

