#!/usr/bin/python3
"""
The cluster's metrics on a real two-node cluster (cluster_stack.py: nginx,
chat-api, a real nats-server, two chatd nodes): each node's exposition
(control request `metrics`) passes `promtool check metrics` and has the
bus and node series; one message posted on node 1 to a member on node 2
counts once as published on node 1 and once as received on node 2; the
bus going down and coming back shows in chatd_cluster_bus_up and the
reconnect counter; a node killed counts as lost; and every chatd_cluster_
series the Grafana dashboard queries reaches Prometheus through chat-api
(test_metrics.py checks the others, and that a single node has no bus
series). One scrape through chat-api carries every node's chatd series,
labelled node="<NODE_ID>" (the control request `metrics` with
{"cluster": true}); a node that does not answer (stopped) is left out
after the bound and listed in the reply's "missing".

Python 3 standard library only; run with /usr/bin/python3.
"""

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.dont_write_bytecode = True

import stack  # noqa: E402
from chatd_stack import require_chatd  # noqa: E402
from cluster_stack import ClusterStack  # noqa: E402
from stack import Checker, StackError, Watchdog, log, reap_orphans  # noqa: E402

SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')

# Every series a cluster node exports beyond a single node's.
CLUSTER_SERIES = [
    ("chatd_cluster_bus_up", {}),
    ("chatd_cluster_bus_messages_total", {"direction": "in"}),
    ("chatd_cluster_bus_messages_total", {"direction": "out"}),
    ("chatd_cluster_bus_bytes_total", {"direction": "in"}),
    ("chatd_cluster_bus_bytes_total", {"direction": "out"}),
    ("chatd_cluster_bus_reconnects_total", {}),
    ("chatd_cluster_bus_dropped_total", {"direction": "in"}),
    ("chatd_cluster_bus_dropped_total", {"direction": "out"}),
    ("chatd_cluster_nodes", {}),
    ("chatd_cluster_nodes_unsynced", {}),
    ("chatd_cluster_nodes_lost_total", {}),
    ("chatd_cluster_messages_published_total", {}),
    ("chatd_cluster_messages_received_total", {}),
    ("chatd_cluster_snapshots_sent_total", {}),
    ("chatd_cluster_gap_reads_total", {}),
    ("chatd_cluster_gap_messages_total", {"how": "read"}),
    ("chatd_cluster_gap_messages_total", {"how": "skipped"}),
]


