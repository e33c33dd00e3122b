#!/usr/bin/python3
"""Integration test: chatd's admin features through real web servers and
chat-api: CustomEvent over WebSocket (admin and non-admin) and via REST,
bans (REST and WebSocket: live connection closed, reconnect refused,
unban restores), kicks (WebSocket and control socket),
room close (DELETE), live stats and publish over the control socket, priority of a
CustomEvent over queued chat and bounded queues for a client that stops
reading. Exit 0 on success, 1 on failure, 77 if no web server is installed."""
import os
import json
import socket
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import chatd_stack as cs  # noqa: E402
import stack  # noqa: E402
import wsclient as wsc  # noqa: E402
from chatd_stack import HandshakeError  # noqa: E402


def refused(st, room_id, user_id):
    try:
        ws = st.ws(room_id, user_id, welcome=False)
    except HandshakeError as e:
        return e.status
    ws.close()
    return 0


def bans_of(st, rid):
    r = st.client.get("/management/rooms/%s/bans" % rid)
    return [b.get("user_id") for b in (r.json or {}).get("bans", [])]


def session_reasons(st, rid):
    r = st.client.get("/management/sync/session-history/%s" % rid)
    return [s.get("reason") for s in (r.json or {}).get("sessions", [])]


def closed_by_server(chk, ws, code, what):
    """The server closes ws with code (normally at once; the wait is
    generous), after telling it the user left."""
    got, reason = ws.wait_closed(stack.WAIT)
    chk.eq(got, code, "%s: close code %s" % (what, code))
    left = [m for m in ws.seen if m.get("type") == "UserLeft"]
    chk.ok(left and left[-1]["payload"].get("user_id") is not None, "%s: UserLeft before the close" % what,
           repr(ws.seen[-3:]))
    return reason


