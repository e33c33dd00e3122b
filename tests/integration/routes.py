"""
The route suite shared by every front (lighttpd, Apache, nginx; FastCGI and
SCGI): exercises every route of docs/api.md through the web server, with the
documented status codes, fields and error shapes.

run_all(stack, chk) runs everything against a started stack.Stack;
no_key_suite(client, chk) is the ADMIN_API_KEY-unset check.
History rows are loaded straight into the test's database (the stack's
testdb.Database: SQLite or PostgreSQL; schema: src/common/db_sql.c), keeping
the invariants chatd keeps:
per-room seq contiguous from 1 and rooms.last_seq / last_session_seq equal
to the highest seq.
"""

import json
import threading
import time
import urllib.parse
import uuid

import stack
import wsclient

ROOM_FIELDS = (
    "room_id",
    "room_name",
    "admin_user_ids",
    "created_at",
    "closed",
    "closed_at",
    "close_reason",
    "current_users",
    "peak_users",
    "live",
)

T0 = 1640995200  # the seed README's example window starts here

# Every documented route, with a placeholder room and user id.
def all_routes(room="00000000-0000-4000-8000-000000000000", user="u1"):
    r = "/management/rooms/" + room
    return [
        ("POST", "/management/rooms", {"room_name": "x"}),
        ("GET", "/management/rooms", None),
        ("GET", r, None),
        ("DELETE", r, None),
        ("POST", r + "/bans", {"user_id": user}),
        ("GET", r + "/bans", None),
        ("DELETE", r + "/bans/" + user, None),
        ("POST", r + "/events", {"event_type": "x", "payload": {}}),
        ("GET", "/management/health", None),
        ("GET", "/management/sync", None),
        ("POST", "/management/sync", None),
        ("GET", "/management/sync/rooms", None),
        ("GET", "/management/sync/chat-history/" + room, None),
        ("GET", "/management/sync/session-history/" + room, None),
    ]


def q(s):
    return urllib.parse.quote(s, safe="")


def create_room(c, chk, name, admins=None, what="create room"):
    body = {"room_name": name}
    if admins is not None:
        body["admin_user_ids"] = admins
    r = c.post("/management/rooms", body)
    if not chk.status(r, 201, "%s %r -> 201" % (what, name)):
        raise AssertionError("cannot create a room: %s" % r.snippet())
    return r.json


# ------------------------------------------------------------------ health


def t_health(st, chk):
    r = st.client.get("/management/health")
    chk.status(r, 200, "GET /management/health -> 200")
    j = r.json or {}
    chk.eq(j.get("status"), "degraded", "status is degraded while chatd is down")
    chk.ok(isinstance(j.get("version"), str) and j.get("version"), "version is a string")
    db = j.get("database") or {}
    chk.eq(db.get("ok"), True, "database.ok")
    chk.ok(isinstance(db.get("schema_version"), int) and db["schema_version"] >= 1, "database.schema_version")
    for k in ("rooms_open", "rooms_closed", "pending_sync_requests", "outbox_events"):
        chk.ok(isinstance(db.get(k), int), "database.%s is an integer" % k, repr(db.get(k)))
    cd = j.get("chatd") or {}
    chk.eq(cd.get("reachable"), False, "chatd.reachable is false (chatd absent)")
    chk.ok("application/json" in (r.header("Content-Type") or ""), "Content-Type is JSON", r.header("Content-Type"))
    live_check(st.client, chk, "with a key configured")


def live_check(c, chk, label):
    """The load balancer's liveness answer: no key needed, nothing revealed."""
    for key in (None, "wrong"):
        r = c.get("/management/health/live", key=key)
        chk.status(r, 200, "%s: GET /management/health/live (key %r) -> 200" % (label, key))
        chk.eq(r.json, {"status": "ok"}, "%s: liveness says ok and nothing else" % label)
    r = c.req("HEAD", "/management/health/live", key=None)
    chk.eq(r.status, 200, "%s: HEAD /management/health/live -> 200" % label)


# ------------------------------------------------------------------ auth


def t_auth(st, chk):
    c = st.client
    room = create_room(c, chk, "auth-room")["room_id"]
    for method, path, body in all_routes(room):
        r = c.req(method, path, body, key=None)
        chk.status(r, 401, "%s %s without key -> 401" % (method, path), "unauthorized")
        r = c.req(method, path, body, key=c.key + "x")
        chk.status(r, 401, "%s %s with a longer wrong key -> 401" % (method, path), "unauthorized")
    for bad in ("wrong", c.key[:-1], c.key.upper(), c.key + c.key, "", "x" * 4096):
        r = c.get("/management/rooms", key=bad)
        chk.status(r, 401, "wrong key %r -> 401" % bad, "unauthorized")
    # Header names are case-insensitive; the key itself is not.
    r = c.get("/management/rooms", key=None, headers={"x-api-key": c.key})
    chk.status(r, 200, "lower-case header name x-api-key accepted")


def no_key_suite(c, chk, label):
    """ADMIN_API_KEY unset or empty: every route answers 503, key or not."""
    for method, path, body in all_routes():
        for key in (None, "anything", ""):
            r = c.req(method, path, body, key=key)
            chk.status(
                r,
                503,
                "%s: %s %s (key %r) -> 503" % (label, method, path, key),
                "api_key_not_configured",
            )
    live_check(c, chk, label)


# ------------------------------------------------------------------ rooms


def check_room_object(chk, j, name, admins, what):
    for f in ROOM_FIELDS:
        chk.ok(isinstance(j, dict) and f in j, "%s has field %s" % (what, f), repr(j)[:200])
    if not isinstance(j, dict):
        return
    chk.eq(j.get("room_name"), name, "%s room_name" % what)
    chk.eq(j.get("admin_user_ids"), admins, "%s admin_user_ids" % what)
    try:
        uuid.UUID(j.get("room_id", ""))
        chk.ok(len(j["room_id"]) == 36, "%s room_id is a UUID" % what, j["room_id"])
    except (ValueError, TypeError, AttributeError):
        chk.ok(False, "%s room_id is a UUID" % what, repr(j.get("room_id")))
    chk.ok(isinstance(j.get("created_at"), int) and abs(j["created_at"] - time.time()) < 120,
           "%s created_at is now in Unix seconds" % what, repr(j.get("created_at")))
    chk.eq(j.get("closed"), False, "%s closed" % what)
    chk.eq(j.get("closed_at"), None, "%s closed_at" % what)
    chk.eq(j.get("close_reason"), None, "%s close_reason" % what)
    chk.eq(j.get("current_users"), None, "%s current_users null while chatd is down" % what)
    chk.ok(isinstance(j.get("peak_users"), int), "%s peak_users is an integer" % what)
    chk.eq(j.get("live"), False, "%s live false while chatd is down" % what)


