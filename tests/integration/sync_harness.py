"""
chat-sync's test helpers: a recording receiver (contrib/callback/
callback_server.py, a real process on a free port), a scripted receiver
(in this process, answering by a test's function, for cases the real one
cannot play: fail one given batch, act on the database mid-request),
chat-sync runs (--once and --daemon) with settings in the environment, and
a fresh database filled directly for the bulk tests (SQLite or PostgreSQL
as CHAT_TEST_DB says; testdb.py). Processes are stopped by PID.

Where a function takes db, it is a testdb.Database, a FreshDB or a SQLite
file's path; with env_file, the file's DATABASE_URL counts instead.

Python 3 standard library only; run with /usr/bin/python3.
"""

import http.server
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.dont_write_bytecode = True

import stack  # noqa: E402
import testdb  # noqa: E402

CHAT_SYNC = os.environ.get("CHAT_SYNC_BIN") or os.path.join(stack.BUILDDIR, "src", "sync", "chat-sync")
RECEIVER = os.path.join(stack.SRCDIR, "contrib", "callback", "callback_server.py")
PYTHON = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable


def require_sync():
    if not os.access(CHAT_SYNC, os.X_OK):
        stack.log("chat-sync not found at %s: build first (make)" % CHAT_SYNC)
        sys.exit(1)


class Receiver:
    """callback_server.py on a free port, recording to a JSONL file."""

    def __init__(self, tmp, name="receiver", args=(), port=None):
        self.tmp = tmp
        self.name = name
        self.port = port or stack.free_port()
        self.record = os.path.join(tmp, name + ".jsonl")
        self.args = list(args)
        self.proc = None

    def url(self, path):
        return "http://127.0.0.1:%d%s" % (self.port, path)

    def start(self):
        argv = [PYTHON, RECEIVER, "--port", str(self.port), "--record", self.record, "--quiet"] + self.args
        self.proc = stack.Proc(self.name, argv, stack.clean_env(), self.tmp)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if stack.port_in_use(self.port):
                return self
            if not self.proc.running():
                raise stack.StackError("receiver exited:\n" + self.proc.tail())
            time.sleep(0.05)
        raise stack.StackError("receiver did not listen")

    def stop(self):
        if self.proc is not None:
            stack.stop_process_tree(self.proc)
            self.proc = None

    def entries(self, path=None):
        out = []
        try:
            with open(self.record, encoding="utf-8") as f:
                for line in f:
                    e = json.loads(line)
                    if path is None or e["path"] == path:
                        out.append(e)
        except FileNotFoundError:
            pass
        return out

    def ok_entries(self, path=None):
        return [e for e in self.entries(path) if 200 <= e["status"] < 300]

    def wait_for(self, pred, seconds=10):
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if pred(self):
                return True
            time.sleep(0.05)
        return False


class ScriptedReceiver:
    """An HTTP/1.1 keep-alive receiver in a thread of the test process.
    decide(n, entry) is called for the n-th request (from 1) with its
    entry (path, headers in lower case, raw body bytes, parsed body) once
    the body is read, before the answer; it returns the status to answer
    and may sleep or write to the database first. peer is the sender's
    (address, port). Entries are kept in
    arrival order with their status, as Receiver.entries() gives them."""

    def __init__(self, decide):
        self.decide = decide
        self.lock = threading.Lock()
        self.log = []
        self.errors = []
        rcv = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, fmt, *a):
                pass

            def do_POST(self):
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                try:
                    body = json.loads(raw.decode("utf-8"))
                except (UnicodeDecodeError, ValueError):
                    body = None
                entry = {"path": self.path, "headers": {k.lower(): v for k, v in self.headers.items()},
                         "raw": raw, "body": body, "peer": self.client_address}
                with rcv.lock:
                    n = len(rcv.log) + 1
                    rcv.log.append(entry)
                try:
                    status = rcv.decide(n, entry)
                except Exception as e:  # a broken script fails the test, not the server
                    rcv.errors.append("request %d: %r" % (n, e))
                    status = 599
                entry["status"] = status
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def url(self, path):
        return "http://127.0.0.1:%d%s" % (self.port, path)

    def start(self):
        self.thread.start()
        return self

    def stop(self):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)

    def entries(self, path=None):
        with self.lock:
            return [e for e in self.log if "status" in e and (path is None or e["path"] == path)]

    def ok_entries(self, path=None):
        return [e for e in self.entries(path) if 200 <= e["status"] < 300]