def t_custom_event(st, chk):
    rid = st.create_room("events", ["admin"])
    adm = st.ws(rid, "admin", "Admin")
    u = st.ws(rid, "user")
    adm.send_json({"type": "CustomEvent", "payload": {"event_type": "lucky_money", "payload": {"amount": 100}}})
    m = u.wait_for(lambda m: m["type"] == "CustomEvent", 3)
    chk.ok(m is not None, "member receives the admin's CustomEvent")
    if m:
        p = m["payload"]
        chk.eq(p.get("event_type"), "lucky_money", "event_type")
        chk.eq(p.get("payload"), {"amount": 100}, "payload")
        chk.eq(p.get("from"), "admin", "from")
        chk.eq(p.get("is_admin"), True, "is_admin")
        chk.ok(isinstance(p.get("id"), int) and isinstance(p.get("seq"), int), "id and seq")
    u.send_json({"type": "CustomEvent", "payload": {"event_type": "fake", "payload": {}}})
    m = u.wait_for(lambda m: m["type"] in ("Error", "CustomEvent"), 3)
    chk.ok(m is not None and m["type"] == "Error" and m["payload"]["code"] == "forbidden",
           "non-admin CustomEvent -> Error forbidden", repr(m))
    r = st.client.post("/management/rooms/%s/events" % rid, {"event_type": "red_packet", "payload": {"n": 3}})
    chk.status(r, 200, "POST events -> 200")
    m = u.wait_for(lambda m: m["type"] == "CustomEvent", 3)
    chk.ok(m is not None and m["payload"].get("event_type") == "red_packet" and m["payload"].get("payload") == {"n": 3},
           "REST event reaches the member", repr(m))
    if r.json and m:
        chk.eq(r.json.get("seq"), m["payload"].get("seq"), "REST answer carries the event's seq")
        chk.eq(r.json.get("recipients"), 2, "REST answer: 2 recipients")
    h = st.client.get("/management/sync/chat-history/%s" % rid)
    kinds = [(x.get("type"), x.get("event_type")) for x in (h.json or {}).get("messages", [])]
    chk.eq(kinds, [("CustomEvent", "lucky_money"), ("CustomEvent", "red_packet")], "events stored in history")
    r = st.client.post("/management/rooms/%s/events" % "00000000-0000-4000-8000-000000000000",
                       {"event_type": "x"})
    chk.status(r, 404, "event to an unknown room -> 404")

    # Nesting: a body may nest 32 levels (payload 31), over REST and WebSocket alike.
    def nest(n):
        v = 1
        for _ in range(n):
            v = [v]
        return v
    r = st.client.post("/management/rooms/%s/events" % rid, {"event_type": "deep", "payload": nest(31)})
    chk.status(r, 200, "POST events with a payload 31 deep (body 32) -> 200")
    m = u.wait_for(lambda m: m["type"] == "CustomEvent" and m["payload"].get("event_type") == "deep", 3)
    chk.ok(m is not None and m["payload"].get("payload") == nest(31), "31-deep payload reaches the member", repr(m)[:200])
    # as raw text: Python's own encoder gives up near 1,000 levels
    for depth in (32, 998, 999, 5000):
        raw = '{"event_type":"deeper","payload":%s1%s}' % ("[" * depth, "]" * depth)
        r = st.client.post("/management/rooms/%s/events" % rid, raw.encode())
        chk.status(r, 400, "POST events with a payload %d deep -> 400" % depth, "invalid_json")
        msg = ((r.json or {}).get("error") or {}).get("message", "")
        chk.ok("32 levels" in msg, "the 400 names the depth limit", msg)
    adm.send_json({"type": "CustomEvent", "payload": {"event_type": "deep", "payload": nest(30)}})
    m = u.wait_for(lambda m: m["type"] == "CustomEvent" and m["payload"].get("event_type") == "deep", 3)
    chk.ok(m is not None and m["payload"].get("payload") == nest(30), "WebSocket CustomEvent 30 deep (message 32) delivered")
    for depth in (31, 999):
        adm.send_text('{"type":"CustomEvent","payload":{"event_type":"deep","payload":%s1%s}}'
                      % ("[" * depth, "]" * depth))
        m = adm.wait_for(lambda m: m["type"] == "Error", 3)
        chk.ok(m is not None and m["payload"].get("code") == "invalid_json" and "32 levels" in m["payload"].get("message", ""),
               "WebSocket message %d deep -> Error invalid_json naming the limit" % (depth + 2), repr(m))
    adm.close()
    u.close()


def t_bans(st, chk):
    rid = st.create_room("bans", ["admin"])
    victim = st.ws(rid, "victim")
    other = st.ws(rid, "bystander")
    r = st.client.post("/management/rooms/%s/bans" % rid, {"user_id": "victim", "reason": "spam"})
    chk.status(r, 201, "ban via REST -> 201")
    reason = closed_by_server(chk, victim, 4403, "REST ban")
    chk.ok(reason and "spam" in reason, "close reason names the ban reason", repr(reason))
    chk.eq(refused(st, rid, "victim"), 403, "banned user's reconnect -> 403")
    r = st.client.delete("/management/rooms/%s/bans/victim" % rid)
    chk.ok(r.status in (200, 204), "unban via REST", "status %s" % r.status)
    chk.eq(refused(st, rid, "victim"), 0, "reconnect after unban accepted")
    # over WebSocket, by an admin
    adm = st.ws(rid, "admin")
    victim = st.ws(rid, "victim")
    adm.send_json({"type": "Ban", "payload": {"user_id": "victim", "duration_seconds": 600, "reason": "flood"}})
    closed_by_server(chk, victim, 4403, "WebSocket ban")
    chk.eq(refused(st, rid, "victim"), 403, "reconnect after WebSocket ban -> 403")
    users = stack.wait_until(lambda: bans_of(st, rid), "the WebSocket ban in the database",
                             lambda u: "victim" in u)
    chk.ok("victim" in users, "WebSocket ban written to the database", repr(users))
    adm.send_json({"type": "Unban", "payload": {"user_id": "victim"}})
    chk.eq(stack.wait_until(lambda: refused(st, rid, "victim"), "the WebSocket unban to take effect",
                            lambda status: status == 0),
           0, "reconnect after WebSocket unban accepted")
    users = stack.wait_until(lambda: bans_of(st, rid), "the WebSocket unban in the database",
                             lambda u: "victim" not in u)
    chk.ok("victim" not in users, "WebSocket unban lifted in the database", repr(users))
    other.send_json({"type": "Ban", "payload": {"user_id": "admin"}})
    m = other.wait_for(lambda m: m["type"] == "Error", 3)
    chk.ok(m is not None and m["payload"]["code"] == "forbidden", "non-admin Ban -> forbidden", repr(m))
    adm.close()
    other.close()


