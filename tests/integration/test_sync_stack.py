#!/usr/bin/python3
"""
chat-sync with the real stack producing the data: chat-api behind
lighttpd, the real chatd (WebSocket joins, messages, a CustomEvent), and a
real receiver (contrib/callback/callback_server.py). Checks that every
target receives the documented shapes (docs/callbacks.md), that the
consistency block equals the database, that the legacy body equals
GET /management/sync, that the daemon delivers room creation and
POST /management/sync promptly (long before the sync interval), and the health route's callback block.

Prints "N passed, M failed"; exit 0 on success.
"""

import os
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import chatd_stack  # noqa: E402
import stack  # noqa: E402
import sync_harness as sh  # noqa: E402
from stack import Checker  # noqa: E402

PORT = stack.free_port()
RCV = None
PATHS = {
    "ROOM_EVENT_CALLBACK_URL": "/room-events",
    "CHAT_HISTORY_CALLBACK_URL": "/chat-history",
    "SESSION_HISTORY_CALLBACK_URL": "/session-history",
    "PERIODIC_SYNC_CALLBACK_URL": "/periodic-sync",
    "DATA_CALLBACK_URL": "/data",
}
SETTINGS = {k: "http://127.0.0.1:%d%s" % (PORT, v) for k, v in PATHS.items()}
SETTINGS.update({
    "CHAT_HISTORY_BATCH_INTERVAL_SECONDS": "1",
    "SESSION_HISTORY_BATCH_INTERVAL_SECONDS": "1",
    "SYNC_INTERVAL_SECONDS": "3600",
    "CALLBACK_RETRY_DELAY_SECONDS": "0",
    "CALLBACK_TIMEOUT_SECONDS": "2",
})


def once(st):
    return sh.run_once(st.tmp, st.db_path, {}, env_file=st.env_file)


def events(body):
    return body if isinstance(body, list) else [body]


def history_rows(st, room):
    """(messages stored, sessions completed) of room, read from the database."""
    return st.db_query("SELECT (SELECT count(*) FROM messages WHERE room_id = ?),"
                       " (SELECT count(*) FROM sessions WHERE room_id = ? AND left_at IS NOT NULL)",
                       (room, room))[0]


def idle(st):
    """Nothing pending for any target and no sync request unhandled."""
    h = st.client.get("/management/health").json or {}
    cb = h.get("callbacks", {})
    return (h.get("database", {}).get("pending_sync_requests") == 0 and len(cb) == len(PATHS)
            and all(v.get("pending") == 0 for v in cb.values()))


