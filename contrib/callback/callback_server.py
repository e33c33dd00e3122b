#!/usr/bin/python3
"""
A callback receiver for chat-sync (Python 3 standard library only).

Prints every callback it receives; with --record FILE also appends one JSON
line per request (path, headers, body, answer) for scripts and tests; with
--secret verifies the Standard Webhooks signature (webhook-id,
webhook-timestamp, webhook-signature) and answers 401 when it does not
match. To exercise chat-sync's retries it can answer errors
(--fail-first N, --status CODE; --reject TEXT fails only the requests whose body
contains TEXT) and respond slowly (--delay SECONDS).

    ./callback_server.py --port 8080
    ./callback_server.py --port 8080 --secret whsec_... --record /tmp/cb.jsonl
    ./callback_server.py --port 8080 --fail-first 3 --status 503

Point the callback URLs at it, e.g.
ROOM_EVENT_CALLBACK_URL=http://127.0.0.1:8080/api/room-events
"""

import argparse
import base64
import hashlib
import hmac
import http.server
import json
import sys
import threading
import time

# Signatures older or newer than this are refused (replay protection).
TOLERANCE_SECONDS = 5 * 60
# Largest request body accepted.
MAX_BODY = 64 * 1024 * 1024


def secret_key(secret):
    """Key bytes: base64 after a whsec_ prefix, else the text itself."""
    if secret.startswith("whsec_"):
        return base64.b64decode(secret[len("whsec_"):])
    return secret.encode("utf-8")


def verify(key, headers, body, now=None):
    """True when one of the v1 signatures in webhook-signature matches
    HMAC-SHA256(key, id.timestamp.body) and the timestamp is recent."""
    msg_id = headers.get("webhook-id")
    ts = headers.get("webhook-timestamp")
    sigs = headers.get("webhook-signature")
    if not msg_id or not ts or not sigs:
        return False
    try:
        t = int(ts)
    except ValueError:
        return False
    now = time.time() if now is None else now
    if abs(now - t) > TOLERANCE_SECONDS:
        return False
    signed = msg_id.encode() + b"." + ts.encode() + b"." + body
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    for part in sigs.split():
        version, _, value = part.partition(",")
        if version == "v1" and hmac.compare_digest(value, expected):
            return True
    return False


class State:
    def __init__(self, args):
        self.args = args
        self.key = secret_key(args.secret) if args.secret else None
        self.lock = threading.Lock()
        self.count = 0
        self.record = open(args.record, "a", encoding="utf-8") if args.record else None


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as chat-sync reuses connections
    server_version = "callback_server"

    def log_message(self, fmt, *a):
        if not self.server.state.args.quiet:
            sys.stderr.write("%s\n" % (fmt % a))

    def _answer(self, status, obj):
        data = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self):
        st = self.server.state
        n = int(self.headers.get("Content-Length") or 0)
        if n < 0 or n > MAX_BODY:
            self._answer(413, {"error": "too large"})
            return
        body = self.rfile.read(n)
        with st.lock:
            st.count += 1
            seq = st.count
        args = st.args
        delay_this = args.delay > 0 and (args.delay_first is None or seq <= args.delay_first)
        if delay_this:
            time.sleep(args.delay)
        status = 200
        if args.reject is not None:
            if args.reject.encode("utf-8") in body:
                status = args.status
        elif args.fail_first is not None:
            if seq <= args.fail_first:
                status = args.status
        elif args.status != 500:
            status = args.status
        verified = None
        if st.key is not None:
            hdrs = {k.lower(): v for k, v in self.headers.items()}
            verified = verify(st.key, hdrs, body)
            if not verified and status < 300:
                status = 401
        try:
            parsed = json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            parsed = None
        entry = {
            "seq": seq,
            "path": self.path,
            "time": time.time(),
            "headers": {k.lower(): v for k, v in self.headers.items()},
            "body": parsed,
            "sha256": hashlib.sha256(body).hexdigest(),
            "status": status,
            "verified": verified,
        }
        with st.lock:
            if st.record is not None:
                st.record.write(json.dumps(entry, ensure_ascii=False) + "\n")
                st.record.flush()
            if not args.quiet:
                print(
                    "#%d %s %s id=%s verified=%s -> %d"
                    % (seq, self.path, len(body), entry["headers"].get("webhook-id"), verified, status)
                )
                if args.verbose:
                    print(json.dumps(parsed, ensure_ascii=False, indent=2))
                sys.stdout.flush()
        self._answer(status, {"ok": 200 <= status < 300})


def main():
    ap = argparse.ArgumentParser(description="Receives and prints chat-sync callbacks.")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8080)
    ap.add_argument("--secret", help="verify signatures with this CALLBACK_SIGNING_SECRET")
    ap.add_argument("--record", help="append one JSON line per request to this file")
    ap.add_argument("--fail-first", type=int, help="answer --status to the first N requests")
    ap.add_argument("--reject", metavar="TEXT",
                    help="answer --status to every request whose body contains TEXT, 200 to the rest")
    ap.add_argument("--status", type=int, default=500, help="status of failing answers (default 500)")
    ap.add_argument("--delay", type=float, default=0, help="wait this many seconds before answering")
    ap.add_argument("--delay-first", type=int, help="only delay the first N requests")
    ap.add_argument("--verbose", action="store_true", help="print each body")
    ap.add_argument("--quiet", action="store_true", help="print nothing per request")
    args = ap.parse_args()
    srv = http.server.ThreadingHTTPServer((args.host, args.port), Handler)
    srv.daemon_threads = True
    srv.state = State(args)
    print("listening on http://%s:%d/" % (args.host, srv.server_address[1]), flush=True)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
