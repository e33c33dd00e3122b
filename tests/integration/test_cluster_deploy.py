#!/usr/bin/python3
"""Integration test of the cluster deployment (several chatd nodes sharing
one database, joined by NATS, behind the web server's load balancing):
- for nginx, Apache and lighttpd, on chatd's Unix sockets and on TCP: a real
  nats-server, two real chatd nodes (NODE_ID, CHATD_LISTEN and
  CONTROL_SOCKET each their own, one shared SQLite file, CLUSTER_NATS_URL)
  and the web server rendered by contrib/render-config.sh with
  CHATD_ADDRS naming both; 8 WebSockets to one room through the web server
  each get their UserJoined frame, and both nodes hold some of them (their
  control sockets' health counts); with one node stopped, new WebSockets
  go to the other;
- the templates rendered for 3 nodes name 3 backends and pass each
  server's own check; one address in CHATD_ADDRS renders exactly as
  CHATD_ADDR; a bad address is refused;
- chatd@.service is a template unit with the node id as instance and the
  same sandbox as chatd.service;
- QUICKSTART_NODES=2 contrib/quickstart.sh serve starts nats-server and two
  chatd behind its web server, a WebSocket through it works and lands on
  both nodes, and SIGTERM stops it with everything it started;
  quickstart.sh installs nats-server (and libnats-dev) where needed.
nats-server and every web server must be installed: a missing one fails.
Exit 0 on success, 1 on failure."""
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import stack  # noqa: E402
from stack import Checker, Proc, StackError, Watchdog, log, reap_orphans  # noqa: E402
from wsclient import HandshakeError, WSClient  # noqa: E402

CHATD = os.environ.get("CHATD_BIN") or os.path.join(stack.BUILDDIR, "src", "chatd", "chatd")
TEMPLATES = {
    "nginx/chatd.conf": "nginx",
    "apache/chatd.conf": "apache2",
    "lighttpd/chatd-socket.conf": "lighttpd",
    "lighttpd/chatd-spawn.conf": "lighttpd",
    "lighttpd/chatd-scgi.conf": "lighttpd",
}
# (front, chatd on TCP): each server's spelling of both listener kinds.
RUNS = [("nginx", False), ("nginx", True), ("apache", False), ("apache", True),
        ("lighttpd-socket", False), ("lighttpd-socket", True)]
# CLUSTER_RUNS=apache:unix,nginx:tcp picks some of them (while debugging).
if os.environ.get("CLUSTER_RUNS"):
    RUNS = [(f, k == "tcp") for f, _, k in (r.partition(":") for r in os.environ["CLUSTER_RUNS"].split(","))]
CONNECTIONS = 8


def run(argv, env=None, timeout=60):
    r = subprocess.run(argv, env=env or stack.clean_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       timeout=timeout)
    return r.returncode, r.stdout.decode("utf-8", "replace")


def server_check(server, conf, tmp):
    exe = stack.which(server)
    if exe is None:
        return 1, "%s is not installed" % server
    if server == "lighttpd":
        return run([exe, "-tt", "-f", conf])
    if server == "apache2":
        return run([exe, "-t", "-f", conf])
    return run([exe, "-t", "-e", "stderr", "-p", tmp, "-c", conf])


def ws_join(host, port, path):
    """A WebSocket through the web server and its first frame (None when
    the handshake or the frame failed)."""
    try:
        ws = WSClient.connect(host, port, path)
    except (HandshakeError, OSError) as exc:
        log("handshake %s: %r" % (path, exc))
        return None, None
    try:
        return ws, ws.recv_json(5)
    except Exception as exc:  # noqa: BLE001 - wsclient's Timeout or Closed
        log("first frame on %s: %r" % (path, exc))
        return ws, None


# ---------------------------------------------------------------- rendering


