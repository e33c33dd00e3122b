#!/usr/bin/python3
"""
PostgreSQL stopped and started again under traffic (pg_ctl stop -m fast,
then -m immediate, as a crash), with chatd, chat-api and nginx running on
a throwaway server (pgserver.py):

- no WebSocket is closed by the outage;
- a chat message sent while the database cannot commit is answered with
  Error overloaded (retry_after_ms) and is not broadcast;
- sessions opened and closed during the outage are recorded once the
  database is back (the writer keeps and retries them);
- chatd recovers without a restart: messages commit and broadcast again;
- every message any client received as a broadcast is in the database
  afterwards with the same seq, and the room's seqs have no gap;
- chat-api answers 503 with a JSON error while the database is down and
  recovers by itself;
- health (REST and control socket) shows the database failing during the
  outage and fine after.

The times from the server's start to the first committed message and to
a healthy report are logged (docs/storage.md quotes them).

Prints "N passed, M failed"; exits non-zero on any failure.
"""

import os
import signal
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.dont_write_bytecode = True

import pgserver  # noqa: E402
import stack  # noqa: E402
from chatd_stack import ChatdStack, require_chatd  # noqa: E402
from stack import Checker, StackError, Watchdog, log, reap_orphans  # noqa: E402
from wsclient import Closed, HandshakeError, Timeout  # noqa: E402

DB = "chat"
FRONT = "nginx"


class Member:
    """One WebSocket member whose frames a thread of its own reads: the
    Messages it got as broadcasts (seq, content), the Errors, its close."""

    def __init__(self, st, rid, user):
        self.user = user
        self.ws = st.ws(rid, user, direct=True)
        self.cond = threading.Condition()
        self.messages = []
        self.errors = []
        self.closed = None
        self.stop = False
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self):
        while not self.stop:
            try:
                m = self.ws.recv_json(0.2)
            except Timeout:
                continue
            except (Closed, OSError) as exc:
                with self.cond:
                    self.closed = repr(exc)
                    self.cond.notify_all()
                return
            with self.cond:
                if m.get("type") == "Message":
                    self.messages.append((m["payload"]["seq"], m["payload"]["content"]))
                elif m.get("type") == "Error":
                    self.errors.append(m["payload"])
                self.cond.notify_all()

    def send(self, text):
        self.ws.send_json({"type": "Message", "payload": {"content": text}})

    def wait(self, pred, timeout=stack.WAIT):
        """Until pred(self) holds (under the lock); its last value."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                v = pred(self)
                left = deadline - time.monotonic()
                if v or left <= 0 or self.closed:
                    return v
                self.cond.wait(left)

    def post(self, text, timeout=stack.WAIT):
        """Sends text; 'Message' once it comes back as a broadcast, the
        Error's payload if one comes instead, None on a timeout."""
        with self.cond:
            nerr = len(self.errors)
        self.send(text)

        def outcome(me):
            if any(c == text for _, c in me.messages):
                return "Message"
            return me.errors[nerr] if len(me.errors) > nerr else None

        return self.wait(outcome, timeout)

    def end(self):
        self.stop = True
        self.thread.join(5)
        try:
            self.ws.close()
        except OSError:
            pass


class Poster:
    """Traffic: a member posting every 50 ms, whatever the database does."""

    def __init__(self, member):
        self.m = member
        self.sent = 0
        self.halt = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.halt.is_set():
            try:
                self.m.send("traffic %d" % self.sent)
            except OSError:
                return
            self.sent += 1
            time.sleep(0.05)

    def end(self):
        self.halt.set()
        self.thread.join(5)


def pg_connections(pid, port):
    """How many TCP connections process pid has open to 127.0.0.1:port."""
    inodes = set()
    for fd in os.listdir("/proc/%d/fd" % pid):
        try:
            target = os.readlink("/proc/%d/fd/%s" % (pid, fd))
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    n = 0
    with open("/proc/%d/net/tcp" % pid) as f:
        for line in f.readlines()[1:]:
            cols = line.split()
            # rem_address is HEXIP:HEXPORT; st 01 is ESTABLISHED.
            if int(cols[2].split(":")[1], 16) == port and cols[3] == "01" and cols[9] in inodes:
                n += 1
    return n


