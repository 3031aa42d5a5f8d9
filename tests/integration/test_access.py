#!/usr/bin/env python3
"""Access control of the real totod (docs/security.md): the Unix socket's mode
and group, the token file's checks at start, the method auth over TCP (refusals,
wrong tokens, the connection closed after 3), Bearer tokens over HTTP with curl,
admin methods, loopback defaults and the warning beyond them, and a log free of
series values and of the token (TAP)."""

import grp
import json
import os
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import time

from totod_harness import (INVALID_PARAMS, PARSE, TINY_A, TOTOD, Daemon, Tap, forecast, line,
                           series)

tap = Tap()
UNAUTHORIZED = -32004
TOKEN = "s3cret-token-4f9a2c71e0b8"  # 25 bytes: distinctive, so the log check means something
HTTP = ("--http", "127.0.0.1:0")
TMP = tempfile.mkdtemp(prefix="totod-access-")


def token_file(name, text, mode=0o600):
    path = os.path.join(TMP, name)
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, mode)
    return path


GOOD = token_file("good", "  %s \n# the second line is ignored\n" % TOKEN)


def error_of(answer):
    return ((answer or {}).get("error") or {})


def curl(url, *args, body=None):
    """(HTTP status, parsed body or None, response headers) via the real curl."""
    extra = ["--data-binary", "@-"] if body is not None else []
    p = subprocess.run(["curl", "-sS", "-D", "/dev/stderr", "-w", "\n%{http_code}", *extra, *args,
                        url], input=None if body is None else json.dumps(body).encode(),
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=20)
    text, _, code = p.stdout.decode().rpartition("\n")
    try:
        doc = json.loads(text)
    except ValueError:
        doc = None
    return int(code or 0), doc, p.stderr.decode(errors="replace")


def refused_start(args, env=None):
    """(exit status, stderr) of a totod that must refuse its configuration."""
    full = {k: v for k, v in os.environ.items() if not k.startswith("TOTO_")}
    full.update(env or {})
    sock = os.path.join(TMP, "refused.sock")
    p = subprocess.run([TOTOD, "--model", TINY_A, "--unix", sock, *args], env=full,
                       stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=30)
    return p.returncode, p.stderr.decode(errors="replace")