def t_rooms(st, chk):
    c = st.client
    r = c.post("/management/rooms", {"room_name": "测试房间", "admin_user_ids": ["admin1", "admin2"]})
    chk.status(r, 201, "POST /management/rooms -> 201")
    check_room_object(chk, r.json, "测试房间", ["admin1", "admin2"], "created room")
    rid = r.json["room_id"]

    r = c.post("/management/rooms", {"room_name": "dups", "admin_user_ids": ["a", "b", "a", "b", "c"]})
    chk.status(r, 201, "room with duplicate admins -> 201")
    chk.eq(sorted((r.json or {}).get("admin_user_ids") or []), ["a", "b", "c"], "duplicate admins removed")

    r = c.post("/management/rooms", {"room_name": "no admins"})
    chk.status(r, 201, "room without admin_user_ids -> 201")
    chk.eq((r.json or {}).get("admin_user_ids"), [], "admin_user_ids defaults to []")

    r = c.post("/management/rooms", {"room_name": "empty admins", "admin_user_ids": []})
    chk.status(r, 201, "room with admin_user_ids [] -> 201")

    r = c.post("/management/rooms", {"room_name": "charset"}, ctype="application/json; charset=utf-8")
    chk.status(r, 201, "Content-Type with charset parameter accepted")
    r = c.post("/management/rooms", {"room_name": "charset2"}, ctype="application/json;charset=UTF-8")
    chk.status(r, 201, "Content-Type application/json;charset=UTF-8 accepted")

    r = c.get("/management/rooms/" + rid)
    chk.status(r, 200, "GET /management/rooms/{id} -> 200")
    check_room_object(chk, r.json, "测试房间", ["admin1", "admin2"], "fetched room")
    for f in ("message_count", "last_seq", "session_count", "open_sessions"):
        chk.eq((r.json or {}).get(f), 0, "fresh room %s is 0" % f)

    r = c.get("/management/rooms")
    chk.status(r, 200, "GET /management/rooms -> 200")
    j = r.json or {}
    rooms = j.get("rooms")
    chk.ok(isinstance(rooms, list), "rooms is a list")
    chk.eq(j.get("count"), len(rooms or []), "count equals the number of rooms")
    chk.eq(j.get("live"), False, "list live false")
    ids = [x.get("room_id") for x in rooms or []]
    chk.ok(rid in ids, "created room listed")
    created = [x["created_at"] for x in rooms or []]
    chk.ok(created == sorted(created), "rooms in creation order")

    for bad in ("00000000-0000-4000-8000-000000000000", "nope", "%E6%B5%8B", "x" * 300):
        r = c.get("/management/rooms/" + bad)
        chk.status(r, 404, "GET unknown room %s -> 404" % bad[:40], "room_not_found")


def t_unicode(st, chk):
    c = st.client
    names = [
        "测试房间",
        "🎉🚀 emoji 房间 👨‍👩‍👧‍👦",
        "e\u0301 combining, \u00e9 precomposed",
        "日本語 한국어 العربية עברית",
        "tab-free \"quotes\" and \\backslash\\ and /slash/",
        "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 astral 𠀀",
    ]
    for name in names:
        r = c.post("/management/rooms", {"room_name": name, "admin_user_ids": [name[:10]]})
        if not chk.status(r, 201, "create %r" % name):
            continue
        rid = r.json["room_id"]
        chk.eq(r.json.get("room_name"), name, "POST echoes %r byte-exact" % name)
        g = c.get("/management/rooms/" + rid)
        chk.eq((g.json or {}).get("room_name"), name, "GET returns %r byte-exact" % name)
        chk.eq((g.json or {}).get("admin_user_ids"), [name[:10]], "non-ASCII admin id round-trips")
        chk.eq(st.db.stored_bytes("rooms", "name", rid), name.encode("utf-8"),
               "stored as exact UTF-8 bytes: %r" % name)
    # The same name sent as \u escapes (with a surrogate pair) decodes alike.
    raw = b'{"room_name": "\\u6d4b\\u8bd5 \\ud83c\\udf89"}'
    r = c.post("/management/rooms", raw)
    chk.status(r, 201, "\\u escapes with a surrogate pair accepted")
    chk.eq((r.json or {}).get("room_name"), "测试 🎉", "\\u escapes decoded")
    rs = c.get("/management/sync/rooms")
    got = {x.get("room_name") for x in (rs.json or {}).get("rooms", [])}
    chk.ok(all(n in got for n in names), "all Unicode names in /management/sync/rooms")


def t_sql_text(st, chk):
    c = st.client
    evil = [
        "'; DROP TABLE rooms; --",
        "Robert'); DROP TABLE room_admins;--",
        "\" OR 1=1 --",
        "%s %d %n %x",
        "<script>alert(1)</script>",
    ]
    for name in evil:
        r = c.post("/management/rooms", {"room_name": name, "admin_user_ids": [name[:100]]})
        if not chk.status(r, 201, "SQL-looking name %r -> 201" % name):
            continue
        rid = r.json["room_id"]
        g = c.get("/management/rooms/" + rid)
        chk.eq((g.json or {}).get("room_name"), name, "stored verbatim: %r" % name)
        chk.eq((g.json or {}).get("admin_user_ids"), [name[:100]], "admin stored verbatim: %r" % name)
    b = c.post("/management/rooms/%s/bans" % rid, {"user_id": "x'); DELETE FROM bans; --", "reason": "'; --"})
    chk.status(b, 201, "SQL-looking ban user id -> 201")
    chk.eq((b.json or {}).get("user_id"), "x'); DELETE FROM bans; --", "ban user id verbatim")
    r = c.get("/management/rooms")
    chk.status(r, 200, "rooms table still there")
    tables = st.db.tables()
    chk.ok({"rooms", "room_admins", "bans"} <= tables, "tables intact", repr(tables))


# ------------------------------------------------------------------ validation


