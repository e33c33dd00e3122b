#!/usr/bin/python3
"""Integration test of contrib/ itself, without traffic:
- every web server template renders with contrib/render-config.sh, leaves no
  placeholder behind, and passes its server's own check (lighttpd -tt,
  apache2 -t, nginx -t); a missing value is refused, odd characters in a
  value survive;
- the connection limits it renders (nginx worker_connections, lighttpd
  server.max-fds, Apache MPM limits) follow MAX_CONNECTIONS and the
  open-file and thread limits (WEB_MAX_FDS, WEB_MAX_THREADS), clamped with a
  warning, and the servers accept them;
- contrib/env.example names every setting of `chat-api --config-table`,
  its commented defaults match the table, and chat-api starts with it
  without warnings;
- the systemd units pass `systemd-analyze verify` and `systemd-analyze
  security --offline=yes` rates every service "OK" or better (when
  available);
- chatd on a Unix socket (CHATD_ADDR=unix:PATH) renders into each server's
  spelling and passes its check; bad socket paths are refused;
- lighttpd's JSON error documents exist where the config points;
- contrib/quickstart.sh parses and prints its help; `run` installs what
  building and running need and `test` adds what the tests need; the .env
  it creates names the database and control socket the stack uses, which
  chatctl run from the checkout then finds.
Exit 0 on success, 1 on failure."""
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import stack  # noqa: E402

TEMPLATES = {
    "lighttpd/chatd-spawn.conf": "lighttpd",
    "lighttpd/chatd-socket.conf": "lighttpd",
    "lighttpd/chatd-scgi.conf": "lighttpd",
    "apache/chatd.conf": "apache2",
    "nginx/chatd.conf": "nginx",
}


def run(argv, env=None, timeout=30):
    r = subprocess.run(argv, env=env or stack.clean_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       timeout=timeout)
    return r.returncode, r.stdout.decode("utf-8", "replace")


