#!/usr/bin/python3
"""
The cluster on PostgreSQL: real chatd nodes joined by a real nats-server,
all of them (and chat-api, chatctl) on ONE database of a throwaway
PostgreSQL server (pgserver.py). The checks are test_cluster.py's own,
run on this stack, plus what only the database can tell:

- posters on all three nodes into one room at once: every member on
  every node gets the same gapless sequence, and the messages table holds
  exactly those messages, seq 1..N, each once;
- the rate limit across nodes: two posts of one user through two nodes
  at the same instant, exactly one stored (one row in the database);
- a ban, a kick, a CustomEvent and a room close relayed between nodes;
- kill -9 of a node: the survivor closes its sessions (node_lost), it
  restarts with the same NODE_ID and rejoins;
- health and chatctl status list the nodes.

Prints "N passed, M failed"; exits non-zero on any failure.
"""

import collections
import glob
import os
import signal
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.dont_write_bytecode = True

import pgserver  # noqa: E402
import stack  # noqa: E402
import test_cluster as tc  # noqa: E402
from chatd_stack import require_chatd  # noqa: E402
from cluster_stack import ClusterStack  # noqa: E402
from stack import Checker, StackError, Watchdog, reap_orphans  # noqa: E402
from wsclient import Closed  # noqa: E402

DB = "chat"


def room_id_named(pg, name):
    rows = pg.query(DB, "SELECT id FROM rooms WHERE name = '%s' ORDER BY created_at DESC LIMIT 1" % name)
    return rows[0][0] if rows else None


def stored(pg, rid, where="TRUE"):
    """(seq, content) of the room's messages in the database, by seq."""
    return [(int(s), c) for s, c in pg.query(DB, "SELECT seq, content FROM messages WHERE room_id = '%s' AND %s "
                                                 "ORDER BY seq" % (rid, where))]


def t_backend(st, chk, pg):
    """The stack really runs on PostgreSQL: the nodes are in its tables, no SQLite file was made."""
    chk.eq(pg.query(DB, "SELECT count(*) FROM nodes WHERE stopped_at IS NULL")[0][0], str(len(st.nodes)),
           "every node is in PostgreSQL's nodes table")
    chk.ok(not os.path.exists(st.db_path), "no SQLite file next to the stack")


def t_concurrent_order(st, chk, pg):
    tc.t_concurrent_order(st, chk)
    rid = room_id_named(pg, "order")
    rows = stored(pg, rid)
    total = 30 * 2 * len(st.nodes)
    seqs = [s for s, _ in rows]
    chk.eq(len(rows), total, "the database holds every message (%d)" % total)
    chk.eq(seqs, list(range(1, total + 1)), "with seq 1..%d, each once" % total)
    # Each node's two members post the same texts: every text twice, none more.
    counts = collections.Counter(c for _, c in rows)
    chk.ok(len(counts) == total // 2 and set(counts.values()) == {2}, "no message stored twice",
           repr([c for c, k in counts.items() if k != 2][:5]))
    n = pg.query(DB, "SELECT count(*), count(DISTINCT seq) FROM messages WHERE room_id = '%s'" % rid)[0]
    chk.eq(n, [str(total), str(total)], "count(*) and count(DISTINCT seq) agree")


def t_rate_limit(st, chk, pg):
    tc.t_rate_limit(st, chk)
    rid = room_id_named(pg, "rate")
    races = stored(pg, rid, "content LIKE 'race %'")
    chk.eq(sorted(c.split(" from ")[0] for _, c in races), ["race 0", "race 1", "race 2"],
           "the database holds one post of each simultaneous pair: %r" % races)


def t_admin_relay(st, chk, pg):
    tc.t_admin_relay(st, chk)
    # A ban through chat-api is recorded in PostgreSQL first, then told to
    # node 1, which relays it: the user's connection on node 2 closes.
    n2 = st.nodes[1]
    rid = st.create_room("pgban")
    v = n2.ws(rid, "mallory")
    r = st.client.post("/management/rooms/%s/bans" % rid, {"user_id": "mallory", "reason": "spam"})
    chk.ok(r.status in (200, 201), "ban through chat-api", "%s %s" % (r.status, r.snippet()))
    try:
        v.wait_for(lambda m: False, stack.WAIT)
    except Closed:
        pass
    chk.eq((v.close_code, v.close_reason), (4403, "banned: spam"), "the banned user's connection on node 2 closes")
    chk.eq(pg.query(DB, "SELECT user_id, reason FROM bans WHERE room_id = '%s' AND lifted_at IS NULL" % rid),
           [["mallory", "spam"]], "the ban is in the database")


def t_node_killed(st, chk, pg):
    tc.t_node_killed(st, chk)
    rid = room_id_named(pg, "killed")
    rows = pg.query(DB, "SELECT user_id, leave_reason FROM sessions WHERE room_id = '%s' AND user_id = 'bob' "
                        "ORDER BY id" % rid)
    chk.ok(rows and rows[0] == ["bob", "node_lost"], "the killed node's session closed node_lost in the database",
           repr(rows))


def t_health(st, chk, pg):
    tc.t_health(st, chk)


def t_no_password(st, chk, pg):
    """The URL holds a password: no program prints it (logs, chatctl)."""
    leaks = []
    for path in glob.glob(os.path.join(st.tmp, "*.log")):
        with open(path, "rb") as f:
            if pgserver.PASSWORD.encode() in f.read():
                leaks.append(os.path.basename(path))
    chk.eq(leaks, [], "no log holds the database password")
    for args in (("status",), ("nodes",), ("--json", "nodes")):
        rc, out = tc.chatctl(st, *args)
        chk.ok(pgserver.PASSWORD not in out, "chatctl %s does not print it" % " ".join(args), out[-300:])


def main():
    stack.setup_process()
    require_chatd("nginx")
    chk = Checker("the cluster on PostgreSQL: chatd nodes over NATS, one database")
    code = None
    signal.alarm(int(os.environ.get("TEST_TIMEOUT", "600")))
    try:
        runs = (
            (3, {"USER_MESSAGE_INTERVAL_SECS": "0"}, [t_backend, t_concurrent_order, t_no_password]),
            (2, {"USER_MESSAGE_INTERVAL_SECS": "2"}, [t_rate_limit, t_admin_relay, t_health, t_node_killed, t_no_password]),
        )
        for i, (nodes, settings, tests) in enumerate(runs):
            with pgserver.PgServer() as pg:
                url = pg.create_database(DB)
                st = ClusterStack("nginx", nodes=nodes, settings=settings, database_url=url)
                before = len(chk.failures)
                try:
                    with st:
                        for fn in tests:
                            chk.run("%d nodes on PostgreSQL: %s" % (nodes, fn.__name__[2:]), fn, st, chk, pg)
                        if len(chk.failures) > before:
                            st.dump_logs(60)
                            stack.log(pg.log_tail(40))
                except StackError as exc:
                    chk.ok(False, "cluster stack start", str(exc))
                finally:
                    complaints = st.stop()
                    chk.section("%d nodes on PostgreSQL: shutdown" % nodes)
                    chk.ok(not complaints, "every process stopped on SIGTERM", "; ".join(complaints))
                    reap_orphans()
    except (KeyboardInterrupt, Watchdog) as exc:
        chk.ok(False, "interrupted", repr(exc))
        code = 1
    result = chk.finish()
    return code if code else result


if __name__ == "__main__":
    sys.exit(main())