def t_render(chk, tmp):
    base = {
        "BIND_ADDRESS": "127.0.0.1:%d" % stack.free_port(),
        "API_SOCKET": os.path.join(tmp, "api.sock"),
        "API_ADDR": "127.0.0.1:%d" % stack.free_port(),
        "STATE_DIR": tmp,
        "CHAT_API": stack.CHAT_API,
        "ENV_FILE": os.path.join(tmp, "chatd.env"),
        "MAX_CONNECTIONS": "1000",
    }
    socks = [os.path.join(tmp, "chatd-%d.sock" % k) for k in (1, 2, 3)]
    three = {
        "tcp": ["127.0.0.1:3011", "127.0.0.1:3012", "127.0.0.1:3013"],
        "unix": ["unix:" + p for p in socks],
    }
    for tpl, server in TEMPLATES.items():
        path = os.path.join(stack.CONTRIB, tpl)
        for kind, addrs in three.items():
            out = os.path.join(tmp, "%s-%s" % (kind, tpl.replace("/", "-")))
            # Commas and blanks both separate.
            env = stack.clean_env(dict(base, CHATD_ADDRS="%s, %s %s" % tuple(addrs)))
            code, text = run(["/bin/sh", stack.RENDER, "-o", out, path], env)
            if not chk.ok(code == 0, "%s renders for 3 nodes on %s" % (tpl, kind), text.strip()):
                continue
            with open(out, encoding="utf-8") as f:
                body = "\n".join(ln for ln in f.read().splitlines() if not ln.lstrip().startswith("#"))
            chk.eq(sorted(set(re.findall(r"@[A-Z_]+@", body))), [], "%s (3 nodes): no placeholder left" % tpl)
            if server == "nginx":
                m = re.search(r"^    upstream chatd_nodes \{\n(.*?)^    \}$", body, re.M | re.S)
                servers = re.findall(r"^\s*server (\S+);$", m.group(1), re.M) if m else []
                chk.eq(servers, addrs, "nginx: upstream chatd_nodes names the 3 nodes (%s)" % kind)
                chk.ok(m is not None and "least_conn;" in m.group(1) and "zone chatd_nodes" in m.group(1),
                       "nginx: least_conn with a shared zone (%s)" % kind)
                chk.ok("proxy_pass http://chatd_nodes;" in body, "nginx: /ws/ proxies to chatd_nodes (%s)" % kind)
            elif server == "apache2":
                members = re.findall(r'^    BalancerMember "([^"]+)" upgrade=websocket timeout=600 retry=0$',
                                     body, re.M)
                # One host name per Unix socket: Apache tells members apart by it.
                want = ["unix:%s|http://chatd-node-%d" % (a[5:], k + 1) if a.startswith("unix:") else "http://" + a
                        for k, a in enumerate(addrs)]
                chk.eq(members, want, "apache: 3 WebSocket BalancerMembers (%s)" % kind)
                chk.ok('ProxyPass "/ws/" "balancer://chatd_nodes/ws/" lbmethod=bybusyness' in body,
                       "apache: /ws/ proxies to the balancer, by busyness (%s)" % kind)
                for mod in ("proxy_balancer_module", "slotmem_shm_module", "lbmethod_bybusyness_module"):
                    chk.ok(re.search(r"^LoadModule %s " % mod, body, re.M), "apache: loads %s" % mod)
            else:
                m = re.search(r'^  proxy\.server = \("" => \((.*)\)\)$', body, re.M)
                hosts = re.findall(r"\(([^()]*)\)", m.group(1)) if m else []
                want = ['"socket" => "%s"' % a[5:] if a.startswith("unix:") else
                        '"host" => "127.0.0.1", "port" => %s' % a.split(":")[1] for a in addrs]
                chk.eq(hosts, want, "%s: proxy.server has the 3 nodes (%s)" % (tpl, kind))
                chk.ok('  proxy.balance = "fair"' in body.splitlines(), "%s: proxy.balance fair" % tpl)
                chk.ok('  proxy.header = ("upgrade" => "enable")' in body.splitlines(),
                       "%s: WebSocket upgrade enabled" % tpl)
            code, text = server_check(server, out, tmp)
            chk.ok(code == 0, "%s for 3 nodes (%s) accepted by %s -t" % (tpl, kind, server), text.strip()[-300:])

        # One address in CHATD_ADDRS is the single node, byte for byte.
        for addr in ("127.0.0.1:3011", "unix:" + socks[0]):
            code1, one = run(["/bin/sh", stack.RENDER, path], stack.clean_env(dict(base, CHATD_ADDR=addr)))
            code2, listed = run(["/bin/sh", stack.RENDER, path], stack.clean_env(dict(base, CHATD_ADDRS=addr)))
            directives = [ln for ln in one.splitlines() if not ln.lstrip().startswith("#")]
            chk.ok(code1 == 0 and code2 == 0 and one == listed and "chatd_nodes" not in "\n".join(directives),
                   "%s: CHATD_ADDRS=%s renders as CHATD_ADDR did" % (tpl, addr), listed[-300:])

    nginx = os.path.join(stack.CONTRIB, "nginx/chatd.conf")
    for bad in ("127.0.0.1:3011,localhost", "127.0.0.1:3011 unix:relative.sock", "127.0.0.1:3011,127.0.0.1:x"):
        code, text = run(["/bin/sh", stack.RENDER, nginx], stack.clean_env(dict(base, CHATD_ADDRS=bad)))
        chk.ok(code != 0 and "CHATD_ADDRS" in text, "CHATD_ADDRS=%s refused" % bad, text[-200:])
    # A template written for one chatd is refused for several, not
    # rendered with one of them.
    one = os.path.join(tmp, "one-backend.conf")
    with open(one, "w", encoding="utf-8") as f:
        f.write('proxy.server = ("" => ((@CHATD_LIGHTTPD_BACKEND@)))\n')
    code, text = run(["/bin/sh", stack.RENDER, one],
                     stack.clean_env(dict(base, CHATD_ADDRS=",".join(three["tcp"]))))
    chk.ok(code != 0 and "CHATD_LIGHTTPD_BACKEND" in text, "a one-chatd template is refused for 3 nodes", text)


