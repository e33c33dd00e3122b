#!/usr/bin/python3
"""Integration test: durability. Clients chat through the web server while
chatd is killed with SIGKILL; after a restart every message any client
received is in GET /management/sync/chat-history, seqs have no gaps, the
killed sessions are closed as server_restart, peak_users survives, and
the room serves again. Exit 0 on success, 1 on failure, 77 if no web
server is installed."""
import os
import signal
import sys
import threading
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import chatd_stack as cs  # noqa: E402


def history(st, rid):
    out, page = [], 1
    while True:
        r = st.client.get("/management/sync/chat-history/%s?page=%d&limit=500" % (rid, page))
        j = r.json or {}
        out += j.get("messages", [])
        if not j.get("has_more"):
            return out
        page += 1


def t_kill9(st, chk):
    rid = st.create_room("durable", ["admin"])
    n_clients = 4
    clients = [st.ws(rid, "u%d" % i) for i in range(n_clients)]
    admin = st.ws(rid, "admin")
    received = [dict() for _ in range(n_clients)]  # seq -> content, per client
    stop = threading.Event()

    def reader(i):
        ws = clients[i]
        while not stop.is_set():
            try:
                m = ws.recv_json(0.5)
            except cs.Timeout:
                continue
            except (cs.Closed, OSError, ValueError):
                return
            if m.get("type") == "Message":
                received[i][m["payload"]["seq"]] = m["payload"]["content"]

    threads = [threading.Thread(target=reader, args=(i,), daemon=True) for i in range(n_clients)]
    for t in threads:
        t.start()
    sent = 0
    t_end = time.monotonic() + 1.5
    killed = False
    while time.monotonic() < t_end + 0.5:
        try:
            admin.send_json({"type": "Message", "payload": {"content": "msg %d" % sent}})
            sent += 1
        except OSError:
            break
        if not killed and time.monotonic() >= t_end:
            os.kill(st.chatd.pid, signal.SIGKILL)
            killed = True
        time.sleep(0.002)
    st.chatd.p.wait(10)
    chk.ok(killed, "chatd killed with SIGKILL while chatting", "%d messages sent" % sent)
    stop.set()
    for t in threads:
        t.join(5)
    st.procs.remove(st.chatd)
    seen = {}
    for r in received:
        seen.update(r)
    chk.ok(len(seen) > 10, "clients received messages before the kill", "%d" % len(seen))

    st.start_chatd()
    hist = history(st, rid)
    stored = {m["seq"]: m.get("content") for m in hist}
    missing = [s for s in seen if stored.get(s) != seen[s]]
    chk.ok(not missing, "every message a client saw is in chat history after restart",
           "%d missing of %d, e.g. %r" % (len(missing), len(seen), missing[:5]))
    seqs = sorted(stored)
    chk.eq(seqs, list(range(1, len(seqs) + 1)), "stored seqs have no gaps")
    r = st.client.get("/management/sync/session-history/%s?limit=100" % rid)
    sessions = (r.json or {}).get("sessions", [])
    reasons = [s.get("reason") for s in sessions]
    chk.eq(len(sessions), n_clients + 1, "one session per connection")
    chk.ok(sessions and all(x == "server_restart" for x in reasons), "killed sessions closed as server_restart",
           repr(reasons))
    rep = st.ctl("stats", {"room_id": rid})
    chk.ok(rep.get("ok") and rep["result"].get("peak_users") == n_clients + 1, "peak_users recovered",
           repr(rep.get("result")))
    a = st.ws(rid, "after")
    chk.eq(a.welcome["payload"].get("last_seq"), len(seqs), "UserJoined last_seq continues the history")
    admin2 = st.ws(rid, "admin")
    admin2.send_json({"type": "Message", "payload": {"content": "after restart"}})
    m = a.wait_for(lambda m: m["type"] == "Message", 3)
    chk.ok(m is not None and m["payload"]["seq"] == len(seqs) + 1, "seq continues after restart", repr(m))
    for ws in clients + [admin, a, admin2]:
        ws.abort()


if __name__ == "__main__":
    sys.exit(cs.main_for_fronts("chatd durability (kill -9)", [("kill -9 and restart", t_kill9)],
                                default=("lighttpd-socket",)))
