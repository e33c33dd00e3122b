"""
The integration tests' database switch and their own way into the
database the programs use.

CHAT_TEST_DB=sqlite (the default) or pg picks the backend of every stack a
test script starts. With pg, one throwaway PostgreSQL server
(pgserver.PgServer) serves the whole script, started on first use and
stopped at exit, and every stack gets a fresh database on it; the
programs are given its postgres:// URL (which holds pgserver.PASSWORD).

A test that reads or writes rows directly goes through a Database:

    db.query("SELECT seq FROM messages WHERE room_id = ?", (rid,))  # [(1,), (2,)]
    db.execute("UPDATE rooms SET last_seq = ? WHERE id = ?", (5, rid))
    db.write([(sql, params), (sql, [params, params, ...]), ...])  # one transaction

Placeholders are "?" on both engines; write SQL both accept. Values come
back typed (int, str, None) alike from both. A write takes the lock the
programs' writers take (BEGIN IMMEDIATE on SQLite, the global advisory
write lock on PostgreSQL), so it never interleaves with theirs.

Python 3 standard library only.
"""

import json
import os
import sqlite3
import subprocess

import stack

KIND = os.environ.get("CHAT_TEST_DB") or "sqlite"
if KIND not in ("sqlite", "pg"):
    raise SystemExit("CHAT_TEST_DB=%s: sqlite or pg" % KIND)

# The key of the programs' write lock on PostgreSQL (src/common/db_pg.c).
PG_WRITE_LOCK = "1667785076, 0"

_server = None
_names = 0


def is_pg():
    return KIND == "pg"


def pg_server():
    """The script's PostgreSQL server, started on first use."""
    global _server
    if _server is None:
        import pgserver

        srv = pgserver.PgServer()
        stack._live_stacks.append(srv)  # stopped at exit like a stack
        try:
            srv.start()
        except BaseException:
            srv.stop()
            raise
        _server = srv
    return _server


def pg_password():
    import pgserver

    return pgserver.PASSWORD


def fresh(folder, name="chat.db"):
    """A new, empty database of the chosen kind: on SQLite the file name
    in folder (not created here), on PostgreSQL a new database."""
    global _names
    if KIND == "sqlite":
        return Database(path=os.path.join(folder, name))
    _names += 1
    base = "".join(c for c in os.path.splitext(name)[0].lower() if c.isalnum()) or "chat"
    dbname = "%s_%d" % (base, _names)
    srv = pg_server()
    return Database(pg=srv, name=dbname, url=srv.create_database(dbname))


def _literal(v):
    if v is None:
        return "NULL"
    if isinstance(v, bool):
        return "1" if v else "0"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return repr(v)
    if isinstance(v, (bytes, bytearray)):
        return "'\\x%s'::bytea" % bytes(v).hex()
    s = str(v)
    if "\0" in s:
        raise ValueError("PostgreSQL text cannot hold NUL")
    return "'" + s.replace("'", "''") + "'"


def inline(sql, params):
    """sql with each ? outside quotes replaced by the next value as a
    literal (the test's psql path has no parameters)."""
    out, i, quote = [], 0, None
    params = list(params)
    for ch in sql:
        if quote:
            out.append(ch)
            if ch == quote:
                quote = None
        elif ch in "'\"":
            quote = ch
            out.append(ch)
        elif ch == "?":
            if i >= len(params):
                raise ValueError("fewer parameters than ? in %r" % sql)
            out.append(_literal(params[i]))
            i += 1
        else:
            out.append(ch)
    if i != len(params):
        raise ValueError("%d parameters for %d ? in %r" % (len(params), i, sql))
    return "".join(out)


def _returns_rows(sql):
    head = sql.lstrip().split(None, 1)[0].upper() if sql.strip() else ""
    return head in ("SELECT", "WITH", "VALUES") or " RETURNING " in sql.upper().replace("\n", " ")


_MARK = "ROWS:"