def parse(text):
    """{(name, ((label, value), ...)): float} of an exposition (as test_metrics.py's)."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = SAMPLE.match(line)
        if not m:
            raise AssertionError("not a sample line: %r" % line)
        out[(m.group(1), tuple(sorted(LABEL.findall(m.group(2) or ""))))] = float(m.group(3))
    return out


def val(samples, name, **labels):
    return samples.get((name, tuple(sorted(labels.items()))))


def text_of(node):
    return node.ctl("metrics")["result"]["text"]


def metrics(node):
    return parse(text_of(node))


def promtool(chk, text, what):
    r = subprocess.run(["promtool", "check", "metrics"], input=text.encode("utf-8"),
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
    out = r.stdout.decode("utf-8", "replace")
    chk.ok(r.returncode == 0 and out == "", "promtool check metrics: %s" % what,
           "exit %d: %s" % (r.returncode, out[:2000]))


def t_series(st, chk):
    for n in st.nodes:
        text = text_of(n)
        promtool(chk, text, n.node_id)
        s = parse(text)
        chk.eq([(name, lb) for name, lb in CLUSTER_SERIES if val(s, name, **lb) is None], [],
               "%s exports every cluster series" % n.node_id)
        chk.eq(val(s, "chatd_cluster_bus_up"), 1.0, "%s: bus up" % n.node_id)
        chk.eq(val(s, "chatd_cluster_nodes"), 1.0, "%s: hears the other node" % n.node_id)
        chk.eq(val(s, "chatd_cluster_nodes_unsynced"), 0.0, "%s: in sync with it" % n.node_id)
        chk.ok((val(s, "chatd_cluster_snapshots_sent_total") or 0) >= 1,
               "%s: sent its snapshot" % n.node_id)
        for d in ("in", "out"):
            chk.ok((val(s, "chatd_cluster_bus_messages_total", direction=d) or 0) > 0
                   and (val(s, "chatd_cluster_bus_bytes_total", direction=d) or 0) > 0,
                   "%s: bus traffic %s (heartbeats at least)" % (n.node_id, d))


def t_message_counted(st, chk):
    n1, n2 = st.nodes[0], st.nodes[1]
    rid = st.create_room("counted")
    a = n1.ws(rid, "alice", "Alice")
    b = n2.ws(rid, "bob", "Bob")
    a.drain(0.3)
    b.drain(0.3)
    pub = "chatd_cluster_messages_published_total"
    rcv = "chatd_cluster_messages_received_total"
    before1, before2 = metrics(n1), metrics(n2)
    a.send_json({"type": "Message", "payload": {"content": "counted once"}})
    m = b.wait_for(lambda m: m["type"] == "Message", stack.WAIT)
    chk.ok(m is not None and m["payload"]["content"] == "counted once", "bob on node 2 got it", repr(m))
    after2 = stack.wait_until(lambda: metrics(n2), "node 2 counts the message received",
                              lambda s: (val(s, rcv) or 0) > (val(before2, rcv) or 0))
    after1 = metrics(n1)
    chk.eq(val(after1, pub) - val(before1, pub), 1.0, "node 1: one message published")
    chk.eq(val(after2, rcv) - val(before2, rcv), 1.0, "node 2: one message received")
    chk.eq(val(after2, pub) - val(before2, pub), 0.0, "node 2 published nothing")
    chk.eq(val(after1, rcv) - val(before1, rcv), 0.0, "node 1 received nothing")
    chk.ok(val(after1, "chatd_cluster_bus_messages_total", direction="out")
           > val(before1, "chatd_cluster_bus_messages_total", direction="out"), "node 1: bus messages out grew")
    a.close()
    b.close()


def t_bus_down(st, chk):
    n1, n2 = st.nodes[0], st.nodes[1]
    before = {n.node_id: metrics(n) for n in st.nodes}
    st.kill_nats()
    for n in (n1, n2):
        s = stack.wait_until(lambda: metrics(n), "%s: bus down" % n.node_id,
                             lambda s: val(s, "chatd_cluster_bus_up") == 0)
        chk.eq(val(s, "chatd_cluster_bus_up"), 0.0, "%s: chatd_cluster_bus_up 0 without NATS" % n.node_id)
    st.start_nats()
    for n in (n1, n2):
        rc = "chatd_cluster_bus_reconnects_total"
        s = stack.wait_until(lambda: metrics(n), "%s: bus back" % n.node_id,
                             lambda s: val(s, "chatd_cluster_bus_up") == 1, timeout=stack.WAIT * 2)
        chk.eq(val(s, "chatd_cluster_bus_up"), 1.0, "%s: bus up again" % n.node_id)
        chk.ok(val(s, rc) - val(before[n.node_id], rc) >= 1, "%s: the reconnect counted" % n.node_id)
    st.wait_mesh()


# chat-api's own series: never labelled by node.
API_OWN = re.compile(r"^chatd_(api_|up$|sync_)")


def scrape(st):
    r = st.client.get("/management/metrics")
    if r.status != 200:
        raise AssertionError("scrape: HTTP %d" % r.status)
    return r.body.decode("utf-8")


def nodes_of(samples):
    """{metric name: sorted node labels} of the chatd series in a scrape."""
    out = {}
    for (name, labels) in samples:
        out.setdefault(name, set()).add(dict(labels).get("node"))
    return {k: sorted(v, key=str) for k, v in out.items()}


def t_scrape_all(st, chk):
    n1, n2 = st.nodes[0], st.nodes[1]
    rid = st.create_room("scraped")
    b = n2.ws(rid, "bob", "Bob")

    def done(s):
        return (val(s, "chatd_connections", node="node-2") == 1
                and val(s, "chatd_connections", node="node-1") == 0)

    text = stack.wait_until(lambda: scrape(st), "one scrape shows node 2's connection",
                            lambda t: done(parse(t)))
    promtool(chk, text, "chat-api with two nodes")
    s = parse(text)
    chk.ok(done(s), "chatd_connections{node=\"node-1\"} 0 and {node=\"node-2\"} 1 in one scrape",
           repr([(k, v) for k, v in s.items() if k[0] == "chatd_connections"]))
    for n in ("node-1", "node-2"):
        chk.eq(val(s, "chatd_cluster_nodes", node=n), 1.0, "%s's own chatd_cluster_nodes" % n)
        chk.ok(val(s, "chatd_writer_commit_duration_seconds_count", node=n) is not None,
               "%s's histogram" % n)
    per = nodes_of(s)
    chatd = {k: v for k, v in per.items() if not API_OWN.match(k)}
    chk.eq({k: v for k, v in chatd.items() if None in v}, {}, "every chatd series is labelled by node")
    both = [k for k, v in chatd.items() if v == ["node-1", "node-2"]]
    chk.ok(len(both) >= 30, "chatd's series come from both nodes", repr(sorted(both)))
    chk.eq({k: v for k, v in per.items() if API_OWN.match(k) and v != [None]}, {},
           "chat-api's own series carry no node label")
    chk.eq(val(s, "chatd_up"), 1.0, "chatd_up 1")
    # The control reply itself, asked on either node: itself first.
    for me, other in ((n1, n2), (n2, n1)):
        r = me.ctl("metrics", {"cluster": True})
        chk.ok(r.get("ok"), "%s: metrics with cluster" % me.node_id, repr(r)[:500])
        res = r.get("result", {})
        chk.eq(res.get("nodes"), [me.node_id, other.node_id], "%s: both nodes answered" % me.node_id)
        chk.eq(res.get("missing"), [], "%s: none missing" % me.node_id)
        promtool(chk, res.get("text", ""), "%s's merged text" % me.node_id)
    # Without the argument (or with false) a node answers for itself, as before.
    for args in (None, {"cluster": False}):
        r = n1.ctl("metrics", args)
        chk.eq(sorted(r.get("result", {})), ["text"], "metrics %r: the text alone" % (args,))
        chk.ok('node="' not in r["result"]["text"], "metrics %r: no node label" % (args,))
    r = n1.ctl("metrics", {"cluster": "yes"})
    chk.eq((r.get("ok"), r.get("error", {}).get("code")), (False, "bad_request"), "cluster must be a boolean")
    b.close()


def ctl_lines(path, reqs, timeout=5):
    """Several requests written at once on one control connection; their replies in order."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        s.connect(path)
        s.sendall("".join(json.dumps(q) + "\n" for q in reqs).encode("utf-8"))
        data = b""
        while data.count(b"\n") < len(reqs):
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
        return [json.loads(x) for x in data.decode("utf-8").splitlines()]
    finally:
        s.close()