def t_templates(chk, tmp):
    full = {
        "BIND_ADDRESS": "127.0.0.1:%d" % stack.free_port(),
        "API_SOCKET": os.path.join(tmp, "api.sock"),
        "API_ADDR": "127.0.0.1:%d" % stack.free_port(),
        "CHATD_ADDR": "127.0.0.1:3001",
        "STATE_DIR": tmp,
        "CHAT_API": stack.CHAT_API,
        "ENV_FILE": os.path.join(tmp, "chatd.env"),
    }
    for tpl, server in TEMPLATES.items():
        path = os.path.join(stack.CONTRIB, tpl)
        out = os.path.join(tmp, tpl.replace("/", "-"))
        code, text = run(["/bin/sh", stack.RENDER, "-o", out, path], stack.clean_env(full))
        if not chk.eq(code, 0, "%s renders (%s)" % (tpl, text.strip())):
            continue
        with open(out, encoding="utf-8") as f:
            body = [ln for ln in f.read().splitlines() if not ln.lstrip().startswith("#")]
        left = sorted(set(re.findall(r"@[A-Z_]+@", "\n".join(body))))
        chk.eq(left, [], "%s: no placeholder left" % tpl)
        with open(path, encoding="utf-8") as f:
            head = f.read()
        used = set(re.findall(r"@[A-Z_]+@", "\n".join(ln for ln in head.splitlines() if not ln.lstrip().startswith("#"))))
        documented = set(re.findall(r"@[A-Z_]+@", "\n".join(ln for ln in head.splitlines() if ln.lstrip().startswith("#"))))
        chk.ok(used <= documented, "%s documents every placeholder it uses" % tpl, repr(used - documented))
        exe = stack.which(server)
        if exe is None:
            print("note: %s not installed, %s not syntax-checked" % (server, tpl))
            continue
        if server == "lighttpd":
            code, text = run([exe, "-tt", "-f", out])
        elif server == "apache2":
            code, text = run([exe, "-t", "-f", out])
        else:
            code, text = run([exe, "-t", "-e", "stderr", "-p", tmp, "-c", out])
        chk.eq(code, 0, "%s accepted by %s -t (%s)" % (tpl, server, text.strip()[-300:]))
        chk.ok("warn" not in text.lower() or server == "nginx", "%s: no warnings" % tpl, text[-300:])

    # chatd on its Unix socket: each server's spelling, accepted by its check.
    sock = os.path.join(tmp, "chatd.sock")
    spelled = {"nginx": "proxy_pass http://unix:%s:;" % sock,
               "apache2": '"unix:%s|http://localhost/ws/"' % sock,
               "lighttpd": '"socket" => "%s"' % sock}
    for tpl, server in TEMPLATES.items():
        out = os.path.join(tmp, "unix-" + tpl.replace("/", "-"))
        code, text = run(["/bin/sh", stack.RENDER, "-o", out, os.path.join(stack.CONTRIB, tpl)],
                         stack.clean_env(dict(full, CHATD_ADDR="unix:" + sock)))
        if not chk.eq(code, 0, "%s renders with CHATD_ADDR=unix:PATH (%s)" % (tpl, text.strip())):
            continue
        with open(out, encoding="utf-8") as f:
            body = f.read()
        chk.ok(spelled[server] in body, "%s proxies /ws/ to the socket" % tpl, spelled[server])
        exe = stack.which(server)
        if exe is None:
            continue
        if server == "lighttpd":
            code, text = run([exe, "-tt", "-f", out])
        elif server == "apache2":
            code, text = run([exe, "-t", "-f", out])
        else:
            code, text = run([exe, "-t", "-e", "stderr", "-p", tmp, "-c", out])
        chk.eq(code, 0, "%s with a Unix socket accepted by %s -t (%s)" % (tpl, server, text.strip()[-300:]))
    for bad in ("unix:relative.sock", "unix:/tmp/a b.sock", "unix:/tmp/a:b.sock"):
        code, text = run(["/bin/sh", stack.RENDER, os.path.join(stack.CONTRIB, "nginx/chatd.conf")],
                         stack.clean_env(dict(full, CHATD_ADDR=bad)))
        chk.ok(code != 0 and "CHATD_ADDR" in text, "CHATD_ADDR=%s refused" % bad, text[-200:])

    # lighttpd's JSON error documents: by default the folder beside the
    # script, holding one document per status the config labels.
    code, text = run(["/bin/sh", stack.RENDER, os.path.join(stack.CONTRIB, "lighttpd/chatd-socket.conf")],
                     stack.clean_env(full))
    m = re.search(r'^server\.errorfile-prefix = "(.*)"$', text, re.M)
    labelled = re.findall(r'^  "chatd-error-(\d+)\.html" => "application/json; charset=utf-8",$', text, re.M)
    chk.ok(m is not None and len(labelled) >= 5, "lighttpd config sets the error prefix and labels the files",
           text[-500:])
    for status in labelled:
        path = (m.group(1) if m else "") + status + ".html"
        try:
            with open(path, encoding="utf-8") as f:
                doc = json.load(f)
            good = set(doc) == {"error"} and set(doc["error"]) == {"code", "message"}
        except (OSError, ValueError):
            good = False
        chk.ok(good, "lighttpd error document %s is the JSON error shape" % path)

    # A value the template needs but nobody set is refused, naming it.
    code, text = run(["/bin/sh", stack.RENDER, os.path.join(stack.CONTRIB, "lighttpd/chatd-spawn.conf")])
    chk.ok(code != 0 and "CHAT_API" in text and "STATE_DIR" in text, "missing values refused and named", text)
    # Characters that sed treats specially survive.
    odd = dict(full, STATE_DIR=os.path.join(tmp, "a&b|c\\d"))
    code, text = run(["/bin/sh", stack.RENDER, os.path.join(stack.CONTRIB, "nginx/chatd.conf")], stack.clean_env(odd))
    chk.ok(code == 0 and "pid %s/nginx.pid;" % odd["STATE_DIR"] in text, "& | and \\ in a value kept verbatim",
           text[:200])
    nl = dict(full, STATE_DIR=tmp + "\nevil")
    code, text = run(["/bin/sh", stack.RENDER, os.path.join(stack.CONTRIB, "nginx/chatd.conf")], stack.clean_env(nl))
    chk.ok(code != 0, "a value with a newline refused")


