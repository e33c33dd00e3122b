#!/usr/bin/python3
"""
Sends a sample of every chat-sync payload (docs/callbacks.md) to a
receiver, signed like chat-sync signs when --secret is given, and prints
each answer. Python 3 standard library only.

    ./callback_server.py --port 8080 --secret whsec_... &
    ./test_callback.py --url http://127.0.0.1:8080 --secret whsec_...

Exit status 0 when every sample got a 2xx.
"""

import argparse
import base64
import hashlib
import hmac
import json
import sys
import time
import urllib.error
import urllib.request
import uuid

NOW = int(time.time())
ROOM = "6f1c2a9e-0000-4000-8000-000000000001"

SAMPLES = [
    ("/api/room-events", [
        {"id": 1, "type": "room_created", "room_id": ROOM, "user_id": None, "nickname": None, "reason": None,
         "session_id": None, "timestamp": NOW, "timestamp_ms": NOW * 1000,
         "data": {"room_name": "Lobby", "admin_user_ids": ["admin"]}},
        {"id": 2, "type": "user_joined", "room_id": ROOM, "user_id": "u1", "nickname": "张三", "reason": None,
         "session_id": 7, "timestamp": NOW, "timestamp_ms": NOW * 1000,
         "data": {"session_id": 7, "seq": 1, "is_admin": False}},
    ]),
    ("/api/chat-history", {
        "type": "chat_history", "count": 2, "first_id": 1, "last_id": 2,
        "messages": [
            {"id": 1, "room_id": ROOM, "seq": 1, "type": "Message", "is_custom_event": False, "from": "u1",
             "nickname": "张三", "is_admin": False, "content": "hello", "timestamp": NOW, "timestamp_ms": NOW * 1000},
            {"id": 2, "room_id": ROOM, "seq": 2, "type": "CustomEvent", "is_custom_event": True, "from": "admin",
             "nickname": "主持人", "is_admin": True, "event_type": "lucky_money",
             "payload": {"amount": 100, "desc": "新年快乐"}, "timestamp": NOW, "timestamp_ms": NOW * 1000},
        ]}),
    ("/api/session-history", {
        "type": "session_history", "count": 1, "first_id": 3, "last_id": 3,
        "sessions": [
            {"id": 3, "session_id": 7, "room_id": ROOM, "seq": 1, "user_id": "u1", "nickname": "张三",
             "is_admin": False, "joined_at": NOW - 60, "joined_at_ms": (NOW - 60) * 1000, "left_at": NOW,
             "left_at_ms": NOW * 1000, "duration_seconds": 60, "duration_ms": 60000, "reason": "left"}]}),
    ("/api/periodic-sync", {
        "type": "periodic_sync", "trigger": "interval", "count": 1, "timestamp": NOW, "live": True,
        "rooms": [{"room_id": ROOM, "room_name": "Lobby", "admin_user_ids": ["admin"], "created_at": NOW - 600,
                   "closed": False, "closed_at": None, "close_reason": None, "current_users": 1,
                   "peak_users": 2, "consistency": {"message_count": 2, "last_message_id": 2, "last_seq": 2,
                                                     "session_count": 1, "current_occupants": 0}}]}),
    ("/callback", {
        "rooms": [{"room_id": ROOM, "room_name": "Lobby", "admin_user_ids": ["admin"], "created_at": NOW - 600,
                   "closed": False, "closed_at": None, "close_reason": None, "current_users": 1,
                   "peak_users": 2}],
        "count": 1, "timestamp": NOW, "live": True}),
]


def sign(secret, msg_id, ts, body):
    key = base64.b64decode(secret[6:]) if secret.startswith("whsec_") else secret.encode()
    mac = hmac.new(key, b"%s.%d." % (msg_id.encode(), ts) + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


def main():
    ap = argparse.ArgumentParser(description="Sends sample chat-sync callbacks to a receiver.")
    ap.add_argument("--url", default="http://127.0.0.1:8080", help="receiver base URL")
    ap.add_argument("--secret", help="sign with this CALLBACK_SIGNING_SECRET")
    args = ap.parse_args()
    failed = 0
    for path, payload in SAMPLES:
        body = json.dumps(payload, ensure_ascii=False).encode("utf-8")
        msg_id, ts = "sample_%s" % uuid.uuid4().hex[:16], int(time.time())
        headers = {"Content-Type": "application/json", "User-Agent": "test_callback.py",
                   "webhook-id": msg_id, "webhook-timestamp": str(ts)}
        if args.secret:
            headers["webhook-signature"] = sign(args.secret, msg_id, ts, body)
        req = urllib.request.Request(args.url.rstrip("/") + path, data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                status = r.status
        except urllib.error.HTTPError as e:
            status = e.code
        except OSError as e:
            print("%-22s error: %s" % (path, e))
            failed += 1
            continue
        print("%-22s HTTP %d" % (path, status))
        failed += not (200 <= status < 300)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
