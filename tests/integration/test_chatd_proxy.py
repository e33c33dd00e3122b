#!/usr/bin/python3
"""Integration test: whom chatd believes about client addresses, and its
Unix-socket listener.
- TCP listener, TRUSTED_PROXIES not covering 127.0.0.1: a made-up
  X-Forwarded-For is ignored, so the per-address limit counts the real peer
  (the 4th connection from 127.0.0.1 gets 429 whatever the header says);
- TCP listener, default TRUSTED_PROXIES (loopback): the header names the
  client, walked from the right past trusted proxies;
- CHATD_LISTEN=unix:PATH: WebSockets through the web server work, the
  socket is mode 0660 in CHATD_SOCKET_GROUP (as root: a user outside the
  group is refused, one inside gets through), a peer on it is trusted, a
  second chatd refuses to take the socket over, a bad group or
  TRUSTED_PROXIES entry stops chatd naming key and value.
Exit 0 on success, 1 on failure, 77 if no web server is installed."""
import grp
import os
import stat
import subprocess
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import chatd_stack as cs  # noqa: E402
from chatd_stack import HandshakeError  # noqa: E402

FRONT = "nginx"


def refused(st, rid, user, xff=None):
    """Status of a handshake straight to chatd (0 if accepted; the
    connection then stays open in st.held)."""
    headers = {"X-Forwarded-For": xff} if xff is not None else None
    try:
        ws = st.ws(rid, user, welcome=False, direct=True, headers=headers)
    except HandshakeError as e:
        return e.status
    st.held.append(ws)
    return 0


def with_stack(chk, title, settings, chatd_tcp, fn):
    chk.section(title)
    st = cs.ChatdStack(FRONT, settings, chatd_tcp=chatd_tcp)
    st.held = []
    try:
        with st:
            fn(st, chk)
            for w in st.held:
                w.close()
    except cs.StackError as exc:
        chk.ok(False, "stack start", str(exc))
    finally:
        complaints = st.stop()
        chk.ok(not complaints, "every process stopped", "; ".join(complaints))
        chk.group = ""


def t_untrusted(st, chk):
    rid = st.create_room("untrusted", [])
    for i in range(3):
        chk.eq(refused(st, rid, "u%d" % i, "203.0.113.%d" % (i + 1)), 0,
               "connection %d with its own made-up X-Forwarded-For accepted" % (i + 1))
    chk.eq(refused(st, rid, "u3", "203.0.113.4"), 429,
           "4th connection from 127.0.0.1 -> 429: the header of an untrusted peer is ignored")
    chk.eq(refused(st, rid, "u4"), 429, "and without the header, the same address")


def t_trusted(st, chk):
    rid = st.create_room("trusted", [])
    for i in range(3):
        chk.eq(refused(st, rid, "t%d" % i, "203.0.113.1"), 0, "connection %d for 203.0.113.1" % (i + 1))
    chk.eq(refused(st, rid, "t3", "203.0.113.1"), 429, "4th for 203.0.113.1 -> 429")
    chk.eq(refused(st, rid, "t3", "203.0.113.1, 127.0.0.1"), 429,
           "a trusted proxy's own entry is walked past")
    chk.eq(refused(st, rid, "t4", "203.0.113.2"), 0, "another X-Forwarded-For address is counted apart")
    chk.eq(refused(st, rid, "t5", "203.0.113.1, 198.51.100.7"), 0,
           "the right-most untrusted entry is the client, not the left-most")
    chk.eq(refused(st, rid, "t6"), 0, "no header: the peer 127.0.0.1 itself")