# ---------------------------------------------------------------- systemd

SANDBOX_FIRST, SANDBOX_LAST = "NoNewPrivileges=", "RestrictAddressFamilies="


def sandbox(unit):
    lines = [ln for ln in unit.splitlines() if ln and not ln.startswith("#")]
    start = [i for i, ln in enumerate(lines) if ln.startswith(SANDBOX_FIRST)]
    end = [i for i, ln in enumerate(lines) if ln.startswith(SANDBOX_LAST)]
    return lines[start[0]:end[-1] + 1] if start and end else None


def t_systemd(chk, tmp):
    d = os.path.join(stack.CONTRIB, "systemd")
    with open(os.path.join(d, "chatd.service.in"), encoding="utf-8") as f:
        single = f.read()
    with open(os.path.join(d, "chatd@.service.in"), encoding="utf-8") as f:
        unit = f.read()
    lines = unit.splitlines()
    chk.ok(sandbox(unit) is not None and sandbox(unit) == sandbox(single),
           "chatd@.service has chatd.service's sandbox")
    for line in ("Type=notify", "WatchdogSec=30s", "ExecStart=@bindir@/chatd", "LimitNOFILE=262144",
                 "Environment=NODE_ID=%i", "Environment=CONTROL_SOCKET=/run/chatd/%i/control.sock",
                 "Environment=CHATD_LISTEN=unix:/run/chatd/%i/chatd.sock", "RuntimeDirectory=chatd chatd/%i",
                 "RuntimeDirectoryPreserve=yes"):
        chk.ok(line in lines, "chatd@.service: %s" % line)
    shared = "Environment=CHAT_ENV_FILE=@sysconfdir@/chatd/chatd.env"
    own = "EnvironmentFile=-@sysconfdir@/chatd/node-%i.env"
    # systemd lets EnvironmentFile= win over Environment=, and chatd lets
    # the environment win over CHAT_ENV_FILE: the node's file is the top layer.
    chk.ok(shared in lines and own in lines, "chatd@.service reads chatd.env, then node-%i.env")
    with open(os.path.join(stack.SRCDIR, "Makefile.am"), encoding="utf-8") as f:
        chk.ok("contrib/systemd/chatd@.service.in" in f.read(), "make install ships chatd@.service")
    exe = stack.which("systemd-analyze")
    if exe is None:
        chk.ok(False, "systemd-analyze is installed (apt-get install systemd)")
        return
    path = os.path.join(tmp, "chatd@.service")
    with open(path, "w", encoding="utf-8") as f:
        f.write(unit.replace("@bindir@", os.path.dirname(CHATD)).replace("@sysconfdir@", os.path.join(tmp, "etc")))
    code, text = run([exe, "verify", path])
    chk.ok(code == 0 and text.strip() == "", "systemd-analyze verify chatd@.service", text)


# ---------------------------------------------------------------- live


def start_node(st, k, listen, control, nats_url):
    env = stack.clean_env({"CHAT_ENV_FILE": st.env_file, "NODE_ID": "node-%d" % k, "CHATD_LISTEN": listen,
                           "CONTROL_SOCKET": control, "CLUSTER_NATS_URL": nats_url})
    p = Proc("chatd-node-%d" % k, [CHATD], env, st.tmp)
    st.procs.append(p)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if not p.running():
            raise StackError("chatd node-%d exited (%s) at start:\n%s" % (k, p.p.returncode, p.tail()))
        if stack.node_connections(control) is not None:
            return p
        time.sleep(0.05)
    raise StackError("chatd node-%d did not answer on %s within 15 s:\n%s" % (k, control, p.tail()))