def t_validation(st, chk):
    c = st.client
    rid = create_room(c, chk, "validation")["room_id"]
    P = "/management/rooms"

    for raw in (b"{", b'{"room_name": }', b"{'room_name': 'x'}", b'{"room_name": "x",}',
                b'{"room_name": "x"} trailing', b"nul\x00l", b'{"room_name": "x"'):
        r = c.post(P, raw)
        chk.status(r, 400, "malformed JSON %r -> 400" % raw[:30], "invalid_json")
    r = c.post(P, b"")
    chk.ok(r.status == 400, "empty body with JSON type -> 400", "status %d %s" % (r.status, r.snippet()))
    for raw in (b"[]", b'"room"', b"42", b"null", b"true"):
        r = c.post(P, raw)
        chk.ok(r.status == 400 and _err(r) in ("invalid_json", "invalid_field"),
               "non-object JSON %r -> 400" % raw, "status %d %s" % (r.status, r.snippet()))

    bad_bodies = [
        ({"room_name": 123}, "room_name number"),
        ({"room_name": None}, "room_name null"),
        ({"room_name": ["x"]}, "room_name array"),
        ({"room_name": {"a": 1}}, "room_name object"),
        ({"room_name": True}, "room_name bool"),
        ({"room_name": ""}, "room_name empty"),
        ({"room_name": "x" * 201}, "room_name 201 bytes"),
        ({"room_name": "测" * 67}, "room_name 201 UTF-8 bytes"),
        ({"room_name": "a\nb"}, "room_name with a newline"),
        ({"room_name": "a\u007fb"}, "room_name with DEL"),
        ({"admin_user_ids": ["a"]}, "room_name missing"),
        ({"room_name": "x", "admin_user_ids": "admin1"}, "admin_user_ids string"),
        ({"room_name": "x", "admin_user_ids": [1]}, "admin_user_ids of numbers"),
        ({"room_name": "x", "admin_user_ids": [None]}, "admin_user_ids with null"),
        ({"room_name": "x", "admin_user_ids": [""]}, "admin_user_ids with empty id"),
        ({"room_name": "x", "admin_user_ids": ["u" * 129]}, "admin id 129 bytes"),
        ({"room_name": "x", "admin_user_ids": ["u%d" % i for i in range(101)]}, "101 admins"),
        ({"room_name": "x", "admin_user_ids": {"a": 1}}, "admin_user_ids object"),
        ({"room_name": "x", "extra": 1}, "unknown field"),
        ({"room_name": "x", "Room_Name": "y"}, "unknown field differing in case"),
    ]
    for body, what in bad_bodies:
        r = c.post(P, body)
        chk.status(r, 400, "%s -> 400 invalid_field" % what, "invalid_field")
    # JSON allows \u0000, C strings do not: either 400 code will do.
    r = c.post(P, {"room_name": "a\u0000b"})
    chk.ok(r.status == 400 and _err(r) in ("invalid_field", "invalid_json"), "room_name with NUL -> 400",
           "status %d %s" % (r.status, r.snippet()))
    r = c.post(P, {"room_name": "测" * 66 + "ab"})
    chk.status(r, 201, "room_name of exactly 200 UTF-8 bytes -> 201")
    r = c.post(P, {"room_name": "x", "admin_user_ids": ["u%d" % i for i in range(100)]})
    chk.status(r, 201, "100 admins -> 201")
    r = c.post(P, b'{"room_name": "\xff\xfe bad utf8"}')
    chk.ok(r.status == 400, "invalid UTF-8 in a string -> 400", "status %d %s" % (r.status, r.snippet()))
    r = c.post(P, b'{"room_name": "\\ud800 lone surrogate"}')
    chk.ok(r.status == 400, "lone surrogate escape -> 400", "status %d %s" % (r.status, r.snippet()))

    B = "/management/rooms/%s/bans" % rid
    for body, what in [
        ({}, "ban without user_id"),
        ({"user_id": ""}, "empty user_id"),
        ({"user_id": 5}, "numeric user_id"),
        ({"user_id": "u" * 129}, "user_id 129 bytes"),
        ({"user_id": "u", "duration_seconds": 0}, "duration 0"),
        ({"user_id": "u", "duration_seconds": -5}, "negative duration"),
        ({"user_id": "u", "duration_seconds": "60"}, "duration as a string"),
        ({"user_id": "u", "duration_seconds": 1.5}, "fractional duration"),
        ({"user_id": "u", "duration_seconds": 31536001}, "duration over a year"),
        ({"user_id": "u", "reason": "r" * 501}, "reason 501 bytes"),
        ({"user_id": "u", "reason": 7}, "numeric reason"),
        ({"user_id": "u", "until": 5}, "unknown ban field"),
    ]:
        r = c.post(B, body)
        chk.status(r, 400, "%s -> 400 invalid_field" % what, "invalid_field")

    E = "/management/rooms/%s/events" % rid
    for body, what in [
        ({"payload": {}}, "event without event_type"),
        ({"event_type": "", "payload": {}}, "empty event_type"),
        ({"event_type": "has space", "payload": {}}, "event_type with a space"),
        ({"event_type": "x" * 65, "payload": {}}, "event_type 65 bytes"),
        ({"event_type": 3, "payload": {}}, "numeric event_type"),
        ({"event_type": "ok", "payload": {}, "x": 1}, "unknown event field"),
    ]:
        r = c.post(E, body)
        chk.status(r, 400, "%s -> 400 invalid_field" % what, "invalid_field")


def _err(r):
    e = r.json.get("error") if isinstance(r.json, dict) else None
    return e.get("code") if isinstance(e, dict) else None


def t_body_limits(st, chk):
    c = st.client
    big = b'{"room_name": "' + b"x" * (5 * 1024 * 1024) + b'"}'
    r = c.post("/management/rooms", big, timeout=60)
    chk.status(r, 413, "5 MB body -> 413 with the JSON error", "payload_too_large")
    r = c.post("/management/rooms", b'{"room_name": "' + b"y" * 70000 + b'"}')
    chk.status(r, 413, "70 kB body (over API_MAX_BODY_BYTES) -> 413", "payload_too_large")
    r = c.post("/management/rooms", b"z" * 70000, ctype="text/plain")
    chk.ok(r.status in (413, 415), "70 kB text/plain -> 413 or 415", "status %d" % r.status)
    # A chunked body (nginx passes it de-chunked with CONTENT_LENGTH set and
    # HTTP_TRANSFER_ENCODING still "chunked"; Apache streams it).
    body = json.dumps({"room_name": "chunked 分块"}, ensure_ascii=False).encode()
    head = ("POST /management/rooms HTTP/1.1\r\nHost: %s:%d\r\nX-Api-Key: %s\r\n"
            "Content-Type: application/json\r\nConnection: close\r\n" % (c.host, c.port, c.key))
    chunked = (head + "Transfer-Encoding: chunked\r\n\r\n").encode()
    chunked += b"".join(b"%x\r\n%s\r\n" % (len(body[i:i + 7]), body[i:i + 7]) for i in range(0, len(body), 7))
    r = c.raw(chunked + b"0\r\n\r\n")
    chk.status(r, 201, "chunked request body -> 201")
    chk.eq((r.json or {}).get("room_name"), "chunked 分块", "chunked body read whole")
    big = b'{"room_name": "' + b"c" * 100000 + b'"}'
    r = c.raw(head.encode() + b"Transfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n0\r\n\r\n" % (len(big), big))
    chk.status(r, 413, "chunked 100 kB body -> 413", "payload_too_large")
    r = c.raw((head + "Content-Length: %d\r\nExpect: 100-continue\r\n\r\n" % len(body)).encode() + body)
    chk.status(r, 201, "Expect: 100-continue -> 201")
    # The server is still fine afterwards.
    r = c.get("/management/health")
    chk.status(r, 200, "health after oversized bodies")