class Database:
    """One database of the tests: a SQLite file (path) or a PostgreSQL
    database (pg, name). url is what DATABASE_URL says for it."""

    def __init__(self, path=None, pg=None, name=None, url=None):
        self.path = path
        self.pg = pg
        self.name = name
        self.kind = "pg" if pg is not None else "sqlite"
        self.url = url if url is not None else "sqlite:%s" % path

    def __repr__(self):
        return "<Database %s>" % (self.path or self.name)

    @property
    def display(self):
        """How the programs name it in messages: the path, or the URL with
        the password hidden."""
        if self.kind == "sqlite":
            return self.path
        return self.url.replace(":" + pg_password() + "@", ":***@")

    # -- SQLite
    def _sqlite(self):
        conn = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        conn.execute("PRAGMA busy_timeout = 30000")
        return conn

    # -- PostgreSQL
    def _psql(self, script):
        """Runs script (statements, fed on standard input) as the superuser;
        returns the rows after the ROWS: mark, if any."""
        srv = self.pg
        p = subprocess.run(
            ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-At", "-h", "127.0.0.1", "-p", str(srv.port),
             "-U", "postgres", "-d", self.name, "-f", "-"],
            input=script.encode("utf-8"), stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=120)
        if p.returncode != 0:
            raise stack.StackError("psql on %s: %s\n(script: %s)" % (
                self.name, p.stderr.decode("utf-8", "replace").strip(), script[:300]))
        out = p.stdout.decode("utf-8")
        at = out.find(_MARK)
        if at < 0:
            return []
        data = json.loads(out[at + len(_MARK):], object_pairs_hook=lambda pairs: tuple(v for _, v in pairs))
        return list(data or [])

    @staticmethod
    def _pg_rows_sql(sql):
        # A CTE takes SELECT and DML with RETURNING alike; json keeps the types.
        return "WITH t AS (%s) SELECT '%s' || coalesce(json_agg(t)::text, '[]') FROM t;\n" % (
            sql.rstrip().rstrip(";"), _MARK)

    # -- the interface
    def query(self, sql, params=()):
        """Rows (tuples) of one read."""
        if self.kind == "sqlite":
            conn = self._sqlite()
            try:
                return conn.execute(sql, tuple(params)).fetchall()
            finally:
                conn.close()
        return self._psql(self._pg_rows_sql(inline(sql, params)))

    def scalar(self, sql, params=()):
        rows = self.query(sql, params)
        return rows[0][0] if rows else None

    def write(self, statements):
        """Runs [(sql, params)] in one write transaction; params may be a
        list of tuples (the statement once per tuple). Returns the rows of
        the last statement (a SELECT, or DML with RETURNING, run once)."""
        if self.kind == "sqlite":
            conn = self._sqlite()
            try:
                conn.execute("BEGIN IMMEDIATE")
                rows = []
                for sql, params in statements:
                    if isinstance(params, list):
                        rows = []
                        for p in params:
                            rows += conn.execute(sql, p).fetchall()
                    else:
                        rows = conn.execute(sql, tuple(params)).fetchall()
                conn.execute("COMMIT")
                return rows
            finally:
                conn.close()
        parts = ["BEGIN;\nSELECT FROM pg_advisory_xact_lock(%s);\n" % PG_WRITE_LOCK]
        for n, (sql, params) in enumerate(statements):
            last = n == len(statements) - 1
            many = params if isinstance(params, list) else [params]
            if last and _returns_rows(sql):
                if len(many) != 1:
                    raise ValueError("rows back from one statement only, not from %d runs" % len(many))
                parts.append(self._pg_rows_sql(inline(sql, many[0])))
            else:
                parts += ["%s;\n" % inline(sql, p) for p in many]
        parts.append("COMMIT;\n")
        return self._psql("".join(parts))

    def tables(self):
        """The names of the tables (the programs' schema)."""
        if self.kind == "sqlite":
            return {r[0] for r in self.query("SELECT name FROM sqlite_master WHERE type = 'table'")}
        return {r[0] for r in self.query("SELECT table_name FROM information_schema.tables"
                                         " WHERE table_schema = 'public'")}

    def stored_bytes(self, table, column, row_id):
        """The bytes a text column of the row with this id holds, or None."""
        if self.kind == "sqlite":
            sql = "SELECT CAST(%s AS BLOB) FROM %s WHERE id = ?" % (column, table)
            v = self.scalar(sql, (row_id,))
            return None if v is None else bytes(v)
        v = self.scalar("SELECT encode(convert_to(%s, 'UTF8'), 'hex') FROM %s WHERE id = ?" % (column, table),
                        (row_id,))
        return None if v is None else bytes.fromhex(v)

    def execute(self, sql, params=()):
        """One statement in a write transaction of its own."""
        return self.write([(sql, params)])

    def executemany(self, sql, seq):
        return self.write([(sql, list(seq))])


def password_leaks(folder):
    """The log files under folder that hold the PostgreSQL password (the
    programs must print dbaddr_display()'s form, never the URL)."""
    if KIND != "pg":
        return []
    pw = pg_password().encode()
    found = []
    for root, _dirs, files in os.walk(folder):
        for f in files:
            if not f.endswith(".log"):
                continue
            path = os.path.join(root, f)
            try:
                with open(path, "rb") as fh:
                    if pw in fh.read():
                        found.append(path)
            except OSError:
                pass
    return found


def check_no_password(chk, folder):
    """On PostgreSQL runs, one check: no log under folder holds the password."""
    if KIND == "pg":
        leaks = password_leaks(folder)
        chk.ok(not leaks, "no log holds the database password", ", ".join(leaks))