def t_targets(st, chk):
    room = st.create_room("sync room", ["admin"])
    adm = st.ws(room, "admin", "Admin")
    u = st.ws(room, "u1", "User One")
    adm.drain()
    u.send_json({"type": "Message", "payload": {"content": "hello"}})
    adm.wait_for(lambda m: m["type"] == "Message", 5)
    adm.send_json({"type": "CustomEvent", "payload": {"event_type": "lucky_money", "payload": {"amount": 100}}})
    adm.wait_for(lambda m: m["type"] == "CustomEvent", 5)
    u.close()
    adm.wait_for(lambda m: m["type"] == "UserLeft", 5)
    stack.wait_until(lambda: history_rows(st, room), "the messages and u1's completed session in the database",
                     lambda n: n[0] >= 2 and n[1] >= 1)
    # A partial batch goes once its oldest row has waited the history
    # interval (1 s): waiting it out is the behaviour under test.
    time.sleep(1.2)
    code, out = once(st)
    chk.eq(code, 0, "--once exits 0")

    evs = [e for x in RCV.ok_entries("/room-events") for e in events(x["body"])]
    kinds = [(e["type"], e["user_id"]) for e in evs if e["room_id"] == room]
    chk.eq(kinds, [("room_created", None), ("user_joined", "admin"), ("user_joined", "u1"), ("user_left", "u1")],
           "room events in order")
    chk.eq([e["id"] for e in evs], sorted(e["id"] for e in evs), "event ids ascending")
    want = {"id", "type", "room_id", "user_id", "nickname", "reason", "session_id", "timestamp", "timestamp_ms", "data"}
    chk.ok(all(set(e) == want for e in evs), "event shape", repr(evs[:1]))
    left = [e for e in evs if e["type"] == "user_left"]
    chk.ok(left and left[0]["reason"] == "left" and left[0]["session_id"], "user_left has reason and session")
    created = [e for e in evs if e["type"] == "room_created"]
    chk.ok(created and created[0]["data"]["room_name"] == "sync room" and created[0]["data"]["admin_user_ids"] == ["admin"],
           "room_created carries name and admins")

    hist = RCV.ok_entries("/chat-history")
    msgs = [m for x in hist for m in x["body"]["messages"] if m["room_id"] == room]
    chk.eq([m["type"] for m in msgs], ["Message", "CustomEvent"], "chat history with the CustomEvent marked")
    chk.ok(msgs and msgs[0]["content"] == "hello" and msgs[0]["from"] == "u1", "message fields")
    chk.ok(len(msgs) == 2 and msgs[1]["is_custom_event"] and msgs[1]["event_type"] == "lucky_money"
           and msgs[1]["payload"] == {"amount": 100}, "CustomEvent fields", repr(msgs[1:]))
    chk.ok(hist and hist[0]["body"]["type"] == "chat_history", "chat history envelope")

    sess = [s for x in RCV.ok_entries("/session-history") for s in x["body"]["sessions"]]
    mine = [s for s in sess if s["room_id"] == room]
    chk.eq([(s["user_id"], s["reason"]) for s in mine], [("u1", "left")], "the completed session only")
    chk.ok(mine and mine[0]["duration_ms"] == mine[0]["left_at_ms"] - mine[0]["joined_at_ms"]
           and mine[0]["duration_seconds"] >= 0, "join/leave times and duration")

    per = RCV.ok_entries("/periodic-sync")
    chk.ok(per, "periodic sync delivered")
    body = per[-1]["body"] if per else {}
    chk.eq(body.get("type"), "periodic_sync", "periodic sync type")
    chk.eq(body.get("live"), True, "live stats from chatd")
    rooms = {r["room_id"]: r for r in body.get("rooms", [])}
    r = rooms.get(room, {})
    chk.eq(r.get("current_users"), 1, "current users from chatd")
    cnt = st.db_query("SELECT count(*), max(id), max(seq) FROM messages WHERE room_id = ?", (room,))[0]
    sc = st.db_query("SELECT count(*), sum(CASE WHEN left_at IS NULL THEN 1 ELSE 0 END) FROM sessions"
                     " WHERE room_id = ?", (room,))[0]
    occ = st.db_query("SELECT id, user_id, nickname, is_admin, joined_at / 1000 FROM sessions"
                      " WHERE room_id = ? AND left_at IS NULL ORDER BY id", (room,))
    chk.ok(len(occ) >= 1, "someone is in the room for the occupant snapshot", repr(occ))
    chk.eq(r.get("consistency"), {"message_count": cnt[0], "last_message_id": cnt[1], "last_seq": cnt[2],
                                  "session_count": sc[0], "current_occupants": sc[1],
                                  "occupants": [{"session_id": o[0], "user_id": o[1], "nickname": o[2],
                                                 "is_admin": bool(o[3]), "joined_at": o[4]} for o in occ],
                                  "occupants_truncated": False},
           "consistency block (counts and occupant snapshot) equals the database")

    data = RCV.ok_entries("/data")
    api = st.client.get("/management/sync").json
    chk.ok(data, "legacy DATA_CALLBACK_URL delivered")
    got = data[-1]["body"] if data else {}
    strip = lambda b: [{k: v for k, v in x.items()} for x in b.get("rooms", [])]  # noqa: E731
    chk.eq(sorted(got.keys()), sorted(api.keys()), "legacy body has GET /management/sync's members")
    chk.eq(strip(got), strip(api), "legacy rooms equal GET /management/sync's")

    h = st.client.get("/management/health").json
    cb = (h or {}).get("callbacks", {})
    chk.eq(sorted(cb), sorted(["room_events", "chat_history", "session_history", "periodic_sync", "data"]),
           "health lists every enabled target")
    chk.ok(all(v.get("pending") == 0 and v.get("failing_since") is None for v in cb.values()),
           "nothing pending, nothing failing", repr(cb))
    adm.close()


