#!/usr/bin/python3
"""Integration test: chatctl, the operator command line.

Runs the real chatctl against (a) no chatd at all, (b) a stand-in control
server on a private Unix socket that records each request and answers as
docs/control-protocol.md says chatd does, and (c) a real SQLite database
shared with the real chat-api (SCGI on a private port), to check that ban,
unban and close are recorded where chat-api (and chatd at start) read them.
Checks exit statuses (0 ok, 1 refused, 2 usage, 3 unreachable), the
control request's type and arguments, and the text and --json output.
Everything lives in one temporary folder; chat-api is stopped by PID.
Prints "N passed, M failed"; exit 0 on success, 1 on failure.
"""
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import stack  # noqa: E402

CHATCTL = os.environ.get("CHATCTL_BIN") or os.path.join(stack.BUILDDIR, "src", "ctl", "chatctl")
ROOM = "9f1c2a7e-4b3d-4c55-9a61-0e2f7b8c9d10"


class FakeControl:
    """A control socket that answers like chatd: one JSON line in, one out.
    reply(req) returns ("ok", result), ("error", code, message) or None
    (say nothing, as a stuck chatd, and keep the connection until stop())."""

    def __init__(self, path):
        self.path = path
        self.requests = []
        self.reply = lambda req: ("ok", {})
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(path)
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.stopping = False
        self.released = threading.Event()  # ends a silent answer
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def stop(self):
        self.stopping = True
        self.released.set()
        self.thread.join(5)
        self.sock.close()
        try:
            os.unlink(self.path)
        except OSError:
            pass

    def last(self):
        return self.requests[-1] if self.requests else {}

    def _loop(self):
        while not self.stopping:
            try:
                c, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    def _serve(self, c):
        c.settimeout(10)
        try:
            data = b""
            while b"\n" not in data:
                chunk = c.recv(65536)
                if not chunk:
                    return
                data += chunk
            req = json.loads(data.split(b"\n", 1)[0].decode("utf-8"))
            self.requests.append(req)
            ans = self.reply(req)
            if ans is None:
                self.released.wait(60)
                return
            if ans[0] == "ok":
                out = {"v": 1, "id": req.get("id", 0), "ok": True, "result": ans[1]}
            else:
                out = {"v": 1, "id": req.get("id", 0), "ok": False,
                       "error": {"code": ans[1], "message": ans[2]}}
            c.sendall(json.dumps(out).encode("utf-8") + b"\n")
        except (OSError, ValueError):
            pass
        finally:
            c.close()


class Run:
    def __init__(self, p):
        self.rc = p.returncode
        self.out = p.stdout.decode("utf-8", "replace")
        self.err = p.stderr.decode("utf-8", "replace")

    def __repr__(self):
        return "rc=%s stdout=%r stderr=%r" % (self.rc, self.out[:300], self.err[:300])

    def json(self):
        try:
            return json.loads(self.out)
        except ValueError:
            return None