def t_kick(st, chk):
    rid = st.create_room("kicks", ["admin"])
    adm = st.ws(rid, "admin")
    v = st.ws(rid, "kickme")
    adm.send_json({"type": "Kick", "payload": {"user_id": "kickme", "reason": "off topic"}})
    closed_by_server(chk, v, 4409, "WebSocket kick")
    chk.eq(refused(st, rid, "kickme"), 0, "a kicked user may reconnect")
    v = st.ws(rid, "kickme")
    rep = st.ctl("kick", {"room_id": rid, "user_id": "kickme", "reason": "control"})
    chk.ok(rep.get("ok") and rep["result"].get("disconnected") == 1, "control kick -> disconnected 1", repr(rep))
    closed_by_server(chk, v, 4409, "control kick")
    reasons = stack.wait_until(lambda: session_reasons(st, rid), "both sessions recorded as kicked",
                               lambda x: x.count("kicked") >= 2)
    chk.eq(reasons.count("kicked"), 2, "sessions closed as kicked")
    adm.close()


def t_room_close(st, chk):
    rid = st.create_room("closing", [])
    r = st.client.get("/management/rooms/%s" % rid)
    chk.ok(r.json and r.json.get("current_users") == 0 and r.json.get("live") is True,
           "REST room with chatd up and nobody in it: current_users 0, live", r.snippet())
    r = st.client.get("/management/rooms")
    mine = [x for x in (r.json or {}).get("rooms", []) if x.get("room_id") == rid]
    chk.ok(mine and mine[0].get("current_users") == 0, "room list: empty live room shows 0", r.snippet())
    a = st.ws(rid, "a")
    b = st.ws(rid, "b")
    rep = st.ctl("stats", {"room_id": rid})
    chk.ok(rep.get("ok") and rep["result"].get("current_users") == 2 and rep["result"].get("connections") == 2,
           "control stats: 2 users, 2 connections", repr(rep))
    h = st.ctl("health")
    chk.ok(h.get("ok") and h["result"].get("connections", 0) >= 2, "control health counts connections", repr(h))
    r = st.client.get("/management/rooms/%s" % rid)
    chk.ok(r.json and r.json.get("current_users") == 2, "REST room shows live current_users", r.snippet())
    r = st.client.get("/management/rooms")
    mine = [x for x in (r.json or {}).get("rooms", []) if x.get("room_id") == rid]
    chk.ok(mine and mine[0].get("current_users") == 2, "room list shows live current_users", r.snippet())
    r = st.client.delete("/management/rooms/%s" % rid)
    chk.ok(r.status in (200, 204), "DELETE room", "status %s" % r.status)
    closed_by_server(chk, a, 4404, "room close (a)")
    closed_by_server(chk, b, 4404, "room close (b)")
    reasons = stack.wait_until(lambda: session_reasons(st, rid), "both sessions recorded as closed",
                               lambda x: len(x) >= 2 and all(x))
    chk.eq(reasons, ["room_closed", "room_closed"], "sessions closed as room_closed")
    r = st.client.post("/management/rooms/%s/events" % rid, {"event_type": "late"})
    chk.status(r, 409, "event to a closed room -> 409")


