"""
Harness for chatd's integration tests: starts the real chat-api behind a
real web server (lighttpd, Apache or nginx) rendered from the configs in
contrib/ by contrib/render-config.sh, on free ports of 127.0.0.1 in a fresh
temporary folder, and stops every process it started, by PID, whatever
happens (finally blocks, atexit, SIGTERM, and a watchdog alarm).

Python 3 standard library only; run with Debian's /usr/bin/python3.
Reads sources from the source tree (found from this file's location) and
binaries from the build tree ($abs_top_builddir, else the current folder
when it holds src/api/chat-api, else the source tree), and writes only to
temporary folders, so it also works under `make distcheck`.

Environment knobs: CHAT_API_BIN (chat-api to test), KEEP_TMP=1 (keep the
temporary folder), VERBOSE=1 (print every passing check too),
TEST_TIMEOUT (seconds for one whole test script, default 300),
CHAT_TEST_DB=sqlite|pg (the database every stack uses; testdb.py).
"""

import atexit
import base64
import ctypes
import hashlib
import http.client
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

import testdb
import wsclient

SKIP = 77
HERE = os.path.dirname(os.path.abspath(__file__))
SRCDIR = os.path.normpath(os.path.join(HERE, "..", ".."))
KEY = "it-secret-key-7f3a9c"


def _builddir():
    for var in ("abs_top_builddir", "top_builddir"):
        d = os.environ.get(var)
        if d and os.path.isdir(d):
            return os.path.abspath(d)
    if os.path.exists(os.path.join(os.getcwd(), "src", "api", "chat-api")):
        return os.getcwd()
    return SRCDIR


BUILDDIR = _builddir()
CHAT_API = os.environ.get("CHAT_API_BIN") or os.path.join(BUILDDIR, "src", "api", "chat-api")
RENDER = os.path.join(SRCDIR, "contrib", "render-config.sh")
CONTRIB = os.path.join(SRCDIR, "contrib")

# Each front: the template, how chat-api runs, and the web server.
FRONTS = {
    "lighttpd-spawn": ("lighttpd/chatd-spawn.conf", "spawn", "lighttpd"),
    "lighttpd-socket": ("lighttpd/chatd-socket.conf", "fcgi-unix", "lighttpd"),
    "lighttpd-scgi": ("lighttpd/chatd-scgi.conf", "scgi-tcp", "lighttpd"),
    "apache": ("apache/chatd.conf", "fcgi-unix", "apache2"),
    "nginx": ("nginx/chatd.conf", "fcgi-unix", "nginx"),
}


def clean_env(extra=None):
    """A minimal environment, so no chatd setting of the developer's own
    environment (which would win over the test's env file) leaks in."""
    env = {
        "PATH": os.environ.get("PATH", "") + ":/usr/sbin:/sbin:/usr/bin:/bin",
        "LANG": "C.UTF-8",
        "HOME": os.environ.get("HOME", "/"),
    }
    for k in ("TMPDIR",):
        if k in os.environ:
            env[k] = os.environ[k]
    env.update(extra or {})
    return env


def which(name):
    found = shutil.which(name, path=clean_env()["PATH"])
    return found


def free_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
    finally:
        s.close()


