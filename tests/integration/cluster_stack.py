"""
The cluster's integration harness: a real nats-server on a free port,
chat-api and a web server (chatd_stack.ChatdStack), and N real chatd
nodes sharing one database (the stack's SQLite file, or the PostgreSQL
database a test passes as database_url), each with its own NODE_ID, listener and
control socket. Clients talk to a node of their choice directly, so a
test knows which node each one is on. Every process is started here and
stopped by PID.

Python 3 standard library only; run with /usr/bin/python3.
"""

import os
import signal
import socket
import threading
import time

import stack
from chatd_stack import CHATD, ChatdStack
from stack import Proc, StackError
from wsclient import WSClient

NATS = stack.which("nats-server") or "/usr/bin/nats-server"

# Fast failure detection, so the failure tests take seconds, not minutes.
FAST = {
    "CLUSTER_HEARTBEAT_SECS": "0.2",
    "CLUSTER_NODE_TIMEOUT_SECS": "1.5",
    "CLUSTER_GAP_WAIT_SECS": "0.1",
}


def require_nats():
    if not os.access(NATS, os.X_OK):
        raise StackError("nats-server not found (apt-get install nats-server)")


class Relay:
    """A TCP relay between one node and nats-server, which a test can cut
    (every connection dropped, new ones refused) and restore: one node
    loses the bus while the others keep it."""

    def __init__(self, target_port):
        self.target = target_port
        self.port = stack.free_port()
        self.lock = threading.Lock()
        self.conns = []
        self.listener = None
        self.restore()

    def restore(self):
        ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        ls.bind(("127.0.0.1", self.port))
        ls.listen(16)
        self.listener = ls
        threading.Thread(target=self._accept, args=(ls,), daemon=True).start()

    def _accept(self, ls):
        while True:
            try:
                c, _ = ls.accept()
            except OSError:
                return
            try:
                u = socket.create_connection(("127.0.0.1", self.target), timeout=5)
            except OSError:
                c.close()
                continue
            with self.lock:
                self.conns += [c, u]
            threading.Thread(target=self._pump, args=(c, u), daemon=True).start()
            threading.Thread(target=self._pump, args=(u, c), daemon=True).start()

    @staticmethod
    def _pump(a, b):
        try:
            while True:
                data = a.recv(65536)
                if not data:
                    break
                b.sendall(data)
        except OSError:
            pass
        for s in (a, b):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def cut(self):
        # A close alone leaves a thread blocked in accept() accepting:
        # shutdown wakes it (EINVAL) and the port refuses from then on.
        try:
            self.listener.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.listener.close()
        with self.lock:
            conns, self.conns = self.conns, []
        for s in conns:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()

    def close(self):
        self.cut()


class Node:
    """One chatd node: its settings on top of the shared env file."""

    def __init__(self, st, index):
        self.st = st
        self.index = index
        self.bus_url = None  # None: the cluster's; else through a relay
        self.node_id = "node-%d" % index
        self.port = st.node_ports[index - 1]
        self.control = st.path("run", "control.sock" if index == 1 else "control-%d.sock" % index)
        self.proc = None
        self.runs = 0

    def env(self):
        env = {
            "CHAT_ENV_FILE": self.st.env_file,
            "NODE_ID": self.node_id,
            "CHATD_LISTEN": "127.0.0.1:%d" % self.port,
            "CONTROL_SOCKET": self.control,
        }
        if self.bus_url:
            env["CLUSTER_NATS_URL"] = self.bus_url
        return stack.clean_env(env)

    def start(self, wait=True):
        self.runs += 1
        name = "chatd-%s" % self.node_id if self.runs == 1 else "chatd-%s-run%d" % (self.node_id, self.runs)
        self.proc = Proc(name, [CHATD], self.env(), self.st.tmp)
        self.st.procs.append(self.proc)
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self, seconds=30):
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if not self.proc.running():
                raise StackError("%s exited (%s) at start:\n%s" % (self.node_id, self.proc.p.returncode, self.proc.tail()))
            try:
                if self.ctl("health").get("ok"):
                    return
            except OSError:
                pass
            time.sleep(0.05)
        raise StackError("%s did not start within %d s:\n%s" % (self.node_id, seconds, self.proc.tail()))

    def kill(self, sig=signal.SIGKILL):
        """Signals the node and waits for it to end."""
        p = self.proc
        os.kill(p.pid, sig)
        try:
            p.p.wait(15)
        finally:
            try:
                p.logf.close()
            except OSError:
                pass
            self.st.procs.remove(p)
        return p.p.returncode

    def ctl(self, type_, args=None, timeout=5):
        return stack.control_request(self.control, type_, args, timeout)

    def health(self):
        return self.ctl("health")["result"]

    def ws(self, room_id, user_id, nickname=None, welcome=True, **kw):
        ws = WSClient.connect("127.0.0.1", self.port, self.st.ws_path(room_id, user_id, nickname, kw or None))
        ws.node = self.node_id
        if welcome:
            m = ws.recv_json(5)
            if m.get("type") != "UserJoined":
                raise AssertionError("first frame from %s is not UserJoined: %r" % (self.node_id, m))
            ws.welcome = m
        return ws


