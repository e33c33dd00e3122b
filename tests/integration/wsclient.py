"""
A small WebSocket client for chatd's integration tests (RFC 6455, Python 3
standard library only; run with /usr/bin/python3).

    ws = WSClient.connect("127.0.0.1", port, "/ws/rooms/ID?user_id=u1")
    ws.send_json({"type": "Message", "payload": {"content": "hi"}})
    msg = ws.recv_json(timeout=2)          # next text frame as JSON
    ws.wait_for(lambda m: m["type"] == "Message", timeout=2)
    code, reason = ws.wait_closed(timeout=2)

Handshake refusals raise HandshakeError with the HTTP status. Pings are
answered automatically. Every read takes a timeout; nothing blocks forever.
A close frame from the server is remembered (close_code, close_reason) and
answered; reads after it raise Closed.
"""

import base64
import hashlib
import json
import os
import socket
import struct
import time

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0, 1, 2, 8, 9, 10


class HandshakeError(Exception):
    def __init__(self, status, head, body=b""):
        super().__init__("handshake refused: HTTP %s" % status)
        self.status = status
        self.head = head
        self.body = body


class Closed(Exception):
    """The connection is closed (close frame or EOF)."""

    def __init__(self, code, reason):
        super().__init__("closed: %s %r" % (code, reason))
        self.code = code
        self.reason = reason


class Timeout(Exception):
    pass


def _mask(payload, key):
    if not payload:
        return b""
    # int arithmetic keeps masking fast for large frames
    n = len(payload)
    k = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(payload, "big") ^ int.from_bytes(k, "big")).to_bytes(n, "big")


def frame(payload, opcode=OP_TEXT, fin=True, mask=True):
    """One encoded frame (client frames are masked). Builds what the
    protocol forbids too, for tests: mask=False, a control opcode with a
    payload over 125 bytes (then with a 16- or 64-bit length) or fin=False."""
    if isinstance(payload, str):
        payload = payload.encode("utf-8")
    head = bytes([(0x80 if fin else 0) | opcode])
    n = len(payload)
    mbit = 0x80 if mask else 0
    if n < 126:
        head += bytes([mbit | n])
    elif n < 65536:
        head += bytes([mbit | 126]) + struct.pack("!H", n)
    else:
        head += bytes([mbit | 127]) + struct.pack("!Q", n)
    if mask:
        key = os.urandom(4)
        return head + key + _mask(payload, key)
    return head + payload