def t_content_type(st, chk):
    c = st.client
    body = json.dumps({"room_name": "ctype"}).encode()
    for ct in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x",
               "application/jsonx", "text/json", "application/xml"):
        r = c.post("/management/rooms", body, ctype=ct)
        chk.status(r, 415, "Content-Type %s -> 415" % ct, "unsupported_media_type")
    r = c.post("/management/rooms", body, ctype=None)
    chk.status(r, 415, "body without Content-Type -> 415", "unsupported_media_type")
    r = c.post("/management/rooms", body, ctype="Application/JSON")
    chk.status(r, 201, "media type is case-insensitive (Application/JSON) -> 201")
    rid = create_room(c, chk, "ctype-ban")["room_id"]
    r = c.post("/management/rooms/%s/bans" % rid, b'{"user_id": "u"}', ctype="text/plain")
    chk.status(r, 415, "ban with text/plain -> 415", "unsupported_media_type")


# ------------------------------------------------------------------ routing


def t_routing(st, chk):
    c = st.client
    rid = create_room(c, chk, "routing")["room_id"]
    for path in ("/management/nope", "/management/rooms/%s/nope" % rid, "/management/sync/nope",
                 "/management/sync/chat-history", "/management/rooms/%s/bans/u/extra" % rid,
                 "/management/health/x", "/management"):
        r = c.get(path)
        chk.status(r, 404, "GET %s -> 404" % path, "not_found")
    for path in ("/managementfoo", "/managementfoo/rooms", "/management_x", "/manage"):
        r = c.get(path)
        chk.ok(r.status == 404, "GET %s -> 404" % path, "status %d %s" % (r.status, r.snippet(100)))
        if r.json is not None:
            chk.eq(_err(r), "not_found", "%s reached chat-api: not_found" % path)
    r = c.get("/management/rooms?include_closed=false&unused=1")
    chk.status(r, 200, "query string on GET /management/rooms")
    # Percent-encoded path segments are decoded before matching ids.
    enc = "".join("%%%02X" % b for b in rid.encode())
    r = c.get("/management/rooms/" + enc)
    chk.status(r, 200, "percent-encoded room id matches")


def t_methods(st, chk):
    c = st.client
    rid = create_room(c, chk, "methods")["room_id"]
    R = "/management/rooms/" + rid
    cases = [
        ("PUT", "/management/rooms", {"GET", "HEAD", "POST"}),
        ("DELETE", "/management/rooms", {"GET", "HEAD", "POST"}),
        ("PATCH", R, {"GET", "HEAD", "DELETE"}),
        ("POST", R, {"GET", "HEAD", "DELETE"}),
        ("PUT", R + "/bans", {"GET", "HEAD", "POST"}),
        ("GET", R + "/bans/u1", {"DELETE"}),
        ("GET", R + "/events", {"POST"}),
        ("HEAD", R + "/events", {"POST"}),
        ("POST", "/management/health", {"GET", "HEAD"}),
        ("DELETE", "/management/sync", {"GET", "HEAD", "POST"}),
        ("POST", "/management/sync/rooms", {"GET", "HEAD"}),
        ("POST", "/management/sync/chat-history/" + rid, {"GET", "HEAD"}),
        ("DELETE", "/management/sync/session-history/" + rid, {"GET", "HEAD"}),
    ]
    for method, path, allow in cases:
        r = c.req(method, path, {} if method in ("PUT", "PATCH", "POST") else None)
        if method == "HEAD":  # the error's head, without its body
            chk.eq(r.status, 405, "%s %s -> 405" % (method, path.replace(rid, "{id}")))
        else:
            chk.status(r, 405, "%s %s -> 405" % (method, path.replace(rid, "{id}")), "method_not_allowed")
        got = {m.strip() for m in (r.header("Allow") or "").split(",") if m.strip()}
        chk.eq(got, allow, "Allow header for %s %s" % (method, path.replace(rid, "{id}")))

    # HEAD is GET without a body: same status and headers, Content-Length of the GET body.
    for path in ("/management/rooms", R, "/management/health", "/management/nope"):
        g = c.get(path)
        h = c.req("HEAD", path)
        chk.eq(h.status, g.status, "HEAD %s answers as GET" % path.replace(rid, "{id}"))
        chk.eq(h.body, b"", "HEAD %s has no body" % path.replace(rid, "{id}"))
        chk.eq(h.header("Content-Type"), g.header("Content-Type"), "HEAD %s Content-Type" % path.replace(rid, "{id}"))


# ------------------------------------------------------------------ bans, close, events, sync