def t_slow_reader(st, chk):
    """A client that stops reading (straight to chatd, small receive
    buffer): its low queue drops oldest and says so; a CustomEvent sent
    after the flood arrives ahead of the queued chat; chatd stays up."""
    rid = st.create_room("flood", ["admin"])
    adm = st.ws(rid, "admin", direct=True)
    slow = cs.WSClient.connect(st.chatd_target, st.chatd_port, st.ws_path(rid, "slow"))
    slow.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    text = "f" * 3000
    n = 0
    backed_up = False
    # Flood in batches until chatd holds a backlog for the slow reader
    # (kernel buffers on loopback take a few MB first).
    for _ in range(20):
        for _ in range(200):
            adm.send_json({"type": "Message", "payload": {"content": "%d %s" % (n, text)}})
            n += 1
        want = "%d " % (n - 1)
        last = adm.wait_for(lambda m: m["type"] == "Message" and m["payload"]["content"].startswith(want), 30)
        if last is None:
            break
        q = st.ctl("stats", {"room_id": rid}).get("result", {})
        if q.get("queued_low", 0) >= 200:
            backed_up = True
            break
    chk.ok(backed_up, "a backlog built up for the slow reader", "%d messages sent" % n)
    # Past QUEUE_LOW_FRAMES (256): the oldest queued chat must go.
    for _ in range(400):
        adm.send_json({"type": "Message", "payload": {"content": "%d %s" % (n, text)}})
        n += 1
    want = "%d " % (n - 1)
    adm.wait_for(lambda m: m["type"] == "Message" and m["payload"]["content"].startswith(want), 30)
    adm.send_json({"type": "CustomEvent", "payload": {"event_type": "urgent", "payload": {}}})
    ev = adm.wait_for(lambda m: m["type"] == "CustomEvent", 5)
    rep = st.ctl("stats", {"room_id": rid})
    q = rep.get("result", {})
    chk.ok(q.get("queued_low", 10 ** 9) <= 256 + 1, "slow reader's low queue stays bounded", repr(q))
    # now read everything the slow client gets
    msgs = []
    while True:
        try:
            msgs.append(slow.recv_json(2))
        except (cs.Timeout, cs.Closed):
            break
    types = [m["type"] for m in msgs]
    chk.ok("Error" in types and any(m["type"] == "Error" and m["payload"].get("code") == "messages_dropped"
                                    and m["payload"].get("dropped", 0) > 0 for m in msgs),
           "slow reader told about dropped messages", repr(types[:5]))
    if ev and "CustomEvent" in types:
        i = types.index("CustomEvent")
        later_chat = [m for m in msgs[i + 1:] if m["type"] == "Message"]
        chk.ok(len(later_chat) > 0, "CustomEvent arrived ahead of queued chat",
               "%d chat frames after it" % len(later_chat))
    else:
        chk.ok(False, "slow reader got the CustomEvent", repr(types[-5:]))
    chat = [m for m in msgs if m["type"] == "Message"]
    chk.ok(len(chat) < n, "some chat was dropped, not buffered without bound", "%d of %d" % (len(chat), n))
    seqs = [m["payload"]["seq"] for m in chat]
    chk.eq(seqs, sorted(seqs), "what the slow reader got is in seq order")
    slow.close()
    adm.close()