def sessions(st, rid):
    r = st.client.get("/management/sync/session-history/%s?limit=500" % rid)
    return (r.json or {}).get("sessions", []) if r.status == 200 else None


def ctl_db(st):
    return st.ctl("health").get("result", {}).get("database", {})


def join_status(st, rid, user):
    """The HTTP status of a WebSocket join (101 when it opens)."""
    try:
        st.ws(rid, user, direct=True).close()
        return 101
    except HandshakeError as exc:
        return exc.status


def t_restart(st, chk, pg, mode, rid, members, poster, fresh_path):
    """One outage (pg_ctl stop -m mode) and its recovery. fresh_path: a
    chat-api route no request has used yet, asked first after the restart."""
    tag = "stop -m %s" % mode
    alice = members["alice"]
    # A room chatd has never heard of (written straight into the database, as
    # another node's chat-api would): a join has to load it.
    unloaded = "00000000-0000-4000-8000-%012d" % (1 if mode == "fast" else 2)
    pg.psql(DB, "INSERT INTO rooms (id, name, created_at) VALUES ('%s', 'unloaded', 1)" % unloaded)
    before = alice.post("before the %s" % tag)
    chk.eq(before, "Message", "%s: a message before the outage is stored and broadcast" % tag)

    pg.stop_server(mode)
    t_down = time.monotonic()

    # chatd's writer notices at its next commit (the traffic).
    db = stack.wait_until(lambda: ctl_db(st), "chatd's health: database failing", lambda d: d.get("writable") is False)
    chk.eq(db.get("writable"), False, "%s: chatd's health (control socket): database not writable" % tag)
    chk.ok(isinstance(db.get("failing_since"), int) and db.get("last_error"),
           "%s: and since when and why" % tag, repr(db))
    chk.ok(pgserver.PASSWORD not in repr(db), "%s: the error does not quote the password" % tag)

    text = "during the %s outage" % tag
    got = alice.post(text)
    chk.ok(isinstance(got, dict) and got.get("code") == "overloaded" and got.get("retry_after_ms", 0) > 0,
           "%s: a message sent while the database is down gets Error overloaded with retry_after_ms" % tag, repr(got))

    r = st.client.get("/management/health")
    j = r.json or {}
    chk.eq((r.status, j.get("status")), (503, "degraded"), "%s: REST health 503 degraded" % tag)
    causes = j.get("causes") or []
    chk.ok(any("chat-api cannot query the database" in c for c in causes)
           and any("chatd cannot write to the database" in c for c in causes),
           "%s: REST health gives both causes" % tag, repr(causes))
    chk.ok(pgserver.PASSWORD not in r.snippet(100000), "%s: REST health does not quote the password" % tag)

    for method, path, body in (("GET", "/management/rooms/%s" % rid, None),
                               ("POST", "/management/rooms", {"room_name": "during"})):
        r = st.client.req(method, path, body)
        err = (r.json or {}).get("error") if isinstance(r.json, dict) else None
        chk.ok(r.status == 503 and isinstance(err, dict) and err.get("code") == "database_unavailable"
               and r.header("Retry-After"),
               "%s: chat-api %s %s: 503 database_unavailable with Retry-After" % (tag, method, path.split("/")[2]),
               "%s %s %s" % (r.status, r.header("Retry-After"), r.snippet()))

    chk.eq(join_status(st, unloaded, "carol"), 503,
           "%s: a join to a room chatd has not loaded yet is refused 503 (database_unavailable)" % tag)

    # Sessions come and go while nothing can be written.
    joiner = Member(st, rid, "joiner-%s" % mode)
    leaver = Member(st, rid, "leaver-%s" % mode)
    leaver.end()
    users = stack.wait_until(lambda: st.ctl("stats", {"room_id": rid}).get("result", {}).get("current_users"),
                             "joiner counted, leaver gone", lambda v: v == len(members) + 1)
    chk.eq(users, len(members) + 1, "%s: joins and leaves during the outage are served" % tag)
    # The traffic keeps posting into the outage for a while (20 refusals, about a second).
    with poster.m.cond:
        nerr = len(poster.m.errors)
    got = poster.m.wait(lambda m: len(m.errors) >= nerr + 20)
    chk.ok(got, "%s: the traffic's posts are refused meanwhile" % tag)
    down = time.monotonic() - t_down

    pg.start_server()
    t_up = time.monotonic()
    # Each chat-api thread has its own connection: most have not noticed
    # the restart, and none has prepared this route's statements yet.
    statuses = [st.client.get(fresh_path).status for _ in range(12)]
    chk.eq(statuses, [200] * 12, "%s: chat-api's first requests after the restart succeed (a route new to it)" % tag)
    # Recovery without a restart: the first post that comes back as a broadcast.
    deadline = t_up + stack.WAIT * 4
    k = 0
    first = None
    while time.monotonic() < deadline:
        k += 1
        if alice.post("after the %s %d" % (tag, k), timeout=stack.WAIT) == "Message":
            first = time.monotonic() - t_up
            break
        time.sleep(0.05)
    chk.ok(first is not None, "%s: chatd commits and broadcasts again without a restart" % tag)
    h = stack.wait_until(lambda: st.client.get("/management/health"), "REST health ok",
                         lambda r: r.status == 200 and (r.json or {}).get("status") == "ok")
    healthy = time.monotonic() - t_up
    chk.eq((h.status, (h.json or {}).get("status")), (200, "ok"), "%s: REST health ok again" % tag)
    chk.eq(ctl_db(st).get("writable"), True, "%s: chatd's health: writable again" % tag)
    r = st.client.get("/management/rooms/%s" % rid)
    chk.eq(r.status, 200, "%s: chat-api answers again by itself" % tag)
    chk.eq(join_status(st, unloaded, "carol"), 101, "%s: the room not loaded before takes joins again" % tag)
    with poster.m.cond:
        nerr = len(poster.m.errors)
    log("%s: database down %.2f s; first message committed %.2f s after the server was up "
        "(%d posts); REST health ok after %.2f s; traffic so far: %d sent, %d refused"
        % (tag, down, first or -1, k, healthy, poster.sent, nerr))

    ss = stack.wait_until(lambda: sessions(st, rid) or [], "the outage's sessions recorded",
                          lambda ss: {s["user_id"]: s.get("reason") for s in ss
                                      if s["user_id"] in (joiner.user, leaver.user)}
                          == {joiner.user: None, leaver.user: "left"})
    by_user = {s["user_id"]: s for s in ss}
    chk.ok(joiner.user in by_user and by_user[joiner.user].get("left_at") is None,
           "%s: the session opened during the outage is recorded, open" % tag, repr(by_user.get(joiner.user)))
    lv = by_user.get(leaver.user) or {}
    chk.ok(lv.get("joined_at") and lv.get("left_at") and lv.get("reason") == "left",
           "%s: the session opened and closed during the outage is recorded with both" % tag, repr(lv))
    members[joiner.user] = joiner


