"""
A throwaway PostgreSQL server for integration tests: initdb and pg_ctl in
a private folder under /tmp, listening on 127.0.0.1 on a free port (and a
Unix socket in that folder), trust authentication for local connections,
fsync off. PostgreSQL refuses to run as root, so as root the tools run as
the postgres system user through runuser. Nothing is skipped: a missing
initdb, pg_ctl, runuser or postgres user is an error.

    with PgServer() as pg:
        url = pg.create_database("chat")   # postgres://chat:...@127.0.0.1:PORT/chat
        pg.query("chat", "SELECT count(*) FROM messages")  # [["3"]]
        pg.stop_server(); pg.start_server()  # a restart under traffic

fsync and synchronous_commit are off for speed: a COMMIT returns before
its WAL is written, so a crash (stop -m immediate) loses the last commits.
A test of crashes passes durable=True, which leaves synchronous_commit
on (as in production): a crash then loses nothing that was acknowledged.

Every database gets its own owner role with a password, so the URL the
programs are given holds a password (which they must never print), as a
real deployment's does. The server is stopped (immediate) and its folder
removed by stop(), by stack's cleanup at exit, or by the watchdog.

Python 3 standard library only.
"""

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import time

import stack

PASSWORD = "pg-test-pw-4c1d"


def _bindir():
    env = os.environ.get("PG_BINDIR")
    if env:
        return env
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                   key=lambda p: int(p.split("/")[4]) if p.split("/")[4].isdigit() else -1)
    if not found:
        raise stack.StackError("PostgreSQL is not installed: no /usr/lib/postgresql/*/bin/initdb "
                               "(apt-get install postgresql)")
    return os.path.dirname(found[-1])


class PgServer:
    """One PostgreSQL cluster; see the module's docstring."""

    def __init__(self, durable=False):
        self.durable = durable
        self.bindir = _bindir()
        self.as_postgres = os.geteuid() == 0
        self.dir = None
        self.port = None
        self.running = False

    # -- running the tools
    def _run(self, argv, check=True, timeout=60):
        if self.as_postgres:
            runuser = shutil.which("runuser", path="/usr/sbin:/sbin:/usr/bin:/bin")
            if runuser is None:
                raise stack.StackError("runuser not found: needed to run PostgreSQL as postgres")
            argv = [runuser, "-u", "postgres", "--"] + argv
        p = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=timeout)
        out = p.stdout.decode("utf-8", "replace")
        if check and p.returncode != 0:
            raise stack.StackError("%s failed (%d):\n%s\n%s" % (argv[-1] if len(argv) < 3 else " ".join(argv[:4]),
                                                             p.returncode, out[-1500:], self.log_tail()))
        return out

    def log_tail(self, n=30):
        try:
            with open(os.path.join(self.dir, "server.log"), "rb") as f:
                return "\n".join(f.read().decode("utf-8", "replace").splitlines()[-n:])
        except (OSError, TypeError):
            return ""

    # -- life cycle
    def __enter__(self):
        stack._live_stacks.append(self)
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc):
        self.stop()
        return False

    def start(self):
        self.dir = tempfile.mkdtemp(prefix="chatd-it-pg-")
        if self.as_postgres:
            try:
                pw = pwd.getpwnam("postgres")
            except KeyError:
                raise stack.StackError("no postgres user: apt-get install postgresql")
            os.chown(self.dir, pw.pw_uid, pw.pw_gid)
        os.chmod(self.dir, 0o700)
        self._run([os.path.join(self.bindir, "initdb"), "-D", self.data, "-A", "trust", "-U", "postgres",
                   "-E", "UTF8", "--no-locale", "--no-sync"])
        # Another process may take the free port first: a few tries.
        for attempt in range(3):
            self.port = stack.free_port()
            try:
                self.start_server()
                break
            except stack.StackError:
                if attempt == 2:
                    raise
        return self

    @property
    def data(self):
        return os.path.join(self.dir, "data")

    def start_server(self, wait=True):
        """Starts the server on self.port (again, after stop_server)."""
        opts = "-p %d -k %s -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=%s " \
               "-c full_page_writes=off -c max_connections=200" % (self.port, self.dir,
                                                                    "on" if self.durable else "off")
        self._run([os.path.join(self.bindir, "pg_ctl"), "-D", self.data, "-o", opts, "-l",
                   os.path.join(self.dir, "server.log"), "-w", "-t", "60", "start"])
        self.running = True

    def stop_server(self, mode="fast"):
        """Stops the server (fast: sessions are ended; immediate: as a crash)."""
        if self.running:
            self._run([os.path.join(self.bindir, "pg_ctl"), "-D", self.data, "-m", mode, "-w", "-t", "60",
                       "stop"], check=False)
            self.running = False

    def stop(self):
        if self in stack._live_stacks:
            stack._live_stacks.remove(self)
        if self.dir is None:
            return
        try:
            self.stop_server("immediate")
        finally:
            if not os.environ.get("KEEP_TMP"):
                shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None

    # -- databases
    def url(self, db, user=None, password=PASSWORD):
        user = user or db
        return "postgres://%s:%s@127.0.0.1:%d/%s" % (user, password, self.port, db)

    def create_database(self, name):
        """A new empty database owned by a new role of the same name; its URL."""
        self.psql("postgres", "CREATE ROLE \"%s\" LOGIN PASSWORD '%s'" % (name, PASSWORD))
        self.psql("postgres", "CREATE DATABASE \"%s\" OWNER \"%s\"" % (name, name))
        return self.url(name)

    def psql(self, db, sql, timeout=60):
        """Runs sql as the superuser; psql's output (unaligned, tab-separated, no headers)."""
        p = subprocess.run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-At", "-F", "\t", "-h", "127.0.0.1",
                            "-p", str(self.port), "-U", "postgres", "-d", db, "-c", sql],
                           stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=timeout)
        if p.returncode != 0:
            raise stack.StackError("psql %s: %s" % (sql[:80], p.stderr.decode("utf-8", "replace")))
        return p.stdout.decode("utf-8")

    def query(self, db, sql):
        """Rows of a query as lists of strings ('' for NULL)."""
        out = self.psql(db, sql)
        return [line.split("\t") for line in out.splitlines()]

    def wait_ready(self, timeout=30):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            p = subprocess.run([os.path.join(self.bindir, "pg_isready"), "-h", "127.0.0.1", "-p", str(self.port)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            if p.returncode == 0:
                return True
            time.sleep(0.1)
        return False