def socket_mode_and_group():
    d = Daemon(tcp=False)
    st = os.stat(d.sock)
    tap.ok(stat.S_ISSOCK(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o660,
           "unix socket: mode 0660 by default (%o)" % stat.S_IMODE(st.st_mode))
    d.stop()
    group = grp.getgrgid(os.getgid()).gr_name
    d = Daemon("--unix-mode", "0600", "--unix-group", group, tcp=False)
    st = os.stat(d.sock)
    tap.ok(stat.S_IMODE(st.st_mode) == 0o600 and st.st_gid == os.getgid(),
           "--unix-mode 0600 --unix-group %s (the primary group): mode %o, gid %d"
           % (group, stat.S_IMODE(st.st_mode), st.st_gid))
    c = d.client()
    tap.ok(c.call("health").get("result", {}).get("status") == "ok",
           "the owner still connects through a 0600 socket")
    d.stop()
    other = [g for g in grp.getgrall() if g.gr_gid != os.getgid()]
    if os.geteuid() == 0 and other:
        # Root may give the socket to any group: a real chown, not a no-op.
        g = other[0]
        d = Daemon(tcp=False, env={"TOTO_UNIX_MODE": "0666", "TOTO_UNIX_GROUP": str(g.gr_gid)})
        st = os.stat(d.sock)
        tap.ok(stat.S_IMODE(st.st_mode) == 0o666 and st.st_gid == g.gr_gid,
               "TOTO_UNIX_MODE=0666 TOTO_UNIX_GROUP=%d (a gid, another group): mode %o, gid %d"
               % (g.gr_gid, stat.S_IMODE(st.st_mode), st.st_gid))
        d.stop()
    for args, want in [(["--unix-mode", "0999"], "--unix-mode: expected an octal mode"),
                       (["--unix-mode", "0440"], "lets the owner read and write"),
                       (["--unix-mode", "4660"], "from 0600 to 0777"),
                       (["--unix-group", "no-such-group-totod"],
                        "--unix-group: no such group 'no-such-group-totod'")]:
        rc, err = refused_start(args)
        tap.ok(rc == 2 and want in err, "%s: refused (exit 2), naming the setting" % " ".join(args),
               err)


def token_checks():
    cases = [
        ("missing", os.path.join(TMP, "absent"), "No such file"),
        ("empty", token_file("empty", ""), "empty"),
        ("short", token_file("short", "only-15-bytes!!\n"), "15 bytes; at least 16"),
        ("readable by others", token_file("world", TOKEN + "\n", 0o644), "mode 0644"),
        ("readable by the group", token_file("group", TOKEN + "\n", 0o640), "chmod 600"),
    ]
    for what, path, reason in cases:
        rc, err = refused_start(["--auth-token-file", path])
        tap.ok(rc == 2 and "--auth-token-file: %s" % path in err and reason in err
               and "refusing to start" in err,
               "auth-token-file %s: refused at start, saying '%s'" % (what, reason), err)
    rc, err = refused_start([], env={"TOTO_AUTH_TOKEN_FILE": cases[1][1]})
    tap.ok(rc == 2 and "TOTO_AUTH_TOKEN_FILE: " in err and "empty" in err,
           "TOTO_AUTH_TOKEN_FILE: refused the same way, naming the variable", err)
    p = subprocess.run([TOTOD, "--model", TINY_A, "--auth-token-file", GOOD, "--check-config"],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
    tap.ok(p.returncode == 0 and TOKEN not in p.stdout.decode()
           and json.loads(p.stdout)["auth-token-file"]["value"] == GOOD,
           "--check-config: a good token file passes; the path shows, the token does not")


def tcp_auth():
    d = Daemon("--auth-token-file", GOOD)
    c = d.client("tcp")
    a = c.call("health")
    tap.ok(error_of(a).get("code") == UNAUTHORIZED and "auth" in error_of(a).get("message", ""),
           "TCP: health before auth gets -32004, saying to send auth", a)
    a = c.call("forecast", {"series": [1, 2, 3, 4, 5, 6, 7, 8], "prediction_length": 2})
    tap.ok(error_of(a).get("code") == UNAUTHORIZED, "TCP: forecast before auth gets -32004", a)
    c.send({"jsonrpc": "2.0", "method": "health"})  # a notification: nothing runs, no answer
    a = c.call("auth", {"token": 42}, rid="bad-params")
    tap.ok(a.get("id") == "bad-params" and error_of(a).get("code") == INVALID_PARAMS
           and error_of(a).get("data") == {"field": "token"},
           "TCP: auth with a token that is not a string: -32602 naming token", a)
    a = c.call("auth", {"token": TOKEN})
    tap.ok(a.get("result") == {"authenticated": True, "required": True},
           "TCP: auth with the right token: authenticated", a)
    a = c.call("forecast", {"series": series(1, 16), "prediction_length": 2})
    tap.ok("mean" in a.get("result", {}), "TCP: forecast after auth is answered", a)
    tap.ok("result" in c.call("info"), "TCP: info after auth")
    c.close()

    c = d.client("tcp")
    c.send(b'[{"jsonrpc":"2.0","id":1,"method":"auth","params":{"token":"' + TOKEN.encode()
           + b'"}},{"jsonrpc":"2.0","id":2,"method":"health"}]\n')
    answers = {x["id"]: x for x in json.loads(c.recv_line())}
    tap.ok(answers[1].get("result", {}).get("authenticated") and "result" in answers[2],
           "TCP: auth as the first member of a batch lets the next member through", answers)
    c.close()

    c = d.client("tcp")
    wrong = [c.call("auth", {"token": TOKEN[:-1] + "X"}) for _ in range(3)]
    tap.ok(all(error_of(w).get("code") == UNAUTHORIZED for w in wrong)
           and [error_of(w).get("data", {}).get("failures") for w in wrong] == [1, 2, 3]
           and "closing the connection" in error_of(wrong[2]).get("message", ""),
           "TCP: a wrong token gets -32004 each time, the third says it closes", wrong)
    try:
        rest = c.call("auth", {"token": TOKEN})
    except OSError:
        rest = None
    tap.ok(rest is None, "TCP: after 3 wrong tokens the connection is closed", rest)
    c.close()
    c = d.client("tcp")
    tap.ok(error_of(c.call("auth", {"token": TOKEN + "x"})).get("code") == UNAUTHORIZED
           and error_of(c.call("auth", {"token": ""})).get("code") == UNAUTHORIZED
           and c.call("auth", {"token": TOKEN}).get("result", {}).get("authenticated"),
           "TCP: a longer and an empty token are wrong; the right one still works after them")
    c.close()

    u = d.client()
    a = u.call("health")
    tap.ok(a.get("result", {}).get("status") == "ok", "Unix socket: no token needed", a)
    a = u.call("use_compiled")
    tap.ok(a.get("result", {}).get("path") == "compiled", "Unix socket: use_compiled allowed", a)
    t = d.client("tcp")
    t.call("auth", {"token": TOKEN})
    a = t.call("use_compiled")
    tap.ok(a.get("result", {}).get("path") == "compiled",
           "TCP: use_compiled allowed once the token is presented", a)
    d.stop()
    tap.ok(TOKEN not in d.log_text() and "wrong token (3 of 3; closing it)" in d.log_text(),
           "the log tells of the wrong tokens and never holds the token", d.log_text()[-1500:])


def admin_without_token():
    d = Daemon()
    a = d.client("tcp").call("use_compiled")
    msg = error_of(a).get("message", "")
    tap.ok(error_of(a).get("code") == UNAUTHORIZED and "admin method" in msg
           and "Unix socket" in msg and "auth-token-file" in msg,
           "TCP without a token configured: use_compiled refused -32004, saying why", a)
    a = d.client("tcp").call("auth", {"token": "anything"})
    tap.ok(a.get("result") == {"authenticated": False, "required": False},
           "TCP without a token configured: auth says none is required", a)
    a = d.client("tcp").call("health")
    tap.ok(a.get("result", {}).get("status") == "ok",
           "TCP without a token configured: other methods need no auth", a)
    a = d.client().call("use_compiled")
    tap.ok(a.get("result", {}).get("path") == "compiled", "Unix socket: use_compiled allowed", a)
    d.stop()


def http_bearer():
    d = Daemon("--auth-token-file", GOOD, *HTTP, tcp=False)
    url = "http://127.0.0.1:%d" % d.http_port
    good, bad = "Authorization: Bearer " + TOKEN, "Authorization: Bearer wrong-token-0123456789"
    small = {"series": [1, 2, 3, 4, 5, 6, 7, 8], "prediction_length": 2}
    code, doc, head = curl(url + "/metrics")
    tap.ok(code == 401 and error_of(doc).get("code") == UNAUTHORIZED
           and 'WWW-Authenticate: Bearer realm="totod"' in head,
           "HTTP /metrics without a token: 401, -32004, a Bearer challenge", head + str(doc))
    code, doc, head = curl(url + "/metrics", "-H", bad)
    tap.ok(code == 401 and 'error="invalid_token"' in head, "HTTP /metrics with a wrong token: 401 "
           "invalid_token", head)
    code, _, head = curl(url + "/metrics", "-H", good)
    tap.ok(code == 200 and "text/plain" in head, "HTTP /metrics with the token: 200", head)
    code, doc, _ = curl(url + "/v1/forecast", body=small)
    tap.ok(code == 401 and error_of(doc).get("code") == UNAUTHORIZED,
           "HTTP POST /v1/forecast without a token: 401", doc)
    code, doc, _ = curl(url + "/v1/forecast", "-H", "Authorization: Basic dXNlcjpwYXNz", body=small)
    tap.ok(code == 401, "HTTP POST /v1/forecast with Basic instead of Bearer: 401", doc)
    code, doc, _ = curl(url + "/v1/forecast", "-H", good, body=small)
    tap.ok(code == 200 and "mean" in (doc or {}), "HTTP POST /v1/forecast with the token: 200", doc)
    code, doc, _ = curl(url + "/health")
    tap.ok(code == 200 and set(doc or {}) == {"status", "shutting_down", "uptime_s", "version"}
           and doc["status"] == "ok",
           "HTTP /health without a token: 200, the status only (no model, reasons, names)", doc)
    code, doc, _ = curl(url + "/health", "-H", good)
    tap.ok(code == 200 and doc.get("model") == TINY_A and "reasons" in doc,
           "HTTP /health with the token: the whole health object", doc)
    code, doc, _ = curl(url + "/ready")
    tap.ok(code == 200 and doc == {"ready": True}, "HTTP /ready: open to probes", doc)
    # Three wrong tokens on one keep-alive connection: the third answer closes it.
    p = subprocess.run(["curl", "-sS", "-w", "%{http_code} %{num_connects}\n", "-H", bad]
                       + ["-o", "/dev/null", url + "/metrics"] * 4,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=20)
    rows = p.stdout.decode().split()
    tap.ok(rows[0::2] == ["401"] * 4 and rows[1::2] == ["1", "0", "0", "1"],
           "HTTP: 3 wrong tokens on a connection close it (curl reconnects for the 4th)", rows)
    d.stop()
    tap.ok(TOKEN not in d.log_text(), "HTTP: the token is never logged")


def loopback():
    d = Daemon("--tcp", ":0", "--http", "0", tcp=False)
    log = d.log_text()
    tap.ok("listening on tcp 127.0.0.1:" in log and "listening on http 127.0.0.1:" in log
           and "beyond loopback" not in log,
           "--tcp :PORT and --http PORT listen on 127.0.0.1, with no warning", log)
    d.stop()
    d = Daemon("--tcp", "0.0.0.0:0", "--http", "0.0.0.0:0", tcp=False)
    log = d.log_text()
    tap.ok("listening on tcp 0.0.0.0:" in log
           and "TCP listens beyond loopback without a token" in log
           and "HTTP listens beyond loopback without a token" in log,
           "an explicit 0.0.0.0 is honoured, with a warning for TCP and for HTTP", log)
    tap.ok("result" in d.client("tcp").call("health"),
           "beyond loopback without a token: served (the operator asked for it)")
    d.stop()
    d = Daemon("--tcp", "0.0.0.0:0", "--http", "0.0.0.0:0", "--auth-token-file", GOOD, tcp=False)
    log = d.log_text()
    tap.ok("listening on tcp 0.0.0.0:" in log and "beyond loopback" not in log,
           "beyond loopback with a token: no warning", log)
    d.stop()


def activated():
    """Under socket activation the Unix socket stays as systemd made it, and an
    inherited TCP socket beyond loopback without a token is warned about."""
    tool = shutil.which("systemd-socket-activate")
    if not tool:
        tap.ok(True, "# SKIP systemd-socket-activate not installed")
        return
    path = os.path.join(TMP, "act.sock")
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOTO_")}
    env.pop("NOTIFY_SOCKET", None)
    proc = subprocess.Popen([tool, "-l", path, "-l", "0.0.0.0:%d" % port, "--", TOTOD, "--model",
                             TINY_A, "--unix-mode", "0600", "--unix-group", "0"],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, env=env)
    for _ in range(100):
        if os.path.exists(path):
            break
        time.sleep(0.05)
    before = os.stat(path)
    c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    c.settimeout(60)
    c.connect(path)  # starts totod with both sockets
    c.sendall(line({"jsonrpc": "2.0", "id": 1, "method": "health"}))
    answer = json.loads(c.makefile("rb").readline())
    after = os.stat(path)
    c.close()
    proc.send_signal(signal.SIGTERM)
    err = proc.communicate(timeout=60)[1].decode(errors="replace")
    tap.ok("result" in answer and stat.S_IMODE(after.st_mode) != 0o600
           and (after.st_mode, after.st_gid) == (before.st_mode, before.st_gid)
           and "keeps the mode and group systemd gave it" in err,
           "socket activation: unix-mode and unix-group leave systemd's socket as it was "
           "(mode %o), and the log says so" % stat.S_IMODE(after.st_mode), err[-800:])
    tap.ok("TCP listens beyond loopback without a token" in err,
           "socket activation: an inherited TCP socket on 0.0.0.0 without a token is warned about",
           err[-800:])


DISTINCT = ["123456.789", "987654.321", "555444.333", "424242.4242", "313131.3131",
            "271828.1828", "161803.3988"]


def no_series_values_in_log():
    d = Daemon(*HTTP, "--max-line-bytes", "4096")
    c = d.client("tcp")
    s = series(1, 32)[0]
    s[5] = 123456.789
    a = c.call("forecast", {"series": s, "prediction_length": 3, "series_id": "cpu.load",
                            "start": 0, "interval": 60})
    ok = "mean" in a.get("result", {})
    c.send(b'{"jsonrpc":"2.0","id":"p","method":"forecast","params":{"series":[987654.321,,]}}\n')
    ok = ok and error_of(c.recv()).get("code") == PARSE
    a = c.call("forecast", {"series": [555444.333, 1, 2, 3, "x"], "prediction_length": 2})
    ok = ok and error_of(a).get("code") == INVALID_PARAMS
    a = c.call("observe", {"series_id": "cpu.load", "start": 1920, "interval": 60,
                           "values": [424242.4242, 1.5]})
    ok = ok and "result" in a
    a = c.call("observe", {"series_id": "cpu.load", "values": [271828.1828]})
    ok = ok and error_of(a).get("code") == INVALID_PARAMS
    code, doc, _ = curl("http://127.0.0.1:%d/v1/forecast" % d.http_port,
                        body={"series": [161803.3988, None], "prediction_length": -1})
    ok = ok and code == 400
    long_line = line(forecast("long", {"series": [313131.3131] * 600, "prediction_length": 1}))
    c.send(long_line)
    ok = ok and error_of(c.recv()).get("data", {}).get("limit") == "max-line-bytes"
    tap.ok(ok, "a forecast, an observe and bad requests, each holding a distinctive value, "
           "were answered")
    d.stop()
    log = d.log_text()
    found = [v for v in DISTINCT if v in log or v.split(".")[0] in log]
    tap.ok(not found and "max-line-bytes" in log,
           "the log holds none of the series values (%d lines read)" % len(log.splitlines()),
           "found %s in:\n%s" % (found, log))


socket_mode_and_group()
token_checks()
tcp_auth()
admin_without_token()
http_bearer()
loopback()
activated()
no_series_values_in_log()
tap.done()