def t_outages(st, chk, pg):
    rid = st.create_room("restart", ["alice", "poster", "bob"])  # admins
    members = {u: Member(st, rid, u) for u in ("alice", "bob", "poster")}
    poster = Poster(members["poster"])
    # The service thread's and the writer's: no WAL checkpointer on PostgreSQL.
    chk.eq(pg_connections(st.chatd.pid, pg.port), 2, "chatd holds two connections to PostgreSQL")
    try:
        members["poster"].wait(lambda m: len(m.messages) >= 5)
        for mode, fresh in (("fast", "/management/sync/session-history/%s" % rid),
                            ("immediate", "/management/sync/chat-history/%s" % rid)):
            chk.run("outage (pg_ctl stop -m %s)" % mode, t_restart, st, chk, pg, mode, rid, members, poster, fresh)
        chk.section("after the outages")
    finally:
        poster.end()
    last = "the end"
    chk.eq(members["alice"].post(last), "Message", "a last message after both outages")
    for m in members.values():
        m.wait(lambda me: any(c == last for _, c in me.messages))

    chk.ok(not any(m.closed for m in members.values()), "no member's WebSocket was closed by the outages",
           repr({u: m.closed for u, m in members.items() if m.closed}))
    rows = pg.query(DB, "SELECT seq, content FROM messages WHERE room_id = '%s' ORDER BY seq" % rid)
    stored = {int(s): c for s, c in rows}
    chk.eq(sorted(stored), list(range(1, len(stored) + 1)), "the room's seqs in the database: 1..%d, no gap" % len(stored))
    for u, m in sorted(members.items()):
        with m.cond:
            got = list(m.messages)
        missing = [(s, c) for s, c in got if stored.get(s) != c]
        chk.eq(missing, [], "%s: every broadcast it got (%d) is in the database with the same seq" % (u, len(got)))
    bob = [s for s, _ in members["bob"].messages]
    chk.eq(bob, sorted(stored), "bob (there from the start) got every stored message, in order, once")
    for text in ("during the stop -m fast outage", "during the stop -m immediate outage"):
        chk.ok(not any(c == text for m in members.values() for _, c in m.messages),
               "the refused %r was broadcast to no one" % text)
        chk.ok(text not in stored.values(), "nor stored")
    with members["poster"].cond:
        errs = [e.get("code") for e in members["poster"].errors]
    chk.ok(errs and set(errs) == {"overloaded"}, "the traffic's refused posts got Error overloaded (%d)" % len(errs),
           repr(sorted(set(errs))))
    with open(st.chatd.log_path, "rb") as f:
        chatd_log = f.read().decode("utf-8", "replace")
    chk.eq(chatd_log.count("writer: database writes are failing"), 2,
           "chatd's log says once per outage that writes fail (not once per batch or operation)")
    chk.eq(chatd_log.count("writer: database writes work again"), 2, "and once that they work again")
    chk.ok("commits alone" not in chatd_log, "no batch fell back to one commit per operation")
    chk.ok(pgserver.PASSWORD not in chatd_log, "chatd's log never quotes the password")
    for m in members.values():
        m.end()
    room = stack.wait_until(lambda: st.client.get("/management/rooms/%s" % rid).json or {}, "sessions closed",
                            lambda r: r.get("open_sessions") == 0)
    chk.eq(room.get("open_sessions"), 0, "every session closed at the end")


def main():
    stack.setup_process()
    require_chatd(FRONT)
    chk = Checker("PostgreSQL restarted under traffic")
    signal.alarm(int(os.environ.get("TEST_TIMEOUT", "600")))
    code = None
    try:
        # durable: a crash loses no acknowledged commit, as in production.
        with pgserver.PgServer(durable=True) as pg:
            url = pg.create_database(DB)
            st = ChatdStack(FRONT, {"DATABASE_URL": url, "USER_MESSAGE_INTERVAL_SECS": "0"})
            try:
                with st:
                    chk.run("outages", t_outages, st, chk, pg)
                    if chk.failures:
                        st.dump_logs(80)
                        log(pg.log_tail(40))
            except StackError as exc:
                chk.ok(False, "stack start", str(exc))
            finally:
                complaints = st.stop()
                chk.section("shutdown")
                chk.ok(not complaints, "every process stopped on SIGTERM", "; ".join(complaints))
                reap_orphans()
    except (KeyboardInterrupt, Watchdog) as exc:
        chk.ok(False, "interrupted", repr(exc))
        code = 1
    result = chk.finish()
    return code if code else result


if __name__ == "__main__":
    sys.exit(main())
