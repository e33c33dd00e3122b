#!/usr/bin/python3
"""Integration test: chatd's WebSocket protocol through real web servers
(lighttpd, Apache and nginx, each when installed; CHATD_FRONTS or the
command line picks others): broadcast with every field, spoofed identity
ignored, handshake refusals, bad input, fragmentation, 1009, protocol
edges (1002, 1007, subprotocols), rate limit with admin exemption,
RoomStats coalescing, connection caps, control-socket idle timeout, SIGTERM.
Exit 0 on success, 1 on failure, 77 if no web server is installed."""
import json
import os
import socket
import struct
import sys
import threading
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import chatd_stack as cs  # noqa: E402
import wsclient as wsc  # noqa: E402
from chatd_stack import HandshakeError  # noqa: E402

INTERVAL = 0.3  # USER_MESSAGE_INTERVAL_SECS, short for speed
COALESCE_WINDOW = 1.0  # chatd's RoomStats window (COALESCE_WINDOW_MS)


def refused(st, room_id, user_id, **kw):
    """The HTTP status of a refused handshake (0 if it was accepted)."""
    try:
        ws = st.ws(room_id, user_id, welcome=False, **kw)
    except HandshakeError as e:
        return e.status
    ws.close()
    return 0


def t_broadcast(st, chk):
    rid = st.create_room("bcast", ["boss"])
    a = st.ws(rid, "alice", "Alice")
    w = a.welcome["payload"]
    chk.eq(w.get("user_id"), "alice", "UserJoined user_id")
    chk.eq(w.get("nickname"), "Alice", "UserJoined nickname")
    chk.eq(w.get("room_id"), rid, "UserJoined room_id")
    chk.eq(w.get("is_admin"), False, "UserJoined is_admin")
    chk.eq(w.get("current_users"), 1, "UserJoined current_users")
    chk.ok("peak_users" in w and "last_seq" in w, "UserJoined peak_users and last_seq")
    b = st.ws(rid, "bob")
    chk.eq(b.welcome["payload"].get("nickname"), "bob", "nickname defaults to user_id")
    boss = st.ws(rid, "boss", "The Boss")
    chk.eq(boss.welcome["payload"].get("is_admin"), True, "admin from admin_user_ids")
    t0 = time.time()
    a.send_json({"type": "Message", "payload": {"content": "héllo 你好", "from": "mallory",
                                                "nickname": "M", "is_admin": True}})
    got = {}
    for name, ws in (("alice", a), ("bob", b), ("boss", boss)):
        m = ws.wait_for(lambda m: m["type"] == "Message", 3)
        got[name] = m
        chk.ok(m is not None, "%s receives the Message" % name)
    m = got["bob"]
    if m:
        p = m["payload"]
        chk.eq(p.get("content"), "héllo 你好", "content")
        chk.eq(p.get("from"), "alice", "from is the sender, not the spoofed one")
        chk.eq(p.get("nickname"), "Alice", "nickname from the connection")
        chk.eq(p.get("is_admin"), False, "spoofed is_admin ignored")
        chk.eq(p.get("room_id"), rid, "room_id")
        chk.ok(isinstance(p.get("id"), int) and p["id"] > 0, "stored message id", repr(p.get("id")))
        chk.eq(p.get("seq"), 1, "seq starts at 1")
        chk.ok(abs(p.get("timestamp", 0) - t0) < 5, "timestamp (s)", repr(p.get("timestamp")))
        chk.ok(abs(p.get("timestamp_ms", 0) / 1000.0 - t0) < 5, "timestamp_ms")
        chk.eq(got["alice"]["payload"] if got["alice"] else None, p, "sender gets the same frame")
    boss.send_json({"type": "Message", "payload": {"content": "from the boss"}})
    m = b.wait_for(lambda m: m["type"] == "Message", 3)
    chk.ok(m and m["payload"]["is_admin"] is True and m["payload"]["seq"] == 2,
           "admin message: is_admin true, seq 2", repr(m))
    # stored before anyone saw it
    r = st.client.get("/management/sync/chat-history/%s" % rid)
    contents = [x.get("content") for x in (r.json or {}).get("messages", [])]
    chk.eq(contents, ["héllo 你好", "from the boss"], "both messages in chat history")
    # a fragmented message is reassembled
    boss.send_fragmented('{"type":"Message","payload":{"content":"in three pieces"}}', 3)
    m = b.wait_for(lambda m: m["type"] == "Message", 3)
    chk.ok(m and m["payload"]["content"] == "in three pieces", "fragmented message reassembled", repr(m))
    for ws in (a, b, boss):
        ws.close()