def db_url(db):
    return "sqlite:%s" % db if isinstance(db, str) else db.url


def sync_env(tmp, db, settings, env_file=None):
    env = {
        "DATABASE_URL": db_url(db),
        "LOG_LEVEL": "info",
        "CALLBACK_RETRY_DELAY_SECONDS": "0",
        "CALLBACK_TIMEOUT_SECONDS": "2",
        "CALLBACK_MAX_RETRIES": "2",
    }
    if env_file is not None:
        env = {"CHAT_ENV_FILE": env_file}
    else:
        # An empty file: no developer's ./.env or /etc file leaks in.
        empty = os.path.join(tmp, "empty.env")
        open(empty, "a").close()
        env["CHAT_ENV_FILE"] = empty
        env["CONTROL_SOCKET"] = os.path.join(tmp, "no-chatd.sock")
    env.update(settings)
    return stack.clean_env(env)


def run_once(tmp, db, settings, env_file=None, timeout=60, name="chat-sync-once"):
    """Runs chat-sync --once to completion; returns (exit status, log text)."""
    log_path = os.path.join(tmp, name + ".log")
    with open(log_path, "ab") as logf:
        r = subprocess.run(
            [CHAT_SYNC, "--once"],
            env=sync_env(tmp, db, settings, env_file),
            cwd=tmp,
            stdin=subprocess.DEVNULL,
            stdout=logf,
            stderr=subprocess.STDOUT,
            timeout=timeout,
        )
    with open(log_path, encoding="utf-8", errors="replace") as f:
        return r.returncode, f.read()


def start(tmp, db, settings, mode="--daemon", env_file=None, name="chat-sync"):
    return stack.Proc(name, [CHAT_SYNC, mode], sync_env(tmp, db, settings, env_file), tmp)


class FreshDB:
    """A new database with the schema (made by chat-sync itself) and one
    room, filled directly for the bulk tests. db is its testdb.Database
    (query, execute); url and path (SQLite) as a Database's."""

    def __init__(self, tmp, name="sync.db"):
        self.db = testdb.fresh(tmp, name)
        self.path = self.db.path
        self.url = self.db.url
        code, out = run_once(tmp, self.db, {})
        if code != 0:
            raise stack.StackError("chat-sync could not create the schema:\n" + out)
        self.room = "00000000-0000-4000-8000-000000000001"
        now = int(time.time() * 1000)
        self.db.execute("INSERT INTO rooms (id, name, created_at) VALUES (?, 'bulk', ?)", (self.room, now))

    def add_messages(self, n, age_s=5):
        """Appends n chat messages (created age_s seconds ago) in one
        transaction; returns their ids."""
        seq = self.db.scalar("SELECT last_seq FROM rooms WHERE id = ?", (self.room,))
        t = int((time.time() - age_s) * 1000)
        rows = [(self.room, seq + i + 1, "message %d" % (seq + i + 1), t) for i in range(n)]
        ids = self.db.write([
            ("INSERT INTO messages (room_id, seq, kind, user_id, nickname, content, created_at)"
             " VALUES (?, ?, 0, 'u1', 'n1', ?, ?)", rows),
            ("UPDATE rooms SET last_seq = ? WHERE id = ?", (seq + n, self.room)),
            ("SELECT id FROM messages WHERE room_id = ? AND seq > ? ORDER BY seq", (self.room, seq)),
        ])
        return [r[0] for r in ids]

    def execute(self, sql, params=()):
        return self.db.execute(sql, params)

    def cursor(self, target):
        rows = self.db.query(
            "SELECT last_id, delivery_id, batch_last_id, attempts, failing_since, last_error"
            " FROM cursors WHERE target = ?",
            (target,),
        )
        return rows[0] if rows else None

    def close(self):
        pass


def message_ids(entries):
    """Every message id delivered in the given chat-history requests, in order."""
    out = []
    for e in entries:
        out += [m["id"] for m in e["body"]["messages"]]
    return out


def kill9(proc):
    try:
        os.kill(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.p.wait(5)


def tmpdir(prefix):
    d = tempfile.mkdtemp(prefix=prefix)
    os.chmod(d, 0o755)
    return d
