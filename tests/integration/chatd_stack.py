"""
chatd's integration harness: the real chatd behind a real web server
(stack.Stack with fake_chatd=False: chat-api plus lighttpd, Apache or nginx
rendered from contrib/), WebSocket clients through the proxy
(wsclient.py), the control socket, and helpers to kill and restart chatd.
Every process is started here or by stack.py and stopped by PID.

Python 3 standard library only; run with /usr/bin/python3.
"""

import os
import signal
import socket
import sys
import time
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.dont_write_bytecode = True

import stack  # noqa: E402
from stack import Checker, Proc, StackError, Watchdog, log, reap_orphans  # noqa: E402,F401
from wsclient import Closed, HandshakeError, Timeout, WSClient  # noqa: E402,F401

CHATD = os.environ.get("CHATD_BIN") or os.path.join(stack.BUILDDIR, "src", "chatd", "chatd")


def require_chatd(front):
    stack.require_tools(front)
    if not os.access(CHATD, os.X_OK):
        log("chatd not found at %s: build first (make)" % CHATD)
        sys.exit(1)


class ChatdStack(stack.Stack):
    """stack.Stack with the real chatd instead of the fake WebSocket backend."""

    def __init__(self, front, settings=None, render_env=None, chatd_tcp=None):
        s = {"USER_MESSAGE_INTERVAL_SECS": "0", "LOG_LEVEL": "info"}
        s.update(settings or {})
        super().__init__(front, settings=s, fake_chatd=False, render_env=render_env, chatd_tcp=chatd_tcp)
        self.chatd = None
        self.chatd_runs = 0

    @property
    def control_socket(self):
        return self.path("run", "control.sock")

    def start(self):
        super().start()
        self.start_chatd()

    def start_chatd(self):
        self.chatd_runs += 1
        env = stack.clean_env({"CHAT_ENV_FILE": self.env_file})
        name = "chatd" if self.chatd_runs == 1 else "chatd-%d" % self.chatd_runs
        self.chatd = Proc(name, [CHATD], env, self.tmp)
        self.procs.append(self.chatd)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if not self.chatd.running():
                raise StackError("chatd exited (%s) at start:\n%s" % (self.chatd.p.returncode, self.chatd.tail()))
            try:
                if self.ctl("health").get("ok"):
                    self.chatd_connect().close()
                    return
            except OSError:
                pass
            time.sleep(0.05)
        raise StackError("chatd did not start within 15 s:\n%s" % self.chatd.tail())

    def stop_chatd(self, sig=signal.SIGTERM, timeout=10):
        """Signals chatd and waits for it; returns its exit status (None if
        it had to be killed)."""
        p = self.chatd
        if p is None or not p.running():
            return p.p.returncode if p else None
        os.kill(p.pid, sig)
        try:
            return p.p.wait(timeout)
        except Exception:  # noqa: BLE001 - subprocess.TimeoutExpired
            os.kill(p.pid, signal.SIGKILL)
            p.p.wait(5)
            return None
        finally:
            try:
                p.logf.close()
            except OSError:
                pass
            self.procs.remove(p)

    def chatd_connect(self, timeout=1):
        """A plain socket straight to chatd's WebSocket listener."""
        if self.chatd_socket is None:
            return socket.create_connection(("127.0.0.1", self.chatd_port), timeout=timeout)
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(timeout)
        try:
            s.connect(self.chatd_socket)
        except BaseException:
            s.close()
            raise
        return s

    # ------------------------------------------------------------ control
    def ctl(self, type_, args=None, timeout=5):
        """One control request; returns the reply object."""
        return stack.control_request(self.control_socket, type_, args, timeout)

    # ------------------------------------------------------------ REST
    def create_room(self, name, admins=()):
        r = self.client.post("/management/rooms", {"room_name": name, "admin_user_ids": list(admins)})
        if r.status != 201:
            raise StackError("create room: %s %s" % (r.status, r.snippet()))
        return r.json["room_id"]

    # ------------------------------------------------------------ WebSocket
    def ws_path(self, room_id, user_id=None, nickname=None, extra=None):
        q = []
        if user_id is not None:
            q.append(("user_id", user_id))
        if nickname is not None:
            q.append(("nickname", nickname))
        q += list((extra or {}).items())
        path = "/ws/rooms/%s" % urllib.parse.quote(room_id, safe="")
        return path + ("?" + urllib.parse.urlencode(q) if q else "")

    def ws(self, room_id, user_id=None, nickname=None, welcome=True, direct=False, headers=None, **kw):
        """A WebSocket through the web server (direct=True: straight to
        chatd). With welcome, reads and checks the UserJoined frame."""
        host, port = (self.chatd_target, self.chatd_port) if direct else ("127.0.0.1", self.port)
        ws = WSClient.connect(host, port, self.ws_path(room_id, user_id, nickname, kw or None), headers)
        if welcome:
            m = ws.recv_json(5)
            if m.get("type") != "UserJoined":
                raise AssertionError("first frame is not UserJoined: %r" % m)
            ws.welcome = m
        return ws


def run_suite(front, chk, tests, settings=None, render_env=None):
    """Starts a ChatdStack on front, runs tests [(name, fn(st, chk))] into
    chk (names prefixed with the front), stops everything. Returns the
    exit status an interruption asks for, else None. render_env: extra
    variables for render-config.sh."""
    require_chatd(front)
    st = ChatdStack(front, settings, render_env)
    code = None
    before = len(chk.failures)
    try:
        with st:
            for name, fn in tests:
                chk.run("%s: %s" % (front, name), fn, st, chk)
            if len(chk.failures) > before:
                st.dump_logs(60)
    except StackError as exc:
        chk.ok(False, "%s: stack start" % front, str(exc))
    except (KeyboardInterrupt, SystemExit, Watchdog) as exc:
        chk.ok(False, "interrupted", repr(exc))
        code = exc.code if isinstance(exc, SystemExit) else 1
    finally:
        complaints = st.stop()
        chk.section("%s: shutdown" % front)
        chk.ok(not complaints, "every process stopped on SIGTERM", "; ".join(complaints))
        chk.group = ""
        reap_orphans()
    return code


def main_for_fronts(title, tests, settings=None, default=("lighttpd-socket", "apache", "nginx"), extra=None):
    """Entry point of a chatd test script: runs tests on every installed
    front, then extra(front, chk) once; prints "N passed, M failed"."""
    stack.setup_process()
    fronts = [f for f in fronts_from_argv(default) if stack.which(stack.FRONTS[f][2])]
    if not fronts:
        log("SKIP: no web server installed")
        return stack.SKIP
    chk = Checker(title)
    code = None
    for front in fronts:
        signal.alarm(int(os.environ.get("TEST_TIMEOUT", "300")))
        code = run_suite(front, chk, tests, settings)
        if code:
            break
    if extra is not None and not code:
        signal.alarm(int(os.environ.get("TEST_TIMEOUT", "300")))
        try:
            extra(fronts[0], chk)
        except Watchdog as exc:
            chk.ok(False, "interrupted", repr(exc))
    result = chk.finish()
    return code if code else result


def fronts_from_argv(default=("lighttpd-socket",)):
    """Fronts named on the command line or in CHATD_FRONTS (comma list)."""
    names = sys.argv[1:] or [f for f in os.environ.get("CHATD_FRONTS", "").split(",") if f]
    return names or list(default)