def t_refusals(st, chk):
    rid = st.create_room("refusals", [])
    chk.eq(refused(st, "00000000-0000-4000-8000-000000000000", "u1"), 404, "unknown room -> 404")
    chk.eq(refused(st, rid, None), 400, "missing user_id -> 400")
    chk.eq(refused(st, rid, ""), 400, "empty user_id -> 400")
    chk.eq(refused(st, rid, "x" * 129), 400, "129-byte user_id -> 400")
    chk.eq(refused(st, rid, "u1", nickname="n" * 129), 400, "129-byte nickname -> 400")
    chk.eq(refused(st, rid, "u1"), 0, "valid handshake accepted")
    r = st.client.post("/management/rooms/%s/bans" % rid, {"user_id": "troll", "reason": "spam"})
    chk.status(r, 201, "ban via REST -> 201")
    chk.eq(refused(st, rid, "troll"), 403, "banned user -> 403")
    r = st.client.delete("/management/rooms/%s" % rid)
    chk.ok(r.status in (200, 204), "DELETE room", "status %s" % r.status)
    chk.eq(refused(st, rid, "u1"), 404, "closed room -> 404")


def t_bad_input(st, chk):
    rid = st.create_room("bad-input", [])
    a = st.ws(rid, "bad")
    a.drain(0.2)

    def err(send, what, code):
        send()
        m = a.wait_for(lambda m: m["type"] == "Error", 3)
        chk.ok(m is not None and m["payload"].get("code") == code, "%s -> Error %s" % (what, code), repr(m))
        return m

    err(lambda: a.send_text("{not json"), "malformed JSON", "invalid_json")
    err(lambda: a.send_text("[1,2]"), "a JSON array", "invalid_json")
    err(lambda: a.send_json({"type": "Dance", "payload": {}}), "unknown type", "unknown_type")
    err(lambda: a.send_json({"type": "Message", "payload": {"content": ""}}), "empty content", "empty_content")
    err(lambda: a.send_json({"type": "Message", "payload": {"content": "x" * 4097}}), "4097-byte content",
        "content_too_large")
    err(lambda: a.send_raw(wsc.frame(b'{"type":"Message","payload":{"content":"\xff\xfe"}}')),
        "invalid UTF-8", "invalid_utf8")
    err(lambda: a.send_binary(b"\x00\x01binary"), "binary frame", "binary_not_supported")
    err(lambda: a.send_json({"type": "Kick", "payload": {"user_id": "x"}}), "Kick from a non-admin", "forbidden")
    a.send_json({"type": "Message", "payload": {"content": "x" * 4096}})
    m = a.wait_for(lambda m: m["type"] == "Message", 3)
    chk.ok(m is not None and len(m["payload"]["content"]) == 4096, "4096-byte content accepted after errors")
    # a frame beyond MAX_FRAME_BYTES (65536) closes with 1009
    a.send_text('{"type":"Message","payload":{"content":"' + "y" * 70000 + '"}}')
    code, reason = a.wait_closed(3)
    chk.eq(code, 1009, "oversized frame closes with 1009")
    b = st.ws(rid, "bad2")
    b.send_fragmented('{"type":"Message","payload":{"content":"' + "z" * 70000 + '"}}', 5)
    code, reason = b.wait_closed(3)
    chk.eq(code, 1009, "oversized fragmented message closes with 1009")
    # A frame announcing more than chatd reads and drops (1 MiB) is cut at
    # once: 4 MiB announced, 1,000 bytes sent, and the close comes anyway.
    d = st.ws(rid, "bad3")
    d.drain(0.2)
    d.send_raw(wsc.frame(b"x" * (4 * 1024 * 1024))[:14 + 1000])  # 14: header with 8-byte length and mask
    code, reason = d.wait_closed(3)
    chk.eq(code, 1009, "a frame announcing 4 MiB closes with 1009 without being read")