def t_big_room(st, chk):
    """More members than one fan-out slice (ROOM_FANOUT_SLICE, 16): chat goes out in slices
    and still reaches everyone in seq order; a CustomEvent reaches all."""
    rid = st.create_room("big", ["admin"])
    members = [st.ws(rid, "m%03d" % i, direct=True, welcome=False) for i in range(300)]
    adm = st.ws(rid, "admin", direct=True)
    for i in range(5):
        adm.send_json({"type": "Message", "payload": {"content": "wave %d" % i}})
    adm.send_json({"type": "CustomEvent", "payload": {"event_type": "all", "payload": {}}})
    complete = ordered = events = 0
    for ws in members:
        got, ev = [], None
        deadline = time.monotonic() + 10
        while (len(got) < 5 or ev is None) and time.monotonic() < deadline:
            try:
                m = ws.recv_json(max(0.01, deadline - time.monotonic()))
            except (cs.Timeout, cs.Closed):
                break
            if m["type"] == "Message":
                got.append(m["payload"]["seq"])
            elif m["type"] == "CustomEvent":
                ev = m
        complete += len(got) == 5
        ordered += got == sorted(got)
        events += ev is not None
    chk.eq(complete, 300, "all 300 members got all 5 messages")
    chk.eq(ordered, 300, "in seq order")
    chk.eq(events, 300, "all 300 got the CustomEvent")

    # A burst of 20 chat messages in one TCP write: each fan-out pass hands
    # every member all the frames waiting, and they leave in one write per
    # member, so frames per write is well above one (one frame per write
    # per member would make it about 1).
    before = st.ctl("health")["result"]
    adm.send_raw(b"".join(wsc.frame(json.dumps(
        {"type": "Message", "payload": {"content": "burst %d" % i}})) for i in range(20)))
    complete = ordered = 0
    for ws in members:
        got = []
        deadline = time.monotonic() + 10
        while len(got) < 20 and time.monotonic() < deadline:
            try:
                m = ws.recv_json(max(0.01, deadline - time.monotonic()))
            except (cs.Timeout, cs.Closed):
                break
            if m["type"] == "Message":
                got.append(m["payload"]["content"])
        complete += len(got) == 20
        ordered += got == ["burst %d" % i for i in range(20)]
    chk.eq(complete, 300, "all 300 members got the 20-message burst")
    chk.eq(ordered, 300, "burst in order")
    after = st.ctl("health")["result"]
    frames = after["frames_sent"] - before["frames_sent"]
    writes = after["frame_writes"] - before["frame_writes"]
    chk.ok(frames >= 20 * 300, "frames_sent counts every delivery", "%d frames" % frames)
    chk.ok(writes > 0 and frames >= 2 * writes, "queued frames leave in batched writes",
           "%d frames in %d writes" % (frames, writes))
    for ws in members + [adm]:
        ws.abort()


def t_room_backlog(st, chk):
    """A flood into a room bigger than one fan-out slice: the room's pending
    fan-out stays bounded (QUEUE_LOW_FRAMES, default 256) and nothing is
    lost silently: what a reading member receives plus what it is told it
    missed equals what was sent."""
    rid = st.create_room("backlog", ["admin"])
    idle = [st.ws(rid, "i%03d" % i, direct=True, welcome=False) for i in range(300)]
    reader = st.ws(rid, "reader", direct=True)
    adm = st.ws(rid, "admin", direct=True)
    sent, peak = 0, 0
    for _ in range(8):
        for _ in range(500):
            adm.send_json({"type": "Message", "payload": {"content": "b%d" % sent}})
            sent += 1
        q = st.ctl("stats", {"room_id": rid}).get("result", {})
        peak = max(peak, q.get("fanout_pending", 10 ** 9))
    chk.ok(peak <= 256, "room fan-out backlog stays bounded", "peak %d" % peak)
    got, dropped = 0, 0
    deadline = time.monotonic() + 30
    while got + dropped < sent and time.monotonic() < deadline:
        try:
            m = reader.recv_json(max(0.01, deadline - time.monotonic()))
        except (cs.Timeout, cs.Closed):
            break
        if m["type"] == "Message":
            got += 1
        elif m["type"] == "Error" and m["payload"].get("code") == "messages_dropped":
            dropped += m["payload"].get("dropped", 0)
    chk.eq(got + dropped, sent, "received + reported dropped == sent (%d + %d)" % (got, dropped))
    for ws in idle + [reader, adm]:
        ws.abort()


