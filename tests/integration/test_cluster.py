#!/usr/bin/python3
"""
The cluster: several real chatd nodes, one SQLite file, one real
nats-server (cluster_stack.py). Clients connect to the node the test
picks, so every check knows which node each member is on.

- messages cross nodes: one order, no gap, no duplicate, also with
  posters on every node at once (three nodes);
- head counts, RoomStats and the user counted once across nodes;
- the rate limit per user across nodes;
- ban, kick, room close and CustomEvent from each node and from the
  control socket reach the members on the other nodes;
- kill -9 of a node: its users leave the counts, its sessions are closed
  (node_lost), it restarts with the same NODE_ID and rejoins;
- nats-server killed under traffic and restarted: every member has every
  message, in order, none twice;
- the health of every node lists the nodes and the bus.

Prints "N passed, M failed"; exits non-zero on any failure.
"""

import json
import os
import signal
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.dont_write_bytecode = True

import stack  # noqa: E402
from chatd_stack import require_chatd  # noqa: E402
from cluster_stack import ClusterStack, Node  # noqa: E402
from stack import Checker, StackError, Watchdog, log, reap_orphans  # noqa: E402
from wsclient import Closed, Timeout  # noqa: E402


def msg(text):
    return {"type": "Message", "payload": {"content": text}}


def collect(ws, n, timeout=stack.WAIT):
    """The next n Message/CustomEvent payloads ws gets (fewer on timeout)."""
    got = []
    deadline = time.monotonic() + timeout
    while len(got) < n and time.monotonic() < deadline:
        m = ws.wait_for(lambda m: m["type"] in ("Message", "CustomEvent"), max(0.01, deadline - time.monotonic()))
        if m is None:
            break
        got.append(m["payload"])
    return got


CHATCTL = os.environ.get("CHATCTL_BIN") or os.path.join(stack.BUILDDIR, "src", "ctl", "chatctl")