def send_in_background(sock, data):
    """sendall(data) on a thread; returns the thread. The socket must stay
    open until it ends (its descriptor could be reused otherwise)."""
    def run():
        try:
            sock.sendall(data)
        except OSError:
            pass  # chatd cut the connection: what some checks expect
    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


def t_protocol_edges(st, chk):
    """RFC 6455 edges, straight to chatd and through the web server: the
    close code the client gets for each."""
    rid = st.create_room("edges", [])
    for direct in (True, False):
        via = "direct" if direct else "via the web server"

        def fresh(user):
            ws = st.ws(rid, user, direct=direct)
            ws.drain(0.2)
            return ws

        # RFC 6455 5.1: an unmasked client frame closes the connection
        # (1002) and is not acted on; masked ones around it are.
        ws, other = fresh("bare"), fresh("watcher")
        ws.send_json({"type": "Message", "payload": {"content": "masked before"}})
        m = other.wait_for(lambda m: m["type"] == "Message", cs.stack.WAIT)
        chk.ok(m is not None and m["payload"]["content"] == "masked before",
               "%s: a masked message is broadcast" % via, repr(m))
        ws.send_raw(wsc.frame('{"type":"Message","payload":{"content":"bare"}}', mask=False))
        code, reason = ws.wait_closed(cs.stack.WAIT)
        chk.eq(code, 1002, "%s: an unmasked text frame -> 1002" % via)
        # chatd is done with "bare" once its session ends: nothing came after.
        cs.stack.wait_until(lambda: st.ctl("health").get("result", {}).get("connections"),
                            "the unmasked client gone", lambda n: n == 1)
        other.send_json({"type": "Message", "payload": {"content": "after"}})
        m = other.wait_for(lambda m: m["type"] == "Message", cs.stack.WAIT)
        chk.ok(m is not None and m["payload"]["content"] == "after",
               "%s: the unmasked message was not broadcast" % via, repr(m))
        other.close()
        for what, raw in (("ping", wsc.frame(b"hi", wsc.OP_PING, mask=False)),
                          ("close", wsc.frame(struct.pack("!H", 1000), wsc.OP_CLOSE, mask=False))):
            ws = fresh("bare" + what)
            ws.send_raw(raw)
            code, reason = ws.wait_closed(cs.stack.WAIT)
            chk.eq(code, 1002, "%s: an unmasked %s -> 1002" % (via, what))

        ws = fresh("utf8")
        ws.send_raw(wsc.frame(struct.pack("!H", 1000) + b"bye \xff\xfe", wsc.OP_CLOSE))
        code, reason = ws.wait_closed(cs.stack.WAIT)
        chk.eq(code, 1007, "%s: a close reason that is not UTF-8 -> 1007" % via)
        ws = fresh("goodbye")
        ws.send_raw(wsc.frame(struct.pack("!H", 4000) + "bye ü".encode(), wsc.OP_CLOSE))
        chk.eq(ws.wait_closed(cs.stack.WAIT), (4000, "bye ü"), "%s: a good close is echoed" % via)
        ws = fresh("shortclose")
        ws.send_raw(wsc.frame(b"\x03", wsc.OP_CLOSE))
        code, reason = ws.wait_closed(cs.stack.WAIT)
        chk.eq(code, 1002, "%s: a close frame with a one-byte body -> 1002" % via)
        ws = fresh("bigping")
        ws.send_raw(wsc.frame(b"p" * 126, wsc.OP_PING))
        code, reason = ws.wait_closed(cs.stack.WAIT)
        chk.eq(code, 1002, "%s: a ping of 126 bytes -> 1002" % via)
        ws = fresh("hugeping")
        ws.send_raw(wsc.frame(b"p" * 70000, wsc.OP_PING))
        code, reason = ws.wait_closed(cs.stack.WAIT)
        chk.eq(code, 1002, "%s: a ping with a 64-bit length -> 1002" % via)
        ws = fresh("badop")
        ws.send_raw(wsc.frame(b"x", 3))
        code, reason = ws.wait_closed(cs.stack.WAIT)
        chk.eq((code, reason), (1002, "bad opc"), "%s: an unknown opcode keeps lws's own 1002" % via)

        # A message far over the limit, sent while the client reads: the
        # 1009 comes at once and chatd reads and drops the rest, so the
        # close frame reaches the client before the connection ends.
        ws = fresh("huge")
        sender = send_in_background(ws.sock, wsc.frame(b"x" * (4 * 1024 * 1024)))
        code, reason = ws.read_close(cs.stack.WAIT)
        sender.join(cs.stack.WAIT)
        ws.abort()
        chk.eq(code, 1009, "%s: a 4 MiB message gets its 1009 close frame" % via)

        if direct:
            # Frames sent with the request itself, before the 101.
            ws = wsc.WSClient.connect(st.chatd_target, st.chatd_port, st.ws_path(rid, "eager"), None,
                                      early=wsc.frame('{"type":"Message","payload":{"content":"x"}}',
                                                      mask=False))
            code, reason = ws.wait_closed(cs.stack.WAIT)
            chk.eq(code, 1002, "direct: an unmasked frame sent with the request -> 1002")
            ws = wsc.WSClient.connect(st.chatd_target, st.chatd_port, st.ws_path(rid, "eager2"), None,
                                      early=wsc.frame('{"type":"Message","payload":{"content":"early"}}'))
            m = ws.wait_for(lambda m: m["type"] == "Message", cs.stack.WAIT)
            chk.ok(m is not None and m["payload"]["content"] == "early",
                   "direct: a masked frame sent with the request is taken", repr(m))
            ws.close()

        # Sec-WebSocket-Protocol: chatd is selected when offered; any other
        # list is refused with a status and the JSON error, not dropped.
        host, port = (st.chatd_target, st.chatd_port) if direct else ("127.0.0.1", st.port)
        path = st.ws_path(rid, "sub")
        for offer, want in (("chatd", "chatd"), ("v1.other, chatd", "chatd"), (None, None)):
            ws = wsc.WSClient.connect(host, port, path,
                                      {"Sec-WebSocket-Protocol": offer} if offer else None)
            chk.eq(ws.headers.get("sec-websocket-protocol"), want,
                   "%s: offer %r -> subprotocol %r" % (via, offer, want))
            ws.close()
        for offer in ("other", "other, chatd2", "x" * 200, ", chatd"):
            try:
                wsc.WSClient.connect(host, port, path, {"Sec-WebSocket-Protocol": offer}).close()
                status, body = 101, b""
            except HandshakeError as e:
                status, body = e.status, e.body
            try:
                got = json.loads(body.decode("utf-8"))["error"]["code"]
            except (ValueError, KeyError, TypeError):
                got = body[:80]
            chk.eq((status, got), (400, "unsupported_subprotocol"),
                   "%s: offer %r -> 400 unsupported_subprotocol" % (via, offer[:20]))
        try:
            st.ws("00000000-0000-4000-8000-000000000000", "u1", direct=direct)
            got = (101, None)
        except HandshakeError as e:
            try:
                got = (e.status, json.loads(e.body.decode("utf-8"))["error"]["code"])
            except (ValueError, KeyError, TypeError):
                got = (e.status, e.body[:80])
        chk.eq(got, (404, "room_not_found"), "%s: a refused handshake answers the JSON error" % via)


