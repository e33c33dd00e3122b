#!/usr/bin/python3
"""
Two chat-sync daemons on one database and one receiver (the database as
CHAT_TEST_DB says; make check runs this on PostgreSQL, from
tests/integration/pg/, where the per-target lock is an advisory lock):

- both start together on an empty database: the schema is made once and
  neither fails;
- messages (chat_history) and room events (room_events), added while both
  run, arrive every one exactly once and in id order per target, and the
  receiver never has two requests of one target at once (each answer
  takes a moment, so an overlap would show);
- kill -9 of the daemon whose chat_history batch is on the wire (so it
  holds that target's lock): the other takes the target over (on
  PostgreSQL the lock went with the dead session, whose backend is gone),
  sends that batch again under its delivery id, then the rest, in order;
- PostgreSQL: the lock holder's database session ends while its batch is
  on the wire and a third daemon takes the target: the old holder stands
  aside (it asks for the lock before every batch), one daemon sends.

Prints "N passed, M failed"; exit 0 on success.
"""

import os
import shutil
import sys
import threading
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import stack  # noqa: E402
import sync_harness as sh  # noqa: E402
import testdb  # noqa: E402
from stack import Checker  # noqa: E402

H, E = "/chat-history", "/room-events"
ROOM = "00000000-0000-4000-8000-0000000002d0"
# db_lock_try's class of advisory locks and chat-sync's lock name (src/common/db_pg.c, src/sync/sync.c).
PG_NAMED_LOCKS = 1667785077
HIST_LOCK = "sync-chat_history"


def socket_owner(port, pids):
    """The process among pids with a TCP socket on local port (the
    sender of a request the receiver got from that port), or None."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                for line in list(f)[1:]:
                    parts = line.split()
                    if int(parts[1].rsplit(":", 1)[1], 16) == port:
                        inodes.add("socket:[%s]" % parts[9])
        except OSError:
            pass
    for pid in pids:
        try:
            fds = os.listdir("/proc/%d/fd" % pid)
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink("/proc/%d/fd/%s" % (pid, fd)) in inodes:
                    return pid
            except OSError:
                pass
    return None


def lock_holder(db):
    """PostgreSQL: the backend pid holding chat_history's lock, or None."""
    rows = db.query("SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted AND classid = ?"
                    " AND objid::bigint = (hashtext(?)::bigint & 4294967295)", (PG_NAMED_LOCKS, HIST_LOCK))
    return rows[0][0] if rows else None


class Watch:
    """The receiver's script: counts requests in flight per target (an
    overlap is a failure), answers 200 after a moment, and can hold one
    chat-history request until released."""

    def __init__(self):
        self.lock = threading.Lock()
        self.inflight = {}
        self.overlaps = []
        self.pids = []
        self.senders = {}  # request number -> pid
        self.hold_next = False
        self.held = None  # (n, entry, pid)
        self.holding = threading.Event()
        self.release = threading.Event()
        self.dead = set()  # request numbers whose sender was killed

    def decide(self, n, e):
        pid = socket_owner(e["peer"][1], self.pids)
        hold = False
        with self.lock:
            self.senders[n] = pid
            k = e["path"]
            self.inflight[k] = self.inflight.get(k, 0) + 1
            if self.inflight[k] > 1:
                self.overlaps.append((n, k))
            if self.hold_next and k == H:
                self.hold_next = False
                self.held = (n, e, pid)
                hold = True
        if hold:
            self.holding.set()
            self.release.wait(60)
        else:
            time.sleep(0.02)
        with self.lock:
            if n not in self.dead:
                self.inflight[k] -= 1
        return 200

    def sender_died(self, n, path):
        """The held request's sender is dead: no longer in flight."""
        with self.lock:
            self.dead.add(n)
            self.inflight[path] -= 1


def add_rows(db, n_messages, n_events):
    """n_messages chat messages and n_events user_joined events, in one
    transaction, the way chatd writes them."""
    t = int((time.time() - 5) * 1000)
    seq = db.scalar("SELECT last_seq FROM rooms WHERE id = ?", (ROOM,))
    msgs = [(ROOM, seq + i + 1, "m %d" % (seq + i + 1), t) for i in range(n_messages)]
    evs = [("user_joined", ROOM, "u%d" % i, "n%d" % i, t) for i in range(n_events)]
    stmts = [("UPDATE rooms SET last_seq = ? WHERE id = ?", (seq + n_messages, ROOM))]
    if msgs:
        stmts.append(("INSERT INTO messages (room_id, seq, kind, user_id, nickname, content, created_at)"
                      " VALUES (?, ?, 0, 'u1', 'n1', ?, ?)", msgs))
    if evs:
        stmts.append(("INSERT INTO outbox (kind, room_id, user_id, nickname, created_at) VALUES (?, ?, ?, ?, ?)",
                      evs))
    db.write(stmts)