class ClusterStack(ChatdStack):
    """A web server, chat-api, a nats-server and `nodes` chatd nodes. The
    first node is ChatdStack's own chatd (chat-api and chatctl talk to
    its control socket)."""

    def __init__(self, front="nginx", nodes=2, settings=None, relayed=(), balanced=False, database_url=None):
        """relayed: indexes (1-based) of nodes that reach the bus through a
        Relay. balanced: the web server spreads /ws/ over every node (else
        it proxies to node 1, and tests pick nodes directly). database_url:
        every program's DATABASE_URL (postgres://...) instead of the
        stack's SQLite file."""
        s = dict(FAST)
        s.update(settings or {})
        self.database_url = database_url
        if database_url:
            s["DATABASE_URL"] = database_url
        self.nats_port = stack.free_port()
        s["CLUSTER_NATS_URL"] = "nats://127.0.0.1:%d" % self.nats_port
        self.node_ports = [stack.free_port() for _ in range(nodes)]
        ports = self.node_ports if balanced else self.node_ports[:1]
        render_env = {"CHATD_ADDRS": ",".join("127.0.0.1:%d" % p for p in ports)}
        super().__init__(front, s, render_env=render_env, chatd_tcp=True)
        self.nnodes = nodes
        self.nodes = []
        self.nats = None
        self.relayed = relayed
        self.relays = {}

    def start(self):
        require_nats()
        # The stack's files go in its temp folder: nats-server needs it first.
        stack.Stack.start(self)
        # Node 1 listens where the web server (unbalanced) and direct clients look.
        self.chatd_port = self.node_ports[0]
        self.start_nats()
        self.nodes = [Node(self, i + 1) for i in range(self.nnodes)]
        for i in self.relayed:
            self.relays[i] = Relay(self.nats_port)
            self.nodes[i - 1].bus_url = "nats://127.0.0.1:%d" % self.relays[i].port
        for n in self.nodes:
            n.start()
        self.chatd = self.nodes[0].proc
        self.wait_mesh()

    def stop(self):
        for r in self.relays.values():
            r.close()
        return super().stop()

    def start_nats(self):
        self.nats = Proc("nats-server", [NATS, "-a", "127.0.0.1", "-p", str(self.nats_port)], stack.clean_env(), self.tmp)
        self.procs.append(self.nats)
        self._wait_tcp(self.nats_port, self.nats)

    def kill_nats(self):
        p = self.nats
        os.kill(p.pid, signal.SIGKILL)
        p.p.wait(10)
        p.logf.close()
        self.procs.remove(p)
        self.nats = None

    def wait_mesh(self, nodes=None):
        """Until every running node hears every other and is in sync with it."""
        nodes = nodes or self.nodes
        want = sorted(n.node_id for n in nodes)

        def fetch():
            out = []
            for n in nodes:
                c = n.health().get("cluster", {})
                out.append(
                    (
                        sorted(x["node_id"] for x in c.get("nodes", [])),
                        all(x["synced"] for x in c.get("nodes", [])),
                        c.get("bus", {}).get("connected"),
                    )
                )
            return out

        def done(v):
            return all(ids == want and synced and up for ids, synced, up in v)

        got = stack.wait_until(fetch, "every node hears %s" % want, done, timeout=stack.WAIT * 2)
        if not done(got):
            raise StackError("the nodes did not find each other: %r" % got)
        return got
