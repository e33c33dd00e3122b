#!/usr/bin/python3
"""Integration test: a full disk. The database lives on a 2 MiB tmpfs
mounted for the test (needs root; skipped with a message otherwise). The
disk is filled until chatd refuses a message; meanwhile clients join and
leave, and GET /management/health says "degraded" with the cause. Once
space is freed: health is "ok" again, every session is in the session
history with its open and (for those that left) its close, and
open_sessions matches the users connected. Exit 0 on success, 1 on
failure, 77 when skipped."""
import errno
import os
import subprocess
import sys
import tempfile

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import chatd_stack as cs  # noqa: E402
import stack  # noqa: E402

FRONT = "lighttpd-socket"


def sessions(st, rid):
    r = st.client.get("/management/sync/session-history/%s?limit=500" % rid)
    return (r.json or {}).get("sessions", [])


def health(st):
    return st.client.get("/management/health").json or {}


def fill(path):
    """Writes into path until the file system is full."""
    chunk = b"\0" * 65536
    with open(path, "wb") as f:
        while True:
            try:
                f.write(chunk)
                f.flush()
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
                break
    # Smaller pieces: the last bytes too.
    with open(path, "ab", buffering=0) as f:
        for _ in range(64):
            try:
                f.write(b"\0" * 512)
            except OSError:
                break


def send_until_refused(ws, limit=5000):
    """Sends messages until chatd answers one with an Error; returns how many it took."""
    big = "x" * 3000
    for i in range(limit):
        ws.send_json({"type": "Message", "payload": {"content": "fill %d %s" % (i, big)}})
        m = ws.wait_for(lambda m: m.get("type") in ("Message", "Error"), stack.WAIT)
        if m is None:
            return None
        if m["type"] == "Error":
            return i
    return None


def t_disk_full(st, chk, mnt):
    rid = st.create_room("full", ["admin"])
    admin = st.ws(rid, "admin")
    a = st.ws(rid, "alice")
    filler = os.path.join(mnt, "filler")
    fill(filler)
    n = send_until_refused(admin)
    chk.ok(n is not None, "chatd refuses a message once the disk is full", "after %r" % n)

    h = stack.wait_until(lambda: health(st), "health degraded", lambda h: h.get("status") == "degraded", timeout=stack.WAIT)
    chk.eq(h.get("status"), "degraded", "health is degraded while writes fail")
    causes = h.get("causes") or []
    chk.ok(any("cannot write to the database" in c for c in causes), "health gives the cause", repr(causes))
    db = ((h.get("chatd") or {}).get("health") or {}).get("database") or {}
    chk.eq(db.get("writable"), False, "chatd's health: database not writable")
    chk.ok(isinstance(db.get("failing_since"), int) and "full" in (db.get("last_error") or ""),
           "chatd's health: since when and why", repr(db))

    # Sessions come and go while nothing can be written.
    b = st.ws(rid, "bob")
    c = st.ws(rid, "carol")
    a.close()
    b.close()
    stack.wait_until(lambda: st.ctl("stats", {"room_id": rid}).get("result", {}).get("current_users"),
                  "alice and bob gone", lambda u: u == 2)
    h = health(st)
    chk.eq(h.get("status"), "degraded", "still degraded before space is freed")
    retry = (((h.get("chatd") or {}).get("health") or {}).get("database") or {}).get("retry_sessions")
    chk.ok(isinstance(retry, int) and retry >= 2, "session records wait for the disk", repr(retry))

    os.unlink(filler)
    h = stack.wait_until(lambda: health(st), "health ok again", lambda h: h.get("status") == "ok", timeout=4 * stack.WAIT)
    chk.eq(h.get("status"), "ok", "health is ok once writes work again")
    chk.eq(h.get("causes"), [], "no cause left")

    ss = stack.wait_until(lambda: sessions(st, rid), "every session recorded",
                       lambda ss: len(ss) == 4 and sum(1 for s in ss if s.get("left_at") is None) == 2)
    by_user = {s["user_id"]: s for s in ss}
    chk.eq(sorted(by_user), ["admin", "alice", "bob", "carol"], "every user's session is in history")
    chk.eq(len(ss), 4, "one session per connection")
    for u in ("alice", "bob"):
        s = by_user.get(u) or {}
        chk.ok(s.get("joined_at") and s.get("left_at") and s.get("reason") == "left",
               "%s's session has its open and its close" % u, repr(s))
    chk.ok((by_user.get("carol") or {}).get("left_at") is None, "carol, who joined during the full disk, is open")
    room = st.client.get("/management/rooms/%s" % rid).json or {}
    users = st.ctl("stats", {"room_id": rid}).get("result", {}).get("current_users")
    chk.eq(room.get("open_sessions"), 2, "open_sessions matches the connections")
    chk.eq(users, 2, "current_users matches")

    # The room works again.
    admin.send_json({"type": "Message", "payload": {"content": "after"}})
    m = c.wait_for(lambda m: m.get("type") == "Message" and m["payload"].get("content") == "after", stack.WAIT)
    chk.ok(m is not None, "messages are stored and delivered again")
    c.close()
    admin.close()
    room = stack.wait_until(lambda: st.client.get("/management/rooms/%s" % rid).json or {}, "sessions closed",
                         lambda r: r.get("open_sessions") == 0)
    chk.eq(room.get("open_sessions"), 0, "every session closed at the end")


def main():
    stack.setup_process()
    if os.geteuid() != 0:
        stack.log("SKIP: mounting the small tmpfs this test fills needs root")
        return stack.SKIP
    if not stack.which(stack.FRONTS[FRONT][2]):
        stack.log("SKIP: lighttpd is not installed")
        return stack.SKIP
    cs.require_chatd(FRONT)
    mnt = tempfile.mkdtemp(prefix="chatd-diskfull-")
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m,mode=0700", "tmpfs", mnt], check=True)
    chk = cs.Checker("chatd on a full disk")
    try:
        settings = {"DATABASE_URL": "sqlite:%s/chat.db" % mnt}
        st = cs.ChatdStack(FRONT, settings)
        try:
            with st:
                chk.run("full disk", t_disk_full, st, chk, mnt)
                if chk.failures:
                    st.dump_logs(80)
        except cs.StackError as exc:
            chk.ok(False, "stack start", str(exc))
        finally:
            complaints = st.stop()
            chk.ok(not complaints, "every process stopped on SIGTERM", "; ".join(complaints))
            cs.reap_orphans()
    finally:
        subprocess.run(["umount", mnt], check=False)
        os.rmdir(mnt)
    return chk.finish()


if __name__ == "__main__":
    sys.exit(main())