def t_bans(st, chk):
    c = st.client
    rid = create_room(c, chk, "bans", ["admin1"])["room_id"]
    B = "/management/rooms/%s/bans" % rid
    now = int(time.time())
    r = c.post(B, {"user_id": "u1", "duration_seconds": 600, "reason": "spam"})
    chk.status(r, 201, "POST bans -> 201")
    j = r.json or {}
    chk.eq(j.get("room_id"), rid, "ban room_id")
    chk.eq(j.get("user_id"), "u1", "ban user_id")
    chk.eq(j.get("reason"), "spam", "ban reason")
    chk.ok(isinstance(j.get("created_at"), int) and abs(j["created_at"] - now) < 60, "ban created_at", repr(j))
    chk.ok(isinstance(j.get("expires_at"), int) and abs(j["expires_at"] - (j.get("created_at") or 0) - 600) <= 1,
           "expires_at = created_at + 600", repr(j))
    chk.eq(j.get("live"), False, "ban live false without chatd")

    r = c.post(B, {"user_id": "u 李 🚫"})
    chk.status(r, 201, "permanent ban of a non-ASCII user id -> 201")
    chk.eq((r.json or {}).get("expires_at"), None, "permanent ban expires_at null")
    chk.eq((r.json or {}).get("reason"), None, "ban without reason: reason null")

    r = c.post(B, {"user_id": "u1", "duration_seconds": 60, "reason": "again"})
    chk.status(r, 201, "re-ban replaces the active ban -> 201")

    r = c.get(B)
    chk.status(r, 200, "GET bans -> 200")
    j = r.json or {}
    chk.eq(j.get("room_id"), rid, "bans list room_id")
    chk.eq(j.get("count"), 2, "two bans in force (re-ban replaced)")
    users = sorted(b.get("user_id") for b in j.get("bans") or [])
    chk.eq(users, sorted(["u1", "u 李 🚫"]), "banned users listed")
    u1 = [b for b in j.get("bans") or [] if b.get("user_id") == "u1"]
    chk.eq(u1 and u1[0].get("reason"), "again", "re-ban's reason is the one in force")

    r = c.delete(B + "/" + q("u 李 🚫"))
    chk.status(r, 200, "DELETE ban of a percent-encoded user id -> 200")
    j = r.json or {}
    chk.eq((j.get("room_id"), j.get("user_id"), j.get("unbanned")), (rid, "u 李 🚫", True), "unban reply")
    r = c.delete(B + "/" + q("u 李 🚫"))
    chk.status(r, 404, "second DELETE of the same ban -> 404", "ban_not_found")
    # Ids with reserved characters, percent-encoded in the path.
    for uid in ("a/b", "a+b", "50% off", "a?b#c", "..", "x;y=z"):
        r = c.post(B, {"user_id": uid})
        chk.status(r, 201, "ban user id %r -> 201" % uid)
        r = c.delete(B + "/" + q(uid))
        chk.status(r, 200, "DELETE ban of %r as %s -> 200" % (uid, q(uid)))
        chk.eq((r.json or {}).get("user_id"), uid, "unbanned user id %r decoded" % uid)
    r = c.delete(B + "/never-banned")
    chk.status(r, 404, "DELETE ban of a user never banned -> 404", "ban_not_found")
    r = c.get(B)
    chk.eq((r.json or {}).get("count"), 1, "one ban left")

    # An expired ban is not in force.
    st.db.execute(
        "INSERT INTO bans (room_id, user_id, reason, created_at, expires_at) VALUES (?, ?, ?, ?, ?)",
        (rid, "expired-user", "old", (now - 7200) * 1000, (now - 3600) * 1000),
    )
    r = c.get(B)
    chk.ok("expired-user" not in [b.get("user_id") for b in (r.json or {}).get("bans") or []],
           "expired ban not listed", r.snippet())

    ghost = "00000000-0000-4000-8000-000000000000"
    G = "/management/rooms/%s/bans" % ghost
    chk.status(c.post(G, {"user_id": "u1"}), 404, "ban in unknown room -> 404", "room_not_found")
    chk.status(c.get(G), 404, "list bans of unknown room -> 404", "room_not_found")
    r = c.delete(G + "/u1")
    chk.ok(r.status == 404 and _err(r) in ("room_not_found", "ban_not_found"),
           "unban in unknown room -> 404", r.snippet())


def t_close(st, chk):
    c = st.client
    rid = create_room(c, chk, "to close")["room_id"]
    r = c.delete("/management/rooms/%s?reason=%s" % (rid, q("再见 bye")))
    chk.status(r, 200, "DELETE room -> 200")
    j = r.json or {}
    chk.eq(j.get("room_id"), rid, "close reply room_id")
    chk.eq(j.get("closed"), True, "close reply closed")
    chk.ok(isinstance(j.get("closed_at"), int) and abs(j["closed_at"] - time.time()) < 120, "closed_at", repr(j))
    chk.eq(j.get("reason"), "再见 bye", "close reason percent-decoded")
    chk.eq(j.get("live"), False, "close live false without chatd")

    r = c.delete("/management/rooms/" + rid)
    chk.status(r, 409, "second close -> 409", "room_closed")

    r = c.get("/management/rooms")
    chk.ok(rid not in [x.get("room_id") for x in (r.json or {}).get("rooms") or []],
           "closed room gone from GET /management/rooms")
    r = c.get("/management/rooms?include_closed=true")
    rooms = {x.get("room_id"): x for x in (r.json or {}).get("rooms") or []}
    chk.ok(rid in rooms and rooms[rid].get("closed") is True, "include_closed=true lists it closed")
    for spelling, listed in (("yes", True), ("TRUE", True), ("On", True), ("1", True), ("", True),
                             ("no", False), ("False", False), ("0", False), ("off", False)):
        r = c.get("/management/rooms?include_closed=" + spelling)
        ids = [x.get("room_id") for x in (r.json or {}).get("rooms") or []]
        chk.ok(r.status == 200 and (rid in ids) == listed,
               "include_closed=%s %s the closed room" % (spelling, "lists" if listed else "leaves out"),
               "status %d" % r.status)
    for spelling in ("maybe", "2", "yes please"):
        r = c.get("/management/rooms?include_closed=" + q(spelling))
        chk.status(r, 400, "include_closed=%s -> 400" % spelling, "invalid_query")
    r = c.get("/management/sync/rooms")
    chk.status(r, 200, "GET /management/sync/rooms -> 200")
    rooms = {x.get("room_id"): x for x in (r.json or {}).get("rooms") or []}
    x = rooms.get(rid) or {}
    chk.eq(x.get("closed"), True, "sync/rooms has it with closed:true")
    chk.eq(x.get("close_reason"), "再见 bye", "sync/rooms close_reason")
    chk.ok(isinstance(x.get("closed_at"), int), "sync/rooms closed_at")
    for f in ("room_id", "room_name", "admin_user_ids", "created_at", "closed", "closed_at", "close_reason"):
        chk.ok(f in x, "sync/rooms entry has %s" % f)
    chk.eq((r.json or {}).get("count"), len(rooms), "sync/rooms count")
    r = c.get("/management/rooms/" + rid)
    chk.status(r, 200, "GET closed room -> 200")
    chk.eq((r.json or {}).get("closed"), True, "GET closed room closed:true")

    rid2 = create_room(c, chk, "default reason")["room_id"]
    r = c.delete("/management/rooms/" + rid2)
    chk.eq((r.json or {}).get("reason"), "closed by administrator", "default close reason")
    r = c.delete("/management/rooms/00000000-0000-4000-8000-000000000000")
    chk.status(r, 404, "close unknown room -> 404", "room_not_found")


def t_events(st, chk):
    c = st.client
    rid = create_room(c, chk, "events", ["admin1"])["room_id"]
    body = {"event_type": "lucky_money", "payload": {"amount": 100, "desc": "新年快乐"}}
    r = c.post("/management/rooms/%s/events" % rid, body)
    chk.status(r, 503, "POST events without chatd -> 503", "chatd_unavailable")
    r = c.post("/management/rooms/00000000-0000-4000-8000-000000000000/events", body)
    chk.status(r, 404, "POST events to unknown room -> 404", "room_not_found")