def all_ids(db, table):
    return [r[0] for r in db.query("SELECT id FROM %s ORDER BY id" % table)]


def hist_ids(entries):
    return [m["id"] for e in entries for m in e["body"]["messages"]]


def event_ids(entries):
    return [x["id"] for e in entries for x in (e["body"] if isinstance(e["body"], list) else [e["body"]])]


def once_each(entries):
    """Entries with any repeat of a delivery id left out; the repeats' ids."""
    seen, out, again = set(), [], []
    for e in entries:
        w = e["headers"].get("webhook-id")
        if w in seen:
            again.append(w)
            continue
        seen.add(w)
        out.append(e)
    return out, again


def t_two_daemons(chk, tmp):
    db = testdb.fresh(tmp, "two")
    w = Watch()
    rcv = sh.ScriptedReceiver(w.decide).start()
    settings = {"CHAT_HISTORY_CALLBACK_URL": rcv.url(H), "ROOM_EVENT_CALLBACK_URL": rcv.url(E),
                "CHAT_HISTORY_BATCH_SIZE": "40", "CHAT_HISTORY_BATCH_INTERVAL_SECONDS": "1"}
    procs = []
    try:
        # Both at once on an empty database: one makes the schema.
        procs = [sh.start(tmp, db, settings, name="sync-%s" % x) for x in "ab"]
        w.pids = [p.pid for p in procs]
        ok = stack.wait_until(lambda: all("running (database" in open(p.log_path).read() for p in procs),
                              "both daemons running", timeout=stack.WAIT)
        chk.ok(ok and all(p.running() for p in procs), "both daemons run on the schema one of them made",
               "\n".join(p.tail(5) for p in procs))
        db.execute("INSERT INTO rooms (id, name, created_at) VALUES (?, 'two', ?)", (ROOM, int(time.time() * 1000)))

        # Rows arrive while both run.
        for _ in range(6):
            add_rows(db, 200, 40)
            time.sleep(0.2)
        msgs, evs = all_ids(db, "messages"), all_ids(db, "outbox")
        stack.wait_until(lambda: hist_ids(rcv.ok_entries(H)), "every message delivered",
                         lambda got: len(got) >= len(msgs), timeout=4 * stack.WAIT)
        stack.wait_until(lambda: event_ids(rcv.ok_entries(E)), "every room event delivered",
                         lambda got: len(got) >= len(evs), timeout=4 * stack.WAIT)
        chk.eq(hist_ids(rcv.ok_entries(H)), msgs, "every message exactly once, in id order")
        chk.eq(event_ids(rcv.ok_entries(E)), evs, "every room event exactly once, in id order")
        chk.eq(w.overlaps, [], "never two requests of one target at once")
        wids = [e["headers"]["webhook-id"] for e in rcv.ok_entries()]
        chk.eq(len(wids), len(set(wids)), "no batch twice")
        chk.ok(all(p.running() for p in procs), "both daemons still run")

        # kill -9 of the daemon whose chat_history batch is on the wire.
        before = len(rcv.entries(H))
        w.hold_next = True
        add_rows(db, 400, 20)
        if not chk.ok(w.holding.wait(stack.WAIT), "a chat_history batch is on the wire"):
            return
        n, held, victim = w.held
        chk.ok(victim in w.pids, "its sender is one of the daemons", repr((victim, w.pids)))
        backend = lock_holder(db) if db.kind == "pg" else None
        if db.kind == "pg":
            chk.ok(backend is not None, "PostgreSQL: an advisory lock holds chat_history while it is sent")
        killed = next(p for p in procs if p.pid == victim) if victim in w.pids else procs[0]
        survivor = next(p for p in procs if p is not killed)
        sh.kill9(killed)
        w.sender_died(n, H)
        w.release.set()
        msgs = all_ids(db, "messages")
        got = stack.wait_until(lambda: once_each(rcv.ok_entries(H))[0], "the rest delivered by the survivor",
                               lambda es: len(hist_ids(es)) >= len(msgs), timeout=4 * stack.WAIT)
        chk.eq(hist_ids(got), msgs, "after the kill: every message, in id order")
        later = [e for e in rcv.entries(H)[before:] if e is not held]
        chk.ok(later and later[0]["headers"]["webhook-id"] == held["headers"]["webhook-id"]
               and later[0]["raw"] == held["raw"],
               "the survivor sends the killed one's batch first, same delivery id and body",
               repr([e["headers"]["webhook-id"] for e in later[:2]]))
        _, again = once_each(rcv.ok_entries(H))
        chk.eq(again, [held["headers"]["webhook-id"]], "only that batch came twice")
        later_ids = {id(e) for e in later}
        with w.lock:
            senders = [w.senders.get(i + 1) for i, e in enumerate(rcv.log) if id(e) in later_ids]
        chk.ok(senders and all(s == survivor.pid for s in senders), "the survivor sent everything after the kill",
               repr(set(senders)))
        chk.eq(w.overlaps, [], "still never two requests of one target at once")
        if db.kind == "pg":
            gone = stack.wait_until(lambda: db.query("SELECT pid FROM pg_stat_activity WHERE pid = ?", (backend,)),
                                    "the killed daemon's session to end", lambda rows: rows == [])
            chk.eq(gone, [], "PostgreSQL: the killed daemon's session, and its lock, are gone")
        chk.ok(survivor.running(), "the survivor still runs", survivor.tail())
        add_rows(db, 10, 5)
        evs = all_ids(db, "outbox")
        stack.wait_until(lambda: event_ids(rcv.ok_entries(E)), "the last room events",
                         lambda ids: len(ids) >= len(evs), timeout=4 * stack.WAIT)
        chk.eq(event_ids(rcv.ok_entries(E)), evs, "room events: every one once, in order, through the kill")
        if db.kind == "pg":
            t_session_lost(chk, tmp, db, w, rcv, settings, survivor, procs)
        chk.eq(rcv.errors, [], "the receiver's script ran")
    finally:
        w.release.set()
        for p in procs:
            stack.stop_process_tree(p)
        rcv.stop()


