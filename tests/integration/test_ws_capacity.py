#!/usr/bin/python3
"""Integration test: a web server rendered by contrib/render-config.sh holds
MAX_CONNECTIONS WebSockets from one address, and the management API still
answers while they are held.

For nginx and lighttpd (chatd-socket.conf): MAX_CONNECTIONS=2000 (each
proxied WebSocket takes two of the web server's connections, so this is
well past a fixed worker_connections 1024), chatd with
MAX_CONNECTIONS_PER_ADDRESS=0; 2000 WebSockets from 127.0.0.1 through the
web server, each must get its UserJoined; while they are held,
GET /management/rooms answers 200 (also 20 at once) and counts them all; one
WebSocket more is refused with 503 and the management API still answers.

nginx rendered for a small open-file limit (WEB_MAX_FDS): render-config.sh
warns and names the WebSockets it sized for; that many are held, the next
ones are refused with 503 by nginx, and the management API still answers.

The script raises its own soft open-file limit to the hard limit. Fronts:
nginx lighttpd-socket (or the ones named on the command line).
Exit 0 on success, 1 on failure, 77 (skip) if no web server is installed."""
import os
import re
import resource
import signal
import sys
import threading
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import chatd_stack as cs  # noqa: E402
import stack  # noqa: E402

# MAX_CONNECTIONS per front. Apache spends a thread per WebSocket: 600 is
# past its default of 400 workers and stays cheap.
HELD = {"nginx": 2000, "lighttpd-socket": 2000, "apache": 600}
ROOMS = 4
# Opening and checking every WebSocket must take less than this.
OPEN_SECONDS = 60
# WEB_MAX_FDS for the clamped nginx: room for a few hundred WebSockets.
SMALL_FDS = 1400
EXTRA = 300