def live_checks(st, chk, title, listens, run_dir, open_ws):
    front = st.front
    chk.section(title)
    r = st.client.post("/management/rooms", {"room_name": "cluster", "admin_user_ids": []})
    if not chk.status(r, 201, "room created before the nodes start"):
        return
    rid = r.json["room_id"]
    nats, url = stack.start_nats(st.tmp)
    st.procs.append(nats)
    # node-1 uses the stack's CONTROL_SOCKET (chat-api's), node-2 its own.
    controls = [os.path.join(st.tmp, "run", "control.sock"), os.path.join(run_dir, "control-2.sock")]
    nodes = [start_node(st, k + 1, listens[k], controls[k], url) for k in (0, 1)]

    joined = 0
    for i in range(CONNECTIONS):
        user = "user%d" % i
        ws, first = ws_join("127.0.0.1", st.port, "/ws/rooms/%s?user_id=%s" % (rid, user))
        if ws is not None:
            open_ws.append(ws)
        payload = (first or {}).get("payload") or {}
        if (first or {}).get("type") == "UserJoined" and payload.get("user_id") == user \
                and payload.get("room_id") == rid:
            joined += 1
        else:
            log("%s: connection %d: first frame %r" % (title, i, first))
    chk.eq(joined, CONNECTIONS, "every WebSocket through %s gets its UserJoined frame" % front)
    counts = stack.wait_until(lambda: [stack.node_connections(c) for c in controls],
                              "both nodes to count %d connections in all" % CONNECTIONS,
                              lambda got: None not in got and sum(got) == CONNECTIONS)
    chk.ok(None not in counts and sum(counts) == CONNECTIONS, "the nodes hold the %d WebSockets" % CONNECTIONS,
           repr(counts))
    chk.ok(None not in counts and min(counts) >= 1, "%s balances over both nodes" % front, repr(counts))

    # A node stops: the balancer passes new WebSockets to the other.
    for ws in open_ws:
        ws.abort()
    del open_ws[:]
    stack.wait_until(lambda: [stack.node_connections(c) for c in controls], "the nodes to count none",
                     lambda got: got == [0, 0])
    nodes[1].p.send_signal(signal.SIGTERM)
    try:
        nodes[1].p.wait(15)
    except subprocess.TimeoutExpired:
        pass
    chk.ok(not nodes[1].running(), "node-2 stops on SIGTERM")
    joined = 0
    for i in range(4):
        ws, first = ws_join("127.0.0.1", st.port, "/ws/rooms/%s?user_id=after%d" % (rid, i))
        if ws is not None:
            open_ws.append(ws)
        joined += (first or {}).get("type") == "UserJoined"
    chk.eq(joined, 4, "with node-2 stopped, new WebSockets through %s join on node-1" % front)
    n1 = stack.wait_until(lambda: stack.node_connections(controls[0]), "node-1 to count 4", lambda n: n == 4)
    chk.eq(n1, 4, "node-1 holds them")
    chk.ok(all(p.running() for p in st.procs if p is not nodes[1]),
           "node-1, nats-server, chat-api and %s still running" % st.server)


def t_live(chk, front, tcp):
    kind = "tcp" if tcp else "unix"
    title = "%s (%s)" % (front, kind)
    # The nodes' sockets live in a folder the web server's workers
    # (www-data) can reach, made before the stack so that its config can
    # name them.
    sockdir = tempfile.mkdtemp(prefix="chatd-it-cluster-")
    os.chmod(sockdir, 0o755)
    run_dir = os.path.join(sockdir, "run")
    os.mkdir(run_dir)
    os.chmod(run_dir, 0o1777)
    if tcp:
        listens = ["127.0.0.1:%d" % stack.free_port() for _ in (1, 2)]
    else:
        listens = ["unix:" + os.path.join(run_dir, "chatd-%d.sock" % k) for k in (1, 2)]
    st = stack.Stack(front, fake_chatd=False, chatd_tcp=tcp, settings={"USER_MESSAGE_INTERVAL_SECS": "0"},
                     render_env={"CHATD_ADDRS": ",".join(listens)})
    open_ws = []
    before = len(chk.failures)
    try:
        with st:
            try:
                live_checks(st, chk, title, listens, run_dir, open_ws)
            finally:
                # Closed before the web server stops: Apache waits for
                # its open tunnels.
                for ws in open_ws:
                    ws.abort()
    except StackError as exc:
        chk.ok(False, "%s: stack start" % title, str(exc))
    finally:
        if len(chk.failures) > before:
            st.dump_logs(40)
        complaints = st.stop()
        chk.section("%s: shutdown" % title)
        chk.ok(not complaints, "every process stopped on SIGTERM", "; ".join(complaints))
        chk.group = ""
        reap_orphans()
        shutil.rmtree(sockdir, ignore_errors=True)