def t_control_half_close(st, chk):
    """The control socket as an operator drives it with
    `printf ... | socat - UNIX-CONNECT:...`: two requests, then a
    half-close; both replies arrive, one line each, nothing in between."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(5)
    try:
        s.connect(st.control_socket)
        s.sendall(b'{"v":1,"id":7,"type":"health"}\n{"v":1,"id":8,"type":"rooms"}\n')
        s.shutdown(socket.SHUT_WR)
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    finally:
        s.close()
    lines = data.decode("utf-8").split("\n")
    chk.eq(lines[-1], "", "the last reply ends with a newline")
    replies = [json.loads(x) for x in lines[:-1]]
    chk.eq([(r.get("id"), r.get("ok")) for r in replies], [(7, True), (8, True)],
           "both replies after a half-close, one per line")


def t_control_publish(st, chk):
    """publish on the control socket applies the event-type rule that
    chat-api, chatctl and the WebSocket apply: a bad type is refused with
    bad_request, nothing is stored or sent; a good one reaches the member."""
    rid = st.create_room("ctl-publish", [])
    u = st.ws(rid, "user")
    for bad in ("bad type!", "a/b", "x" * 65, ""):
        rep = st.ctl("publish", {"room_id": rid, "event_type": bad, "payload": {}})
        err = rep.get("error") or {}
        chk.ok(rep.get("ok") is False and err.get("code") == "bad_request",
               "control publish %r -> bad_request" % bad[:10], repr(rep))
    chk.ok("A-Z a-z 0-9 _ . -" in (st.ctl("publish", {"room_id": rid, "event_type": "no way"})
                                   .get("error") or {}).get("message", ""),
           "the refusal names the rule")
    rep = st.ctl("publish", {"room_id": rid, "event_type": "red.packet-2_x", "payload": {"n": 1}})
    chk.ok(rep.get("ok") is True and rep["result"].get("recipients") == 1, "a valid event type is published",
           repr(rep))
    m = u.wait_for(lambda m: m["type"] == "CustomEvent", 3)
    chk.ok(m is not None and m["payload"].get("event_type") == "red.packet-2_x",
           "the member gets only the valid event", repr(u.seen[-3:]))
    h = st.client.get("/management/sync/chat-history/%s" % rid)
    kinds = [x.get("event_type") for x in (h.json or {}).get("messages", [])]
    chk.eq(kinds, ["red.packet-2_x"], "only the valid event is stored")
    u.close()


def t_close_reason_cut(st, chk):
    """A close reason longer than a close frame holds (123 bytes after the
    code) is cut at a character boundary, not refused or split."""
    rid = st.create_room("long-reason", [])
    v = st.ws(rid, "victim")
    rep = st.ctl("kick", {"room_id": rid, "user_id": "victim", "reason": "é" * 150})
    chk.ok(rep.get("ok") and rep["result"].get("disconnected") == 1, "control kick, long reason", repr(rep))
    code, reason = v.wait_closed(3)
    chk.eq(code, 4409, "closed with 4409")
    # "kicked: " is 8 bytes, "é" 2: 57 of them fit in 123 bytes.
    chk.eq(reason, "kicked: " + "é" * 57, "the reason cut to 122 bytes, whole characters")


_ran_once = set()


def once(fn):
    """Runs fn on the first front only: it talks to chatd directly, so the
    web server in front makes no difference and the time is better spent
    elsewhere."""
    def wrapper(st, chk):
        if fn.__name__ in _ran_once:
            return
        _ran_once.add(fn.__name__)
        fn(st, chk)
    return wrapper


if __name__ == "__main__":
    sys.exit(cs.main_for_fronts("chatd admin features", [
        ("custom events", t_custom_event),
        ("bans", t_bans),
        ("kicks", t_kick),
        ("room close", t_room_close),
        ("slow reader", once(t_slow_reader)),
        ("big room", once(t_big_room)),
        ("room backlog", once(t_room_backlog)),
        ("control half-close", once(t_control_half_close)),
        ("control publish", once(t_control_publish)),
        ("close reason cut", once(t_close_reason_cut)),
    ]))
