#!/usr/bin/python3
"""Integration test: chatctl, the operator command line.

Runs the real chatctl against (a) no chatd at all, (b) a stand-in control
server on a private Unix socket that records each request and answers as
docs/control-protocol.md says chatd does, and (c) a real database (SQLite,
or PostgreSQL with CHAT_TEST_DB=pg: testdb.py)
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
import testdb  # noqa: E402

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
        self.database = testdb.fresh(tmp, "chat.db")
        self.db = self.database.path  # the SQLite file (SQLite runs)
        self.leaks = []  # runs whose output held the PostgreSQL password
        self.env = stack.clean_env({
            "CHAT_ENV_FILE": os.path.join(tmp, "empty.env"),
            "CONTROL_SOCKET": self.sock,
            "DATABASE_URL": self.database.url,
            "ADMIN_API_KEY": stack.KEY,
        })
        with open(self.env["CHAT_ENV_FILE"], "w") as f:
            f.write("# no settings: the environment has them\n")

    def run(self, *args, extra=None):
        env = dict(self.env)
        env.update(extra or {})
        p = subprocess.run([CHATCTL] + list(args), env=env, cwd=self.tmp, stdin=subprocess.DEVNULL,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
        r = Run(p)
        if testdb.is_pg() and testdb.pg_password() in r.out + r.err:
            self.leaks.append("chatctl %s: %r" % (" ".join(args)[:60], r))
        return r


def t_usage(e, chk):
    r = e.run("--help")
    chk.ok(r.rc == 0 and "Exit status" in r.out and "publish" in r.out, "--help exits 0", repr(r))
    r = e.run("help")
    chk.ok(r.rc == 0 and "usage: chatctl" in r.out, "help exits 0", repr(r))
    r = e.run("--version")
    chk.ok(r.rc == 0 and r.out.startswith("chatctl "), "--version", repr(r))
    for cmd in ("status", "rooms", "stats", "ban", "unban", "kick", "close", "publish", "nodes"):
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
        (["nodes", "extra"], "nodes takes no arguments"),
        (["nodes", "--no-db"], "nodes takes no --no-db"),
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
        r = e.run("status")
        chk.eq(r.out, "chatd is running (control socket %s)\nversion      0.1.0\nuptime_s     3605\n"
               "connections  12\nrooms        3\n" % e.sock, "a single chatd's status: its fields, nothing more")
        t_cluster_status(e, chk, fake)

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


def cluster_health(bus_up=True, synced=True, node2="node-2"):
    """A cluster node's health result, shaped as chatd's control.c and cluster.c write it."""
    return {
        "status": "ok", "version": "0.1.0", "uptime_s": 60, "connections": 3, "rooms": 2,
        "database": {"writable": True, "failing_since": None, "last_error": None,
                     "retry_sessions": 0, "dropped_sessions": 0},
        "cluster": {
            "name": "chatd", "node_id": "node-1",
            "bus": {"connected": bus_up, "url": "nats://127.0.0.1:4222" if bus_up else None,
                    "in_msgs": 10, "in_bytes": 1000, "out_msgs": 20, "out_bytes": 2000,
                    "reconnects": 2, "dropped_in": 0, "dropped_out": 7},
            "nodes": [{"node_id": "node-1", "self": True, "connections": 3, "last_heard_ms": 0, "synced": True},
                      {"node_id": node2, "self": False, "connections": 5, "last_heard_ms": 180,
                       "synced": synced},
                      {"node_id": "node-3", "self": False, "connections": 0, "last_heard_ms": 4200,
                       "synced": True}],
            "connections": 8, "nodes_lost": 1, "gap_reads": 4, "gap_filled": 3, "gap_skipped": 0,
        },
    }


def rows_after(out, head):
    """The whitespace-split rows of the table whose header line starts with head."""
    lines = out.split("\n")
    for i, line in enumerate(lines):
        if line.startswith(head):
            return [x.split() for x in lines[i + 1:] if x.strip()]
    return None


def t_cluster_status(e, chk, fake):
    h = cluster_health()
    fake.reply = lambda req: ("ok", h)
    r = e.run("status")
    chk.eq(r.rc, 0, "status of a cluster node exits 0")
    out = r.out
    chk.ok("connections  3\n" in out and "rooms        2\n" in out, "the node's own fields come first", repr(r))
    chk.ok('{"name"' not in out and '"nodes"' not in out and "cluster" not in out.split("\n\n")[0],
           "the cluster object is not printed as a line of JSON among the fields", repr(r))
    chk.ok("\ncluster       chatd, this node node-1\n" in out, "the block names the cluster and this node", repr(r))
    bus = [x for x in out.split("\n") if x.startswith("bus ")]
    chk.eq(bus, ["bus           connected to nats://127.0.0.1:4222; reconnects 2, dropped 0 in, 7 out"],
           "the bus line: connected, url, reconnects, dropped")
    chk.ok("\nconnections   8 on 3 nodes (cluster-wide)\n" in out, "the cluster-wide connection total", repr(r))
    chk.ok("\nnodes lost    1\n" in out and "4 read from the database, 3 filled, 0 skipped" in out,
           "nodes lost and gap reads", repr(r))
    chk.eq(rows_after(out, "NODE    SELF  CONNECTIONS  LAST_HEARD"),
           [["node-1", "*", "3", "-", "yes"], ["node-2", "5", "180", "ms", "ago", "yes"],
            ["node-3", "0", "4.2", "s", "ago", "yes"]],
           "the nodes table: node, self, connections, last heard, synced")
    r = e.run("status", "--json")
    chk.eq(r.json(), h, "status --json of a cluster node is chatd's result, cluster included")

    h2 = cluster_health(bus_up=False, synced=False, node2="node-2\x1b[31m")
    fake.reply = lambda req: ("ok", h2)
    r = e.run("status")
    chk.ok(r.rc == 0 and "\nbus           DISCONNECTED: this node serves its own members only; reconnects 2" in r.out,
           "a bus that is down says so", repr(r))
    rows = rows_after(r.out, "NODE ")
    chk.ok(rows is not None and len(rows) == 3 and rows[1][0] == "?" and rows[1][-1] == "NO",
           "an unsynced node says NO; a node id with control characters prints as ?", repr(r))
    chk.ok("\x1b" not in r.out, "no control characters from chatd reach the terminal", repr(r))


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

        if testdb.is_pg():
            t_database_pg_unusable(e, chk, rid)
            return
        # a database that cannot be opened
        r = e.run("ban", rid, "u9", extra={"DATABASE_URL": "sqlite:/nonexistent-dir/x/chat.db"})
        chk.ok(r.rc == 1 and "database" in r.err, "unusable database exits 1", repr(r))
        chk.ok(r.err.startswith("chatctl: DATABASE_URL: no database at /nonexistent-dir/x/chat.db:")
               and r.err.count("/nonexistent-dir/x/chat.db") == 1 and r.err.count("\n") == 1,
               "it names DATABASE_URL and the path, once, in one line", repr(r))
        # chatctl never creates a database: a missing file stays missing
        for cmd in (["ban", rid, "u9"], ["unban", rid, "u9"], ["close", rid], ["dead-letters", "list"]):
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


def t_database_pg_unusable(e, chk, rid):
    """PostgreSQL: a database without chatd's tables, and a server that
    does not answer; the messages name it without its password."""
    empty = testdb.fresh(e.tmp, "empty")
    for cmd in (["ban", rid, "u9"], ["unban", rid, "u9"], ["close", rid], ["dead-letters", "list"]):
        r = e.run(*cmd, extra={"DATABASE_URL": empty.url})
        chk.ok(r.rc == 1 and ("no database at %s:" % empty.display) in r.err and "existing database" in r.err,
               "%s on a database without the tables names it, password hidden" % cmd[0], repr(r))
    chk.eq(empty.tables(), set(), "chatctl created no tables")
    down = empty.url.replace(":%d/" % empty.pg.port, ":%d/" % stack.free_port())
    r = e.run("ban", rid, "u9", extra={"DATABASE_URL": down})
    chk.ok(r.rc == 1 and r.err.startswith("chatctl: DATABASE_URL: ") and r.err.count("\n") == 1,
           "a server that does not answer: DATABASE_URL and the cause in one line", repr(r))


# ---------------------------------------------------------------- the cluster: nodes table and REST health


def node_rows(db, now_ms):
    """Writes four nodes as chatd's heartbeats, stops and reaps leave them."""
    db.executemany(
        "INSERT INTO nodes (id, incarnation, started_at, seen_at, stopped_at, connections, reaped_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?)",
        [("node-a", "inc-a", now_ms - 7200000, now_ms - 1000, None, 12, None),
         ("node-b", "inc-b", now_ms - 7200000, now_ms - 600000, now_ms - 600000, 4, None),
         ("node-c", "inc-c", now_ms - 3600000, now_ms - 1800000, None, 9, now_ms - 1790000),
         ("node-d", "inc-d", now_ms - 3600000, now_ms - 1200000, None, 2, None)])