def t_scrape_unanswered(st, chk):
    """Node 2 stopped: node 1 answers after the bound with its own series, node 2 missing."""
    n1, n2 = st.nodes[0], st.nodes[1]
    os.kill(n2.proc.pid, signal.SIGSTOP)
    try:
        # A client that leaves before the answer: its answer is dropped.
        gone = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        gone.connect(n1.control)
        gone.sendall(b'{"v":1,"id":9,"type":"metrics","args":{"cluster":true}}\n')
        gone.close()
        # A request behind the waiting one is answered after it, in order.
        t0 = time.monotonic()
        replies = ctl_lines(n1.control, [
            {"v": 1, "id": 1, "type": "metrics", "args": {"cluster": True}},
            {"v": 1, "id": 2, "type": "health"},
        ])
        waited = time.monotonic() - t0
        text = scrape(st)
    finally:
        os.kill(n2.proc.pid, signal.SIGCONT)
    chk.eq([r.get("id") for r in replies], [1, 2], "both replies, in request order")
    res = replies[0].get("result", {}) if replies else {}
    chk.eq(res.get("nodes"), ["node-1"], "only node 1 answered")
    chk.eq(res.get("missing"), ["node-2"], "node 2 is missing")
    # It waited for node 2 (the bound, 500 ms) and no longer than a control timeout.
    chk.ok(0.4 <= waited < 5, "answered after the bound, not later", "%.3f s" % waited)
    s = parse(res.get("text", ""))
    chk.eq(val(s, "chatd_connections", node="node-1"), 0.0, "node 1's series labelled")
    chk.eq(sorted({dict(k[1]).get("node") for k in s}), ["node-1"], "no series of node 2")
    promtool(chk, text, "chat-api with node 2 stopped")
    s = parse(text)
    chk.eq(val(s, "chatd_up"), 1.0, "chatd_up 1 with node 2 stopped")
    chk.ok(val(s, "chatd_connections", node="node-1") is not None, "the scrape has node 1's series")
    chk.eq(val(s, "chatd_connections", node="node-2"), None, "and not node 2's")
    # Node 2 resumes and answers requests nobody waits for any more; the next scrape has both.
    st.wait_mesh()
    s = stack.wait_until(lambda: parse(scrape(st)), "both nodes in the scrape again",
                         lambda s: val(s, "chatd_connections", node="node-2") is not None)
    chk.ok(val(s, "chatd_connections", node="node-2") is not None, "node 2 back in the scrape")
    chk.eq(n1.health().get("status"), "ok", "node 1 is fine")