def render_sizing(tpl, tmp, max_conns, fds, threads=None):
    """Renders tpl with the given limits; returns (exit code, stderr+stdout,
    {directive: number} of the rendered config)."""
    env = {"BIND_ADDRESS": "127.0.0.1:3000", "API_SOCKET": os.path.join(tmp, "api.sock"),
           "API_ADDR": "127.0.0.1:3002", "STATE_DIR": tmp, "CHAT_API": stack.CHAT_API,
           "ENV_FILE": os.path.join(tmp, "chatd.env"), "MAX_CONNECTIONS": str(max_conns), "WEB_MAX_FDS": str(fds)}
    if threads is not None:
        env["WEB_MAX_THREADS"] = str(threads)
    out = os.path.join(tmp, "sized-" + tpl.replace("/", "-"))
    code, text = run(["/bin/sh", stack.RENDER, "-o", out, os.path.join(stack.CONTRIB, tpl)], stack.clean_env(env))
    nums = {}
    if code == 0:
        with open(out, encoding="utf-8") as f:
            for line in f:
                m = re.match(r"^\s*([A-Za-z_.-]+)\s+(?:=\s*)?(\d+);?$", line) or \
                    re.match(r"^\s*limit_conn\s+chatd_ws\s+(\d+);$", line)
                if m and len(m.groups()) == 2:
                    nums[m.group(1)] = int(m.group(2))
                elif m:
                    nums["limit_conn"] = int(m.group(1))
    return code, text, nums, out