# ---------------------------------------------------------------- quick start


def t_quickstart_packages(chk, tmp):
    qs = os.path.join(stack.CONTRIB, "quickstart.sh")

    def packages(which, nodes=None):
        env = stack.clean_env({"QUICKSTART_NODES": nodes} if nodes else None)
        code, text = run(["/bin/bash", qs, "packages", which], env=env)
        return code, text.split()

    code, one = packages("run")
    chk.ok(code == 0 and "libnats-dev" in one and "nats-server" not in one,
           "one node: run builds with libnats-dev, runs no nats-server", repr(one))
    code, two = packages("run", "2")
    chk.ok(code == 0 and "nats-server" in two, "QUICKSTART_NODES=2: run installs nats-server", repr(two))
    code, test = packages("test")
    chk.ok(code == 0 and "nats-server" in test and "libnats-dev" in test, "test installs nats-server and libnats-dev")
    for bad in ("0", "x", "65", "-1"):
        code, text = packages("run", bad)
        chk.ok(code != 0 and "QUICKSTART_NODES" in " ".join(text), "QUICKSTART_NODES=%s refused" % bad, repr(text))


def proc_environ(pid):
    try:
        with open("/proc/%d/environ" % pid, "rb") as f:
            items = f.read().decode("utf-8", "replace").split("\0")
    except OSError:
        return {}
    return dict(i.split("=", 1) for i in items if "=" in i)


def nats_greets(url):
    """A NATS server answers on url (nats://HOST:PORT) with its INFO line."""
    m = re.match(r"^nats://([^:/]+):(\d+)$", url or "")
    if not m:
        return False
    try:
        with socket.create_connection((m.group(1), int(m.group(2))), timeout=5) as s:
            return s.recv(4096).startswith(b"INFO ")
    except OSError:
        return False