def t_rate_limit(st, chk):
    rid = st.create_room("rate", ["admin"])
    u = st.ws(rid, "chatty")
    u2 = st.ws(rid, "chatty")  # same user, second connection: shares the limit
    adm = st.ws(rid, "admin")
    for ws in (u, u2, adm):
        ws.drain(0.2)
    u.send_json({"type": "Message", "payload": {"content": "one"}})
    chk.ok(u.wait_for(lambda m: m["type"] == "Message", 3) is not None, "first message accepted")
    u2.send_json({"type": "Message", "payload": {"content": "two"}})
    m = u2.wait_for(lambda m: m["type"] == "Error", 3)
    chk.ok(m is not None and m["payload"].get("code") == "rate_limited", "second message within the interval "
           "(other connection of the same user) -> rate_limited", repr(m))
    if m:
        ra = m["payload"].get("retry_after_ms")
        chk.ok(isinstance(ra, int) and 0 < ra <= INTERVAL * 1000, "retry_after_ms within the interval", repr(ra))
    time.sleep(INTERVAL + 0.05)  # waits out the rate limit: the behaviour under test
    u2.send_json({"type": "Message", "payload": {"content": "three"}})
    m = u2.wait_for(lambda m: m["type"] in ("Message", "Error") and m["payload"].get("content") != "one", 3)
    chk.ok(m is not None and m["type"] == "Message" and m["payload"]["content"] == "three",
           "accepted again after the interval", repr(m))
    for i in range(5):
        adm.send_json({"type": "Message", "payload": {"content": "admin %d" % i}})
    got = []
    deadline = time.monotonic() + 3
    while len(got) < 5 and time.monotonic() < deadline:
        m = adm.wait_for(lambda m: m["type"] in ("Message", "Error"), 1)
        if m and (m["type"] == "Error" or m["payload"]["from"] == "admin"):
            got.append(m)
    chk.ok(len(got) == 5 and all(m["type"] == "Message" for m in got), "admin exempt from the rate limit",
           repr([m["type"] for m in got]))
    seqs = [m["payload"]["seq"] for m in got if m["type"] == "Message"]
    chk.eq(seqs, sorted(seqs), "broadcast order is seq order")
    r = st.client.get("/management/sync/chat-history/%s" % rid)
    contents = [x.get("content") for x in (r.json or {}).get("messages", [])]
    chk.ok("two" not in contents, "rate-limited message not stored", repr(contents))
    for ws in (u, u2, adm):
        ws.close()