class WSClient:
    def __init__(self, sock, leftover=b""):
        self.sock = sock
        self.buf = bytearray(leftover)
        self.close_code = None
        self.close_reason = None
        self.closed = False
        self.frames = []  # (opcode, payload) of every data message, in order
        self._frag_op = None
        self._frag = bytearray()
        self.headers = {}

    # ------------------------------------------------------------ connect
    @classmethod
    def connect(cls, host, port, path, headers=None, timeout=10, early=b""):
        """host may be a Unix socket's path (it starts with "/"); port is
        then ignored. early: bytes sent right after the request, in the same
        write, without waiting for the 101 (what a compliant client never does)."""
        if host.startswith("/"):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.settimeout(timeout)
            try:
                s.connect(host)
            except BaseException:
                s.close()
                raise
            authority = "localhost"
        else:
            s = socket.create_connection((host, port), timeout=timeout)
            authority = "%s:%d" % (host, port)
        try:
            key = base64.b64encode(os.urandom(16)).decode()
            req = (
                "GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n" % (path, authority, key)
            )
            for k, v in (headers or {}).items():
                req += "%s: %s\r\n" % (k, v)
            s.sendall((req + "\r\n").encode("utf-8") + early)
            data = b""
            deadline = time.monotonic() + timeout
            while b"\r\n\r\n" not in data:
                if time.monotonic() > deadline or len(data) > 65536:
                    raise HandshakeError(0, data.decode("latin-1"))
                s.settimeout(max(0.01, deadline - time.monotonic()))
                chunk = s.recv(4096)
                if not chunk:
                    raise HandshakeError(0, data.decode("latin-1"))
                data += chunk
            head, _, rest = data.partition(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            try:
                status = int(lines[0].split(" ", 2)[1])
            except (IndexError, ValueError):
                status = 0
            if status != 101:
                body = rest
                s.settimeout(0.5)
                try:
                    more = s.recv(65536)
                    body += more
                except OSError:
                    pass
                raise HandshakeError(status, head.decode("latin-1"), body)
            hmap = {}
            for line in lines[1:]:
                k, _, v = line.partition(":")
                hmap[k.strip().lower()] = v.strip()
            want = base64.b64encode(hashlib.sha1((key + GUID).encode()).digest()).decode()
            if hmap.get("sec-websocket-accept") != want:
                raise HandshakeError(status, head.decode("latin-1"))
            ws = cls(s, rest)
            ws.headers = hmap  # the 101's headers, names lower-cased
            return ws
        except BaseException:
            s.close()
            raise

    # ------------------------------------------------------------ send
    def send_raw(self, data):
        self.sock.sendall(data)

    def send_text(self, text):
        self.sock.sendall(frame(text, OP_TEXT))

    def send_json(self, obj):
        self.send_text(json.dumps(obj, ensure_ascii=False))

    def send_binary(self, data):
        self.sock.sendall(frame(data, OP_BINARY))

    def send_fragmented(self, payload, pieces=3, opcode=OP_TEXT):
        if isinstance(payload, str):
            payload = payload.encode("utf-8")
        step = max(1, len(payload) // pieces)
        parts = [payload[i : i + step] for i in range(0, len(payload), step)] or [b""]
        out = b""
        for i, p in enumerate(parts):
            out += frame(p, opcode if i == 0 else OP_CONT, fin=(i == len(parts) - 1))
        self.sock.sendall(out)

    def ping(self, data=b"p"):
        self.sock.sendall(frame(data, OP_PING))

    def close(self, code=1000, reason=""):
        """Sends a close frame (if still open) and closes the socket."""
        try:
            if not self.closed:
                self.sock.sendall(frame(struct.pack("!H", code) + reason.encode("utf-8"), OP_CLOSE))
        except OSError:
            pass
        try:
            self.sock.close()
        except OSError:
            pass
        self.closed = True

    def abort(self):
        """Drops the TCP connection without a close frame."""
        try:
            self.sock.close()
        except OSError:
            pass
        self.closed = True

    # ------------------------------------------------------------ receive
    def _fill(self, deadline):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise Timeout("no data within the timeout")
        self.sock.settimeout(remaining)
        try:
            chunk = self.sock.recv(65536)
        except socket.timeout:
            raise Timeout("no data within the timeout")
        except OSError as exc:
            self.closed = True
            raise Closed(self.close_code or 1006, "socket error: %s" % exc)
        if not chunk:
            self.closed = True
            raise Closed(self.close_code or 1006, self.close_reason or "EOF")
        self.buf += chunk

    def _need(self, n, deadline):
        while len(self.buf) < n:
            self._fill(deadline)

    def _read_frame(self, deadline):
        self._need(2, deadline)
        b0, b1 = self.buf[0], self.buf[1]
        n = b1 & 0x7F
        pos = 2
        if n == 126:
            self._need(4, deadline)
            n = struct.unpack("!H", bytes(self.buf[2:4]))[0]
            pos = 4
        elif n == 127:
            self._need(10, deadline)
            n = struct.unpack("!Q", bytes(self.buf[2:10]))[0]
            pos = 10
        masked = b1 & 0x80
        if masked:
            pos += 4
        self._need(pos + n, deadline)
        payload = bytes(self.buf[pos : pos + n])
        if masked:
            payload = _mask(payload, bytes(self.buf[pos - 4 : pos]))
        del self.buf[: pos + n]
        return bool(b0 & 0x80), b0 & 0x0F, payload, bool(masked)

    def recv(self, timeout=5.0):
        """Next data message as (opcode, payload bytes). Raises Timeout or
        Closed (after answering the server's close frame)."""
        if self.closed:
            raise Closed(self.close_code, self.close_reason)
        deadline = time.monotonic() + timeout
        while True:
            fin, op, payload, masked = self._read_frame(deadline)
            if masked:
                raise AssertionError("server sent a masked frame")
            if op == OP_PING:
                self.sock.sendall(frame(payload, OP_PONG))
                continue
            if op == OP_PONG:
                continue
            if op == OP_CLOSE:
                self.close_code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005
                self.close_reason = payload[2:].decode("utf-8", "replace")
                try:
                    self.sock.sendall(frame(payload[:2], OP_CLOSE))
                except OSError:
                    pass
                self.sock.close()
                self.closed = True
                raise Closed(self.close_code, self.close_reason)
            if op == OP_CONT:
                self._frag += payload
                if fin:
                    msg = (self._frag_op, bytes(self._frag))
                    self._frag_op, self._frag = None, bytearray()
                    self.frames.append(msg)
                    return msg
                continue
            if not fin:
                self._frag_op, self._frag = op, bytearray(payload)
                continue
            self.frames.append((op, payload))
            return op, payload

    def recv_json(self, timeout=5.0):
        op, payload = self.recv(timeout)
        if op != OP_TEXT:
            raise AssertionError("expected a text frame, got opcode %d" % op)
        return json.loads(payload.decode("utf-8"))

    def wait_for(self, pred, timeout=5.0):
        """Reads JSON messages until pred(msg) holds; returns that message,
        or None on timeout. Messages read on the way are kept in .seen."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            try:
                m = self.recv_json(remaining)
            except Timeout:
                return None
            self.seen.append(m)
            if pred(m):
                return m

    @property
    def seen(self):
        if not hasattr(self, "_seen"):
            self._seen = []
        return self._seen

    def drain(self, timeout=0.3):
        """Every JSON message that arrives within timeout (stops at close)."""
        out = []
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return out
            try:
                out.append(self.recv_json(remaining))
            except (Timeout, Closed):
                return out

    def read_close(self, timeout=5.0):
        """Reads until the server's close frame and returns its (code,
        reason) without answering it or closing the socket, for a test
        still sending on another thread; (1006, why) if the connection
        ends first, (None, None) on a timeout. Data frames are dropped."""
        deadline = time.monotonic() + timeout
        try:
            while True:
                _fin, op, payload, _masked = self._read_frame(deadline)
                if op == OP_CLOSE:
                    code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005
                    return code, payload[2:].decode("utf-8", "replace")
        except Timeout:
            return None, None
        except Closed as c:
            return 1006, c.reason

    def wait_closed(self, timeout=5.0):
        """Reads until the server closes; returns (code, reason), or
        (None, None) on timeout. Data messages on the way go to .seen."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None, None
            try:
                op, payload = self.recv(remaining)
                if op == OP_TEXT:
                    try:
                        self.seen.append(json.loads(payload.decode("utf-8")))
                    except ValueError:
                        pass
            except Timeout:
                return None, None
            except Closed as c:
                return c.code, c.reason