def t_sync(st, chk):
    c = st.client
    rid = create_room(c, chk, "sync me")["room_id"]
    r = c.get("/management/sync")
    chk.status(r, 200, "GET /management/sync -> 200")
    j = r.json or {}
    chk.ok(isinstance(j.get("rooms"), list), "sync rooms is a list")
    chk.eq(j.get("count"), len(j.get("rooms") or []), "sync count")
    chk.ok(isinstance(j.get("timestamp"), int) and abs(j["timestamp"] - time.time()) < 120, "sync timestamp is now")
    chk.eq(j.get("live"), False, "sync live false")
    chk.ok(rid in [x.get("room_id") for x in j.get("rooms") or []], "sync lists the new room")

    h1 = (c.get("/management/health").json or {}).get("database", {}).get("pending_sync_requests")
    r = c.post("/management/sync", key=c.key, ctype=None)
    chk.status(r, 202, "POST /management/sync without body -> 202")
    j = r.json or {}
    chk.eq(j.get("status"), "accepted", "sync status accepted")
    chk.ok(isinstance(j.get("sync_request_id"), int), "sync_request_id is an integer")
    r2 = c.post("/management/sync", {})
    chk.status(r2, 202, "POST /management/sync with {} -> 202")
    chk.ok((r2.json or {}).get("sync_request_id", 0) > j.get("sync_request_id", 0), "sync_request_id grows")
    # A bare "curl -X POST" sends no Content-Length. lighttpd (every 1.4
    # release) refuses any such POST with its own 411 before chat-api sees
    # it; nginx and Apache pass it on.
    r3 = c.post("/management/sync", ctype=None, bare=True)
    if st.server == "lighttpd":
        chk.eq(r3.status, 411, "POST without Content-Length: lighttpd's own 411")
    else:
        chk.status(r3, 202, "POST without Content-Length -> 202")
    h2 = (c.get("/management/health").json or {}).get("database", {}).get("pending_sync_requests")
    chk.ok(isinstance(h1, int) and isinstance(h2, int) and h2 >= h1 + 2, "health counts pending sync requests",
           "%r -> %r" % (h1, h2))


# ------------------------------------------------------------------ history