def stats_pushes(watcher, users):
    """The RoomStats pushes watcher gets until one counts users (waiting
    generously), then any that still come within the next window and a
    half: their payloads in order, and when the one counting users came."""
    pushes, final_at = [], None
    deadline = time.monotonic() + cs.stack.WAIT
    while time.monotonic() < deadline:
        m = watcher.wait_for(lambda m: m["type"] == "RoomStats", max(0.01, deadline - time.monotonic()))
        if m is None:
            break
        pushes.append(m["payload"])
        if m["payload"]["current_users"] == users:
            final_at = time.monotonic()
            break
    while True:
        m = watcher.wait_for(lambda m: m["type"] == "RoomStats", COALESCE_WINDOW * 1.5)
        if m is None:
            return pushes, final_at or time.monotonic()
        pushes.append(m["payload"])


def t_coalesce(st, chk):
    """At most one RoomStats push a window (leading edge, then trailing).
    The pushes for a burst of changes go out between its start and the
    push with the final count, a window apart: over D seconds at most
    2 + floor(D / window) of them (one of slack), however slow the
    machine; a push per change would make 20."""
    rid = st.create_room("coalesce", [])
    watcher = st.ws(rid, "watcher")
    watcher.drain(COALESCE_WINDOW * 1.2)  # its own join push, then a quiet window
    t0 = time.monotonic()
    clients = [st.ws(rid, "joiner%02d" % i, welcome=False) for i in range(20)]
    pushes, final_at = stats_pushes(watcher, 21)
    allowed = 2 + int((final_at - t0) / COALESCE_WINDOW)
    chk.ok(1 <= len(pushes) <= allowed, "joins: at most one RoomStats push a window",
           "%d pushes for 20 joins over %.2f s" % (len(pushes), final_at - t0))
    chk.ok(pushes and pushes[-1]["current_users"] == 21, "final count 21",
           repr(pushes and pushes[-1]["current_users"]))
    chk.eq(sum(p.get("joined_count", 0) for p in pushes), 20, "joined_count adds up to 20")
    t0 = time.monotonic()
    for c in clients:
        c.close()
    pushes, final_at = stats_pushes(watcher, 1)
    allowed = 2 + int((final_at - t0) / COALESCE_WINDOW)
    chk.ok(1 <= len(pushes) <= allowed, "leaves: at most one RoomStats push a window",
           "%d pushes for 20 leaves over %.2f s" % (len(pushes), final_at - t0))
    chk.ok(pushes and pushes[-1]["current_users"] == 1, "after leaves: count 1", repr(pushes[-1:]))
    r = st.client.get("/management/sync/session-history/%s?limit=100" % rid)
    chk.eq((r.json or {}).get("total"), 21, "every join is a session row")
    watcher.close()


