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
series).

Python 3 standard library only; run with /usr/bin/python3.
"""

import json
import os
import re
import signal
import subprocess
import sys

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
    st = ClusterStack("nginx", nodes=2)
    before = len(chk.failures)
    try:
        with st:
            for fn in (t_series, t_message_counted, t_grafana, t_bus_down, t_node_lost):
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