def t_backlog_in_health(st, chk):
    RCV.stop()
    room = st.create_room("while down")
    code, _ = once(st)
    chk.eq(code, 1, "--once exits 1 while the receiver is down")
    h = st.client.get("/management/health").json
    ev = h["callbacks"]["room_events"]
    chk.ok(ev["pending"] >= 1 and ev["oldest_pending_age_s"] is not None, "backlog shows in health", repr(ev))
    chk.ok(ev["failing_since"] is not None and ev["last_error"], "failure shows in health", repr(ev))
    RCV.start()
    code, _ = once(st)
    chk.eq(code, 0, "delivered once the receiver is back")
    evs = [e for x in RCV.ok_entries("/room-events") for e in events(x["body"])]
    chk.ok(any(e["room_id"] == room and e["type"] == "room_created" for e in evs), "the pending event arrived")
    h = st.client.get("/management/health").json
    chk.eq(h["callbacks"]["room_events"]["pending"], 0, "backlog cleared")


def t_daemon(st, chk):
    """Prompt: a trigger is delivered within a few poll rounds; the waits
    below are ten times that, still far short of SYNC_INTERVAL_SECONDS
    (an hour), so only the trigger can have caused the delivery."""
    p = sh.start(st.tmp, st.db_path, {}, env_file=st.env_file, name="chat-sync-daemon")
    st.procs.append(p)
    # Started and with nothing left to do, so what arrives next is the
    # triggers' doing.
    stack.wait_until(lambda: "running" in p.tail() and idle(st), "the daemon to start with nothing pending")
    n_data, n_per = len(RCV.ok_entries("/data")), len(RCV.ok_entries("/periodic-sync"))
    room = st.create_room("prompt")
    ok = RCV.wait_for(lambda r: any(e["room_id"] == room for x in r.ok_entries("/room-events")
                                    for e in events(x["body"])), stack.WAIT)
    chk.ok(ok, "room_created event delivered promptly")
    ok = RCV.wait_for(lambda r: len(r.ok_entries("/data")) > n_data, stack.WAIT)
    chk.ok(ok, "room creation triggers the legacy callback promptly")
    ok = RCV.wait_for(lambda r: len(r.ok_entries("/periodic-sync")) > n_per, stack.WAIT)
    chk.ok(ok, "room creation triggers a periodic sync")
    n_per = len(RCV.ok_entries("/periodic-sync"))
    r = st.client.post("/management/sync")
    chk.eq(r.status, 202, "POST /management/sync accepted")
    ok = RCV.wait_for(lambda r: len(r.ok_entries("/periodic-sync")) > n_per, stack.WAIT)
    chk.ok(ok, "POST /management/sync delivered promptly")
    last = RCV.ok_entries("/periodic-sync")[-1]["body"]
    chk.eq(last.get("trigger"), "request", "trigger says request")
    h = stack.wait_until(lambda: st.client.get("/management/health").json, "sync requests marked handled",
                         lambda h: h and h["database"]["pending_sync_requests"] == 0)
    chk.eq(h["database"]["pending_sync_requests"], 0, "sync requests marked handled")
    stack.stop_process_tree(p)
    st.procs.remove(p)
    chk.eq(p.p.returncode, 0, "the daemon exits 0 on SIGTERM")


def main():
    global RCV
    stack.setup_process()
    sh.require_sync()
    chatd_stack.require_chatd("lighttpd-socket")
    tmp = sh.tmpdir("chat-sync-rcv-")
    RCV = sh.Receiver(tmp, "receiver", port=PORT).start()
    chk = Checker("chat-sync with chatd and chat-api")
    try:
        code = chatd_stack.run_suite("lighttpd-socket", chk, [
            ("every target's payload", t_targets),
            ("backlog and failure in health", t_backlog_in_health),
            ("daemon: prompt delivery", t_daemon),
        ], SETTINGS)
    finally:
        RCV.stop()
        if os.environ.get("KEEP_TMP") != "1":
            import shutil
            shutil.rmtree(tmp, ignore_errors=True)
    result = chk.finish()
    return code if code else result


if __name__ == "__main__":
    sys.exit(main())