def hn_age(nodes, nid):
    return next((x.get("seen_age_s", -1) for x in nodes or [] if x.get("node_id") == nid), -1)


def t_cluster(e, chk):
    if not os.access(stack.CHAT_API, os.X_OK):
        chk.ok(False, "chat-api is built", stack.CHAT_API)
        return
    cdb = testdb.fresh(e.tmp, "cluster.db")
    # Long enough that node-a (seen a second ago) is alive however slow the machine.
    extra = {"DATABASE_URL": cdb.url, "CLUSTER_NODE_TIMEOUT_SECS": "600"}
    env = dict(e.env)
    env.update(extra)

    def run(*args):
        return e.run(*args, extra=extra)

    r = run("nodes")
    chk.ok(r.rc == 1 and "DATABASE_URL" in r.err and cdb.display in r.err and "--no-db" not in r.err,
           "nodes without a database exits 1 and names it", repr(r))
    if cdb.kind == "sqlite":
        chk.ok(not os.path.exists(cdb.path), "nodes created no database file")
    else:
        chk.eq(cdb.tables(), set(), "nodes created no tables")

    port = stack.free_port()
    api = stack.Proc("chat-api", [stack.CHAT_API, "--scgi", "--socket", "127.0.0.1:%d" % port], env, e.tmp)
    fake = None
    try:
        deadline = time.monotonic() + 10
        while not stack.port_in_use(port) and time.monotonic() < deadline and api.running():
            time.sleep(0.05)
        if not chk.ok(stack.port_in_use(port), "chat-api listens", api.tail()):
            return
        # chatd down: the database alone answers
        r = run("nodes")
        chk.ok(r.rc == 0 and r.out == "no nodes in the database (a single chatd records none)\n",
               "nodes with an empty table", repr(r))
        r = run("--json", "nodes")
        chk.eq((r.rc, r.json()), (0, []), "nodes --json with an empty table is []")
        st, body = scgi(port, "GET", "/management/health")
        chk.ok(st == 200 and "nodes" not in body.get("database", {}) and body.get("database", {}).get("ok"),
               "health: no database.nodes while the table is empty", repr(body))

        now_ms = int(time.time() * 1000)
        node_rows(cdb, now_ms)
        r = run("nodes")
        rows = rows_after(r.out, "NODE ")
        chk.ok(r.rc == 0 and r.out.split("\n")[0].split() == ["NODE", "STARTED", "LAST_SEEN", "STATE", "CONNECTIONS"],
               "nodes prints a table with chatd down", repr(r))
        got = {x[0]: x for x in rows or []}
        chk.eq(sorted(got), ["node-a", "node-b", "node-c", "node-d"], "every node row, by id")
        want = {"node-a": (["alive"], "12"), "node-b": (["stopped"], "-"), "node-c": (["lost", "(reaped)"], "-"),
                "node-d": (["silent"], "2")}
        for nid, (state, conns) in want.items():
            row = got.get(nid, [])
            chk.ok(row[-1 - len(state):-1] == state and row[-1] == conns,
                   "%s: state %s, connections %s" % (nid, " ".join(state), conns), repr(row))
        started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime((now_ms - 7200000) // 1000))
        chk.ok(got.get("node-a", [None, None])[1] == started, "STARTED is the start time in UTC",
               repr(got.get("node-a")))
        b = got.get("node-b", [])
        chk.ok(len(b) > 3 and b[2].startswith("10m") and b[2].endswith("s") and b[3] == "ago",
               "LAST_SEEN is the heartbeat's age (10 minutes)", repr(b))
        r = e.run("nodes", extra={"DATABASE_URL": cdb.url, "CLUSTER_NODE_TIMEOUT_SECS": "3600"})
        got = {x[0]: x for x in rows_after(r.out, "NODE ") or []}
        chk.ok(got.get("node-d", [""])[-2:] == ["alive", "2"],
               "a node silent for 20 minutes is alive under CLUSTER_NODE_TIMEOUT_SECS=3600", repr(r))
        r = run("--json", "nodes")
        arr = r.json()
        chk.ok(r.rc == 0 and isinstance(arr, list) and [x.get("node_id") for x in arr] ==
               ["node-a", "node-b", "node-c", "node-d"], "nodes --json is an array of objects", repr(r))
        a = {x["node_id"]: x for x in arr or []}
        chk.eq([a.get(n, {}).get("state") for n in ("node-a", "node-b", "node-c", "node-d")],
               ["alive", "stopped", "lost", "silent"], "nodes --json: states")
        chk.eq({k: a.get("node-c", {}).get(k) for k in ("incarnation", "connections", "seen_at", "seen_at_ms",
                                                        "reaped_at_ms", "stopped_at", "stopped_at_ms")},
               {"incarnation": "inc-c", "connections": 9, "seen_at": (now_ms - 1800000) // 1000,
                "seen_at_ms": now_ms - 1800000, "reaped_at_ms": now_ms - 1790000, "stopped_at": None,
                "stopped_at_ms": None}, "nodes --json: times in Unix seconds and ms, null when not set")

        # chat-api's health: the same rows under database.nodes
        st, body = scgi(port, "GET", "/management/health")
        nodes = body.get("database", {}).get("nodes")
        chk.ok(st == 200 and isinstance(nodes, list), "health: database.nodes once the table has rows",
               repr(body))
        strip = lambda xs: [{k: v for k, v in x.items() if k != "seen_age_s"} for x in xs or []]  # noqa: E731
        chk.eq(strip(nodes), strip(arr), "health's database.nodes has the members nodes --json prints")
        chk.ok(all(isinstance(x.get("seen_age_s"), int) for x in (nodes or []) + (arr or []))
               and 1195 <= hn_age(nodes, "node-d") <= 1200 + 600, "seen_age_s: seconds since the heartbeat",
               repr(nodes))
        hn = {x.get("node_id"): x for x in nodes or []}
        chk.eq([hn.get(n, {}).get("state") for n in ("node-a", "node-b", "node-c", "node-d")],
               ["alive", "stopped", "lost", "silent"], "health: node states")
        chk.eq({k: hn.get("node-b", {}).get(k) for k in ("started_at", "started_at_ms", "stopped_at",
                                                        "stopped_at_ms", "reaped_at", "connections")},
               {"started_at": (now_ms - 7200000) // 1000, "started_at_ms": now_ms - 7200000,
                "stopped_at": (now_ms - 600000) // 1000, "stopped_at_ms": now_ms - 600000, "reaped_at": None,
                "connections": 4}, "health: a node's times in Unix seconds with _ms twins")
        chk.ok(body.get("chatd", {}).get("reachable") is False, "health: chatd not running", repr(body))

        # a healthy cluster node: passed through, nothing to complain of
        fake = FakeControl(e.sock)
        h = cluster_health()
        fake.reply = lambda req: ("ok", h)
        st, body = scgi(port, "GET", "/management/health")
        chk.ok(st == 200 and body.get("status") == "ok" and body.get("causes") == [],
               "health of a healthy cluster node: ok, no causes", repr(body))
        chk.eq(body.get("chatd", {}).get("health"), h, "chatd.health carries the cluster object unchanged")

        # its bus down and a node not synced: degraded, with both causes
        h = cluster_health(bus_up=False, synced=False)
        fake.reply = lambda req: ("ok", h)
        st, body = scgi(port, "GET", "/management/health")
        causes = body.get("causes") or []
        chk.ok(st == 200 and body.get("status") == "degraded", "health: the bus down is degraded", repr(body))
        chk.ok(len(causes) == 2 and causes[0].startswith(
            "chatd's cluster bus is down: this node (node-1) serves its own members only; ")
            and "CLUSTER_NATS_URL" in causes[0], "the cause names the bus and this node", repr(causes))
        chk.ok(len(causes) == 2 and "node-2" in causes[1] and "not synced" in causes[1],
               "the cause names the node not synced", repr(causes))
        chk.eq(body.get("chatd", {}).get("health", {}).get("cluster"), h["cluster"],
               "chatd.health.cluster passed through")
        chk.eq(len(body.get("database", {}).get("nodes") or []), 4, "database.nodes still there")

        h = cluster_health(synced=False)
        fake.reply = lambda req: ("ok", h)
        st, body = scgi(port, "GET", "/management/health")
        chk.ok(body.get("status") == "degraded" and len(body.get("causes") or []) == 1
               and "node-2" in body["causes"][0], "a node not synced alone is degraded", repr(body))
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
                "DATABASE_URL": testdb.fresh(e.tmp, "real.db").url})
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
        chk.run("cluster: nodes and health", t_cluster, e, chk)
        chk.run("real chatd", t_real_chatd, e, chk)
        if testdb.is_pg():
            chk.section("password")
            chk.eq(e.leaks, [], "no chatctl output holds the database password")
            testdb.check_no_password(chk, tmp)
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