def raise_nofile(need):
    """Soft RLIMIT_NOFILE up to the hard limit; False when that is below need."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < need:
        return False
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return True


def open_held(st, chk, rooms, count, label):
    """Opens count WebSockets through the web server, spread over rooms,
    each with its UserJoined read. Returns the list (possibly short)."""
    held = []
    failures = []
    start = time.monotonic()
    for i in range(count):
        if time.monotonic() - start > OPEN_SECONDS:
            failures.append("gave up after %d s at %d" % (OPEN_SECONDS, i))
            break
        user = "u%d" % i
        try:
            ws = st.ws(rooms[i % len(rooms)], user)
        except Exception as exc:  # noqa: BLE001 - counted and reported
            failures.append("#%d: %s: %s" % (i, type(exc).__name__, exc))
            if len(failures) >= 5:
                break
            continue
        got = (ws.welcome.get("payload") or {}).get("user_id")
        if got != user:
            failures.append("#%d: welcome for %r" % (i, got))
        held.append(ws)
    elapsed = time.monotonic() - start
    chk.ok(not failures and len(held) == count, "%s: %d WebSockets opened, each with its UserJoined" % (label, count),
           "%d opened; %s" % (len(held), "; ".join(failures[:5])))
    chk.ok(elapsed < OPEN_SECONDS, "%s: opened within %d s" % (label, OPEN_SECONDS), "%.1f s" % elapsed)
    stack.log("%s: %d WebSockets open in %.1f s" % (label, len(held), elapsed))
    return held


def check_management(st, chk, rooms, expect_users, label):
    """GET /management/rooms answers 200 (once, then 20 at once) and
    counts expect_users in our rooms."""
    r = st.client.get("/management/rooms", timeout=10)
    if not chk.status(r, 200, "%s: GET /management/rooms answers" % label):
        return
    ours = [x for x in r.json.get("rooms", []) if x.get("room_id") in rooms]
    total = sum(x.get("current_users") or 0 for x in ours)
    chk.eq(total, expect_users, "%s: current_users of the rooms add up to the held WebSockets" % label)

    results = []

    def one():
        try:
            results.append(st.client.get("/management/health", timeout=10).status)
        except OSError as exc:
            results.append(str(exc))

    threads = [threading.Thread(target=one) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    chk.eq(results, [200] * 20, "%s: 20 management requests at once all answer 200" % label)


def refused(st, rooms, n, first):
    """Tries n more WebSockets, all kept open until the end; returns the
    status of each handshake answer."""
    socks, statuses = [], []
    try:
        for i in range(n):
            s, status, _, _ = stack.ws_connect(st.host, st.port, st.ws_path(rooms[i % len(rooms)], "x%d" % (first + i)))
            socks.append(s)
            statuses.append(status)
    finally:
        for s in socks:
            s.close()
    return statuses


def make_rooms(st):
    return [st.create_room("capacity %d" % i) for i in range(ROOMS)]


def t_held(st, chk):
    """MAX_CONNECTIONS WebSockets held from one address; management answers."""
    n = int(st.settings["MAX_CONNECTIONS"])
    rooms = make_rooms(st)
    held = open_held(st, chk, rooms, n, st.front)
    try:
        check_management(st, chk, rooms, len(held), "%s, %d held" % (st.front, len(held)))
        statuses = refused(st, rooms, 1, n)
        chk.eq(statuses, [503], "%s: WebSocket %d refused with 503" % (st.front, n + 1))
        r = st.client.get("/management/rooms", timeout=10)
        chk.status(r, 200, "%s: management answers after the refusal" % st.front)
        chk.ok(st.api_running(), "every process still running")
    finally:
        for ws in held:
            ws.abort()


def t_clamped(st, chk):
    """nginx sized for fewer WebSockets than MAX_CONNECTIONS: it holds the
    number render-config.sh printed, refuses the rest itself, and the
    management API keeps its room."""
    n = int(st.settings["MAX_CONNECTIONS"])
    m = re.search(r"warning: MAX_CONNECTIONS=%d cannot be honoured by nginx.*sized for (\d+) WebSockets" % n,
                  st.render_output)
    if not chk.ok(m is not None, "render-config.sh warns that MAX_CONNECTIONS cannot be honoured",
                  st.render_output):
        return
    limit = int(m.group(1))
    chk.ok(0 < limit < n, "sized for fewer WebSockets than MAX_CONNECTIONS (%d)" % limit)
    with open(st.conf, encoding="utf-8") as f:
        conf = f.read()
    chk.ok(re.search(r"^worker_rlimit_nofile %d;$" % SMALL_FDS, conf, re.M) is not None,
           "worker_rlimit_nofile is the open-file limit")
    rooms = make_rooms(st)
    held = open_held(st, chk, rooms, limit, "nginx clamped")
    try:
        statuses = refused(st, rooms, EXTRA, limit)
        chk.ok(statuses == [503] * EXTRA, "%d WebSockets beyond %d refused with 503" % (EXTRA, limit),
               "statuses %r" % sorted((x, statuses.count(x)) for x in set(statuses)))
        check_management(st, chk, rooms, len(held), "nginx clamped, %d held" % len(held))
        chk.ok(st.api_running(), "every process still running")
    finally:
        for ws in held:
            ws.abort()


def main():
    stack.setup_process()
    fronts = [f for f in cs.fronts_from_argv(tuple(HELD)) if stack.which(stack.FRONTS[f][2])]
    if not fronts:
        stack.log("SKIP: no web server installed")
        return stack.SKIP
    most = max(HELD.values()) + EXTRA + 200
    if not raise_nofile(most):
        stack.log("SKIP: the hard open-file limit is below %d" % most)
        return stack.SKIP
    chk = stack.Checker("the web server holds MAX_CONNECTIONS WebSockets; the management API answers")
    code = None
    for front in fronts:
        settings = {"MAX_CONNECTIONS": str(HELD.get(front, 2000)), "MAX_CONNECTIONS_PER_ADDRESS": "0",
                    "LOG_LEVEL": "warn"}
        signal.alarm(int(os.environ.get("TEST_TIMEOUT", "300")))
        code = cs.run_suite(front, chk, [("held", t_held)], settings)
        if code:
            break
        if front == "nginx":
            code = cs.run_suite(front, chk, [("clamped", t_clamped)], settings,
                                render_env={"WEB_MAX_FDS": str(SMALL_FDS)})
            if code:
                break
    result = chk.finish()
    return code if code else result


if __name__ == "__main__":
    sys.exit(main())
