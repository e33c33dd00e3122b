#!/usr/bin/python3
"""Integration test: token mode (TOKEN_SECRET set). Tokens come from
chat-api's POST /management/rooms/{room_id}/tokens; chatd accepts a valid
one, refuses missing, expired, forged, wrong-user and wrong-room tokens
with 401, takes admin rights from the token alone, and closes a
connection whose token expires with 4401. Exit 0 on success, 1 on
failure, 77 if no web server is installed."""
import base64
import os
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import chatd_stack as cs  # noqa: E402
from chatd_stack import HandshakeError  # noqa: E402


def token(st, rid, user, admin=False, ttl=60, nickname=None):
    body = {"user_id": user, "admin": admin, "ttl_seconds": ttl}
    if nickname:
        body["nickname"] = nickname
    r = st.client.post("/management/rooms/%s/tokens" % rid, body)
    if r.status not in (200, 201):
        raise AssertionError("token route: %s %s" % (r.status, r.snippet()))
    return r.json["token"]


def status_of(st, rid, user, tok):
    try:
        ws = st.ws(rid, user, welcome=False, **({"token": tok} if tok is not None else {}))
    except HandshakeError as e:
        return e.status
    ws.close()
    return 0


def t_tokens(st, chk):
    rid = st.create_room("tokens", ["listed_admin"])
    other = st.create_room("tokens-2", [])
    good = token(st, rid, "u1")
    ws = st.ws(rid, "u1", token=good)
    chk.eq(ws.welcome["payload"].get("is_admin"), False, "valid token accepted, not admin")
    ws.close()
    chk.eq(status_of(st, rid, "u1", None), 401, "missing token -> 401")
    chk.eq(status_of(st, rid, "u2", good), 401, "token of another user -> 401")
    chk.eq(status_of(st, other, "u1", good), 401, "token for another room -> 401")
    head, payload, sig = good.split(".")
    forged_payload = base64.urlsafe_b64encode(
        base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)).replace(b'"admin":false', b'"admin":true')
    ).decode().rstrip("=")
    chk.eq(status_of(st, rid, "u1", "%s.%s.%s" % (head, forged_payload, sig)), 401, "forged admin claim -> 401")
    chk.eq(status_of(st, rid, "u1", good[:-2] + ("AA" if not good.endswith("AA") else "BB")), 401,
           "bad signature -> 401")
    short = token(st, rid, "u1", ttl=1)
    time.sleep(2.1)  # waits out the one-second token: the behaviour under test
    chk.eq(status_of(st, rid, "u1", short), 401, "expired token -> 401")
    # admin rights only from the token
    ws = st.ws(rid, "listed_admin", token=token(st, rid, "listed_admin"))
    chk.eq(ws.welcome["payload"].get("is_admin"), False, "admin_user_ids alone gives no rights in token mode")
    ws.send_json({"type": "Kick", "payload": {"user_id": "x"}})
    m = ws.wait_for(lambda m: m["type"] == "Error", 3)
    chk.ok(m and m["payload"]["code"] == "forbidden", "its admin command -> forbidden", repr(m))
    ws.close()
    adm = st.ws(rid, "boss", token=token(st, rid, "boss", admin=True))
    chk.eq(adm.welcome["payload"].get("is_admin"), True, "admin claim gives admin rights")
    # expiry of a live connection
    # (expiry is in whole seconds: a 2 s token lives at least 1 s from
    # before it was issued; the wait for the close is ten times its life)
    t0 = time.monotonic()
    live = st.ws(rid, "u3", token=token(st, rid, "u3", ttl=2))
    code, reason = live.wait_closed(20)
    took = time.monotonic() - t0
    chk.eq(code, 4401, "live connection closed with 4401 when its token expires")
    chk.ok(took >= 1.0, "closed at expiry, not before", "%.2f s" % took)
    adm.close()


if __name__ == "__main__":
    sys.exit(cs.main_for_fronts("chatd token mode", [("tokens", t_tokens)],
                                {"TOKEN_SECRET": "it-token-secret-0123456789abcdef0123456789"},
                                default=("lighttpd-socket",)))