def t_session_lost(chk, tmp, db, w, rcv, settings, holder, procs):
    """PostgreSQL: the holder's database session ends (not its process)
    while its chat_history batch is on the wire, so its advisory lock is
    gone; a new daemon takes the target. The old holder, back from the
    wire, asks for the lock again before its next batch and stands aside:
    from then on one daemon sends, and never two requests at once."""
    w.holding, w.release = threading.Event(), threading.Event()
    w.hold_next = True
    add_rows(db, 300, 0)
    if not chk.ok(w.holding.wait(stack.WAIT), "lost session: a chat_history batch is on the wire"):
        return
    n, held, sender = w.held
    chk.eq(sender, holder.pid, "lost session: the survivor sends it")
    backend = lock_holder(db)
    db.query("SELECT pg_terminate_backend(?, 10000)", (backend,))
    newcomer = sh.start(tmp, db, settings, name="sync-c")
    procs.append(newcomer)
    with w.lock:
        w.pids.append(newcomer.pid)
    taken = stack.wait_until(lambda: lock_holder(db), "the newcomer to take chat_history's lock",
                             lambda b: b is not None and b != backend)
    chk.ok(taken is not None and taken != backend, "lost session: another session holds the lock now")
    first_after = len(rcv.log)
    w.release.set()
    msgs = all_ids(db, "messages")
    got = stack.wait_until(lambda: once_each(rcv.ok_entries(H))[0], "every message after the lost session",
                           lambda es: len(hist_ids(es)) >= len(msgs), timeout=4 * stack.WAIT)
    chk.eq(hist_ids(got), msgs, "lost session: every message, in id order")
    with w.lock:
        later = [(w.senders.get(i + 1), e) for i, e in enumerate(rcv.log)
                 if i >= first_after and e["path"] == H and e["headers"].get("webhook-id")
                 != held["headers"]["webhook-id"]]
        # The newcomer's resend of the held batch (same delivery id) overlaps it: expected.
        overlaps = [o for o in w.overlaps if o[0] > n and rcv.log[o[0] - 1]["headers"].get("webhook-id")
                    != held["headers"]["webhook-id"]]
    senders = {pid for pid, _ in later}
    chk.ok(later and len(senders) == 1, "lost session: after it, one daemon sends chat_history",
           repr(senders))
    chk.eq(overlaps, [], "lost session: after it, never two requests of one target at once")
    chk.ok(holder.running() and newcomer.running(), "lost session: both daemons still run",
           holder.tail() + newcomer.tail())


def main():
    stack.setup_process()
    sh.require_sync()
    chk = Checker("two chat-sync daemons on one %s database" % testdb.KIND)
    tmp = sh.tmpdir("chat-sync-two-")
    try:
        chk.run("two daemons, one receiver, kill -9 of the lock holder", t_two_daemons, chk, tmp)
        testdb.check_no_password(chk, tmp)
    finally:
        if os.environ.get("KEEP_TMP") == "1":
            stack.log("kept %s" % tmp)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
        stack.reap_orphans()
    return chk.finish()


if __name__ == "__main__":
    sys.exit(main())