def load_history(db, rid, n_messages, n_sessions):
    """Inserts messages and sessions into db (a testdb.Database) the way
    chatd writes them, in one transaction: seq 1..n per room, created_at in
    ms, and the room's last_seq / last_session_seq."""
    rows = []
    for i in range(n_messages):
        seq = i + 1
        ms = (T0 + i) * 1000 + 123
        if seq % 50 == 0:
            rows.append((rid, seq, 1, "admin1", "主持人", 1,
                         json.dumps({"amount": seq, "desc": "新年快乐"}, ensure_ascii=False),
                         "lucky_money", ms))
        else:
            rows.append((rid, seq, 0, "user%d" % (i % 7), "张三%d" % (i % 7), 0,
                         "hello %d 你好 🎉" % seq, None, ms))
    msgs = ("INSERT INTO messages (room_id, seq, kind, user_id, nickname, is_admin, content,"
            " event_type, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
    srows = []
    for i in range(n_sessions):
        joined = (T0 + 2 * i) * 1000 + 500
        left = joined + 59600 if i % 2 == 0 else None
        srows.append((rid, i + 1, "user%d" % i, "李四%d" % i, 0, "127.0.0.1", joined, left,
                      "left" if left else None))
    sess = ("INSERT INTO sessions (room_id, seq, user_id, nickname, is_admin, address, joined_at,"
            " left_at, leave_reason) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", srows)
    db.write([msgs, sess, ("UPDATE rooms SET last_seq = ?, last_session_seq = ? WHERE id = ?",
                           (n_messages, n_sessions, rid))])


def t_history(st, chk):
    c = st.client
    N, S = 2500, 700
    rid = create_room(c, chk, "history")["room_id"]
    load_history(st.db, rid, N, S)
    H = "/management/sync/chat-history/" + rid

    r = c.get(H)
    chk.status(r, 200, "chat-history default -> 200")
    j = r.json or {}
    chk.eq((j.get("room_id"), j.get("page"), j.get("limit"), j.get("total"), j.get("total_pages"), j.get("has_more")),
           (rid, 1, 100, N, 25, True), "defaults: page 1, limit 100, total, total_pages, has_more")
    chk.eq((j.get("from"), j.get("to")), (None, None), "from/to null when absent")
    msgs = j.get("messages") or []
    chk.eq([m.get("seq") for m in msgs], list(range(1, 101)), "first page is seq 1..100")
    m = msgs[0] if msgs else {}
    chk.eq((m.get("type"), m.get("from"), m.get("nickname"), m.get("content"), m.get("is_admin")),
           ("Message", "user0", "张三0", "hello 1 你好 🎉", False), "message fields")
    chk.ok(isinstance(m.get("id"), int), "message id")
    chk.eq((m.get("timestamp"), m.get("timestamp_ms")), (T0, T0 * 1000 + 123), "timestamp and timestamp_ms")
    ev = msgs[49] if len(msgs) > 49 else {}
    chk.eq((ev.get("type"), ev.get("event_type"), ev.get("payload"), ev.get("from"), ev.get("is_admin")),
           ("CustomEvent", "lucky_money", {"amount": 50, "desc": "新年快乐"}, "admin1", True),
           "CustomEvent row with its payload as JSON")

    r = c.get(H + "?page=3&limit=1000")
    j = r.json or {}
    chk.eq((j.get("page"), j.get("limit"), j.get("total_pages"), j.get("has_more")), (3, 1000, 3, False),
           "page 3 of 1000: last page")
    chk.eq([m.get("seq") for m in j.get("messages") or []], list(range(2001, 2501)), "page 3 holds seq 2001..2500")

    r = c.get(H + "?page=4&limit=1000")
    chk.status(r, 200, "page past the end -> 200")
    chk.eq(((r.json or {}).get("messages"), (r.json or {}).get("has_more")), ([], False), "page past the end is empty")

    r = c.get(H + "?page=1000000000000&limit=1000")
    chk.status(r, 200, "a far page number (10^12) -> 200")
    chk.eq(((r.json or {}).get("messages"), (r.json or {}).get("has_more")), ([], False), "largest page is empty")

    r = c.get(H + "?limit=5000")
    j = r.json or {}
    chk.eq(j.get("limit"), 1000, "limit=5000 capped to 1000 in the reply")
    chk.eq(len(j.get("messages") or []), 1000, "limit=5000 returns 1000 rows")

    seen = []
    for page in range(1, 10):
        j = c.get(H + "?page=%d&limit=333" % page).json or {}
        seen += [m.get("seq") for m in j.get("messages") or []]
        if not j.get("has_more"):
            break
    chk.eq(seen, list(range(1, N + 1)), "walking every page (limit 333) yields each seq once, in order")

    lo, hi = T0 + 100, T0 + 199
    r = c.get(H + "?from=%d&to=%d&limit=1000" % (lo, hi))
    j = r.json or {}
    chk.eq((j.get("total"), j.get("from"), j.get("to")), (100, lo, hi), "from/to window total and echo")
    chk.eq([m.get("seq") for m in j.get("messages") or []], list(range(101, 201)), "from/to inclusive window")
    r = c.get(H + "?from=%d&limit=1000&page=2" % (T0 + 2000))
    j = r.json or {}
    chk.eq((j.get("total"), [m.get("seq") for m in j.get("messages") or []]), (500, []), "from only, page 2 empty")
    r = c.get(H + "?to=%d" % (T0 + 9))
    chk.eq((r.json or {}).get("total"), 10, "to only")
    r = c.get(H + "?from=%d&to=%d" % (T0 + 5000, T0 + 6000))
    chk.eq(((r.json or {}).get("total"), (r.json or {}).get("messages")), (0, []), "empty window")
    # The seed README's example parameters.
    r = c.get(H + "?page=1&limit=1000&from=1640995200&to=1640998800")
    j = r.json or {}
    chk.eq((j.get("total"), j.get("total_pages"), j.get("has_more"), len(j.get("messages") or [])),
           (N, 3, True, 1000), "seed example query")

    for qs in ("page=0", "page=-1", "page=abc", "page=1.5", "page=1e3", "page=99999999999999999999", "limit=0", "limit=-5", "limit=x",
               "from=-1", "to=-1", "from=abc", "from=%d&to=%d" % (T0 + 10, T0)):
        r = c.get(H + "?" + qs)
        chk.status(r, 400, "chat-history ?%s -> 400" % qs, "invalid_query")

    r = c.get("/management/sync/chat-history/00000000-0000-4000-8000-000000000000")
    chk.status(r, 404, "chat-history of unknown room -> 404", "room_not_found")

    SH = "/management/sync/session-history/" + rid
    r = c.get(SH)
    chk.status(r, 200, "session-history -> 200")
    j = r.json or {}
    chk.eq((j.get("total"), j.get("page"), j.get("has_more")), (S, 1, True), "session-history totals")
    sess = j.get("sessions") or []
    chk.eq([s.get("seq") for s in sess], list(range(1, len(sess) + 1)), "sessions in seq order")
    s0 = sess[0] if sess else {}
    chk.eq((s0.get("user_id"), s0.get("nickname"), s0.get("is_admin"), s0.get("joined_at"), s0.get("joined_at_ms"),
            s0.get("left_at"), s0.get("left_at_ms"), s0.get("duration_seconds"), s0.get("reason")),
           ("user0", "李四0", False, T0, T0 * 1000 + 500, T0 + 60, T0 * 1000 + 60100, 59, "left"),
           "closed session fields")
    chk.ok(isinstance(s0.get("session_id"), int), "session_id")
    s1 = sess[1] if len(sess) > 1 else {}
    chk.eq((s1.get("left_at"), s1.get("left_at_ms"), s1.get("duration_seconds"), s1.get("reason")),
           (None, None, None, None), "open session has nulls")
    r = c.get(SH + "?page=2&limit=500")
    j = r.json or {}
    chk.eq(([s.get("seq") for s in j.get("sessions") or []], j.get("has_more")), (list(range(501, 701)), False),
           "session page 2 of 500")
    r = c.get(SH + "?from=%d&to=%d&limit=1000" % (T0 + 10, T0 + 19))
    chk.eq([s.get("seq") for s in (r.json or {}).get("sessions") or []], [6, 7, 8, 9, 10], "sessions from/to on join time")
    r = c.get(SH + "?limit=5000")
    chk.eq((r.json or {}).get("limit"), 1000, "session limit capped to 1000")
    for qs in ("page=0", "limit=abc", "from=%d&to=%d" % (T0 + 10, T0)):
        chk.status(c.get(SH + "?" + qs), 400, "session-history ?%s -> 400" % qs, "invalid_query")
    chk.status(c.get("/management/sync/session-history/00000000-0000-4000-8000-000000000000"), 404,
               "session-history of unknown room -> 404", "room_not_found")

    r = c.get("/management/rooms/" + rid)
    j = r.json or {}
    chk.eq((j.get("message_count"), j.get("last_seq"), j.get("session_count"), j.get("open_sessions")),
           (N, N, S, S // 2), "room stats after loading history")


# ------------------------------------------------------------------ concurrency


def t_concurrency(st, chk):
    c = st.client
    results = [None] * 50
    names = ["parallel %d 并发" % i for i in range(20)]

    def work(i):
        try:
            if i < 20:
                r = c.post("/management/rooms", {"room_name": names[i]}, timeout=60)
                results[i] = (r.status == 201 and (r.json or {}).get("room_name") == names[i], r)
            elif i < 40:
                r = c.get("/management/rooms", timeout=60)
                results[i] = (r.status == 200 and isinstance((r.json or {}).get("rooms"), list), r)
            else:
                r = c.get("/management/health", timeout=60)
                results[i] = (r.status == 200 and (r.json or {}).get("database", {}).get("ok") is True, r)
        except Exception as exc:  # noqa: BLE001
            results[i] = (False, exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(90)
    bad = [(i, res) for i, res in enumerate(results) if not res or not res[0]]
    chk.ok(not bad, "50 parallel requests all answered correctly",
           "; ".join("#%d: %s" % (i, (res[1].status, res[1].snippet(80)) if res and hasattr(res[1], "status") else res)
                     for i, res in bad[:5]))
    ids = [res[1].json["room_id"] for res in results[:20] if res and res[0]]
    chk.eq(len(set(ids)), 20, "20 parallel creations, 20 distinct ids")
    listed = {x.get("room_name") for x in (c.get("/management/rooms").json or {}).get("rooms") or []}
    chk.ok(all(n in listed for n in names), "every parallel room listed")


# ------------------------------------------------------------------ WebSocket proxy


def t_ws_proxy(st, chk):
    """The web server passes /ws/ upgrades to chatd's address with path and
    query intact and the peer appended to X-Forwarded-For (a fake chatd
    answers until the real one exists)."""
    path = "/ws/rooms/9f1c2a7e-4b3d-4c55-9a61-0e2f7b8c9d10?user_id=u%201&nickname=%E5%BC%A0%E4%B8%89+x&t=a%2Fb"
    sock, status, head, rest = stack.ws_connect(st.host, st.port, path, {"X-Forwarded-For": "203.0.113.9"})
    try:
        chk.eq(status, 101, "WebSocket upgrade through the proxy -> 101")
        if status != 101:
            chk.ok(False, "response head", head[:300])
            return
        sock.settimeout(10)
        buf = rest
        op, payload = _frame_from(sock, buf)
        info = json.loads(payload.decode("utf-8")) if payload else {}
        line = info.get("request_line", "")
        chk.eq(line.split(" ")[1] if " " in line else line, path, "path and query reach chatd unchanged")
        hdrs = {k.lower(): v for k, v in info.get("headers", [])}
        xff = [x.strip() for x in hdrs.get("x-forwarded-for", "").split(",")]
        chk.eq(xff[-1:], ["127.0.0.1"], "X-Forwarded-For ends with the real peer")
        chk.eq(xff[:1], ["203.0.113.9"], "client-sent X-Forwarded-For kept first")
        chk.eq(hdrs.get("upgrade", "").lower(), "websocket", "Upgrade header reaches chatd")
        msg = json.dumps({"type": "Message", "payload": {"content": "你好 🎉"}}, ensure_ascii=False).encode()
        sock.sendall(wsclient.frame(msg))
        op, payload = stack.ws_read_frame(sock)
        chk.eq((op, payload), (1, msg), "frames flow both ways through the proxy")
        big = ("x" * 70000).encode()
        sock.sendall(wsclient.frame(big))
        op, payload = stack.ws_read_frame(sock)
        chk.eq((op, len(payload or b"")), (1, len(big)), "a 70 kB frame passes intact")
        sock.sendall(wsclient.frame(b"", wsclient.OP_CLOSE))
    finally:
        sock.close()


def _frame_from(sock, buf):
    class _Pre:
        def __init__(self, s, pre):
            self.s, self.pre = s, pre

        def recv(self, n):
            if self.pre:
                out, self.pre = self.pre[:n], self.pre[n:]
                return out
            return self.s.recv(n)

    return stack.ws_read_frame(_Pre(sock, buf))


# ------------------------------------------------------------------ web server's own errors

# What each web server answers for requests it refuses itself, before
# chat-api sees them: (status of a 70 kB URI, of a 70 kB header, of %00 in
# the path). lighttpd counts the request line with the headers (431);
# Apache answers too-large headers with 400 and refuses %00 with 404.
SERVER_ERROR_STATUS = {
    "nginx": (414, 431, 400),
    "apache2": (414, 400, 404),
    "lighttpd": (431, 431, 400),
}


def _json_error(chk, r, statuses, what):
    """r has one of statuses and the JSON error shape, labelled JSON."""
    e = r.json.get("error") if isinstance(r.json, dict) else None
    good = (
        r.status in statuses
        and (r.header("Content-Type") or "").split(";")[0].strip() == "application/json"
        and isinstance(e, dict)
        and isinstance(e.get("code"), str)
        and e.get("code") != ""
        and isinstance(e.get("message"), str)
        and e.get("message") != ""
    )
    return chk.ok(good, what, "status %s (expected %s), Content-Type %r, body %s"
                  % (r.status, statuses, r.header("Content-Type"), r.snippet(200)))


def t_server_errors(st, chk):
    """Errors the web server produces itself (bad escape, %00, URI or
    headers too long, malformed request) come in the API's JSON error
    shape; chat-api's and chatd's own answers pass unchanged."""
    c = st.client
    key = ("X-Api-Key: %s\r\n" % c.key).encode()
    long_uri, big_header, nul = SERVER_ERROR_STATUS[st.server]

    def raw(line, headers=b""):
        return c.raw(line + b"\r\nHost: localhost\r\n" + key + headers + b"Connection: close\r\n\r\n")

    r = raw(b"GET /management/rooms/%zz HTTP/1.1")
    _json_error(chk, r, (400,), "bad percent escape -> 400 JSON")
    chk.ok(r.json and r.json["error"].get("code") in ("invalid_query", "bad_request"),
           "bad percent escape: invalid_query (chat-api) or bad_request (web server)", r.snippet())
    _json_error(chk, raw(b"GET /management/rooms/%00 HTTP/1.1"), (nul,), "%%00 in the path -> %d JSON" % nul)
    r = raw(b"GET /management/rooms/" + b"a" * 70000 + b" HTTP/1.1")
    _json_error(chk, r, (long_uri,), "70 kB URI -> %d JSON" % long_uri)
    r = raw(b"GET /management/rooms HTTP/1.1", b"X-Pad: " + b"b" * 70000 + b"\r\n")
    _json_error(chk, r, (big_header,), "70 kB header -> %d JSON" % big_header)
    _json_error(chk, raw(b"GET /management/rooms HTTP/1.1 junk"), (400,), "malformed request line -> 400 JSON")
    _json_error(chk, raw(b"GET /management/rooms HTTP/1.1", b"Bad Header: x\r\n"), (400,),
                "malformed header line -> 400 JSON")
    if st.server != "apache2":
        # Refused on Content-Length alone (Apache reads the body first).
        r = raw(b"POST /management/rooms HTTP/1.1",
                b"Content-Type: application/json\r\nContent-Length: 17000000\r\n")
        _json_error(chk, r, (413,), "body beyond the web server's limit -> 413 JSON")
    # What chat-api and chatd answer is theirs, untouched.
    r = c.get("/management/rooms/no-such-room")
    chk.status(r, 404, "chat-api's own 404 still room_not_found", "room_not_found")
    chk.eq(r.header("Content-Type"), "application/json; charset=utf-8", "chat-api's own Content-Type kept")
    if st.fake is None:
        return
    r = c.get("/ws/rooms/x?user_id=a")
    chk.ok(r.status == 400 and isinstance(r.json, dict) and "fake_chatd" in r.json,
           "a refusal from behind the /ws/ proxy passes unchanged", "%s %s" % (r.status, r.snippet()))


SUITE = [
    ("health", t_health),
    ("auth", t_auth),
    ("rooms", t_rooms),
    ("unicode", t_unicode),
    ("sql-looking text", t_sql_text),
    ("validation", t_validation),
    ("body limits", t_body_limits),
    ("content type", t_content_type),
    ("routing", t_routing),
    ("methods", t_methods),
    ("bans", t_bans),
    ("close", t_close),
    ("events", t_events),
    ("sync", t_sync),
    ("history", t_history),
    ("concurrency", t_concurrency),
    ("websocket proxy", t_ws_proxy),
    ("web server errors", t_server_errors),
]


def run_all(st, chk):
    for name, fn in SUITE:
        chk.run(name, fn, st, chk)