def t_grafana(st, chk):
    """Every chatd_cluster_ series the dashboard queries is in a cluster's scrape through chat-api."""
    with open(os.path.join(stack.CONTRIB, "grafana", "chatd.json"), encoding="utf-8") as f:
        dash = json.load(f)
    exprs = [t["expr"] for p in dash["panels"] for t in p.get("targets", [])]
    wanted = sorted({n for e in exprs for n in re.findall(r"\bchatd_cluster_[a-z_]+\b", e)})
    chk.ok(len(wanted) >= 5, "the dashboard has its cluster queries", repr(wanted))
    r = st.client.get("/management/metrics")
    chk.status(r, 200, "scrape through nginx and chat-api")
    text = r.body.decode("utf-8")
    promtool(chk, text, "chat-api with a cluster node")
    names = {k[0] for k in parse(text)}
    chk.eq([n for n in wanted if n not in names], [], "every cluster metric the dashboard queries is exported")


def t_node_lost(st, chk):
    n1, n2 = st.nodes[0], st.nodes[1]
    lost = "chatd_cluster_nodes_lost_total"
    before = metrics(n1)
    n2.kill(signal.SIGKILL)
    s = stack.wait_until(lambda: metrics(n1), "node 1 loses node 2",
                         lambda s: val(s, "chatd_cluster_nodes") == 0 and val(s, lost) > val(before, lost),
                         timeout=stack.WAIT * 2)
    chk.eq(val(s, "chatd_cluster_nodes"), 0.0, "node 1 hears no other node")
    chk.eq(val(s, lost) - val(before, lost), 1.0, "node 1 counted one node lost")


def main():
    stack.setup_process()
    require_chatd("nginx")
    if not stack.which("promtool"):
        log("promtool not found: install Debian's prometheus package (contrib/quickstart.sh test)")
        return 1
    chk = Checker("cluster metrics")
    code = None
    signal.alarm(int(os.environ.get("TEST_TIMEOUT", "300")))
    # A node timeout long enough that node 1 still counts on a briefly stopped node 2.
    st = ClusterStack("nginx", nodes=2, settings={"CLUSTER_NODE_TIMEOUT_SECS": "4"})
    before = len(chk.failures)
    try:
        with st:
            for fn in (t_series, t_message_counted, t_scrape_all, t_grafana, t_bus_down,
                       t_scrape_unanswered, t_node_lost):
                chk.run("2 nodes: %s" % fn.__name__[2:], fn, st, chk)
            if len(chk.failures) > before:
                st.dump_logs(60)
    except StackError as exc:
        chk.ok(False, "cluster stack start", str(exc))
    except (KeyboardInterrupt, Watchdog) as exc:
        chk.ok(False, "interrupted", repr(exc))
        code = 1
    finally:
        complaints = st.stop()
        chk.section("shutdown")
        chk.ok(not complaints, "every process stopped on SIGTERM", "; ".join(complaints))
        reap_orphans()
    result = chk.finish()
    return code if code else result


if __name__ == "__main__":
    sys.exit(main())