def t_shutdown(st, chk):
    rid = st.create_room("shutdown", [])
    a = st.ws(rid, "stayer")
    a.drain(0.2)
    rc = st.stop_chatd()
    chk.eq(rc, 0, "chatd exits 0 on SIGTERM")
    code, reason = a.wait_closed(3)
    chk.eq(code, 1001, "clients get close 1001")
    chk.eq(reason, "server shutdown", "close reason")
    r = st.client.get("/management/sync/session-history/%s" % rid)
    reasons = [s.get("reason") for s in (r.json or {}).get("sessions", [])]
    chk.eq(reasons, ["server_shutdown"], "session closed as server_shutdown")
    st.start_chatd()
    b = st.ws(rid, "back")
    chk.ok(b.welcome is not None, "chatd serves again after a restart")
    b.close()


def cut_within(sock, seconds):
    """True if the peer ends the connection (EOF or reset) within seconds,
    reading and dropping whatever comes first; False on a timeout."""
    deadline = time.monotonic() + seconds
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            sock.settimeout(left)
            if not sock.recv(4096):
                return True
    except socket.timeout:
        return False
    except OSError:
        return True


def t_control_idle(st, chk):
    """CONTROL_IDLE_TIMEOUT_SECONDS is 2: a silent control connection and
    one trickling an unfinished line are closed; one sending a request
    every second outlives the timeout."""
    def ctl_conn():
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(10)
        s.connect(st.control_socket)
        return s

    s = ctl_conn()
    chk.ok(cut_within(s, 20), "a silent control connection is closed after CONTROL_IDLE_TIMEOUT_SECONDS")
    s.close()
    s = ctl_conn()
    s.sendall(b'{"v":1,')
    cut, deadline = False, time.monotonic() + 20
    while not cut and time.monotonic() < deadline:
        try:
            s.sendall(b" ")
        except OSError:
            cut = True
            break
        cut = cut_within(s, 0.5)
    chk.ok(cut, "an unfinished control line is closed though bytes keep coming")
    s.close()
    s = ctl_conn()
    answered = 0
    try:
        for i in range(4):  # 4 s of requests a second apart: the behaviour under test
            s.sendall(b'{"v":1,"id":%d,"type":"health"}\n' % i)
            data = b""
            while not data.endswith(b"\n"):
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
            answered += json.loads(data.decode("utf-8")).get("ok") is True
            time.sleep(1.0)
    except (OSError, ValueError):
        pass
    chk.eq(answered, 4, "a control connection in use outlives CONTROL_IDLE_TIMEOUT_SECONDS")
    chk.ok(cut_within(s, 20), "and is closed once it falls silent")
    s.close()