def t_sizing(chk, tmp):
    """The connection limits follow MAX_CONNECTIONS and the open-file and
    thread limits as docs/deployment.md ("Sizing the web server") says."""
    spare, base = 256, 64
    # nginx: two connections per WebSocket or request, every worker sized for all.
    code, text, n, _ = render_sizing("nginx/chatd.conf", tmp, 2000, 20000)
    chk.eq((code, n.get("worker_connections"), n.get("worker_rlimit_nofile"), n.get("limit_conn")),
           (0, 2 * (2000 + spare) + 16, 2 * (2000 + spare) + 16 + base, 2000), "nginx sized for 2000")
    chk.ok("warning" not in text, "nginx: no warning when the limit allows MAX_CONNECTIONS", text)
    with open(os.path.join(tmp, "sized-nginx-chatd.conf"), encoding="utf-8") as f:
        chk.ok(re.search(r"^\s*limit_conn_zone \$server_name zone=chatd_ws:", f.read(), re.M),
               "nginx counts the WebSockets under one key")
    code, text, n, out = render_sizing("nginx/chatd.conf", tmp, 100000, 20000)
    ws = (20000 - base - 16) // 2 - spare
    chk.eq((code, n.get("worker_connections"), n.get("worker_rlimit_nofile"), n.get("limit_conn")),
           (0, 20000 - base, 20000, ws), "nginx clamped to 20000 open files")
    chk.ok("warning: MAX_CONNECTIONS=100000 cannot be honoured by nginx" in text and
           "sized for %d WebSockets" % ws in text, "nginx: the clamp is announced with the WebSocket count", text)
    code, text, n, out = render_sizing("nginx/chatd.conf", tmp, 100000, 262144)
    with open(out, encoding="utf-8") as f:
        zone = re.findall(r"^\s*limit_conn_zone (\S+) zone=chatd_ws", f.read(), re.M)
    chk.eq((n.get("worker_connections"), n.get("limit_conn"), zone), (2 * (100000 + spare) + 16, 65535, ['""']),
           "nginx sized for 100000 with 262144 open files; limit_conn (at most 65535) counts nothing")
    if stack.which("nginx"):
        code, text = run([stack.which("nginx"), "-t", "-e", "stderr", "-p", tmp, "-c", out])
        chk.eq(code, 0, "nginx -t accepts the large config (%s)" % text.strip()[-200:])

    # lighttpd: a connection holds two descriptors; accepting stops above 90%.
    for conns_in, fds_in in ((2000, 20000), (100000, 20000), (100000, 262144), (1, 20000)):
        code, text, n, out = render_sizing("lighttpd/chatd-socket.conf", tmp, conns_in, fds_in)
        mf, mc = n.get("server.max-fds"), n.get("server.max-connections")
        what = "lighttpd, MAX_CONNECTIONS=%d, %d open files" % (conns_in, fds_in)
        if not chk.ok(code == 0 and mf and mc, what + ": rendered", text):
            continue
        chk.ok(mf <= min(fds_in, 65535), what + ": max-fds within the limits", str(mf))
        chk.ok(2 * mc + base <= mf * 9 // 10 and mc <= mf // 2, what + ": max-connections fit below 90% of max-fds",
               "%d %d" % (mc, mf))
        if mc >= conns_in + spare:
            chk.eq(mc, conns_in + spare, what + ": MAX_CONNECTIONS + 256 connections")
            chk.ok((mf - 1) * 9 // 10 < 2 * mc + base, what + ": max-fds no larger than needed", str(mf))
            chk.ok("warning" not in text, what + ": no warning", text)
        else:
            chk.ok(mf == min(fds_in, 65535), what + ": clamped to the limit", str(mf))
            chk.ok("sized for %d WebSockets" % (mc - spare) in text, what + ": the clamp is announced", text)
        if stack.which("lighttpd"):
            code, text = run([stack.which("lighttpd"), "-tt", "-f", out])
            chk.ok(code == 0 and "warn" not in text.lower(), what + ": lighttpd -tt accepts it", text[-300:])
    code, text, n, _ = render_sizing("lighttpd/chatd-socket.conf", tmp, 2000, 20000)
    chk.eq((n.get("server.max-fds"), n.get("server.max-connections")), (5085, 2256), "lighttpd sized for 2000")

    # Apache: a thread per WebSocket, at most 480 per child.
    for conns_in, fds_in, threads in ((2000, 20000, 96362), (40, 20000, 96362), (100000, 20000, 20000),
                                      (5000, 600, 96362)):
        code, text, n, out = render_sizing("apache/chatd.conf", tmp, conns_in, fds_in, threads)
        sl, tl, tpc, mrw = (n.get(k) for k in ("ServerLimit", "ThreadLimit", "ThreadsPerChild", "MaxRequestWorkers"))
        what = "Apache, MAX_CONNECTIONS=%d, %d open files, %d threads" % (conns_in, fds_in, threads)
        if not chk.ok(code == 0 and sl and tpc and mrw, what + ": rendered", text):
            continue
        chk.ok(tl == tpc and mrw == sl * tpc, what + ": MaxRequestWorkers = ServerLimit x ThreadsPerChild",
               "%s %s %s %s" % (sl, tl, tpc, mrw))
        chk.ok(tpc <= 480 and 2 * tpc + base <= fds_in, what + ": a child's WebSockets fit its open files", str(tpc))
        chk.ok(sl * (tpc + 2) <= threads - 256, what + ": threads within WEB_MAX_THREADS", str(sl * (tpc + 2)))
        if mrw >= conns_in + spare:
            chk.ok(mrw - tpc < conns_in + spare, what + ": no more children than needed", str(mrw))
            chk.ok("warning" not in text, what + ": no warning", text)
        else:
            chk.ok("sized for %d WebSockets" % (mrw - spare) in text, what + ": the clamp is announced", text)
        if stack.which("apache2"):
            code, text = run([stack.which("apache2"), "-t", "-f", out])
            chk.ok(code == 0 and "warn" not in text.lower(), what + ": apache2 -t accepts it", text[-300:])
    code, text, n, _ = render_sizing("apache/chatd.conf", tmp, 2000, 20000, 96362)
    chk.eq((n.get("ServerLimit"), n.get("ThreadsPerChild"), n.get("MaxRequestWorkers")), (5, 480, 2400),
           "Apache sized for 2000")

    # Bad values are refused, naming the variable; leading zeros are decimal.
    for key, value in (("MAX_CONNECTIONS", "abc"), ("MAX_CONNECTIONS", "0"), ("MAX_CONNECTIONS", "10000001"),
                       ("WEB_MAX_FDS", "12"), ("WEB_MAX_FDS", "-1")):
        args = {"MAX_CONNECTIONS": 2000, "WEB_MAX_FDS": 20000}
        args[key] = value
        code, text, _, _ = render_sizing("nginx/chatd.conf", tmp, args["MAX_CONNECTIONS"], args["WEB_MAX_FDS"])
        chk.ok(code == 2 and ("%s=%s" % (key, value)) in text, "%s=%s refused" % (key, value), "%d %r" % (code, text))
    code, text, _, _ = render_sizing("nginx/chatd.conf", tmp, 2000, 300)
    chk.ok(code == 2 and "no room for WebSockets" in text, "an open-file limit too small for anything is refused",
           text)
    code, text, n, _ = render_sizing("nginx/chatd.conf", tmp, "0100", 20000)
    chk.eq((code, n.get("limit_conn")), (0, 100), "MAX_CONNECTIONS=0100 is 100")


def config_table():
    code, text = run([stack.CHAT_API, "--config-table"])
    rows = {}
    for line in text.splitlines():
        m = re.match(r"\|\s*`([A-Z_]+)`[^|]*\|\s*([^|]*?)\s*\|", line)
        if m:
            rows[m.group(1)] = m.group(2).strip("`")
    return code, rows


def t_env_example(chk, tmp):
    path = os.path.join(stack.CONTRIB, "env.example")
    with open(path, encoding="utf-8") as f:
        text = f.read()
    code, table = config_table()
    chk.ok(code == 0 and len(table) >= 20, "chat-api --config-table lists the settings", repr(table)[:200])
    shown = {}
    for line in text.splitlines():
        m = re.match(r"^#?\s*([A-Z][A-Z0-9_]+)=(.*)$", line)
        if m:
            shown[m.group(1)] = m.group(2).split(" #")[0].strip()
    for key, default in table.items():
        if not chk.ok(key in shown, "env.example mentions %s" % key):
            continue
        if default in ("(unset)", "(empty)") or key == "ADMIN_API_KEY":
            continue
        chk.eq(shown[key], default, "env.example shows %s's default" % key)
    chk.ok(re.search(r"^ADMIN_API_KEY=your_secret_api_key$", text, re.M), "ADMIN_API_KEY=your_secret_api_key is set")
    active = [ln for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    chk.eq(active, ["ADMIN_API_KEY=your_secret_api_key"], "only ADMIN_API_KEY is uncommented")

    # chat-api starts with it, without warnings (no unknown keys).
    sock = os.path.join(tmp, "env-api.sock")
    env = stack.clean_env({"CHAT_ENV_FILE": path, "DATABASE_URL": "sqlite:%s" % os.path.join(tmp, "env.db"),
                           "CONTROL_SOCKET": os.path.join(tmp, "control.sock")})
    p = stack.Proc("chat-api-env-example", [stack.CHAT_API, "--socket", sock], env, tmp)
    try:
        deadline = time.monotonic() + 10
        up = False
        while time.monotonic() < deadline and p.running():
            if os.path.exists(sock):
                s = socket.socket(socket.AF_UNIX)
                try:
                    s.connect(sock)
                    up = True
                    break
                except OSError:
                    pass
                finally:
                    s.close()
            time.sleep(0.05)
        chk.ok(up, "chat-api starts with CHAT_ENV_FILE=contrib/env.example", p.tail())
    finally:
        complaints = stack.stop_process_tree(p)
    chk.ok(not complaints, "chat-api stops on SIGTERM", "; ".join(complaints))
    log = p.tail(100)
    chk.ok("warning" not in log and "unknown" not in log, "no warnings while loading env.example", log)


def t_systemd(chk, tmp):
    exe = stack.which("systemd-analyze")
    if exe is None:
        print("note: systemd-analyze not installed, units not verified")
        return
    d = os.path.join(tmp, "units")
    os.mkdir(d)
    # The templates' @bindir@ and @sysconfdir@ as make install fills them in,
    # with a bindir of links to the built programs.
    bindir = os.path.join(tmp, "bin")
    os.mkdir(bindir)
    src = os.path.dirname(os.path.dirname(stack.CHAT_API))
    for prog, sub in (("chat-api", "api"), ("chatd", "chatd"), ("chat-sync", "sync"), ("chatctl", "ctl")):
        os.symlink(os.path.join(src, sub, prog), os.path.join(bindir, prog))
    names = []
    for n in sorted(os.listdir(os.path.join(stack.CONTRIB, "systemd"))):
        with open(os.path.join(stack.CONTRIB, "systemd", n), encoding="utf-8") as f:
            unit = f.read()
        if n.endswith(".in"):
            n = n[:-3]
            unit = unit.replace("@bindir@", bindir).replace("@sysconfdir@", os.path.join(tmp, "etc"))
        chk.eq(re.findall(r"@[a-z_]+@", unit), [], "%s: no placeholder left" % n)
        names.append(n)
        with open(os.path.join(d, n), "w", encoding="utf-8") as f:
            f.write(unit)
    for n, watchdog in (("chatd.service", 30), ("chat-sync.service", 120), ("chat-api.service", 30)):
        with open(os.path.join(d, n), encoding="utf-8") as f:
            unit = f.read()
        chk.ok("\nType=notify\n" in unit and "\nWatchdogSec=%ds\n" % watchdog in unit,
               "%s is Type=notify with WatchdogSec=%ds" % (n, watchdog))
    code, text = run([exe, "verify"] + [os.path.join(d, n) for n in names], timeout=60)
    chk.ok(code == 0 and text.strip() == "", "systemd-analyze verify %s" % " ".join(names), text)
    # Every service is sandboxed to an exposure below 5.0 ("OK", "SAFE" or
    # "PERFECT"), and chatd keeps what it needs: netlink for libwebsockets'
    # getifaddrs(3), chown for CHATD_SOCKET_GROUP, its open-file limit.
    for n in names:
        if not n.endswith(".service"):
            continue
        code, text = run([exe, "security", "--offline=yes", "--no-pager", os.path.join(d, n)], timeout=60)
        # A template (chatd@.service) is rated as an instance of itself.
        rated = re.escape(n).replace("@", "@[^.]*")
        m = re.search(r"Overall exposure level for %s: ([0-9.]+) (\w+)" % rated, text)
        if not chk.ok(m is not None, "systemd-analyze security --offline=yes rates %s" % n, text[-500:]):
            continue
        chk.ok(float(m.group(1)) < 5.0 and m.group(2) in ("OK", "SAFE", "PERFECT"),
               "%s: exposure %s %s is OK or better" % (n, m.group(1), m.group(2)), text[-1500:])
    with open(os.path.join(d, "chatd.service"), encoding="utf-8") as f:
        unit = f.read()
    families = re.findall(r"^RestrictAddressFamilies=(.*)$", unit, re.M)
    chk.ok(families and "AF_NETLINK" in families[-1].split(), "chatd.service allows AF_NETLINK", repr(families))
    allowed = " ".join(re.findall(r"^SystemCallFilter=([^~].*)$", unit, re.M)[1:]).split()
    for call in ("@chown", "setrlimit", "setpriority"):
        chk.ok(call in allowed, "chatd.service allows %s after ~@privileged @resources" % call, repr(allowed))


def t_quickstart(chk, tmp):
    qs = os.path.join(stack.CONTRIB, "quickstart.sh")
    code, text = run(["/bin/bash", "-n", qs])
    chk.eq(code, 0, "quickstart.sh parses (%s)" % text.strip())
    code, text = run(["/bin/bash", qs, "help"])
    chk.ok(code == 0 and "Usage:" in text and "test" in text, "quickstart.sh help", text[:200])
    code, text = run(["/bin/bash", qs, "bogus"])
    chk.eq(code, 2, "quickstart.sh refuses an unknown command")
    def packages(which, front=None):
        env = stack.clean_env({"QUICKSTART_FRONT": front} if front else None)
        code, text = run(["/bin/bash", qs, "packages", which], env=env)
        return code, text.split()

    build = ["build-essential", "autoconf", "automake", "pkg-config", "libfcgi-dev", "libwebsockets-dev",
             "libwebsockets-evlib-uv", "libuv1-dev", "libsqlite3-dev", "libcurl4-openssl-dev", "libcjson-dev",
             "check", "libssl-dev", "libpq-dev"]
    only_tests = ["apache2", "lighttpd", "valgrind", "clang-format", "cppcheck", "mandoc", "spawn-fcgi", "socat",
                  "clang", "libclang-rt-dev", "postgresql", "debhelper", "dpkg-dev", "fakeroot", "lintian"]
    code, run_set = packages("run")
    chk.eq(code, 0, "quickstart.sh packages")
    chk.eq([p for p in build + ["nginx", "curl", "sqlite3"] if p not in run_set], [],
           "run installs what building and running behind nginx need")
    chk.eq([p for p in only_tests if p in run_set], [], "run installs nothing only the tests need")
    code, lt_set = packages("run", "lighttpd")
    chk.ok("lighttpd" in lt_set and "apache2" not in lt_set, "run adds lighttpd when it is the front", repr(lt_set))
    code, test_set = packages("test")
    chk.eq([p for p in build + only_tests + ["nginx", "curl", "sqlite3", "python3", "systemd", "util-linux"]
            if p not in test_set], [], "test installs what the tests need too")
    chk.eq(len(test_set), len(set(test_set)), "each package once")
    code, text = run(["/bin/bash", qs, "packages", "bogus"])
    chk.ok(code != 0, "an unknown package set is refused", text)

    # The .env it creates names the database and control socket the stack
    # uses, so chatctl run from the checkout finds them.
    top = os.path.join(tmp, "checkout")
    os.makedirs(os.path.join(top, "contrib"))
    for n in ("quickstart.sh", "env.example"):
        shutil.copy(os.path.join(stack.CONTRIB, n), os.path.join(top, "contrib", n))
    code, text = run(["/bin/bash", os.path.join(top, "contrib", "quickstart.sh"), "env"])
    state = os.path.join(top, "state")
    chk.ok(code == 0 and ("DATABASE_URL=sqlite:%s/chat.db" % state) in text
           and ("CONTROL_SOCKET=%s/control.sock" % state) in text, "quickstart.sh env", text)
    env_path = os.path.join(top, ".env")
    with open(env_path, encoding="utf-8") as f:
        created = f.read()
    chk.ok(re.search(r"^DATABASE_URL=sqlite:%s/chat\.db$" % re.escape(state), created, re.M)
           and re.search(r"^CONTROL_SOCKET=%s/control\.sock$" % re.escape(state), created, re.M)
           and re.search(r"^ADMIN_API_KEY=your_secret_api_key$", created, re.M),
           "the created .env sets ADMIN_API_KEY, DATABASE_URL and CONTROL_SOCKET", created[-400:])
    chk.eq(os.stat(env_path).st_mode & 0o777, 0o600, "the created .env is owner-only")
    chatctl = os.path.join(os.path.dirname(os.path.dirname(stack.CHAT_API)), "ctl", "chatctl")
    p = subprocess.run([chatctl, "status"], cwd=top, env=stack.clean_env(), stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=30)
    chk.ok(p.returncode == 3 and os.path.join(state, "control.sock").encode() in p.stderr,
           "chatctl run from the checkout asks the quick start's control socket", repr(p.stderr))
    p = subprocess.run([chatctl, "ban", "r", "u"], cwd=top, env=stack.clean_env(), stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=30)
    chk.ok(p.returncode == 1 and os.path.join(state, "chat.db").encode() in p.stderr
           and not os.path.exists(os.path.join(state, "chat.db")),
           "chatctl looks for the quick start's database and creates none", repr(p.stderr))
    # A second run keeps the operator's .env as it is.
    with open(env_path, "a", encoding="utf-8") as f:
        f.write("LOG_LEVEL=debug\n")
    code, text = run(["/bin/bash", os.path.join(top, "contrib", "quickstart.sh"), "env"])
    with open(env_path, encoding="utf-8") as f:
        chk.ok(code == 0 and f.read() == created + "LOG_LEVEL=debug\n", "an existing .env is left alone")


def t_bad_settings(chk, tmp):
    """Every program stops at start on a malformed setting, naming key and value."""
    bindir = os.path.dirname(os.path.dirname(stack.CHAT_API))
    progs = [stack.CHAT_API, os.path.join(bindir, "chatd", "chatd"),
             os.path.join(bindir, "sync", "chat-sync")]
    empty = os.path.join(tmp, "empty.env")
    open(empty, "w").close()
    for prog, key, value in [(progs[0], "MAX_CONNECTIONS", "abc"), (progs[1], "LOG_LEVEL", "bogus"),
                             (progs[2], "SYNC_INTERVAL_SECONDS", "-5")]:
        if not os.access(prog, os.X_OK):
            chk.ok(False, "%s is built" % prog)
            continue
        env = stack.clean_env({"CHAT_ENV_FILE": empty, key: value,
                               "DATABASE_URL": "sqlite:" + os.path.join(tmp, "bad.db")})
        argv = [prog, "--once"] if prog.endswith("chat-sync") else [prog]
        code, text = run(argv, env=env, timeout=10)
        chk.ok(code == 1 and ("%s=%s" % (key, value)) in text,
               "%s refuses %s=%s at start" % (os.path.basename(prog), key, value), "%d %r" % (code, text[-300:]))


def main():
    stack.setup_process()
    if not os.access(stack.CHAT_API, os.X_OK):
        print("chat-api not found at %s: build first" % stack.CHAT_API)
        return 1
    chk = stack.Checker("contrib: templates, env.example, systemd units, quickstart.sh")
    tmp = tempfile.mkdtemp(prefix="chatd-it-contrib-")
    try:
        chk.run("templates", t_templates, chk, tmp)
        chk.run("sizing", t_sizing, chk, tmp)
        chk.run("env.example", t_env_example, chk, tmp)
        chk.run("systemd", t_systemd, chk, tmp)
        chk.run("quickstart", t_quickstart, chk, tmp)
        chk.run("bad settings", t_bad_settings, chk, tmp)
    except (KeyboardInterrupt, SystemExit, stack.Watchdog) as exc:
        chk.ok(False, "interrupted", repr(exc))
    finally:
        stack.reap_orphans()
        if os.environ.get("KEEP_TMP") != "1":
            shutil.rmtree(tmp, ignore_errors=True)
    return chk.finish()


if __name__ == "__main__":
    sys.exit(main())
