#!/usr/bin/python3
"""
Metrics: the real stack (lighttpd, chat-api, chatd) scraped the way a
stock Prometheus does (GET /management/metrics with Authorization: Bearer),
every exposition validated by `promtool check metrics` (Debian's
prometheus package; a single chatd's series carry no node label), and
the values checked to move with WebSocket and REST traffic (the scrape
itself through every web server); then chat-sync --once writing
METRICS_TEXTFILE for node_exporter, validated and checked the same way.

Python 3 standard library only; run with /usr/bin/python3.
"""

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.dont_write_bytecode = True

import chatd_stack  # noqa: E402
import stack  # noqa: E402
import sync_harness as sh  # noqa: E402
from stack import Checker, log  # noqa: E402
from wsclient import HandshakeError  # noqa: E402

TMP = tempfile.mkdtemp(prefix="chatd-metrics-")
TEXTFILE = os.path.join(TMP, "chat-sync.prom")
RCV = None


def decide(n, entry):
    # chat history is refused (counted as failures); the rest is taken
    return 500 if entry["path"] == "/chat-history" else 200


def settings(rcv):
    return {
        "ROOM_EVENT_CALLBACK_URL": rcv.url("/room-events"),
        "CHAT_HISTORY_CALLBACK_URL": rcv.url("/chat-history"),
        "CHAT_HISTORY_BATCH_SIZE": "1",
        "CALLBACK_MAX_RETRIES": "1",
        "CALLBACK_RETRY_DELAY_SECONDS": "0",
        "CALLBACK_TIMEOUT_SECONDS": "5",
        "USER_MESSAGE_INTERVAL_SECS": "30",
        "METRICS_TEXTFILE": TEXTFILE,
    }


SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse(text):
    """{(name, ((label, value), ...)): float} of an exposition."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = SAMPLE.match(line)
        if not m:
            raise AssertionError("not a sample line: %r" % line)
        labels = tuple(sorted(LABEL.findall(m.group(2) or "")))
        out[(m.group(1), labels)] = float(m.group(3))
    return out


def val(samples, name, **labels):
    return samples.get((name, tuple(sorted(labels.items()))))


def promtool(chk, text, what):
    """`promtool check metrics` must print nothing and exit 0."""
    r = subprocess.run(["promtool", "check", "metrics"], input=text.encode("utf-8"),
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
    out = r.stdout.decode("utf-8", "replace")
    chk.ok(r.returncode == 0 and out == "", "promtool check metrics: %s" % what,
           "exit %d: %s" % (r.returncode, out[:2000]))


def scrape(st, auth=None):
    auth = auth if auth is not None else "Bearer " + st.admin_key
    return st.client.get("/management/metrics", key=None, headers={"Authorization": auth})


def t_scrape(st, chk):
    r = scrape(st)
    chk.status(r, 200, "scrape with the bearer credential")
    chk.ok((r.header("Content-Type") or "").startswith("text/plain; version=0.0.4"),
           "text exposition content type", r.header("Content-Type"))
    text = r.body.decode("utf-8")
    promtool(chk, text, "chat-api with chatd up")
    s = parse(text)
    chk.eq(val(s, "chatd_up"), 1.0, "chatd_up 1")
    for name in ("chatd_connections", "chatd_rooms", "chatd_wal_bytes", "chatd_writer_backlog",
                 "chatd_slow_consumer_closes_total", "chatd_dropped_frames_total"):
        chk.ok(val(s, name) is not None, "%s present" % name)
    # A single node (no CLUSTER_NATS_URL) has no bus and no other nodes:
    # none of those series, only the gap counters every node keeps.
    cluster = sorted({k[0] for k in s if k[0].startswith("chatd_cluster_")})
    chk.eq(cluster, ["chatd_cluster_gap_messages_total", "chatd_cluster_gap_reads_total"],
           "a single node exports the gap counters and no bus or node series")
    chk.eq(val(s, "chatd_cluster_gap_messages_total", how="skipped"), 0.0, "no message skipped")
    # chat-api asks for the cluster's metrics; a single node answers with its own, unlabelled.
    chk.eq(sorted({k[0] for k in s if "node" in dict(k[1])}), [], "no node label on a single node")
    r = st.ctl("metrics", {"cluster": True})
    chk.eq(sorted(r.get("result", {})), ["text"], "a single node: metrics with cluster is the text alone")
    chk.ok('node="' not in r["result"]["text"], "a single node: its text has no node label")
    chk.status(scrape(st, "Bearer wrong"), 401, "a wrong bearer credential is refused")
    chk.status(st.client.get("/management/metrics", key=None), 401, "no credential is refused")
    chk.status(st.client.get("/management/metrics"), 200, "X-Api-Key works too")


def t_values_move(st, chk):
    before = parse(scrape(st).body.decode("utf-8"))
    room = st.create_room("metrics room", ["admin"])
    chk.status(st.client.get("/management/rooms", key="wrong"), 401, "a wrong key is refused")
    adm = st.ws(room, "admin", "Admin")
    u = st.ws(room, "u1", "User One")
    adm.drain()
    u.send_json({"type": "Message", "payload": {"content": "hello"}})
    adm.wait_for(lambda m: m["type"] == "Message", 5)
    # the second message within USER_MESSAGE_INTERVAL_SECS is refused
    u.send_json({"type": "Message", "payload": {"content": "again"}})
    u.wait_for(lambda m: m["type"] == "Error" and m["payload"].get("code") == "rate_limited", 5)
    adm.send_json({"type": "CustomEvent", "payload": {"event_type": "wave", "payload": {}}})
    adm.wait_for(lambda m: m["type"] == "CustomEvent", 5)
    try:
        st.ws("no-such-room", "u2", "U2", welcome=False).close()
        chk.ok(False, "a handshake to an unknown room is refused")
    except HandshakeError:
        pass

    def moved(s):
        return (val(s, "chatd_connections") == 2
                and val(s, "chatd_rate_limited_total") > val(before, "chatd_rate_limited_total"))

    text = stack.wait_until(lambda: scrape(st).body.decode("utf-8"), "chatd's counters after the traffic",
                            lambda t: moved(parse(t)), timeout=stack.WAIT)
    promtool(chk, text, "chat-api after traffic")
    s = parse(text)

    def grew(name, by=1, **labels):
        b = val(before, name, **labels) or 0
        a = val(s, name, **labels)
        chk.ok(a is not None and a - b >= by, "%s%s grew by %d or more" % (name, labels or "", by),
               "before %s, after %s" % (b, a))

    chk.eq(val(s, "chatd_connections"), 2.0, "two connections")
    chk.ok(val(s, "chatd_rooms") >= 1, "a live room")
    grew("chatd_connections_total", 2)
    grew("chatd_messages_received_total", 1, kind="chat")
    grew("chatd_messages_received_total", 1, kind="custom")
    grew("chatd_rate_limited_total", 1)
    grew("chatd_deliveries_total", 4)
    grew("chatd_socket_writes_total", 1)
    grew("chatd_frames_per_write_count", 1)
    grew("chatd_handshakes_refused_total", 1, status="404", code="room_not_found")
    grew("chatd_writer_commit_duration_seconds_count", 1)
    grew("chatd_writer_batch_operations_count", 1)
    chk.ok(val(s, "chatd_wal_bytes") > 0, "WAL size reported")
    grew("chatd_api_requests_total", 1, method="POST", route="/management/rooms", status="201")
    grew("chatd_api_requests_total", 1, method="", route="none", status="401")
    grew("chatd_api_request_duration_seconds_count", 1, method="POST", route="/management/rooms")
    adm.close()
    u.close()
    stack.wait_until(lambda: parse(scrape(st).body.decode("utf-8")), "connections back to 0",
                     lambda s: val(s, "chatd_connections") == 0, timeout=stack.WAIT)


def t_sync_textfile(st, chk):
    code, out = sh.run_once(st.tmp, st.db_path, {}, env_file=st.env_file)
    chk.ok(code in (0, 1), "chat-sync --once ran", out[-2000:])
    chk.ok(os.path.exists(TEXTFILE), "--once wrote METRICS_TEXTFILE", out[-2000:])
    if not os.path.exists(TEXTFILE):
        return
    chk.eq(sorted(f for f in os.listdir(TMP) if f.endswith(".tmp")), [], "no temporary file left behind")
    with open(TEXTFILE, encoding="utf-8") as f:
        text = f.read()
    promtool(chk, text, "chat-sync textfile")
    s = parse(text)
    chk.ok((val(s, "chatd_sync_attempts_total", target="room_events", result="success") or 0) >= 1,
           "room_events: successful attempts counted")
    chk.ok((val(s, "chatd_sync_attempts_total", target="chat_history", result="failure") or 0) >= 2,
           "chat_history: failed attempts counted (first try and one retry)")
    chk.eq(val(s, "chatd_sync_backlog", target="room_events"), 0.0, "room_events: nothing pending")
    chk.ok((val(s, "chatd_sync_backlog", target="chat_history") or 0) >= 2, "chat_history: backlog")
    chk.ok((val(s, "chatd_sync_oldest_pending_age_seconds", target="chat_history") or 0) > 0,
           "chat_history: age of the oldest pending row")
    chk.eq(val(s, "chatd_sync_dead_letters", target="chat_history"), 0.0, "no dead letters")
    chk.ok((val(s, "chatd_sync_attempt_duration_seconds_count", target="room_events") or 0) >= 1,
           "attempt latency histogram")
    # chat-api shows the same backlog from the database
    r = parse(scrape(st).body.decode("utf-8"))
    chk.eq(val(r, "chatd_sync_backlog", target="chat_history"), val(s, "chatd_sync_backlog", target="chat_history"),
           "chat-api's backlog agrees with chat-sync's")
    chk.ok((val(r, "chatd_sync_oldest_pending_age_seconds", target="chat_history") or 0) > 0,
           "chat-api: oldest pending age")
    chk.eq(val(r, "chatd_sync_dead_letters", target="room_events"), 0.0, "chat-api: dead letters per target")


def t_grafana(st, chk):
    """Every series the shipped dashboard queries is one this stack exports
    (chat-api's scrape, chatd's part of it, or chat-sync's textfile)."""
    with open(os.path.join(stack.CONTRIB, "grafana", "chatd.json"), encoding="utf-8") as f:
        dash = json.load(f)
    exprs = [t["expr"] for p in dash["panels"] for t in p.get("targets", [])]
    chk.ok(len(exprs) >= 10, "the dashboard has its queries", repr(len(exprs)))
    names = {n for _, n in [(k, k[0]) for k in parse(scrape(st).body.decode("utf-8"))]}
    if os.path.exists(TEXTFILE):
        with open(TEXTFILE, encoding="utf-8") as f:
            names |= {k[0] for k in parse(f.read())}
    wanted = sorted({n for e in exprs for n in re.findall(r"\bchatd_[a-z_]+\b", e)})
    # The bus and node series exist only on a cluster node: test_cluster_metrics.py
    # checks that a cluster exports every chatd_cluster_ series the dashboard queries.
    wanted = [n for n in wanted if n.startswith("chatd_cluster_gap_") or not n.startswith("chatd_cluster_")]
    chk.eq([n for n in wanted if n not in names], [], "every metric the dashboard queries is exported")


def t_chatd_down(st, chk):
    st.stop_chatd()
    r = scrape(st)
    chk.status(r, 200, "scrape while chatd is down")
    text = r.body.decode("utf-8")
    promtool(chk, text, "chat-api with chatd down")
    s = parse(text)
    chk.eq(val(s, "chatd_up"), 0.0, "chatd_up 0")
    chk.eq(val(s, "chatd_connections"), None, "chatd's own metrics left out")
    chk.ok(val(s, "chatd_api_requests_total", method="GET", route="/management/metrics", status="200"),
           "chat-api's metrics still there")
    st.start_chatd()
    stack.wait_until(lambda: parse(scrape(st).body.decode("utf-8")), "chatd_up 1 after the restart",
                     lambda s: val(s, "chatd_up") == 1, timeout=stack.WAIT)


def main():
    global RCV
    stack.setup_process()
    sh.require_sync()
    chatd_stack.require_chatd("lighttpd-socket")
    if not stack.which("promtool"):
        log("promtool not found: install Debian's prometheus package (contrib/quickstart.sh test)")
        return 1
    RCV = sh.ScriptedReceiver(decide).start()
    chk = Checker("metrics")
    try:
        code = chatd_stack.run_suite("lighttpd-socket", chk, [
            ("scrape", t_scrape),
            ("values move", t_values_move),
            ("chat-sync textfile", t_sync_textfile),
            ("grafana dashboard", t_grafana),
            ("chatd down", t_chatd_down),
        ], settings(RCV))
        # The bearer credential must reach chat-api through every web
        # server's shipped config (Apache passes it only when told).
        for front in ("apache", "nginx"):
            if not code and stack.which(stack.FRONTS[front][2]):
                code = chatd_stack.run_suite(front, chk, [("scrape", t_scrape)], settings(RCV))
    finally:
        RCV.stop()
        if os.environ.get("KEEP_TMP") != "1":
            shutil.rmtree(TMP, ignore_errors=True)
    result = chk.finish()
    return code if code else result


if __name__ == "__main__":
    sys.exit(main())