def port_in_use(port):
    for fam, host in ((socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")):
        s = socket.socket(fam, socket.SOCK_STREAM)
        s.settimeout(1)
        try:
            s.connect((host, port))
            return True
        except OSError:
            pass
        finally:
            s.close()
    return False


def log(msg):
    print(msg, flush=True)


# Seconds a test waits for an asynchronous result: about ten times what it
# normally takes, so a loaded machine or a sanitizer build still makes it.
WAIT = 10.0


def wait_until(fetch, what, done=bool, timeout=WAIT, every=0.05):
    """Calls fetch() until done(value) holds, and returns that value.
    After timeout seconds it logs what it waited for and returns fetch()'s
    last value, so the check that follows fails with its own message (one
    failed check, not the end of the script)."""
    deadline = time.monotonic() + timeout
    while True:
        got = fetch()
        if done(got):
            return got
        if time.monotonic() >= deadline:
            log("waited %.0f s for %s: not so (last: %r)" % (timeout, what, got))
            return got
        time.sleep(every)


# ---------------------------------------------------------------- checks


class Checker:
    """Counts checks; prints failures (and passes with VERBOSE=1)."""

    def __init__(self, title):
        self.title = title
        self.passed = 0
        self.failures = []
        self.verbose = os.environ.get("VERBOSE") == "1"
        self.group = ""
        log("== %s" % title)

    def section(self, name):
        self.group = name
        if self.verbose:
            log("-- %s" % name)

    def ok(self, cond, what, detail=""):
        name = "%s: %s" % (self.group, what) if self.group else what
        if cond:
            self.passed += 1
            if self.verbose:
                log("ok   %s" % name)
        else:
            self.failures.append(name)
            log("FAIL %s%s" % (name, (" -- " + detail) if detail else ""))
        return bool(cond)

    def eq(self, actual, expected, what):
        return self.ok(actual == expected, what, "got %r, expected %r" % (actual, expected))

    def status(self, resp, code, what, err=None):
        """resp.status == code; with err, also the JSON error shape and code."""
        good = resp.status == code
        detail = "status %s, expected %s; body %s" % (resp.status, code, resp.snippet())
        if good and err is not None:
            e = resp.json.get("error") if isinstance(resp.json, dict) else None
            good = (
                isinstance(e, dict)
                and e.get("code") == err
                and isinstance(e.get("message"), str)
                and e.get("message") != ""
            )
            detail = "error code %r expected; body %s" % (
                e.get("code") if isinstance(e, dict) else None,
                resp.snippet(),
            )
        return self.ok(good, what, detail)

    def run(self, name, fn, *args):
        """Runs one test function; an exception is one failure, not the end."""
        self.section(name)
        try:
            fn(*args)
        except Exception as exc:  # noqa: BLE001 - report and go on
            import traceback

            self.ok(False, "raised %s: %s" % (type(exc).__name__, exc))
            if self.verbose:
                traceback.print_exc()
        self.group = ""

    def finish(self):
        failed = len(self.failures)
        if failed:
            log("-- failed checks in %s:" % self.title)
            for f in self.failures:
                log("   %s" % f)
        log("%d passed, %d failed" % (self.passed, failed))
        return 0 if failed == 0 else 1


# ---------------------------------------------------------------- HTTP


class Resp:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers  # list of (name, value)
        self.body = body
        try:
            self.json = json.loads(body.decode("utf-8")) if body else None
        except (UnicodeDecodeError, ValueError):
            self.json = None

    def header(self, name):
        for k, v in self.headers:
            if k.lower() == name.lower():
                return v
        return None

    def snippet(self, n=300):
        text = self.body[:n].decode("utf-8", "replace")
        return repr(text) + ("..." if len(self.body) > n else "")


_DEFAULT = object()


class Client:
    """One request per connection, raw control over method, path and body."""

    def __init__(self, host, port, key):
        self.host = host
        self.port = port
        self.key = key

    def req(self, method, path, body=None, key=_DEFAULT, ctype=_DEFAULT, headers=None, timeout=30, bare=False):
        """A body-less POST/PUT/PATCH carries Content-Length: 0, as curl -d ''
        and most clients send; bare=True leaves it out (plain curl -X POST)."""
        if isinstance(body, (dict, list)):
            body = json.dumps(body, ensure_ascii=False).encode("utf-8")
        elif isinstance(body, str):
            body = body.encode("utf-8")
        conn = http.client.HTTPConnection(self.host, self.port, timeout=timeout)
        try:
            conn.putrequest(method, path, skip_accept_encoding=True)
            k = self.key if key is _DEFAULT else key
            if k is not None:
                conn.putheader("X-Api-Key", k)
            if ctype is _DEFAULT:
                ctype = "application/json" if body is not None else None
            if ctype is not None:
                conn.putheader("Content-Type", ctype)
            if body is not None:
                conn.putheader("Content-Length", str(len(body)))
            elif method in ("POST", "PUT", "PATCH") and not bare:
                conn.putheader("Content-Length", "0")
            for hk, hv in (headers or {}).items():
                conn.putheader(hk, hv)
            try:
                conn.endheaders(body)
            except (BrokenPipeError, ConnectionResetError):
                # The server may answer (413) and close before reading it all.
                pass
            r = conn.getresponse()
            data = r.read()
            return Resp(r.status, r.getheaders(), data)
        finally:
            conn.close()

    def raw(self, data, timeout=30):
        """Sends raw request bytes; parses the answer (skipping any
        100 Continue, undoing chunked transfer coding)."""
        s = socket.create_connection((self.host, self.port), timeout=timeout)
        try:
            s.sendall(data)
            r = http.client.HTTPResponse(s)
            r.begin()
            return Resp(r.status, r.getheaders(), r.read())
        finally:
            s.close()

    def get(self, path, **kw):
        return self.req("GET", path, **kw)

    def post(self, path, body=None, **kw):
        return self.req("POST", path, body, **kw)

    def delete(self, path, **kw):
        return self.req("DELETE", path, **kw)


# ---------------------------------------------------------------- processes

_PR_SET_CHILD_SUBREAPER = 36


def _become_subreaper():
    """Orphans of our children (lighttpd's spawned chat-api) become ours,
    so we can find, stop and reap them by PID."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    except (OSError, AttributeError):
        pass


def _proc_stat(pid):
    """(state, ppid, starttime) of a process, or None."""
    try:
        with open("/proc/%d/stat" % pid, "rb") as f:
            data = f.read().decode("ascii", "replace")
    except OSError:
        return None
    rest = data[data.rfind(")") + 2 :].split()
    return rest[0], int(rest[1]), int(rest[19])


def _children_of(ppid):
    out = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            st = _proc_stat(int(name))
            if st and st[1] == ppid and st[0] != "Z":
                out.append(int(name))
    return out


def _descendants(pid):
    seen, todo = [], [pid]
    while todo:
        p = todo.pop()
        for c in _children_of(p):
            if c not in seen:
                seen.append(c)
                todo.append(c)
    return seen


def _alive(pid, starttime=None):
    st = _proc_stat(pid)
    if st is None or st[0] in ("Z", "X"):
        return False
    return starttime is None or st[2] == starttime


class Proc:
    """A started program with its log file."""

    def __init__(self, name, argv, env, logdir, cwd=None):
        self.name = name
        self.argv = argv
        self.log_path = os.path.join(logdir, name + ".log")
        self.logf = open(self.log_path, "ab")
        self.p = subprocess.Popen(
            argv,
            env=env,
            cwd=cwd or logdir,
            stdin=subprocess.DEVNULL,
            stdout=self.logf,
            stderr=subprocess.STDOUT,
        )
        self.pid = self.p.pid

    def running(self):
        return self.p.poll() is None

    def tail(self, n=40):
        try:
            with open(self.log_path, "rb") as f:
                lines = f.read().decode("utf-8", "replace").splitlines()
        except OSError:
            return ""
        return "\n".join(lines[-n:])


def _signal_and_wait(pid, sig, seconds, starttime=None, popen=None):
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        return True
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if popen is not None:
            if popen.poll() is not None:
                return True
        else:
            try:
                os.waitpid(pid, os.WNOHANG)  # reaps it if it is our orphan
            except ChildProcessError:
                pass
            if not _alive(pid, starttime):
                return True
        time.sleep(0.05)
    return False


def stop_process_tree(proc, term_wait=10.0):
    """Stops one started program and whatever it spawned, by PID.
    Returns complaints (strings) about processes that needed SIGKILL or
    outlived their parent by more than a few seconds."""
    complaints = []
    kids = [(pid, (_proc_stat(pid) or (0, 0, None))[2]) for pid in _descendants(proc.pid)]
    if proc.running():
        if not _signal_and_wait(proc.pid, signal.SIGTERM, term_wait, popen=proc.p):
            complaints.append("%s (pid %d) ignored SIGTERM for %.0f s" % (proc.name, proc.pid, term_wait))
            _signal_and_wait(proc.pid, signal.SIGKILL, 5, popen=proc.p)
    proc.p.poll()
    # What it spawned should have gone with it; give it a moment.
    for pid, start in kids:
        if not _alive(pid, start):
            continue
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and _alive(pid, start):
            try:
                os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                pass
            time.sleep(0.05)
        if _alive(pid, start):
            complaints.append(
                "pid %d spawned by %s outlived it by 5 s (%s)" % (pid, proc.name, _cmdline(pid))
            )
            if not _signal_and_wait(pid, signal.SIGTERM, 5, start):
                _signal_and_wait(pid, signal.SIGKILL, 5, start)
    try:
        proc.logf.close()
    except OSError:
        pass
    return complaints


def _cmdline(pid):
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            return f.read().replace(b"\0", b" ").decode("utf-8", "replace").strip()
    except OSError:
        return "?"


def reap_orphans():
    """Reaps zombies reparented to us (we are a subreaper)."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


# ---------------------------------------------------------------- fake chatd


class FakeChatd:
    """Stands in for chatd's WebSocket listener (chatd does not exist yet):
    accepts the upgrade, then sends one text frame describing the request it
    received (request line and headers) and echoes every text frame back.
    Lets the tests check that each web server passes the upgrade, the path
    and query unchanged, and X-Forwarded-For."""

    def __init__(self, port, unix_path=None):
        """Listens on 127.0.0.1:port, or on the Unix socket unix_path (open
        to every user: the web server's workers run as www-data)."""
        self.port = port
        if unix_path is not None:
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.sock.bind(unix_path)
            os.chmod(unix_path, 0o666)
        else:
            self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self.sock.bind(("127.0.0.1", port))
        self.sock.listen(64)
        self.sock.settimeout(0.2)
        self.stopping = False
        self.thread = threading.Thread(target=self._accept_loop, daemon=True)
        self.thread.start()

    def stop(self):
        self.stopping = True
        self.thread.join(5)
        self.sock.close()

    def _accept_loop(self):
        while not self.stopping:
            try:
                c, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    def _serve(self, c):
        c.settimeout(10)
        try:
            data = b""
            while b"\r\n\r\n" not in data and len(data) < 65536:
                chunk = c.recv(4096)
                if not chunk:
                    return
                data += chunk
            head = data.split(b"\r\n\r\n", 1)[0].decode("latin-1")
            lines = head.split("\r\n")
            headers = []
            for line in lines[1:]:
                k, _, v = line.partition(":")
                headers.append([k.strip(), v.strip()])
            hmap = {k.lower(): v for k, v in headers}
            if hmap.get("upgrade", "").lower() != "websocket":
                body = b'{"fake_chatd":"no upgrade"}'
                c.sendall(
                    b"HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\n"
                    b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(body) + body
                )
                return
            accept = base64.b64encode(
                hashlib.sha1(
                    (hmap.get("sec-websocket-key", "") + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()
                ).digest()
            )
            c.sendall(
                b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept + b"\r\n\r\n"
            )
            info = json.dumps({"request_line": lines[0], "headers": headers})
            c.sendall(wsclient.frame(info.encode("utf-8"), mask=False))
            c.settimeout(900)  # longer than any proxy idle timeout under test
            while True:
                op, payload = ws_read_frame(c)
                if op is None or op == 8:
                    c.sendall(wsclient.frame(b"", wsclient.OP_CLOSE, mask=False))
                    return
                if op == 1:
                    c.sendall(wsclient.frame(payload, mask=False))
        except OSError:
            pass
        finally:
            c.close()


def _recv_exact(s, n):
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return buf


def ws_read_frame(s):
    """(opcode, payload) of one frame, or (None, None) at EOF."""
    h = _recv_exact(s, 2)
    if h is None:
        return None, None
    op = h[0] & 0x0F
    n = h[1] & 0x7F
    masked = h[1] & 0x80
    if n == 126:
        n = struct.unpack("!H", _recv_exact(s, 2))[0]
    elif n == 127:
        n = struct.unpack("!Q", _recv_exact(s, 8))[0]
    key = _recv_exact(s, 4) if masked else None
    payload = _recv_exact(s, n) if n else b""
    if payload is None:
        return None, None
    if key:
        payload = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
    return op, payload


def ws_connect(host, port, path, extra_headers=None, timeout=10):
    """Opens a WebSocket through the web server; returns (socket, status,
    response head, leftover bytes)."""
    s = socket.create_connection((host, port), timeout=timeout)
    key = base64.b64encode(os.urandom(16)).decode()
    req = (
        "GET %s HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n" % (path, host, port, key)
    )
    for k, v in (extra_headers or {}).items():
        req += "%s: %s\r\n" % (k, v)
    s.sendall((req + "\r\n").encode("utf-8"))
    data = b""
    while b"\r\n\r\n" not in data and len(data) < 65536:
        chunk = s.recv(4096)
        if not chunk:
            break
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    status = 0
    try:
        status = int(head.split(b" ", 2)[1])
    except (IndexError, ValueError):
        pass
    return s, status, head.decode("latin-1"), rest


# ---------------------------------------------------------------- the stack


class StackError(Exception):
    pass


_live_stacks = []


def _cleanup_all():
    for st in list(_live_stacks):
        try:
            st.stop()
        except Exception as exc:  # noqa: BLE001
            log("cleanup: %s" % exc)
    reap_orphans()


def _on_signal(signum, frame):
    raise SystemExit(128 + signum)


class Watchdog(BaseException):
    """The whole script ran out of time (BaseException: no handler for
    OSError swallows it)."""


def _on_alarm(signum, frame):
    raise Watchdog("test script ran longer than TEST_TIMEOUT=%s s" % os.environ.get("TEST_TIMEOUT", "300"))


def setup_process():
    """Call once at the start of a test script."""
    sys.dont_write_bytecode = True
    _become_subreaper()
    atexit.register(_cleanup_all)
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGHUP, _on_signal)
    signal.signal(signal.SIGALRM, _on_alarm)
    signal.alarm(int(os.environ.get("TEST_TIMEOUT", "300")))


def require_tools(front):
    """Exits 77 (skip) when the web server is not installed, 1 when
    chat-api is not built."""
    if not os.access(CHAT_API, os.X_OK):
        log("chat-api not found at %s: build first (make)" % CHAT_API)
        sys.exit(1)
    server = FRONTS[front][2]
    if which(server) is None:
        log("SKIP: %s is not installed" % server)
        sys.exit(SKIP)


# Fronts whose chatd listens on TCP (CHATD_LISTEN=127.0.0.1:PORT); every
# other front proxies to chatd's Unix socket (CHATD_LISTEN=unix:PATH), as
# the quick start does. Both forms stay tested.
TCP_FRONTS = ("lighttpd-scgi",)


class Stack:
    """chat-api behind one web server, plus a fake chatd WebSocket backend.

    settings: extra KEY=VALUE lines for the env file. admin_key=None leaves
    ADMIN_API_KEY out of the file entirely; "" writes it empty. chatd_tcp:
    chatd on TCP (True) or its Unix socket (False); None: TCP_FRONTS decide.
    chatd_target is where to reach chatd directly (a socket path, or
    127.0.0.1 with chatd_port), as WSClient.connect takes it."""

    def __init__(self, front, admin_key=KEY, settings=None, fake_chatd=True, bind_port=None, render_env=None,
                 chatd_tcp=None):
        if front not in FRONTS:
            raise ValueError(front)
        self.front = front
        self.template, self.api_mode, self.server = FRONTS[front]
        self.admin_key = admin_key
        self.settings = dict(settings or {})
        self.want_fake_chatd = fake_chatd
        self.bind_port = bind_port
        self.render_env = dict(render_env or {})
        self.chatd_tcp = front in TCP_FRONTS if chatd_tcp is None else chatd_tcp
        self.procs = []
        self.fake = None
        self.tmp = None
        self.complaints = []
        self.stopped = False
        self.db = None

    # -- paths
    def path(self, *parts):
        return os.path.join(self.tmp, *parts)

    @property
    def db_path(self):
        """The SQLite file (SQLite runs only; see self.db)."""
        return self.path("run", "chat.db")

    def db_query(self, sql, params=()):
        """Rows of a read of the stack's database, either engine."""
        return self.db.query(sql, params)

    def __enter__(self):
        _live_stacks.append(self)
        try:
            self.start()
        except BaseException:
            self.dump_logs()
            self.stop()
            raise
        return self

    def __exit__(self, *exc):
        if exc[0] is not None:
            self.dump_logs()
        self.stop()
        return False

    def start(self):
        self.tmp = tempfile.mkdtemp(prefix="chatd-it-%s-" % self.front)
        # The web server's user (www-data) must reach the sockets and the
        # chat-api lighttpd spawns, which writes here as do upload files;
        # the folder is under TMPDIR, not the checkout, for that.
        os.chmod(self.tmp, 0o755)
        os.mkdir(self.path("run"))
        os.chmod(self.path("run"), 0o1777)
        self.host = "127.0.0.1"
        self.port = self.bind_port or free_port()
        self.chatd_port = free_port()
        if self.chatd_tcp:
            self.chatd_socket = None
            self.chatd_target = "127.0.0.1"
            self.chatd_addr = "127.0.0.1:%d" % self.chatd_port
        else:
            self.chatd_socket = self.path("run", "chatd.sock")
            self.chatd_target = self.chatd_socket
            self.chatd_addr = "unix:%s" % self.chatd_socket
        self.api_socket = self.path("run", "api.sock")
        self.api_port = free_port()
        self.env_file = self.path("chatd.env")
        lines = ["# written by tests/integration/stack.py"]
        # A DATABASE_URL among the settings (a test's own PostgreSQL or file)
        # replaces the default: CHAT_TEST_DB's file in run/, or a fresh
        # PostgreSQL database.
        if "DATABASE_URL" not in self.settings:
            self.db = testdb.fresh(self.path("run"), "chat.db")
            lines.append("DATABASE_URL=%s" % self.db.url)
        lines += [
            "CONTROL_SOCKET=%s" % self.path("run", "control.sock"),
            "CHATD_LISTEN=%s" % self.chatd_addr,
            "LOG_LEVEL=info",
        ]
        if self.chatd_socket is not None and os.geteuid() == 0:
            # Only the web server's workers (www-data) may open it.
            lines.append("CHATD_SOCKET_GROUP=www-data")
        if self.admin_key is not None:
            lines.append("ADMIN_API_KEY=%s" % self.admin_key)
        for k, v in self.settings.items():
            lines.append("%s=%s" % (k, v))
        with open(self.env_file, "w") as f:
            f.write("\n".join(lines) + "\n")
        os.chmod(self.env_file, 0o644)

        if self.want_fake_chatd:
            self.fake = FakeChatd(self.chatd_port, self.chatd_socket)

        if self.api_mode == "fcgi-unix":
            self._start_api(["--socket", self.api_socket, "--socket-mode", "0666"])
            self._wait_unix(self.api_socket, self.procs[-1])
        elif self.api_mode == "scgi-tcp":
            self._start_api(["--scgi", "--socket", "127.0.0.1:%d" % self.api_port])
            self._wait_tcp(self.api_port, self.procs[-1])

        self.conf = self.path("server.conf")
        chat_api = CHAT_API
        if self.api_mode == "spawn":
            # lighttpd starts chat-api as its own user (www-data), from the
            # binary's folder; a checkout in a private home (/root is 0700)
            # is out of that user's reach, so it runs a copy from here.
            os.mkdir(self.path("bin"))
            chat_api = self.path("bin", "chat-api")
            shutil.copy(CHAT_API, chat_api)
            os.chmod(self.path("bin"), 0o755)
            os.chmod(chat_api, 0o755)
        # lighttpd (as www-data) reads its JSON error documents at request
        # time: a copy here, as an operator copies them out of the checkout.
        errors = self.path("errors")
        shutil.copytree(os.path.join(CONTRIB, "lighttpd", "errors"), errors)
        os.chmod(errors, 0o755)
        render_env = clean_env(
            {
                "LIGHTTPD_ERROR_DIR": errors,
                "BIND_ADDRESS": "%s:%d" % (self.host, self.port),
                "API_SOCKET": self.api_socket,
                "API_ADDR": "127.0.0.1:%d" % self.api_port,
                "CHATD_ADDR": self.chatd_addr,
                "STATE_DIR": self.path("run"),
                "CHAT_API": chat_api,
                "ENV_FILE": self.env_file,
                "WEB_USER": "www-data",
                "WEB_GROUP": "www-data",
            }
        )
        # The web server is sized from chatd's setting, as in production.
        if "MAX_CONNECTIONS" in self.settings:
            render_env["MAX_CONNECTIONS"] = str(self.settings["MAX_CONNECTIONS"])
        render_env.update(self.render_env)
        self.render_output = render(os.path.join(CONTRIB, self.template), self.conf, render_env)

        exe = which(self.server)
        if self.server == "lighttpd":
            argv = [exe, "-D", "-f", self.conf]
        elif self.server == "apache2":
            argv = [exe, "-f", self.conf, "-DFOREGROUND"]
        else:
            argv = [exe, "-e", "stderr", "-p", self.path("run"), "-c", self.conf, "-g", "daemon off;"]
        self.procs.append(Proc(self.server, argv, clean_env(), self.tmp))
        self.client = Client(self.host, self.port, self.admin_key or KEY)
        self._wait_http()

    def _start_api(self, args):
        env = clean_env({"CHAT_ENV_FILE": self.env_file})
        self.procs.append(Proc("chat-api", [CHAT_API] + args, env, self.tmp))

    def _wait_unix(self, path, proc, seconds=15):
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if not proc.running():
                raise StackError("%s exited (%s) before listening:\n%s" % (proc.name, proc.p.returncode, proc.tail()))
            if os.path.exists(path):
                s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                try:
                    s.connect(path)
                    return
                except OSError:
                    pass
                finally:
                    s.close()
            time.sleep(0.05)
        raise StackError("%s did not listen on %s within %d s" % (proc.name, path, seconds))

    def _wait_tcp(self, port, proc, seconds=15):
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if not proc.running():
                raise StackError("%s exited (%s) before listening:\n%s" % (proc.name, proc.p.returncode, proc.tail()))
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.05)
        raise StackError("%s did not listen on port %d within %d s" % (proc.name, port, seconds))

    def _wait_http(self, seconds=20):
        """Ready when a management request reaches chat-api (JSON answer)."""
        deadline = time.monotonic() + seconds
        last = ""
        while time.monotonic() < deadline:
            for p in self.procs:
                if not p.running():
                    raise StackError("%s exited (%s) during start-up:\n%s" % (p.name, p.p.returncode, p.tail()))
            try:
                r = self.client.get("/management/health", timeout=5)
                if isinstance(r.json, dict) and ("status" in r.json or "error" in r.json):
                    return
                last = "status %d %s" % (r.status, r.snippet(120))
            except OSError as exc:
                last = str(exc)
            time.sleep(0.1)
        raise StackError("%s front did not answer within %d s (last: %s)" % (self.front, seconds, last))

    def stop(self):
        """Stops everything by PID, web server first. Idempotent."""
        if self.stopped:
            return self.complaints
        self.stopped = True
        signal.alarm(0)
        for p in reversed(self.procs):
            self.complaints += stop_process_tree(p)
        reap_orphans()
        if self.fake:
            self.fake.stop()
        if self in _live_stacks:
            _live_stacks.remove(self)
        if self.tmp:
            for leak in testdb.password_leaks(self.tmp):
                self.complaints.append("%s holds the database password" % leak)
        if self.tmp and os.environ.get("KEEP_TMP") != "1":
            shutil.rmtree(self.tmp, ignore_errors=True)
        elif self.tmp:
            log("kept %s" % self.tmp)
        return self.complaints

    def dump_logs(self, n=40):
        for p in self.procs:
            log("---- last lines of %s (%s) ----" % (p.name, p.log_path))
            log(p.tail(n))

    def api_running(self):
        return all(p.running() for p in self.procs)


def render(template, out, env):
    r = subprocess.run(
        ["/bin/sh", RENDER, "-o", out, template],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        timeout=30,
    )
    if r.returncode != 0:
        raise StackError("render-config.sh failed: %s" % r.stdout.decode("utf-8", "replace"))
    return r.stdout.decode("utf-8", "replace")


def main_for_front(front, title, extra=None):
    """Entry point shared by the per-front test scripts: starts the front,
    runs the shared route suite (and extra(stack, chk)), stops it, checks
    that nothing outlived it."""
    setup_process()
    require_tools(front)
    import routes  # noqa: E402 - after sys.dont_write_bytecode

    chk = Checker(title)
    stack = Stack(front)
    code = None
    try:
        with stack:
            routes.run_all(stack, chk)
            if extra:
                extra(stack, chk)
            chk.section("processes")
            chk.ok(stack.api_running(), "chat-api and %s still running after the suite" % stack.server)
            if chk.failures:
                stack.dump_logs()
    except StackError as exc:
        chk.ok(False, "stack start", str(exc))
    except (KeyboardInterrupt, SystemExit, Watchdog) as exc:
        chk.ok(False, "interrupted", repr(exc))
        code = exc.code if isinstance(exc, SystemExit) else 1
    finally:
        complaints = stack.stop()
        chk.section("shutdown")
        chk.ok(not complaints, "every process stopped on SIGTERM", "; ".join(complaints))
        reap_orphans()
    result = chk.finish()
    return code if code else result


# ---------------------------------------------------------------- cluster


def start_nats(logdir, name="nats-server", seconds=15):
    """Starts a real nats-server on 127.0.0.1 on a port the kernel picks
    (-p -1; nats-server writes it to a ports file named after its PID).
    Returns (Proc, "nats://127.0.0.1:PORT"). Stop it by PID like any Proc
    (stop_process_tree). A missing nats-server raises StackError: a test
    that needs it fails."""
    exe = which("nats-server")
    if exe is None:
        raise StackError("nats-server is not installed (apt-get install nats-server)")
    ports_dir = tempfile.mkdtemp(prefix="nats-ports-", dir=logdir)
    proc = Proc(name, [exe, "-a", "127.0.0.1", "-p", "-1", "--ports_file_dir", ports_dir], clean_env(), logdir)
    ports = os.path.join(ports_dir, "%s_%d.ports" % (os.path.basename(exe), proc.pid))
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not proc.running():
            raise StackError("nats-server exited (%s) at start:\n%s" % (proc.p.returncode, proc.tail()))
        try:
            with open(ports, encoding="utf-8") as f:
                urls = json.load(f).get("nats") or []
            if urls:
                return proc, urls[0]
        except (OSError, ValueError):
            pass
        time.sleep(0.05)
    stop_process_tree(proc)
    raise StackError("nats-server did not write %s within %d s:\n%s" % (ports, seconds, proc.tail()))


def control_request(path, type_, args=None, timeout=5):
    """One request on a chatd control socket (one JSON line each way);
    returns the reply object."""
    req = {"v": 1, "id": 1, "type": type_}
    if args is not None:
        req["args"] = args
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        s.connect(path)
        s.sendall((json.dumps(req) + "\n").encode("utf-8"))
        data = b""
        while b"\n" not in data:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
        return json.loads(data.split(b"\n", 1)[0].decode("utf-8"))
    finally:
        s.close()


def node_connections(control_socket):
    """Open WebSocket connections of one chatd (its health reply), or None
    when it does not answer."""
    try:
        r = control_request(control_socket, "health")
    except (OSError, ValueError):
        return None
    return (r.get("result") or {}).get("connections") if r.get("ok") else None