class Env:
    def __init__(self, tmp):
        self.tmp = tmp
        self.sock = os.path.join(tmp, "control.sock")
        self.db = os.path.join(tmp, "chat.db")
        self.env = stack.clean_env({
            "CHAT_ENV_FILE": os.path.join(tmp, "empty.env"),
            "CONTROL_SOCKET": self.sock,
            "DATABASE_URL": "sqlite:" + self.db,
            "ADMIN_API_KEY": stack.KEY,
        })
        with open(self.env["CHAT_ENV_FILE"], "w") as f:
            f.write("# no settings: the environment has them\n")

    def run(self, *args, extra=None):
        env = dict(self.env)
        env.update(extra or {})
        p = subprocess.run([CHATCTL] + list(args), env=env, cwd=self.tmp, stdin=subprocess.DEVNULL,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
        return Run(p)


def t_usage(e, chk):
    r = e.run("--help")
    chk.ok(r.rc == 0 and "Exit status" in r.out and "publish" in r.out, "--help exits 0", repr(r))
    r = e.run("help")
    chk.ok(r.rc == 0 and "usage: chatctl" in r.out, "help exits 0", repr(r))
    r = e.run("--version")
    chk.ok(r.rc == 0 and r.out.startswith("chatctl "), "--version", repr(r))
    for cmd in ("status", "rooms", "stats", "ban", "unban", "kick", "close", "publish"):
        r = e.run(cmd, "--help")
        chk.ok(r.rc == 0 and ("usage: chatctl [OPTIONS] " + cmd) in r.out, "%s --help" % cmd, repr(r))
        r = e.run("help", cmd)
        chk.ok(r.rc == 0 and ("usage: chatctl [OPTIONS] " + cmd) in r.out, "help %s" % cmd, repr(r))
    r = e.run("ban", "--help")
    chk.ok("--duration" in r.out and "--no-db" in r.out, "ban --help names its options", repr(r))

    bad = [
        ([], "no command"),
        (["nope"], "unknown command"),
        (["help", "nope"], "help for an unknown command"),
        (["--bogus", "status"], "unknown option"),
        (["status", "--bogus"], "unknown command option"),
        (["status", "extra"], "too many arguments"),
        (["stats"], "missing ROOM_ID"),
        (["ban", ROOM], "missing USER_ID"),
        (["publish", ROOM], "missing EVENT_TYPE"),
        (["publish", ROOM, "t", "{}", "x"], "too many publish arguments"),
        (["--timeout", "5", "status"], "timeout below 10"),
        (["--timeout", "abc", "status"], "timeout not a number"),
        (["status", "--timeout", "60001"], "timeout above 60000"),
        (["--socket", "", "status"], "empty socket path"),
        (["ban", ROOM, "u1", "--duration", "0"], "zero duration"),
        (["ban", ROOM, "u1", "--duration", "10x"], "duration with a bad unit"),
        (["ban", ROOM, "u1", "--duration", "366d"], "duration over a year"),
        (["ban", ROOM, "u1", "--duration", "-5"], "negative duration"),
        (["kick", ROOM, "u1", "--duration", "60"], "kick takes no duration"),
        (["kick", ROOM, "u1", "--no-db"], "kick takes no --no-db"),
        (["status", "--reason", "x"], "status takes no reason"),
        (["publish", ROOM, "bad type!"], "bad event type"),
        (["publish", ROOM, "x" * 65], "event type too long"),
        (["publish", ROOM, "t", "{not json"], "payload not JSON"),
        (["publish", ROOM, "t", "{} {}"], "two payloads"),
        (["publish", ROOM, "t", '1,"x":2'], "payload that wraps into two members"),
        (["publish", ROOM, "t", '"a\\u0000b"'], "payload with an escaped NUL"),
        (["publish", ROOM, "t", "[" * 32 + "]" * 32], "payload nested 32 deep"),
        (["publish", ROOM, "t", "[" * 5000 + "]" * 5000], "payload nested 5000 deep"),
        (["ban", ROOM, "a\nb"], "user id with a newline"),
        (["ban", ROOM, "u" * 129], "user id too long"),
        (["kick", ROOM, "u1", "--reason", "r" * 501], "reason too long"),
    ]
    for args, what in bad:
        r = e.run(*args)
        chk.ok(r.rc == 2 and r.err.startswith("chatctl: ") or (args == [] and r.rc == 2),
               "usage error exits 2: %s" % what, repr(r))
        chk.ok(r.out == "", "usage error prints nothing on stdout: %s" % what, repr(r))

    # the event type rule in the words chat-api uses for its field
    r = e.run("publish", ROOM, "bad type!")
    chk.eq(r.err, "chatctl: EVENT_TYPE must be 1 to 64 characters of A-Z a-z 0-9 _ . -\n",
           "bad event type message")

    # a malformed setting is a configuration error, named in the message
    r = e.run("status", extra={"CONTROL_TIMEOUT_MS": "soon"})
    chk.ok(r.rc == 2 and "CONTROL_TIMEOUT_MS" in r.err, "bad setting exits 2 and names it", repr(r))


def t_unreachable(e, chk):
    r = e.run("status")
    chk.ok(r.rc == 3, "status without chatd exits 3", repr(r))
    chk.ok("chatd is not running" in r.err and e.sock in r.err and "No such file" in r.err,
           "the message names the socket and the cause", repr(r))
    r = e.run("--socket", os.path.join(e.tmp, "other.sock"), "rooms")
    chk.ok(r.rc == 3 and "other.sock" in r.err, "--socket overrides CONTROL_SOCKET", repr(r))
    # a socket file nobody listens on (left by a dead chatd)
    dead = os.path.join(e.tmp, "dead.sock")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(dead)
    s.close()
    r = e.run("--socket", dead, "stats", ROOM)
    chk.ok(r.rc == 3 and "Connection refused" in r.err, "stale socket exits 3", repr(r))
    for args in (["kick", ROOM, "u1"], ["publish", ROOM, "lucky_money"], ["ban", ROOM, "u1", "--no-db"],
                 ["unban", ROOM, "u1", "--no-db"], ["close", ROOM, "--no-db"]):
        r = e.run(*args)
        chk.ok(r.rc == 3 and "not running" in r.err, "%s without chatd exits 3" % args[0], repr(r))


def t_fake_chatd(e, chk):
    fake = FakeControl(e.sock)
    try:
        health = {"version": "0.1.0", "uptime_s": 3605, "connections": 12, "rooms": 3}
        fake.reply = lambda req: ("ok", health)
        r = e.run("status")
        chk.ok(r.rc == 0 and "running" in r.out and "connections" in r.out and "12" in r.out,
               "status prints the health fields", repr(r))
        req = fake.last()
        chk.ok(req.get("v") == 1 and req.get("type") == "health" and isinstance(req.get("id"), int),
               "status sends a v1 health request", repr(req))
        r = e.run("status", "--json")
        chk.eq(r.json(), health, "status --json is chatd's result")
        chk.eq(r.out.count("\n"), 1, "--json is one line")

        rooms = {"rooms": [{"room_id": ROOM, "current_users": 12, "peak_users": 40, "connections": 13,
                            "queued_low": 5, "queued_high": 0, "dropped_low": 7},
                           {"room_id": "r2\x1b[31m", "current_users": 1}]}
        fake.reply = lambda req: ("ok", rooms)
        r = e.run("rooms")
        chk.ok(r.rc == 0 and "ROOM_ID" in r.out and ROOM in r.out and "40" in r.out,
               "rooms prints a table", repr(r))
        chk.ok("\x1b" not in r.out, "control characters from chatd never reach the terminal", repr(r))
        chk.eq(fake.last().get("type"), "rooms", "rooms sends rooms")
        chk.ok("args" not in fake.last() or fake.last()["args"] == {}, "rooms sends no args", repr(fake.last()))
        r = e.run("--json", "rooms")
        chk.eq(r.json(), rooms, "rooms --json is chatd's result")
        fake.reply = lambda req: ("ok", {"rooms": []})
        r = e.run("rooms")
        chk.ok(r.rc == 0 and "no live rooms" in r.out, "rooms with none", repr(r))

        stats = {"room_id": ROOM, "current_users": 2, "peak_users": 9}
        fake.reply = lambda req: ("ok", stats)
        r = e.run("stats", ROOM)
        chk.ok(r.rc == 0 and "peak_users" in r.out and "9" in r.out, "stats prints fields", repr(r))
        chk.eq((fake.last().get("type"), fake.last().get("args")), ("stats", {"room_id": ROOM}),
               "stats request")

        fake.reply = lambda req: ("ok", {"disconnected": 2})
        r = e.run("kick", ROOM, "user 2", "--reason", "flooding 刷屏")
        chk.ok(r.rc == 0 and "2 connections closed" in r.out, "kick output", repr(r))
        chk.eq((fake.last().get("type"), fake.last().get("args")),
               ("kick", {"room_id": ROOM, "user_id": "user 2", "reason": "flooding 刷屏"}), "kick request")
        r = e.run("kick", ROOM, "u3")
        chk.eq(fake.last().get("args"), {"room_id": ROOM, "user_id": "u3"}, "kick without reason sends none")

        fake.reply = lambda req: ("ok", {"id": 17, "seq": 42, "recipients": 12})
        r = e.run("publish", ROOM, "lucky_money", '{"amount": 100, "desc": "新年快乐"}')
        chk.ok(r.rc == 0 and "published lucky_money" in r.out and "42" in r.out, "publish output", repr(r))
        chk.eq((fake.last().get("type"), fake.last().get("args")),
               ("publish", {"room_id": ROOM, "event_type": "lucky_money",
                            "payload": {"amount": 100, "desc": "新年快乐"}}), "publish request")
        e.run("publish", ROOM, "ping")
        chk.eq(fake.last().get("args", {}).get("payload"), {}, "publish payload defaults to {}")
        e.run("publish", ROOM, "n", "--", "-5")
        chk.eq(fake.last().get("args", {}).get("payload"), -5, "a payload after -- may start with -")
        e.run("publish", ROOM, "s", '"text"')
        chk.eq(fake.last().get("args", {}).get("payload"), "text", "any JSON value is a payload")
        e.run("publish", ROOM, "deep", "[" * 31 + "]" * 31)
        deep = fake.last().get("args", {}).get("payload")
        for _ in range(30):
            deep = deep[0] if isinstance(deep, list) and deep else None
        chk.eq(deep, [], "a payload 31 deep (the REST body's limit less one) is sent")

        # --no-db: chatd only, nothing recorded
        fake.reply = lambda req: ("ok", {"disconnected": 1})
        before = time.time() * 1000
        r = e.run("ban", ROOM, "u1", "--no-db", "--duration", "2h", "--reason", "spam")
        after = time.time() * 1000
        a = fake.last().get("args", {})
        chk.ok(r.rc == 0 and "not recorded" in r.out, "ban --no-db", repr(r))
        chk.eq((fake.last().get("type"), a.get("room_id"), a.get("user_id"), a.get("reason")),
               ("ban", ROOM, "u1", "spam"), "ban request")
        chk.ok(isinstance(a.get("expires_at"), int)
               and before + 7200000 - 1000 <= a["expires_at"] <= after + 7200000 + 1000,
               "ban expires_at is Unix ms, now + duration", repr(a))
        e.run("ban", ROOM, "u1", "--no-db")
        chk.eq(fake.last().get("args", {}).get("expires_at"), 0, "a permanent ban sends expires_at 0")
        r = e.run("--json", "ban", ROOM, "u1", "--no-db")
        chk.eq(r.json(), {"disconnected": 1, "recorded": False, "live": True}, "ban --no-db --json")
        r = e.run("unban", ROOM, "u1", "--no-db")
        chk.eq((r.rc, fake.last().get("type"), fake.last().get("args")),
               (0, "unban", {"room_id": ROOM, "user_id": "u1"}), "unban --no-db request")
        r = e.run("close", ROOM, "--no-db")
        chk.eq((r.rc, fake.last().get("type"), fake.last().get("args")),
               (0, "room_closed", {"room_id": ROOM, "reason": "closed by administrator"}),
               "close --no-db sends the default reason")

        # chatd's errors: exit 1 with code and message on stderr
        fake.reply = lambda req: ("error", "room_not_found", "no room with id %s" % ROOM)
        r = e.run("stats", ROOM)
        chk.ok(r.rc == 1 and "room_not_found" in r.err and "no room with id" in r.err and r.out == "",
               "chatd error exits 1 with code and message", repr(r))
        fake.reply = lambda req: ("error", "bad_type", "unknown request type")
        r = e.run("rooms")
        chk.ok(r.rc == 1 and "cannot do" in r.err, "bad_type is explained", repr(r))
        # a chatd that never answers
        fake.reply = lambda req: None
        t0 = time.monotonic()
        r = e.run("--timeout", "300", "status")
        chk.ok(r.rc == 3 and "did not answer within 300 ms" in r.err, "silent chatd exits 3", repr(r))
        # The stand-in holds the connection until it stops: only the
        # timeout ends the wait, well before ten times its length.
        chk.ok(time.monotonic() - t0 < 3, "--timeout bounds the wait")
    finally:
        fake.stop()


# ---------------------------------------------------------------- chat-api (SCGI) for the database


def scgi(port, method, uri, body=None):
    data = json.dumps(body).encode("utf-8") if body is not None else b""
    headers = [("CONTENT_LENGTH", str(len(data))), ("SCGI", "1"), ("REQUEST_METHOD", method),
               ("REQUEST_URI", uri), ("HTTP_X_API_KEY", stack.KEY)]
    if body is not None:
        headers.append(("CONTENT_TYPE", "application/json"))
    h = b"".join(k.encode() + b"\0" + v.encode() + b"\0" for k, v in headers)
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    try:
        s.sendall(str(len(h)).encode() + b":" + h + b"," + data)
        resp = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            resp += chunk
    finally:
        s.close()
    head, _, payload = resp.partition(b"\r\n\r\n")
    status = int(head.split(b"\r\n")[0].split()[1])
    return status, json.loads(payload.decode("utf-8"))


def t_database(e, chk):
    if not os.access(stack.CHAT_API, os.X_OK):
        chk.ok(False, "chat-api is built", stack.CHAT_API)
        return
    port = stack.free_port()
    api = stack.Proc("chat-api", [stack.CHAT_API, "--scgi", "--socket", "127.0.0.1:%d" % port],
                     e.env, e.tmp)
    fake = None
    try:
        deadline = time.monotonic() + 10
        while not stack.port_in_use(port) and time.monotonic() < deadline and api.running():
            time.sleep(0.05)
        if not chk.ok(stack.port_in_use(port), "chat-api listens", api.tail()):
            return
        st, room = scgi(port, "POST", "/management/rooms", {"room_name": "ctl"})
        chk.eq(st, 201, "room created through chat-api")
        rid = room["room_id"]
        bans = "/management/rooms/%s/bans" % rid

        # chatd down: the ban is still recorded, exit 0 with a note
        r = e.run("ban", rid, "u1", "--duration", "10m", "--reason", "spam")
        chk.ok(r.rc == 0 and "not told" in r.err and "banned u1" in r.out,
               "ban without chatd is recorded, exit 0 with a note", repr(r))
        st, body = scgi(port, "GET", bans)
        b = [x for x in body.get("bans", []) if x.get("user_id") == "u1"]
        chk.ok(st == 200 and len(b) == 1 and b[0].get("reason") == "spam"
               and isinstance(b[0].get("expires_at"), int)
               and abs(b[0]["expires_at"] - (time.time() + 600)) < 30,
               "chat-api sees the ban chatctl recorded", repr(body))
        r = e.run("--json", "ban", rid, "u2")
        chk.eq(r.json(), {"recorded": True, "live": False}, "ban --json without chatd")

        fake = FakeControl(e.sock)
        fake.reply = lambda req: ("ok", {"disconnected": 1})
        r = e.run("ban", rid, "u3", "--reason", "flood")
        chk.ok(r.rc == 0 and "1 connection closed" in r.out and r.err == "", "ban with chatd", repr(r))
        chk.eq((fake.last().get("type"), fake.last().get("args", {}).get("user_id")), ("ban", "u3"),
               "chatd told after recording")
        r = e.run("--json", "ban", rid, "u3")
        chk.eq(r.json(), {"disconnected": 1, "recorded": True, "live": True}, "ban --json with chatd")
        st, body = scgi(port, "GET", bans)
        chk.eq(sorted(x.get("user_id") for x in body.get("bans", [])), ["u1", "u2", "u3"],
               "three bans in force")

        n = len(fake.requests)
        r = e.run("ban", "00000000-0000-4000-8000-000000000000", "u1")
        chk.ok(r.rc == 1 and "room_not_found" in r.err, "ban in an unknown room exits 1", repr(r))
        chk.eq(len(fake.requests), n, "chatd is not told of a refused ban")

        r = e.run("unban", rid, "u1")
        chk.ok(r.rc == 0 and "unbanned u1" in r.out, "unban", repr(r))
        chk.eq((fake.last().get("type"), fake.last().get("args")), ("unban", {"room_id": rid, "user_id": "u1"}),
               "unban request")
        r = e.run("unban", rid, "u1")
        chk.ok(r.rc == 1 and "ban_not_found" in r.err, "unban twice exits 1", repr(r))
        st, body = scgi(port, "GET", bans)
        chk.eq(sorted(x.get("user_id") for x in body.get("bans", [])), ["u2", "u3"], "the lifted ban is gone")

        fake.reply = lambda req: ("ok", {"disconnected": 5})
        r = e.run("close", rid, "--reason", "event over")
        chk.ok(r.rc == 0 and "5 connections closed" in r.out, "close", repr(r))
        chk.eq((fake.last().get("type"), fake.last().get("args")),
               ("room_closed", {"room_id": rid, "reason": "event over"}), "close request")
        st, body = scgi(port, "GET", "/management/rooms/%s" % rid)
        chk.ok(st == 200 and body.get("closed") is True and body.get("close_reason") == "event over",
               "chat-api sees the room closed", repr(body))
        r = e.run("close", rid)
        chk.ok(r.rc == 1 and "room_closed" in r.err, "closing twice exits 1", repr(r))
        r = e.run("close", "00000000-0000-4000-8000-000000000000")
        chk.ok(r.rc == 1 and "room_not_found" in r.err, "closing an unknown room exits 1", repr(r))

        # a database that cannot be opened
        r = e.run("ban", rid, "u9", extra={"DATABASE_URL": "sqlite:/nonexistent-dir/x/chat.db"})
        chk.ok(r.rc == 1 and "database" in r.err, "unusable database exits 1", repr(r))
        chk.ok(r.err.startswith("chatctl: DATABASE_URL: no database at /nonexistent-dir/x/chat.db:")
               and r.err.count("/nonexistent-dir/x/chat.db") == 1 and r.err.count("\n") == 1,
               "it names DATABASE_URL and the path, once, in one line", repr(r))
        # chatctl never creates a database: a missing file stays missing
        for cmd in (["ban", rid, "u9"], ["unban", rid, "u9"], ["close", rid]):
            missing = os.path.join(e.tmp, "missing.db")
            r = e.run(*cmd, extra={"DATABASE_URL": "sqlite:" + missing})
            chk.ok(r.rc == 1 and "DATABASE_URL" in r.err and missing in r.err and "existing database" in r.err,
                   "%s with no database file says which one it looked for" % cmd[0], repr(r))
            chk.eq([f for f in os.listdir(e.tmp) if f.startswith("missing.db")], [],
                   "%s created no database file" % cmd[0])
        # a directory where the file should be: the system's reason, once
        r = e.run("ban", rid, "u9", extra={"DATABASE_URL": "sqlite:" + os.path.join(e.db, "x.db")})
        chk.ok(r.rc == 1 and r.err.startswith("chatctl: DATABASE_URL: ") and r.err.count("Not a directory") == 1,
               "a path through a file names DATABASE_URL and the cause", repr(r))
    finally:
        if fake is not None:
            fake.stop()
        complaints = stack.stop_process_tree(api)
        chk.ok(not complaints, "chat-api stopped cleanly", "; ".join(complaints))


# ---------------------------------------------------------------- the real chatd


class Ws:
    """A WebSocket client straight to chatd (no web server needed here)."""

    def __init__(self, port, path):
        self.s, self.status, self.head, self.buf = stack.ws_connect("127.0.0.1", port, path)

    def _need(self, n, deadline):
        while len(self.buf) < n:
            left = deadline - time.monotonic()
            if left <= 0:
                raise socket.timeout()
            self.s.settimeout(left)
            chunk = self.s.recv(65536)
            if not chunk:
                raise EOFError()
            self.buf += chunk

    def frame(self, deadline):
        self._need(2, deadline)
        n, off = self.buf[1] & 0x7F, 2
        if n == 126:
            self._need(4, deadline)
            n, off = int.from_bytes(self.buf[2:4], "big"), 4
        elif n == 127:
            self._need(10, deadline)
            n, off = int.from_bytes(self.buf[2:10], "big"), 10
        self._need(off + n, deadline)
        op, payload = self.buf[0] & 0x0F, self.buf[off:off + n]
        self.buf = self.buf[off + n:]
        return op, payload

    def wait(self, kind, seconds=5):
        """The payload of the next message of type kind; ("close", code) at
        a close frame; None on timeout or EOF."""
        deadline = time.monotonic() + seconds
        try:
            while True:
                op, payload = self.frame(deadline)
                if op == 8:
                    return ("close", int.from_bytes(payload[:2], "big") if len(payload) >= 2 else None)
                if op == 1:
                    msg = json.loads(payload.decode("utf-8"))
                    if msg.get("type") == kind:
                        return msg.get("payload")
        except (socket.timeout, EOFError, OSError, ValueError):
            return None

    def close(self):
        try:
            self.s.close()
        except OSError:
            pass


def t_real_chatd(e, chk):
    chatd_bin = os.path.join(stack.BUILDDIR, "src", "chatd", "chatd")
    built = [p for p in (chatd_bin, stack.CHAT_API) if os.access(p, os.X_OK)]
    if not chk.ok(len(built) == 2, "chatd and chat-api are built",
                  "missing: %s" % ", ".join(p for p in (chatd_bin, stack.CHAT_API) if p not in built)):
        return
    env = dict(e.env)
    wsport, apiport = stack.free_port(), stack.free_port()
    env.update({"CHATD_LISTEN": "127.0.0.1:%d" % wsport, "TOKEN_SECRET": "ctl-test-token-secret",
                "DATABASE_URL": "sqlite:" + os.path.join(e.tmp, "real.db")})
    procs, clients = [], []

    def run(*args):
        return e.run(*args, extra={"DATABASE_URL": env["DATABASE_URL"]})

    def join(rid, uid, nick=None):
        body = {"user_id": uid}
        if nick is not None:
            body["nickname"] = nick
        st, tok = scgi(apiport, "POST", "/management/rooms/%s/tokens" % rid, body)
        chk.eq(st, 201, "token for %s issued" % uid[:20])
        w = Ws(wsport, tok["ws_url"])
        clients.append(w)
        return w

    try:
        procs.append(stack.Proc("chatd", [chatd_bin], env, e.tmp))
        procs.append(stack.Proc("chat-api", [stack.CHAT_API, "--scgi", "--socket", "127.0.0.1:%d" % apiport],
                                env, e.tmp))
        deadline = time.monotonic() + 10
        r = run("status")
        while r.rc != 0 and time.monotonic() < deadline:
            time.sleep(0.1)
            r = run("status")
        if not chk.ok(r.rc == 0 and "version" in r.out, "status against the real chatd", repr(r)):
            return
        while not stack.port_in_use(apiport) and time.monotonic() < deadline:
            time.sleep(0.05)
        st, room = scgi(apiport, "POST", "/management/rooms", {"room_name": "real"})
        rid = room["room_id"]

        # tokens from chat-api are what chatd accepts, up to the longest one
        a = join(rid, "u1", "Alice")
        chk.eq(a.status, 101, "chatd accepts a chat-api token")
        joined = a.wait("UserJoined")
        chk.ok(isinstance(joined, dict) and joined.get("nickname") == "Alice", "the token's nickname", repr(joined))
        big = join(rid, '"' * 128, "\\" * 128)
        chk.eq(big.status, 101, "chatd accepts the longest token chat-api issues")
        big.close()
        w = Ws(wsport, "/ws/rooms/%s?user_id=u1&token=%s" % (rid, "x.y.z"))
        chk.ok(w.status in (401, 101) and (w.status == 401 or w.wait("x") == ("close", 4401)),
               "chatd refuses a forged token", "status %s" % w.status)
        w.close()

        r = run("--json", "rooms")
        rooms = (r.json() or {}).get("rooms", [])
        chk.ok(r.rc == 0 and any(x.get("room_id") == rid for x in rooms), "rooms lists the live room", repr(r))
        r = run("--json", "stats", rid)
        chk.ok(r.rc == 0 and (r.json() or {}).get("current_users") == 1, "stats counts the user", repr(r))

        r = run("publish", rid, "lucky_money", '{"amount":100,"desc":"新年快乐"}')
        chk.ok(r.rc == 0, "publish", repr(r))
        ev = a.wait("CustomEvent")
        chk.ok(isinstance(ev, dict) and ev.get("event_type") == "lucky_money"
               and ev.get("payload") == {"amount": 100, "desc": "新年快乐"}, "the member gets the CustomEvent", repr(ev))

        r = run("--json", "kick", rid, "u1", "--reason", "bye")
        chk.ok(r.rc == 0 and (r.json() or {}).get("disconnected") == 1, "kick closes the connection", repr(r))
        chk.ok(a.wait("none") is not None, "the kicked client sees its connection end")

        b = join(rid, "u1")
        chk.eq(b.status, 101, "a kicked user may come back")
        b.wait("UserJoined")
        r = run("--json", "ban", rid, "u1", "--duration", "1h", "--reason", "spam")
        chk.ok(r.rc == 0 and r.json() == {"disconnected": 1, "recorded": True, "live": True},
               "ban records and disconnects", repr(r))
        chk.ok(b.wait("none") is not None, "the banned client sees its connection end")
        c = join(rid, "u1")
        chk.ok(c.status == 403 or c.wait("none") == ("close", 4403), "a banned user is refused",
               "status %s" % c.status)
        r = run("unban", rid, "u1")
        chk.eq(r.rc, 0, "unban")
        d = join(rid, "u1")
        chk.eq(d.status, 101, "an unbanned user may join")
        d.wait("UserJoined")

        r = run("--json", "close", rid, "--reason", "over")
        chk.ok(r.rc == 0 and (r.json() or {}).get("disconnected") == 1, "close disconnects the room", repr(r))
        chk.ok(d.wait("none") is not None, "the member sees the room close")
        r = run("stats", rid)
        chk.ok(r.rc in (0, 1), "stats of a closed room answers", repr(r))
        r = run("publish", rid, "late")
        chk.ok(r.rc == 1 and r.err.startswith("chatctl: chatd refused publish: "), "publish to a closed room exits 1",
               repr(r))

        complaints = stack.stop_process_tree(procs[0])
        chk.ok(not complaints, "chatd stopped cleanly", "; ".join(complaints))
        r = run("status")
        chk.ok(r.rc == 3 and "not running" in r.err, "status after chatd stopped exits 3", repr(r))
    finally:
        for w in clients:
            w.close()
        for p in procs:
            if p.running():
                stack.stop_process_tree(p)


def log(msg):
    stack.log(msg)


def main():
    stack.setup_process()
    if not os.access(CHATCTL, os.X_OK):
        print("chatctl not found at %s: build first" % CHATCTL)
        return 1
    chk = stack.Checker("chatctl: usage, exit statuses, control requests, database")
    tmp = tempfile.mkdtemp(prefix="chatd-ctl-")
    code = None
    try:
        e = Env(tmp)
        chk.run("usage", t_usage, e, chk)
        chk.run("chatd not running", t_unreachable, e, chk)
        chk.run("stand-in chatd", t_fake_chatd, e, chk)
        chk.run("database", t_database, e, chk)
        chk.run("real chatd", t_real_chatd, e, chk)
    except (KeyboardInterrupt, SystemExit, stack.Watchdog) as exc:
        chk.ok(False, "interrupted", repr(exc))
        code = 1
    finally:
        if os.environ.get("KEEP_TMP") != "1":
            subprocess.run(["rm", "-rf", tmp], check=False)
        stack.reap_orphans()
    result = chk.finish()
    return code or result


if __name__ == "__main__":
    sys.exit(main())
