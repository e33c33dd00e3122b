#!/usr/bin/python3
"""
The WebSocket suite (test_chatd_ws.py) against a two-node cluster: nginx
spreads the connections over both chatd nodes (least connections), so
members of one room sit on different nodes, and every rule of the
protocol must hold as on one node: broadcast with every field, refusals,
bad input, protocol edges, the rate limit across a user's connections,
RoomStats coalescing. Then each node's own count shows that both served
connections. (The suite's shutdown test stops "the" chatd: a single-node
matter, left to test_chatd_ws.py.)

Prints "N passed, M failed"; exits non-zero on any failure.
"""

import os
import signal
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.dont_write_bytecode = True

import stack  # noqa: E402
import test_chatd_ws as suite  # noqa: E402
from chatd_stack import require_chatd  # noqa: E402
from cluster_stack import ClusterStack  # noqa: E402
from stack import Checker, StackError, Watchdog, reap_orphans  # noqa: E402

TESTS = [
    ("broadcast", suite.t_broadcast),
    ("refusals", suite.t_refusals),
    ("bad input", suite.t_bad_input),
    ("protocol edges", suite.t_protocol_edges),
    ("rate limit", suite.t_rate_limit),
    ("coalescing", suite.t_coalesce),
]


def connections_total(node):
    text = node.ctl("metrics")["result"]["text"]
    for line in text.splitlines():
        if line.startswith("chatd_connections_total "):
            return float(line.split()[1])
    return None


def main():
    stack.setup_process()
    require_chatd("nginx")
    chk = Checker("the WebSocket suite on two chatd nodes behind nginx")
    code = None
    signal.alarm(int(os.environ.get("TEST_TIMEOUT", "600")))
    st = ClusterStack("nginx", nodes=2, balanced=True,
                      settings={"USER_MESSAGE_INTERVAL_SECS": str(suite.INTERVAL)})
    before = len(chk.failures)
    try:
        with st:
            for name, fn in TESTS:
                chk.run("2 nodes: %s" % name, fn, st, chk)
            chk.section("2 nodes: both served")
            totals = [connections_total(n) for n in st.nodes]
            chk.ok(all(t and t > 0 for t in totals), "nginx spread the suite's connections over both nodes",
                   repr(totals))
            if len(chk.failures) > before:
                st.dump_logs(60)
    except StackError as exc:
        chk.ok(False, "cluster stack start", str(exc))
    except (KeyboardInterrupt, Watchdog) as exc:
        chk.ok(False, "interrupted", repr(exc))
        code = 1
    finally:
        complaints = st.stop()
        chk.section("2 nodes: shutdown")
        chk.ok(not complaints, "every process stopped on SIGTERM", "; ".join(complaints))
        reap_orphans()
    result = chk.finish()
    return code if code else result


if __name__ == "__main__":
    sys.exit(main())
