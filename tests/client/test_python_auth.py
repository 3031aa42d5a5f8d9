#!/usr/bin/env python3
"""test_python_auth - the Python client against a totod with auth-token-file.

Over TCP the client presents its token (token= or token_file=) with the
`auth` method on every new connection, reconnections included; without one
the daemon refuses with -32004; a wrong token fails the connection; the Unix
socket needs none (docs/security.md).
"""

import os
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
sys.path.insert(0, os.path.join(HERE, "..", "..", "client", "python"))
from totod_harness import Daemon, Tap  # noqa: E402

import toto_client  # noqa: E402

SERIES = [1.0, 2.0, 3.0, 4.0] * 8


def main():
    tap = Tap()
    with tempfile.TemporaryDirectory() as tmp:
        good, bad = os.path.join(tmp, "token"), os.path.join(tmp, "wrong")
        for path, text in ((good, "  py-token-0123456789abcdef \n"), (bad, "nope-0123456789abcdef\n")):
            with open(path, "w") as f:
                f.write(text)
            os.chmod(path, 0o600)
        tap.ok(toto_client.read_token_file(good) == "py-token-0123456789abcdef",
               "read_token_file: the first line, trimmed, as the daemon reads it")
        with Daemon("--auth-token-file", good) as d:
            tcp = "tcp:127.0.0.1:%d" % d.port
            with toto_client.Client(tcp, timeout=20, token_file=good) as c:
                fc = c.forecast(SERIES, prediction_length=4)
                ok = len(fc.mean[0]) == 4
                c._conn.close()  # a dropped connection: the next call reconnects, token again
                fc2 = c.forecast(SERIES, prediction_length=4)
                ok = ok and fc2.mean == fc.mean and c.stats["reconnects"] == 1
            tap.ok(ok, "token_file=: forecasts over TCP, and again after a reconnection")
            with toto_client.Client(tcp, timeout=20, token="py-token-0123456789abcdef") as c:
                tap.ok(c.health()["status"] == "ok", "token=: health over TCP")
            with toto_client.Client(tcp, timeout=20) as c:
                try:
                    c.forecast(SERIES, prediction_length=4)
                    tap.ok(False, "no token: refused")
                except toto_client.RPCError as e:
                    tap.ok(e.code == -32004, "no token: refused with -32004 (%s)" % e)
            try:
                toto_client.Client(tcp, timeout=20, token_file=bad)
                tap.ok(False, "a wrong token fails the connection")
            except toto_client.RPCError as e:
                tap.ok(e.code == -32004 and "wrong token" in str(e),
                       "a wrong token fails the connection (%s)" % e)
            with toto_client.Client("unix:" + d.sock, timeout=20) as c:
                tap.ok(len(c.forecast(SERIES, prediction_length=4).mean[0]) == 4,
                       "the Unix socket needs no token")
    tap.done()


if __name__ == "__main__":
    main()