def t_limits(front, chk):
    """A second chatd with tiny caps: MAX_CONNECTIONS 503, per-address 429
    (addresses differ through X-Forwarded-For when talking to chatd
    directly from loopback, as the proxy would); keepalive and handshake
    timeouts; the control socket's idle timeout."""
    chk.section("%s: connection caps" % front)
    # On TCP: from 127.0.0.1, a trusted proxy by default (TRUSTED_PROXIES).
    st = cs.ChatdStack(front, {"MAX_CONNECTIONS": "3", "MAX_CONNECTIONS_PER_ADDRESS": "2",
                               "HANDSHAKE_TIMEOUT_SECONDS": "2", "WS_PING_INTERVAL_SECONDS": "1",
                               "WS_IDLE_TIMEOUT_SECONDS": "3", "CONTROL_IDLE_TIMEOUT_SECONDS": "2"},
                               chatd_tcp=True)
    try:
        with st:
            rid = st.create_room("caps", [])
            ws = [st.ws(rid, "a1", direct=True, headers={"X-Forwarded-For": "10.0.0.1"}),
                  st.ws(rid, "a2", direct=True, headers={"X-Forwarded-For": "10.0.0.1"})]
            chk.eq(refused(st, rid, "a3", direct=True, headers={"X-Forwarded-For": "10.0.0.1"}), 429,
                   "third connection from one address -> 429")
            chk.eq(refused(st, rid, "a3", direct=True, headers={"X-Forwarded-For": "9.9.9.9, 10.0.0.1"}), 429,
                   "the last X-Forwarded-For entry counts, not the first")
            ws.append(st.ws(rid, "b1", direct=True, headers={"X-Forwarded-For": "10.0.0.2"}))
            chk.eq(refused(st, rid, "c1", direct=True, headers={"X-Forwarded-For": "10.0.0.3"}), 503,
                   "MAX_CONNECTIONS reached -> 503")
            ws.pop().close()
            chk.eq(cs.stack.wait_until(
                lambda: refused(st, rid, "c1", direct=True, headers={"X-Forwarded-For": "10.0.0.3"}),
                "the freed slot", lambda status: status == 0),
                0, "a freed slot is usable again")
            for w in ws:
                w.close()
            cs.stack.wait_until(lambda: st.ctl("health").get("result", {}).get("connections"),
                                "every connection gone", lambda n: n == 0)
            # keepalive: a client answering pings stays; a silent one goes
            k = st.ws(rid, "pinger", direct=True)
            k.drain(4.0)
            chk.ok(not k.closed, "a client answering pings outlives WS_IDLE_TIMEOUT_SECONDS")
            # Cut by chatd (EOF or reset) before a deadline ten times the
            # timeout; a socket timeout means it was never cut.
            chk.ok(cut_within(k.sock, 30), "a client that answers no pings is cut after the idle timeout")
            # a handshake that never completes is cut
            s = cs.socket.create_connection(("127.0.0.1", st.chatd_port), timeout=10)
            s.sendall(b"GET /ws/rooms/x HTTP/1.1\r\nHost: a\r\n")
            chk.ok(cut_within(s, 20), "an unfinished handshake is cut after HANDSHAKE_TIMEOUT_SECONDS")
            s.close()
            t_control_idle(st, chk)
    except cs.StackError as exc:
        chk.ok(False, "stack start", str(exc))
    finally:
        complaints = st.stop()
        chk.ok(not complaints, "every process stopped", "; ".join(complaints))
        chk.group = ""


if __name__ == "__main__":
    sys.exit(cs.main_for_fronts("chatd WebSocket protocol", [
        ("broadcast", t_broadcast),
        ("refusals", t_refusals),
        ("bad input", t_bad_input),
        ("protocol edges", t_protocol_edges),
        ("rate limit", t_rate_limit),
        ("coalescing", t_coalesce),
        ("shutdown", t_shutdown),
    ], {"USER_MESSAGE_INTERVAL_SECS": str(INTERVAL)}, extra=t_limits))