def t_quickstart(chk, tmp):
    front = "nginx"
    key = "qs-cluster-key"
    port = stack.free_port()
    state = os.path.join(tmp, "state")
    env_file = os.path.join(tmp, "chatd.env")
    ctl = os.path.join(state, "control.sock")
    with open(env_file, "w") as f:
        f.write("ADMIN_API_KEY=%s\nDATABASE_URL=sqlite:%s\nCONTROL_SOCKET=%s\nUSER_MESSAGE_INTERVAL_SECS=0\n"
                % (key, os.path.join(tmp, "chat.db"), ctl))
    env = stack.clean_env({
        "CHAT_ENV_FILE": env_file,
        "QUICKSTART_STATE_DIR": state,
        "QUICKSTART_BUILDDIR": stack.BUILDDIR,
        "QUICKSTART_FRONT": front,
        "QUICKSTART_NODES": "2",
        "BIND_ADDRESS": "127.0.0.1:%d" % port,
    })
    qs = Proc("quickstart-nodes", ["/bin/bash", os.path.join(stack.SRCDIR, "contrib", "quickstart.sh"), "serve"],
              env, tmp)
    open_ws = []
    started = []
    try:
        client = stack.Client("127.0.0.1", port, key)
        ready = stack.wait_until(lambda: qs.running() and "quick start is running" in qs.tail(400),
                                 "the quick start's banner", lambda x: x or not qs.running(), timeout=60)
        if not chk.ok(ready, "QUICKSTART_NODES=2 quickstart.sh serve starts", qs.tail()):
            return
        started = [(pid, stack._cmdline(pid)) for pid in stack._descendants(qs.pid)]
        cmds = [c for _, c in started]
        chk.eq(len([c for c in cmds if c.split(" ")[0].endswith("nats-server")]), 1, "it runs one nats-server")
        chatds = [c for c in cmds if c.split(" ")[0].endswith("/chatd")]
        chk.ok(len(chatds) == 2, "it runs two chatd", repr(cmds))
        envs = [proc_environ(pid) for pid, c in started if c.split(" ")[0].endswith("/chatd")]
        chk.eq(sorted(e.get("NODE_ID") for e in envs), ["node-1", "node-2"], "the nodes are node-1 and node-2")
        urls = set(e.get("CLUSTER_NATS_URL") for e in envs)
        url = urls.pop() if len(urls) == 1 else None
        chk.ok(url is not None and nats_greets(url), "both nodes have CLUSTER_NATS_URL of the running nats-server",
               repr(urls))
        controls = [ctl, os.path.join(state, "control-2.sock")]
        chk.ok(all(stack.node_connections(c) == 0 for c in controls),
               "node-1 answers on CONTROL_SOCKET, node-2 on state/control-2.sock")
        chk.ok(os.path.exists(os.path.join(state, "chatd-1.sock")) and os.path.exists(os.path.join(state, "chatd-2.sock")),
               "the nodes listen on state/chatd-1.sock and state/chatd-2.sock")
        r = client.post("/management/rooms", {"room_name": "qs", "admin_user_ids": []})
        if not chk.status(r, 201, "room created through the quick start"):
            return
        rid = r.json["room_id"]
        joined = 0
        for i in range(4):
            ws, first = ws_join("127.0.0.1", port, "/ws/rooms/%s?user_id=q%d" % (rid, i))
            if ws is not None:
                open_ws.append(ws)
            joined += (first or {}).get("type") == "UserJoined"
        chk.eq(joined, 4, "WebSockets through the quick start's %s get their UserJoined frame" % front)
        counts = stack.wait_until(lambda: [stack.node_connections(c) for c in controls], "the nodes to count 4",
                                  lambda got: None not in got and sum(got) == 4)
        chk.ok(None not in counts and sum(counts) == 4 and min(counts) >= 1, "both quick start nodes hold some",
               repr(counts))
    finally:
        for ws in open_ws:
            ws.abort()
        complaints = stack.stop_process_tree(qs, term_wait=30)
        chk.ok(not complaints, "SIGTERM stops the quick start and all it started", "; ".join(complaints))
        chk.eq(qs.p.returncode, 0, "the quick start exits 0 on SIGTERM")
        reap_orphans()
        left = [(pid, c) for pid, c in started if stack._alive(pid)]
        chk.eq(left, [], "none of its processes is left")
        chk.ok(not stack.port_in_use(port), "port %d free again" % port)
        if chk.failures:
            log("---- quick start output ----")
            log(qs.tail(60))


def main():
    stack.setup_process()
    missing = [p for p in (stack.CHAT_API, CHATD) if not os.access(p, os.X_OK)]
    if missing:
        log("not built: %s (make first)" % " ".join(missing))
        return 1
    chk = Checker("cluster deployment: balanced web server configs, chatd@.service, QUICKSTART_NODES")
    for tool in ("nats-server", "nginx", "apache2", "lighttpd"):
        chk.ok(stack.which(tool) is not None, "%s is installed" % tool)
    tmp = tempfile.mkdtemp(prefix="chatd-it-cluster-deploy-")
    code = None
    try:
        chk.run("render", t_render, chk, tmp)
        chk.run("systemd", t_systemd, chk, tmp)
        chk.run("quickstart packages", t_quickstart_packages, chk, tmp)
        for front, tcp in RUNS:
            if stack.which(stack.FRONTS[front][2]) is None or stack.which("nats-server") is None:
                continue
            signal.alarm(int(os.environ.get("TEST_TIMEOUT", "300")))
            chk.run("live", t_live, chk, front, tcp)
        if stack.which("nats-server") and stack.which("nginx"):
            signal.alarm(int(os.environ.get("TEST_TIMEOUT", "300")))
            qs_tmp = os.path.join(tmp, "qs")
            os.mkdir(qs_tmp)
            chk.run("quickstart", t_quickstart, chk, qs_tmp)
    except (KeyboardInterrupt, SystemExit, Watchdog) as exc:
        chk.ok(False, "interrupted", repr(exc))
        code = exc.code if isinstance(exc, SystemExit) else 1
    finally:
        reap_orphans()
        if os.environ.get("KEEP_TMP") != "1":
            shutil.rmtree(tmp, ignore_errors=True)
    result = chk.finish()
    return code if code else result


if __name__ == "__main__":
    sys.exit(main())