def expect_exit(st, chk, name, settings, want, what):
    """Starts a second chatd with the stack's settings changed; it must
    stop at start naming want."""
    env_file = st.path("%s.env" % name)
    with open(st.env_file) as f:
        text = f.read()
    text += "CONTROL_SOCKET=%s\n" % st.path("run", "%s-control.sock" % name)
    for k, v in settings.items():
        text += "%s=%s\n" % (k, v)
    with open(env_file, "w") as f:
        f.write(text)
    r = subprocess.run([cs.CHATD], env=cs.stack.clean_env({"CHAT_ENV_FILE": env_file}), cwd=st.tmp,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=30)
    out = r.stdout.decode("utf-8", "replace")
    chk.ok(r.returncode != 0 and want in out, what, "exit %d: %s" % (r.returncode, out[-300:]))


CONNECT = """
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
try:
    s.connect(sys.argv[1])
except PermissionError:
    sys.exit(13)
sys.exit(0)
"""


def connect_as(user, group, path):
    r = subprocess.run(["/usr/bin/python3", "-c", CONNECT, path], user=user, group=group, extra_groups=[],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=30)
    return r.returncode


def t_unix(st, chk):
    path = st.chatd_socket
    rid = st.create_room("unix", [])
    ws = st.ws(rid, "via-proxy")
    chk.eq(ws.welcome.get("type"), "UserJoined", "a WebSocket through %s reaches chatd's Unix socket" % FRONT)
    ws.close()
    mode = os.stat(path)
    chk.eq(stat.S_IMODE(mode.st_mode), 0o660, "the socket is mode 0660")
    if os.geteuid() == 0:
        chk.eq(mode.st_gid, grp.getgrnam("www-data").gr_gid, "the socket belongs to CHATD_SOCKET_GROUP www-data")
        chk.eq(connect_as("nobody", "nogroup", path), 13, "a local user outside the group cannot connect")
        chk.eq(connect_as("www-data", "www-data", path), 0, "the web server's user can")
    else:
        print("note: not root, the socket's group is not checked")
    # The peer on the socket is the web server: its X-Forwarded-For counts.
    for i in range(3):
        chk.eq(refused(st, rid, "x%d" % i, "203.0.113.1"), 0, "connection %d for 203.0.113.1 on the socket" % i)
    chk.eq(refused(st, rid, "x3", "203.0.113.1"), 429, "4th for 203.0.113.1 on the socket -> 429")
    chk.eq(refused(st, rid, "x4", "203.0.113.2"), 0, "another address on the socket is counted apart")
    expect_exit(st, chk, "second", {}, "another chatd is listening there",
                "a second chatd refuses to take over the listening socket")
    chk.ok(st.chatd.running() and st.ctl("health").get("ok"), "the first chatd still serves")
    w = st.ws(rid, "after-second")
    chk.eq(w.welcome.get("type"), "UserJoined", "and its socket still works")
    w.close()
    expect_exit(st, chk, "badgroup", {"CHATD_LISTEN": "unix:%s" % st.path("run", "other.sock"),
                                      "CHATD_SOCKET_GROUP": "no-such-group-here"},
                "CHATD_SOCKET_GROUP=no-such-group-here", "an unknown CHATD_SOCKET_GROUP stops chatd, named")
    expect_exit(st, chk, "badlist", {"CHATD_LISTEN": "unix:%s" % st.path("run", "other.sock"),
                                     "TRUSTED_PROXIES": "127.0.0.1,localhost"},
                "TRUSTED_PROXIES=127.0.0.1,localhost", "a bad TRUSTED_PROXIES entry stops chatd, named")


def main():
    cs.stack.setup_process()
    cs.require_chatd(FRONT)
    chk = cs.Checker("chatd behind proxies: X-Forwarded-For and the Unix socket")
    limit = {"MAX_CONNECTIONS_PER_ADDRESS": "3"}
    with_stack(chk, "TCP, 127.0.0.1 not trusted", dict(limit, TRUSTED_PROXIES="10.0.0.1"), True, t_untrusted)
    with_stack(chk, "TCP, default TRUSTED_PROXIES", limit, True, t_trusted)
    with_stack(chk, "Unix socket", limit, False, t_unix)
    return chk.finish()


if __name__ == "__main__":
    sys.exit(main())