def chatctl(st, *args, node=None):
    """chatctl with the stack's settings (on node's control socket); (exit status, stdout)."""
    env = stack.clean_env({"CHAT_ENV_FILE": st.env_file})
    if node is not None:
        env["CONTROL_SOCKET"] = node.control
    p = subprocess.run([CHATCTL] + list(args), env=env, cwd=st.tmp, stdin=subprocess.DEVNULL,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
    return p.returncode, p.stdout.decode("utf-8", "replace") + p.stderr.decode("utf-8", "replace")


def db_states(st):
    """node id -> state from chatctl nodes --json (the database's view)."""
    rc, out = chatctl(st, "--json", "nodes")
    try:
        return {x["node_id"]: x["state"] for x in json.loads(out)} if rc == 0 else {"rc": rc}
    except (ValueError, KeyError, TypeError):
        return {"out": out}


def current_users(node, rid):
    r = node.ctl("stats", {"room_id": rid})
    return r.get("result", {}).get("current_users")


def t_cross_node(st, chk):
    n1, n2 = st.nodes[0], st.nodes[1]
    rid = st.create_room("cross")
    a = n1.ws(rid, "alice", "Alice")
    b = n2.ws(rid, "bob", "Bob")
    a.send_json(msg("from node 1"))
    got_b = collect(b, 1)
    got_a = collect(a, 1)
    chk.ok(got_b and got_b[0]["content"] == "from node 1" and got_b[0]["from"] == "alice",
           "a message posted on node 1 reaches a member on node 2", repr(got_b))
    chk.eq(got_b[:1], got_a[:1], "the same frame on both nodes")
    b.send_json(msg("from node 2"))
    got_a = collect(a, 1)
    chk.ok(got_a and got_a[0]["content"] == "from node 2" and got_a[0]["seq"] == 2,
           "and back: node 2's message reaches node 1 with the next seq", repr(got_a))
    collect(b, 1)
    # The head count is the cluster's, on both nodes.
    counts = stack.wait_until(lambda: (current_users(n1, rid), current_users(n2, rid)), "both count 2",
                              lambda v: v == (2, 2))
    chk.eq(counts, (2, 2), "current_users counts the members of both nodes, on both")
    # A user with connections on both nodes counts once.
    a2 = n2.ws(rid, "alice", "Alice")
    chk.eq(a2.welcome["payload"]["current_users"], 2, "alice's second connection (other node) is not a new user")
    a.close()
    counts = stack.wait_until(lambda: (current_users(n1, rid), current_users(n2, rid)), "still 2", lambda v: v == (2, 2),
                              timeout=1.0)
    chk.eq(counts, (2, 2), "alice left node 1 but is still on node 2: still 2 users")
    a2.close()
    counts = stack.wait_until(lambda: (current_users(n1, rid), current_users(n2, rid)), "1 user", lambda v: v == (1, 1))
    chk.eq(counts, (1, 1), "alice gone from both nodes: 1 user")
    m = b.wait_for(lambda m: m["type"] == "RoomStats" and m["payload"]["current_users"] == 1, stack.WAIT)
    chk.ok(m is not None, "bob (node 2) gets a RoomStats with the cluster's count", repr(b.seen[-3:]))
    b.close()


def t_concurrent_order(st, chk):
    """Posters on all three nodes at once (room admins: no rate limit);
    every member's sequence is the same and gapless."""
    rid = st.create_room("order", ["%s-u%d" % (n.node_id, i) for n in st.nodes for i in range(2)])
    per_node = 2
    posts = 30
    members = []
    for n in st.nodes:
        for i in range(per_node):
            members.append(n.ws(rid, "%s-u%d" % (n.node_id, i)))
    stack.wait_until(lambda: current_users(st.nodes[0], rid), "everyone counted", lambda v: v == len(members))
    for ws in members:
        ws.drain(0.3)
    total = posts * len(members)

    def post(ws):
        for k in range(posts):
            ws.send_json(msg("%s %d" % (ws.node, k)))

    threads = [threading.Thread(target=post, args=(ws,)) for ws in members]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    seqs = {}
    for i, ws in enumerate(members):
        got = collect(ws, total, timeout=stack.WAIT * 3)
        seqs[i] = [p["seq"] for p in got]
    first = seqs[0]
    chk.eq(len(first), total, "member 0 got every message (%d)" % total)
    chk.eq(first, list(range(first[0], first[0] + len(first))) if first else [], "gapless and in order")
    chk.ok(all(s == first for s in seqs.values()), "every member on every node saw the same sequence",
           repr({k: (len(v), v[:3]) for k, v in seqs.items() if v != first}))
    for ws in members:
        ws.close()


def t_rate_limit(st, chk):
    n1, n2 = st.nodes[0], st.nodes[1]
    rid = st.create_room("rate")
    u1 = n1.ws(rid, "chatty")
    u2 = n2.ws(rid, "chatty")
    u1.send_json(msg("one"))
    got = collect(u2, 1)
    chk.ok(got and got[0]["content"] == "one", "the post on node 1 reached node 2", repr(got))
    u2.send_json(msg("two"))
    m = u2.wait_for(lambda m: m["type"] == "Error", 5)
    chk.ok(m is not None and m["payload"].get("code") == "rate_limited",
           "the same user on node 2 within the interval: rate_limited", repr(m))
    # Both connections post at the same instant, three times, each time
    # after the interval: exactly one of each pair is stored, whatever
    # the bus's delay (the database decides).
    for rnd in range(3):
        time.sleep(2.1)  # the interval (2 s) passes: the behaviour under test
        barrier = threading.Barrier(2)

        def post(ws, text):
            barrier.wait()
            ws.send_json(msg(text))

        ts = [threading.Thread(target=post, args=(u, "race %d from %s" % (rnd, u.node))) for u in (u1, u2)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        outcomes = []
        for u in (u1, u2):
            m = u.wait_for(lambda m: (m["type"] == "Error" and m["payload"].get("code") == "rate_limited")
                           or (m["type"] == "Message" and m["payload"]["content"].startswith("race %d from %s" % (rnd, u.node))),
                           stack.WAIT)
            outcomes.append(m and m["type"])
        chk.eq(sorted(outcomes), ["Error", "Message"], "round %d: simultaneous posts on two nodes: one stored, one rate_limited" % rnd)
    r = st.client.get("/management/sync/chat-history/%s" % rid)
    stored = [x.get("content") for x in (r.json or {}).get("messages", []) if x.get("content", "").startswith("race")]
    chk.eq(len(stored), 3, "three race messages stored in all: %r" % stored)
    for ws in (u1, u2):
        ws.close()


def t_admin_relay(st, chk):
    n1, n2 = st.nodes[0], st.nodes[1]
    rid = st.create_room("admin", ["boss"])
    boss = n1.ws(rid, "boss")
    v1 = n2.ws(rid, "victim")
    k1 = n2.ws(rid, "kicked")
    # A ban from the control socket of node 1 closes the connection on node 2.
    r = n1.ctl("ban", {"room_id": rid, "user_id": "victim", "reason": "spam"})
    chk.ok(r.get("ok"), "ban through node 1's control socket", repr(r))
    try:
        v1.wait_for(lambda m: False, stack.WAIT)
    except Closed:
        pass
    chk.eq((v1.close_code, v1.close_reason), (4403, "banned: spam"),
           "the banned user's connection on node 2 closes with 4403 and the reason")
    # The ban holds on node 2 for a new connection.
    try:
        n2.ws(rid, "victim")
        refused = False
    except Exception:  # noqa: BLE001 - a refused handshake, whatever its form
        refused = True
    chk.ok(refused, "the banned user cannot join through node 2 either")
    # A kick by the room's admin over the WebSocket on node 1.
    boss.send_json({"type": "Kick", "payload": {"user_id": "kicked", "reason": "off topic"}})
    try:
        k1.wait_for(lambda m: False, stack.WAIT)
    except Closed:
        pass
    chk.eq((k1.close_code, k1.close_reason), (4409, "kicked: off topic"), "a WebSocket kick on node 1 closes the member on node 2")
    # An operator's CustomEvent through node 2 reaches node 1.
    w2 = n2.ws(rid, "watcher2")
    r = n2.ctl("publish", {"room_id": rid, "event_type": "poll.opened", "payload": {"q": "lunch?"}})
    chk.ok(r.get("ok"), "publish through node 2's control socket", repr(r))
    m = boss.wait_for(lambda m: m["type"] == "CustomEvent", stack.WAIT)
    chk.ok(m is not None and m["payload"].get("event_type") == "poll.opened", "node 1's member gets the CustomEvent", repr(m))
    # The room closed through chat-api (node 1's control socket) closes node 2's members.
    r = st.client.delete("/management/rooms/%s" % rid)
    chk.ok(r.status in (200, 204), "room closed through chat-api", "%s %s" % (r.status, r.snippet()))
    try:
        w2.wait_for(lambda m: False, stack.WAIT)
    except Closed:
        pass
    chk.eq(w2.close_code, 4404, "the member on node 2 is closed with 4404")
    try:
        boss.wait_for(lambda m: False, 2)
    except Closed:
        pass


def sessions(st, rid):
    r = st.client.get("/management/sync/session-history/%s?limit=100" % rid)
    return (r.json or {}).get("sessions", [])


def t_node_killed(st, chk):
    n1, n2 = st.nodes[0], st.nodes[1]
    rid = st.create_room("killed")
    a = n1.ws(rid, "alice")
    b = n2.ws(rid, "bob")
    stack.wait_until(lambda: current_users(n1, rid), "2 users", lambda v: v == 2)
    m = a.wait_for(lambda m: m["type"] == "RoomStats" and m["payload"]["current_users"] == 2, stack.WAIT)
    chk.ok(m is not None, "alice (node 1) sees bob (node 2) arrive", repr(a.seen[-3:]))
    # Node 2's writer has recorded bob's session before it dies (a slow build may not have yet).
    rows = stack.wait_until(lambda: [x for x in sessions(st, rid) if x.get("user_id") == "bob"], "bob's session",
                            lambda v: len(v) == 1)
    chk.eq(len(rows), 1, "bob's session recorded")
    n2.kill(signal.SIGKILL)
    m = a.wait_for(lambda m: m["type"] == "RoomStats" and m["payload"]["current_users"] == 1, stack.WAIT)
    chk.ok(m is not None, "node 2 killed: alice (node 1) sees bob leave within seconds", repr(a.seen[-3:]))
    chk.eq(current_users(n1, rid), 1, "node 1 counts 1 user")
    rows = stack.wait_until(lambda: [s for s in sessions(st, rid) if s.get("user_id") == "bob"], "bob's session closed",
                            lambda v: v and v[0].get("left_at") is not None)
    chk.ok(rows and rows[0].get("reason") == "node_lost",
           "bob's session is closed by the survivor with reason node_lost", repr(rows))
    h = n1.health()["cluster"]
    chk.eq([x["node_id"] for x in h["nodes"]], ["node-1"], "node 1's health lists itself only")
    # The database's view: node 2 reaped by the survivor.
    states = stack.wait_until(lambda: db_states(st), "node-2 lost in the database",
                              lambda v: v.get("node-2") == "lost")
    chk.eq(states, {"node-1": "alive", "node-2": "lost"}, "chatctl nodes: node 1 alive, node 2 lost")
    rc, out = chatctl(st, "nodes")
    chk.ok(rc == 0 and any(x.split()[:1] == ["node-2"] and "lost (reaped)" in x for x in out.split("\n")),
           "chatctl nodes prints node 2 as lost (reaped)", out)
    r = st.client.get("/management/health")
    nodes = {x.get("node_id"): x.get("state") for x in (r.json or {}).get("database", {}).get("nodes", [])}
    chk.eq(nodes, {"node-1": "alive", "node-2": "lost"}, "REST health: database.nodes")
    # Restarted with the same NODE_ID: it rejoins, and takes members again.
    n2.start()
    st.wait_mesh()
    chk.eq(db_states(st), {"node-1": "alive", "node-2": "alive"}, "chatctl nodes: node 2 alive again")
    b2 = n2.ws(rid, "bob")
    chk.eq(b2.welcome["payload"]["current_users"], 2, "node 2 restarted: bob's new connection sees 2 users")
    a.send_json(msg("welcome back"))
    got = collect(b2, 1)
    chk.ok(got and got[0]["content"] == "welcome back", "messages flow to the restarted node", repr(got))
    for ws in (a, b2):
        ws.close()
    try:
        b.close()
    except OSError:
        pass


def t_node_id_in_use(st, chk):
    """A second node started with a running node's NODE_ID refuses to start."""
    dup = Node(st, 2)
    dup.port = stack.free_port()
    dup.control = st.path("run", "control-dup.sock")
    dup.start(wait=False)
    try:
        code = dup.proc.p.wait(stack.WAIT * 3)
    except Exception:  # noqa: BLE001 - still running: the check below fails
        code = None
    chk.eq(code, 1, "a node with a running node's NODE_ID exits with status 1")
    chk.ok("NODE_ID=node-2 is in use by a running node" in dup.proc.tail(20),
           "and says why", dup.proc.tail(5))
    st.procs.remove(dup.proc)
    dup.proc.logf.close()
    chk.ok(st.nodes[1].proc.running(), "the running node-2 is untouched")


def t_clean_restart(st, chk):
    """SIGTERM: the node says goodbye (its users leave at once) and restarts without waiting."""
    n1, n2 = st.nodes[0], st.nodes[1]
    rid = st.create_room("clean")
    a = n1.ws(rid, "alice")
    b = n2.ws(rid, "bob")
    stack.wait_until(lambda: current_users(n1, rid), "2 users", lambda v: v == 2)
    chk.eq(n2.kill(signal.SIGTERM), 0, "node 2 stops cleanly on SIGTERM")
    chk.eq(stack.wait_until(lambda: current_users(n1, rid), "bob gone", lambda v: v == 1), 1,
           "its users leave node 1's count")
    rows = [x for x in sessions(st, rid) if x.get("user_id") == "bob"]
    chk.ok(rows and rows[0].get("reason") == "server_shutdown", "bob's session closed by node 2 itself (server_shutdown)",
           repr(rows))
    t0 = time.monotonic()
    n2.start()
    st.wait_mesh()
    # Not a deadline on speed: a clean stop must not make the next run wait out the
    # node timeout, which is what a killed run costs.
    chk.ok("waiting for it to go silent" not in n2.proc.tail(50), "the restart did not wait for a silent predecessor",
           "%.1f s" % (time.monotonic() - t0))
    b2 = n2.ws(rid, "bob")
    chk.eq(b2.welcome["payload"]["current_users"], 2, "node 2 back: 2 users")
    for ws in (a, b2):
        ws.close()
    try:
        b.close()
    except OSError:
        pass


def t_stalled_node(st, chk):
    """A node that stalls past the timeout (SIGSTOP) is taken for lost: its users leave the
    counts and its sessions are closed (node_lost). When it runs again it has kept its
    connections: the counts heal and each of them gets an open session again."""
    n1, n2 = st.nodes[0], st.nodes[1]
    rid = st.create_room("stalled")
    a = n1.ws(rid, "alice")
    b = n2.ws(rid, "bob")
    stack.wait_until(lambda: current_users(n1, rid), "2 users", lambda v: v == 2)
    # Node 2's writer has recorded bob's session before the stall (a slow build may not have yet).
    rows = stack.wait_until(lambda: [x for x in sessions(st, rid) if x.get("user_id") == "bob"], "bob's session",
                            lambda v: len(v) == 1)
    chk.eq(len(rows), 1, "bob's session recorded")
    os.kill(n2.proc.pid, signal.SIGSTOP)
    try:
        rows = stack.wait_until(lambda: [x for x in sessions(st, rid) if x.get("user_id") == "bob"],
                                "bob's session closed by node 1", lambda v: v and v[0].get("left_at") is not None)
        chk.ok(rows and rows[0].get("reason") == "node_lost", "stalled node 2: its session closed (node_lost)",
               repr(rows))
        chk.eq(stack.wait_until(lambda: current_users(n1, rid), "node 2's user gone", lambda v: v == 1), 1,
               "and node 1 counts 1 user")
    finally:
        os.kill(n2.proc.pid, signal.SIGCONT)
    rows = stack.wait_until(lambda: [x for x in sessions(st, rid) if x.get("user_id") == "bob"],
                            "bob's session open again", lambda v: any(x.get("left_at") is None for x in v))
    chk.ok(len(rows) == 2 and sum(x.get("left_at") is None for x in rows) == 1,
           "node 2 running again: bob's live connection has an open session again (a new row)", repr(rows))
    chk.eq(stack.wait_until(lambda: current_users(n1, rid), "2 users again", lambda v: v == 2), 2,
           "and node 1 counts him again")
    b.close()
    rows = stack.wait_until(lambda: [x for x in sessions(st, rid) if x.get("user_id") == "bob"],
                            "bob's new session closed", lambda v: all(x.get("left_at") is not None for x in v))
    chk.ok(rows and all(x.get("left_at") is not None for x in rows) and rows[-1].get("reason") == "left",
           "his leaving closes the new row", repr(rows))
    a.close()


def t_bus_restart(st, chk):
    """nats-server killed under traffic and restarted: every member ends with every message."""
    n1, n2 = st.nodes[0], st.nodes[1]
    rid = st.create_room("busdown", ["alice", "bob"])  # admins: no rate limit
    a = n1.ws(rid, "alice")
    b = n2.ws(rid, "bob")
    stack.wait_until(lambda: current_users(n1, rid), "2 users", lambda v: v == 2)
    for ws in (a, b):
        ws.drain(0.3)
    stop = threading.Event()
    sent = {"a": 0, "b": 0}

    def post(ws, key):
        while not stop.is_set() and sent[key] < 200:
            ws.send_json(msg("%s %d" % (key, sent[key])))
            sent[key] += 1
            time.sleep(0.01)

    threads = [threading.Thread(target=post, args=(a, "a")), threading.Thread(target=post, args=(b, "b"))]
    for t in threads:
        t.start()
    time.sleep(0.3)  # traffic under way before the bus goes: the behaviour under test
    st.kill_nats()
    time.sleep(1.0)  # the bus stays down while both nodes keep committing
    st.start_nats()
    for t in threads:
        t.join()
    total = sent["a"] + sent["b"]
    got_a = [p["seq"] for p in collect(a, total, timeout=stack.WAIT * 3)]
    got_b = [p["seq"] for p in collect(b, total, timeout=stack.WAIT * 3)]
    chk.eq(len(got_a), total, "alice (node 1) got all %d messages" % total)
    chk.eq(len(got_b), total, "bob (node 2) got all %d messages" % total)
    chk.eq(got_a, list(range(1, total + 1)), "alice: in order, none twice")
    chk.eq(got_b, got_a, "bob: the same sequence")
    st.wait_mesh()
    h = n2.health()["cluster"]
    chk.ok(h["bus"]["connected"] and h["bus"]["reconnects"] >= 1, "node 2 reconnected to the bus", repr(h["bus"]))
    for ws in (a, b):
        ws.close()


def t_partition(st, chk):
    """Node 2 alone loses the bus and keeps its clients; when it is back the counts heal."""
    n1, n2 = st.nodes[0], st.nodes[1]
    relay = st.relays[2]
    rid = st.create_room("partition", ["alice", "bob"])
    a = n1.ws(rid, "alice")
    b = n2.ws(rid, "bob")
    both = lambda: (current_users(n1, rid), current_users(n2, rid))  # noqa: E731
    chk.eq(stack.wait_until(both, "2 users on both", lambda v: v == (2, 2)), (2, 2), "2 users on both nodes")
    for ws in (a, b):
        ws.drain(0.3)
    relay.cut()
    chk.eq(stack.wait_until(both, "each side counts its own", lambda v: v == (1, 1)), (1, 1),
           "cut off: each node counts only its own user once the other falls silent")
    b.send_json(msg("during the partition"))
    got = collect(b, 1)
    chk.ok(got and got[0]["content"] == "during the partition", "node 2 keeps serving its member", repr(got))
    # Alive in the database: nobody closes node 2's sessions (checked for twice the timeout).
    rows = stack.wait_until(lambda: [s for s in sessions(st, rid) if s.get("user_id") == "bob"],
                            "bob's session closed (it must not be)", lambda v: v and v[0].get("left_at") is not None,
                            timeout=3.0)
    chk.ok(rows and rows[0].get("left_at") is None, "a node cut from the bus keeps its sessions open", repr(rows))
    relay.restore()
    chk.eq(stack.wait_until(both, "counts heal", lambda v: v == (2, 2)), (2, 2), "bus back: the counts heal on both nodes")
    got = collect(a, 1)
    chk.ok(got and got[0]["content"] == "during the partition", "alice gets what bob posted while cut off", repr(got))
    for ws in (a, b):
        ws.close()


def t_bus_late(st, chk):
    """A node started while its bus is unreachable serves its members, and joins when the bus comes."""
    n1, n2 = st.nodes[0], st.nodes[1]
    relay = st.relays[2]
    relay.cut()
    n2.kill(signal.SIGTERM)
    n2.start()
    h = n2.health()["cluster"]
    chk.eq(h["bus"]["connected"], False, "node 2 started without its bus")
    rid = st.create_room("late")
    b = n2.ws(rid, "bob")
    b.send_json(msg("alone"))
    got = collect(b, 1)
    chk.ok(got and got[0]["content"] == "alone", "and serves its member meanwhile", repr(got))
    relay.restore()
    st.wait_mesh()
    a = n1.ws(rid, "alice")
    chk.eq(a.welcome["payload"]["current_users"], 2, "once the bus is reachable, node 1 counts node 2's user")
    b.send_json(msg("together"))
    got = collect(a, 1)
    chk.ok(got and got[0]["content"] == "together", "and messages cross", repr(got))
    for ws in (a, b):
        ws.close()


def t_record_checks(st, chk):
    """A close or a ban that has not reached a node over the bus (node 2 cut off)
    still holds at its door: a join is checked against the record."""
    n1, n2 = st.nodes[0], st.nodes[1]
    relay = st.relays[2]
    rid = st.create_room("record")
    w = n2.ws(rid, "watcher")  # the room is in node 2's memory, open
    relay.cut()
    stack.wait_until(lambda: n2.health()["cluster"]["bus"]["connected"], "node 2 off the bus", lambda v: v is False)
    r = st.client.post("/management/rooms/%s/bans" % rid, {"user_id": "mallory", "reason": "spam"})
    chk.ok(r.status in (200, 201), "ban through chat-api (node 1)", "%s %s" % (r.status, r.snippet()))
    status = 0
    try:
        n2.ws(rid, "mallory").close()
    except Exception as exc:  # noqa: BLE001 - HandshakeError carries the status
        status = getattr(exc, "status", -1)
    chk.eq(status, 403, "the banned user is refused at node 2, which never heard of the ban")
    r = st.client.delete("/management/rooms/%s" % rid)
    chk.ok(r.status in (200, 204), "room closed through chat-api (node 1)", "%s %s" % (r.status, r.snippet()))
    status = 0
    try:
        n2.ws(rid, "newcomer").close()
    except Exception as exc:  # noqa: BLE001
        status = getattr(exc, "status", -1)
    chk.eq(status, 404, "a join at node 2 after the close is refused with 404")
    relay.restore()
    try:
        w.wait_for(lambda m: False, stack.WAIT)
    except Closed:
        pass
    chk.eq(w.close_code, 4404, "once the bus is back, the relay closes node 2's member")


def t_big_gap(st, chk):
    """A gap larger than a member's queue (QUEUE_LOW_FRAMES=20): the oldest part is
    counted as dropped, the rest delivered in order."""
    n1, n2 = st.nodes[0], st.nodes[1]
    relay = st.relays[2]
    rid = st.create_room("biggap", ["alice"])
    a = n1.ws(rid, "alice")
    b = n2.ws(rid, "bob")
    stack.wait_until(lambda: current_users(n2, rid), "2 users", lambda v: v == 2)
    for ws in (a, b):
        ws.drain(0.3)
    relay.cut()
    up = stack.wait_until(lambda: n2.health()["cluster"]["bus"]["connected"], "node 2 off the bus", lambda v: v is False)
    chk.eq(up, False, "node 2 lost the bus")
    for i in range(60):
        a.send_json(msg("burst %d" % i))
    # Her own queue holds 20 too: the room's last seq says what was committed.
    last = stack.wait_until(lambda: n1.ctl("stats", {"room_id": rid})["result"]["last_seq"], "60 committed",
                            lambda v: v == 60)
    chk.eq(last, 60, "alice's 60 messages committed")
    relay.restore()
    seqs, dropped = [], 0
    deadline = time.monotonic() + stack.WAIT * 2
    while len(seqs) < 20 and time.monotonic() < deadline:
        m = b.wait_for(lambda m: m["type"] in ("Message", "Error"), max(0.01, deadline - time.monotonic()))
        if m is None:
            break
        if m["type"] == "Error" and m["payload"].get("code") == "messages_dropped":
            dropped += m["payload"].get("dropped", 0)
        elif m["type"] == "Message":
            seqs.append(m["payload"]["seq"])
    m = b.wait_for(lambda m: m["type"] == "Error" and m["payload"].get("code") == "messages_dropped", 1.0) if not dropped else None
    if m:
        dropped += m["payload"].get("dropped", 0)
    chk.eq(seqs, list(range(41, 61)), "bob gets the newest 20 (his queue) in order")
    chk.eq(dropped, 40, "and is told the 40 before them were dropped")
    for ws in (a, b):
        ws.close()


def t_health(st, chk):
    h = st.nodes[0].health()
    c = h.get("cluster", {})
    chk.eq(c.get("node_id"), "node-1", "health names this node")
    chk.eq(sorted(x["node_id"] for x in c.get("nodes", [])), sorted(n.node_id for n in st.nodes), "health lists every node")
    chk.ok(c.get("bus", {}).get("connected") is True and c["bus"].get("url", "").startswith("nats://"),
           "health shows the bus", repr(c.get("bus")))
    r = st.client.get("/management/health")
    api_nodes = ((((r.json or {}).get("chatd") or {}).get("health") or {}).get("cluster") or {}).get("nodes", [])
    chk.eq(sorted(x.get("node_id") for x in api_nodes), sorted(n.node_id for n in st.nodes),
           "GET /management/health lists every node (chatd.health.cluster.nodes)")
    j = stack.wait_until(lambda: st.client.get("/management/health").json or {}, "REST health ok",
                         lambda v: v.get("status") == "ok")
    chk.eq(j.get("chatd", {}).get("health", {}).get("cluster", {}).get("node_id"), "node-1",
           "REST health: chatd.health.cluster")
    chk.ok(j.get("status") == "ok" and j.get("causes") == [], "REST health of a meshed cluster: ok, no causes",
           r.snippet(600))
    nodes = {x.get("node_id"): x.get("state") for x in j.get("database", {}).get("nodes", [])}
    chk.eq(nodes, {n.node_id: "alive" for n in st.nodes}, "REST health: database.nodes, every node alive")
    rc, out = chatctl(st, "status", node=st.nodes[1])
    chk.ok(rc == 0 and "\ncluster       " in out and "this node node-2" in out and "connected to nats://" in out,
           "chatctl status on node 2: the cluster block", out)
    lines = out.split("\n")
    head = next((i for i, x in enumerate(lines) if x.startswith("NODE ")), None)
    rows = [x.split() for x in lines[head + 1:] if x.strip()] if head is not None else []
    chk.eq(sorted((x[0], x[1] == "*") for x in rows), [("node-1", False), ("node-2", True)],
           "chatctl status: the nodes table, node 2 marked as this node")
    chk.ok(rows and all(x[-1] == "yes" for x in rows), "chatctl status: every node synced", out)


def main():
    stack.setup_process()
    require_chatd("nginx")
    chk = Checker("the cluster: chatd nodes over NATS")
    code = None
    signal.alarm(int(os.environ.get("TEST_TIMEOUT", "600")))
    try:
        # Two nodes: a rate limit to test across them (admins post freely).
        runs = (
            (3, {"USER_MESSAGE_INTERVAL_SECS": "0"}, (), [t_concurrent_order]),
            (2, {"USER_MESSAGE_INTERVAL_SECS": "2"}, (),
             [t_cross_node, t_rate_limit, t_admin_relay, t_health, t_node_id_in_use, t_clean_restart,
              t_node_killed, t_stalled_node, t_bus_restart]),
            (2, {"USER_MESSAGE_INTERVAL_SECS": "0", "QUEUE_LOW_FRAMES": "20"}, (2,), [t_partition, t_bus_late, t_record_checks, t_big_gap]),
        )
        only = [t for t in os.environ.get("CLUSTER_TESTS", "").split(",") if t]
        for nodes, settings, relayed, tests in runs:
            tests = [t for t in tests if not only or t.__name__[2:] in only]
            if not tests:
                continue
            st = ClusterStack("nginx", nodes=nodes, settings=settings, relayed=relayed)
            before = len(chk.failures)
            try:
                with st:
                    for fn in tests:
                        chk.run("%d nodes: %s" % (nodes, fn.__name__[2:]), fn, st, chk)
                    if len(chk.failures) > before:
                        st.dump_logs(60)
            except StackError as exc:
                chk.ok(False, "cluster stack start", str(exc))
            finally:
                complaints = st.stop()
                chk.section("%d nodes: shutdown" % nodes)
                chk.ok(not complaints, "every process stopped on SIGTERM", "; ".join(complaints))
                reap_orphans()
    except (KeyboardInterrupt, Watchdog) as exc:
        chk.ok(False, "interrupted", repr(exc))
        code = 1
    result = chk.finish()
    return code if code else result


if __name__ == "__main__":
    sys.exit(main())
