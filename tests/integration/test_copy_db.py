#!/usr/bin/python3
"""Integration test: chatctl copy-db, moving from SQLite to PostgreSQL.

Builds a SQLite database with the real programs: chat-api (SCGI on a
private port) makes rooms, admins and a ban, the real chatd stores the
messages, custom events and sessions of WebSocket clients, chatctl closes a
room. Then, with both stopped, runs the real `chatctl copy-db` into a
throwaway PostgreSQL server (pgserver.py): the report, progress, exit
statuses, no password in any output, a target that is not empty refused, a
node still alive refused, --verify-only with and without --json. Last,
chat-api and chatd start on the PostgreSQL URL and serve the same rooms and
history, and new messages and rooms continue the ids and sequences; a
verification then reports the difference.

Prints "N passed, M failed"; exit 0 on success, 1 on failure.
"""
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pgserver  # noqa: E402
import stack  # noqa: E402
from test_chatctl import scgi  # noqa: E402
from wsclient import WSClient  # noqa: E402

CHATCTL = os.environ.get("CHATCTL_BIN") or os.path.join(stack.BUILDDIR, "src", "ctl", "chatctl")
CHATD = os.environ.get("CHATD_BIN") or os.path.join(stack.BUILDDIR, "src", "chatd", "chatd")


class Run:
    def __init__(self, p):
        self.rc = p.returncode
        self.out = p.stdout.decode("utf-8", "replace")
        self.err = p.stderr.decode("utf-8", "replace")

    def __repr__(self):
        return "rc=%s stdout=%r stderr=%r" % (self.rc, self.out[-1500:], self.err[-800:])

    def json(self):
        try:
            return json.loads(self.out)
        except ValueError:
            return None


class Env:
    """One folder: the SQLite file, the settings, the programs' logs."""

    def __init__(self, tmp):
        self.tmp = tmp
        self.db = os.path.join(tmp, "chat.db")
        self.sqlite_url = "sqlite:" + self.db
        self.ws_port = stack.free_port()
        self.api_port = stack.free_port()
        self.env = stack.clean_env({
            "CHAT_ENV_FILE": os.path.join(tmp, "empty.env"),
            "CONTROL_SOCKET": os.path.join(tmp, "control.sock"),
            "CHATD_LISTEN": "127.0.0.1:%d" % self.ws_port,
            "DATABASE_URL": self.sqlite_url,
            "ADMIN_API_KEY": stack.KEY,
            "USER_MESSAGE_INTERVAL_SECS": "0",
            "LOG_LEVEL": "info",
        })
        with open(self.env["CHAT_ENV_FILE"], "w") as f:
            f.write("# no settings: the environment has them\n")
        self.procs = []

    def ctl(self, *args, database_url=None):
        env = dict(self.env)
        if database_url is not None:
            env["DATABASE_URL"] = database_url
        p = subprocess.run([CHATCTL] + list(args), env=env, cwd=self.tmp, stdin=subprocess.DEVNULL,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=120)
        return Run(p)

    def start(self, database_url, name):
        """chatd and chat-api on database_url; waits until both answer."""
        env = dict(self.env)
        env["DATABASE_URL"] = database_url
        chatd = stack.Proc("chatd-" + name, [CHATD], env, self.tmp)
        api = stack.Proc("chat-api-" + name,
                         [stack.CHAT_API, "--scgi", "--socket", "127.0.0.1:%d" % self.api_port], env, self.tmp)
        self.procs += [chatd, api]
        stack.wait_until(lambda: stack.port_in_use(self.ws_port) and stack.port_in_use(self.api_port)
                         or not (chatd.running() and api.running()),
                         "chatd and chat-api listening (%s)" % name, timeout=stack.WAIT * 3)
        if not (chatd.running() and api.running()):
            raise stack.StackError("a program exited at start:\n%s\n%s" % (chatd.tail(), api.tail()))

    def stop(self):
        complaints = []
        for p in reversed(self.procs):
            complaints += stack.stop_process_tree(p)
        self.procs = []
        return complaints

    def api(self, method, uri, body=None):
        return scgi(self.api_port, method, uri, body)

    def ws(self, room, user, nick):
        w = WSClient.connect("127.0.0.1", self.ws_port, "/ws/rooms/%s?user_id=%s&nickname=%s" % (room, user, nick))
        m = w.recv_json(5)
        if m.get("type") != "UserJoined":
            raise AssertionError("first frame is not UserJoined: %r" % m)
        return w


def history(e, rid, kind="chat-history", limit=1000):
    st, body = e.api("GET", "/management/sync/%s/%s?limit=%d" % (kind, rid, limit))
    if st != 200:
        raise AssertionError("%s of %s: %s %r" % (kind, rid, st, body))
    return body


def snapshot(e, rooms):
    """What chat-api shows of the database: the rooms (closed too) and each room's pages."""
    st, listed = e.api("GET", "/management/rooms?include_closed=true")
    view = {"rooms": [(r["room_id"], r.get("room_name"), r.get("admin_user_ids"), r.get("closed"))
                      for r in listed["rooms"]]}
    for rid in rooms:
        st, room = e.api("GET", "/management/rooms/%s" % rid)
        room.pop("live", None)
        view[rid] = {
            "room": room,
            "messages": history(e, rid)["messages"],
            "sessions": history(e, rid, "session-history")["sessions"],
            "bans": e.api("GET", "/management/rooms/%s/bans" % rid)[1]["bans"],
        }
        for b in view[rid]["bans"]:
            b.pop("live", None)
    return view


def no_secret(chk, run, what):
    text = run.out + run.err
    chk.ok(pgserver.PASSWORD not in text, "%s: the password is never printed" % what, repr(run))


def t_all(e, chk, pg):
    # ---- a SQLite database made by the real programs
    e.start(e.sqlite_url, "sqlite")
    st, a = e.api("POST", "/management/rooms", {"room_name": "alpha", "admin_user_ids": ["zed", "amy"]})
    chk.eq(st, 201, "room alpha created")
    st, b = e.api("POST", "/management/rooms", {"room_name": "beta"})
    st, c = e.api("POST", "/management/rooms", {"room_name": "gamma"})
    ra, rb, rc = a["room_id"], b["room_id"], c["room_id"]
    st, _ = e.api("POST", "/management/rooms/%s/bans" % ra, {"user_id": "mallory", "reason": "spam"})
    chk.eq(st, 201, "ban recorded")

    alice = e.ws(ra, "alice", "Alice")
    bob = e.ws(rb, "bob", "Bob")
    for i in range(12):
        alice.send_json({"type": "Message", "payload": {"content": "alpha %d" % i}})
    for i in range(4):
        bob.send_json({"type": "Message", "payload": {"content": "beta %d ✓" % i}})
    st, _ = e.api("POST", "/management/rooms/%s/events" % ra,
                  {"event_type": "lucky_money", "payload": {"amount": 100, "desc": "新年快乐"}})
    chk.eq(st, 200, "custom event stored by chatd")
    stack.wait_until(lambda: len(history(e, ra)["messages"]), "alpha's 13 messages stored", lambda n: n == 13)
    stack.wait_until(lambda: len(history(e, rb)["messages"]), "beta's 4 messages stored", lambda n: n == 4)
    alice.close()
    bob.close()
    stack.wait_until(lambda: history(e, ra, "session-history")["sessions"][0]["left_at"],
                     "alice's session closed", lambda v: v is not None)
    r = e.ctl("close", rc, "--reason", "done")
    chk.eq(r.rc, 0, "chatctl close gamma")
    before = snapshot(e, [ra, rb, rc])
    complaints = e.stop()
    chk.ok(not complaints, "chatd and chat-api stopped cleanly", "; ".join(complaints))

    # ---- refusals
    url = pg.create_database("chat")
    shown = url.replace(pgserver.PASSWORD, "***")
    r = e.ctl("copy-db", "--from", e.sqlite_url)
    chk.ok(r.rc == 2 and "--from and --to" in r.err, "copy-db without --to is a usage error", repr(r))
    r = e.ctl("copy-db", "--from", url, "--to", e.sqlite_url)
    chk.ok(r.rc == 2 and "SQLite" in r.err, "copy-db the wrong way round is a usage error", repr(r))
    no_secret(chk, r, "wrong way round")
    r = e.ctl("copy-db", "--from", "sqlite:" + os.path.join(e.tmp, "missing.db"), "--to", url)
    chk.ok(r.rc == 1 and "no database at" in r.err, "a missing source is refused", repr(r))
    chk.ok(not os.path.exists(os.path.join(e.tmp, "missing.db")), "and not created")
    bad = url.replace(pgserver.PASSWORD, pgserver.PASSWORD + "x").replace("/chat", "/nosuchdb")
    r = e.ctl("copy-db", "--from", e.sqlite_url, "--to", bad)
    chk.ok(r.rc == 1, "a missing target database fails", repr(r))
    chk.ok(pgserver.PASSWORD not in r.out + r.err, "its message hides the password", repr(r))

    # a chatd node heard a moment ago: refused, nothing copied
    alive = os.path.join(e.tmp, "alive.db")
    shutil.copy(e.db, alive)
    with sqlite3.connect(alive) as con:
        con.execute("INSERT INTO nodes (id, incarnation, started_at, seen_at, connections)"
                    " VALUES ('node-1', 'i', ?, ?, 0)", (int(time.time() * 1000),) * 2)
    r = e.ctl("copy-db", "--from", "sqlite:" + alive, "--to", url)
    chk.ok(r.rc == 1 and "node-1 is alive" in r.err and "stop chatd" in r.err,
           "a source with a live chatd node is refused", repr(r))
    chk.eq(pg.query("chat", "SELECT count(*) FROM rooms"), [["0"]], "nothing was copied")

    # ---- the copy
    r = e.ctl("copy-db", "--from", e.sqlite_url, "--to", url)
    chk.ok(r.rc == 0 and "OK: the copy matches the source and is committed" in r.out, "copy-db copies", repr(r))
    chk.ok(shown in r.out and e.db in r.out, "the report names both databases (password as ***)", repr(r))
    no_secret(chk, r, "copy")
    for table in ("rooms", "room_admins", "bans", "messages", "sessions", "outbox", "sync_requests", "cursors",
                  "dead_letters", "nodes", "rate_marks"):
        chk.ok(any(line.split()[:1] == [table] for line in r.out.splitlines()),
               "the report lists %s" % table, r.out)
        chk.ok("copy-db: %s" % table in r.err, "progress names %s" % table, r.err)
    rows = [line.split() for line in r.out.splitlines() if line.startswith("messages ")]
    chk.ok(rows and rows[0][1:3] == ["17", "17"], "17 messages on both sides", repr(rows))
    chk.eq(pg.query("chat", "SELECT count(*), max(id) FROM messages"), [["17", "17"]], "messages in PostgreSQL")

    r = e.ctl("copy-db", "--from", e.sqlite_url, "--to", url)
    chk.ok(r.rc == 1 and "not empty" in r.err and "rooms" in r.err, "a second copy is refused", repr(r))
    no_secret(chk, r, "refused copy")
    chk.eq(pg.query("chat", "SELECT count(*) FROM messages"), [["17"]], "the target is unchanged")

    r = e.ctl("copy-db", "--verify-only", "--json", "--from", e.sqlite_url, "--to", url)
    j = r.json() or {}
    chk.ok(r.rc == 0 and j.get("ok") is True and j.get("mode") == "verify" and j.get("rooms_compared") == 3,
           "--verify-only --json: they match", repr(r))
    chk.ok(j.get("to") == shown and len(j.get("tables", [])) == 11, "the JSON report names the target, 11 tables",
           repr(j))
    no_secret(chk, r, "verify --json")

    # ---- the programs on PostgreSQL
    e.start(url, "pg")
    after = snapshot(e, [ra, rb, rc])
    chk.eq(after, before, "chat-api shows the same rooms, history, sessions and bans from PostgreSQL")
    alice = e.ws(ra, "alice", "Alice")
    alice.send_json({"type": "Message", "payload": {"content": "after the move"}})
    msgs = stack.wait_until(lambda: history(e, ra)["messages"], "the new message stored",
                            lambda m: len(m) == 14)
    chk.ok(msgs[-1]["seq"] == 14 and msgs[-1]["id"] == 18 and msgs[-1]["content"] == "after the move",
           "its seq and id continue where SQLite left off", repr(msgs[-1]))
    sessions = history(e, ra, "session-history")["sessions"]
    chk.ok(sessions[-1]["seq"] == 2 and sessions[-1]["session_id"] > sessions[0]["session_id"],
           "a new session continues the session seqs and ids", repr(sessions))
    st, d = e.api("POST", "/management/rooms", {"room_name": "delta"})
    chk.eq(st, 201, "a new room on PostgreSQL")
    st, listed = e.api("GET", "/management/rooms?include_closed=true")
    chk.eq([x["room_id"] for x in listed["rooms"]], [ra, rb, rc, d["room_id"]], "listed after the copied rooms")
    alice.close()
    complaints = e.stop()
    chk.ok(not complaints, "chatd and chat-api on PostgreSQL stopped cleanly", "; ".join(complaints))

    # ---- now they differ
    r = e.ctl("copy-db", "--verify-only", "--from", e.sqlite_url, "--to", url)
    chk.ok(r.rc == 1 and "DIFFERENT" in r.out and "MISMATCH table messages: rows: from 17, to 18" in r.out
           and ("MISMATCH room %s: messages: from 13, to 14" % ra) in r.out, "--verify-only reports the differences",
           repr(r))
    no_secret(chk, r, "verify")


def main():
    stack.setup_process()
    missing = [p for p in (CHATCTL, CHATD, stack.CHAT_API) if not os.access(p, os.X_OK)]
    chk = stack.Checker("chatctl copy-db: SQLite to PostgreSQL")
    if missing:
        chk.ok(False, "programs are built", ", ".join(missing))
        return chk.finish()
    tmp = tempfile.mkdtemp(prefix="chatd-copy-")
    e = Env(tmp)
    try:
        with pgserver.PgServer() as pg:
            chk.run("copy-db", t_all, e, chk, pg)
    except (KeyboardInterrupt, SystemExit, stack.Watchdog) as exc:
        chk.ok(False, "interrupted", repr(exc))
    finally:
        e.stop()
        if os.environ.get("KEEP_TMP") != "1":
            shutil.rmtree(tmp, ignore_errors=True)
        stack.reap_orphans()
    return chk.finish()


if __name__ == "__main__":
    sys.exit(main())
