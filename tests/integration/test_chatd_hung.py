#!/usr/bin/python3
"""Integration test: a hung chatd (SIGSTOP) does not slow chat-api down.
After the first request that waits out CONTROL_TIMEOUT_MS, chat-api leaves
chatd alone for its back-off (5 s): 20 parallel room lists come back at once
with "live": false instead of each waiting the timeout again. After SIGCONT
and the back-off, live figures come back. Exit 0 on success, 1 on failure,
77 if no web server is installed."""
import os
import signal
import sys
import threading
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import chatd_stack as cs  # noqa: E402

TIMEOUT_MS = 1000
BACKOFF_S = 5  # CTL_BACKOFF_MS in src/common/ctl.h
PARALLEL = 20


def rooms(st):
    t0 = time.monotonic()
    r = st.client.get("/management/rooms", timeout=30)
    return r, time.monotonic() - t0


def t_hung_chatd(st, chk):
    st.create_room("hung")
    r, _ = rooms(st)
    chk.ok(r.status == 200 and (r.json or {}).get("live") is True, "live figures while chatd runs",
           r.snippet())

    # The WAL in health: its size, and whether a reader holds checkpoints back.
    h = st.ctl("health").get("result", {})
    chk.ok(isinstance(h.get("wal_bytes"), int) and h["wal_bytes"] >= 0 and h.get("wal_blocked") is False,
           "control health: wal_bytes, wal_blocked false", repr(h))
    r = st.client.get("/management/health")
    j = r.json or {}
    chk.ok(isinstance(j.get("database", {}).get("wal_bytes"), int)
           and j.get("chatd", {}).get("health", {}).get("wal_blocked") is False,
           "REST health: database.wal_bytes, chatd.health.wal_blocked", r.snippet())

    os.kill(st.chatd.pid, signal.SIGSTOP)
    try:
        r, took = rooms(st)
        chk.ok(r.status == 200 and (r.json or {}).get("live") is False, "first request: live false",
               r.snippet())
        chk.ok(took >= TIMEOUT_MS / 1000 * 0.8, "first request waited out CONTROL_TIMEOUT_MS", "%.2f s" % took)

        results = [None] * PARALLEL

        def one(i):
            results[i] = rooms(st)

        t0 = time.monotonic()
        threads = [threading.Thread(target=one, args=(i,)) for i in range(PARALLEL)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        total = time.monotonic() - t0
        ok = [x for x in results if x and x[0].status == 200 and (x[0].json or {}).get("live") is False]
        chk.eq(len(ok), PARALLEL, "every parallel request answered 200 with live false")
        chk.ok(total < 2 * TIMEOUT_MS / 1000, "%d parallel requests within 2x CONTROL_TIMEOUT_MS" % PARALLEL,
               "%.2f s (without the back-off each batch of API_THREADS waits the timeout)" % total)

        h = st.client.get("/management/health")
        ch = (h.json or {}).get("chatd", {})
        chk.ok(ch.get("reachable") is False and "not asked again" in (ch.get("error") or ""),
               "health: chatd unreachable, in back-off", h.snippet())
    finally:
        os.kill(st.chatd.pid, signal.SIGCONT)

    # The back-off ends; the next request reaches chatd again.
    deadline = time.monotonic() + BACKOFF_S + 5
    live = False
    while time.monotonic() < deadline and not live:
        r, _ = rooms(st)
        live = (r.json or {}).get("live") is True
        if not live:
            time.sleep(0.25)
    chk.ok(live, "live figures again after SIGCONT and the back-off")


if __name__ == "__main__":
    sys.exit(cs.main_for_fronts("chatd hung: chat-api backs off", [("SIGSTOP chatd", t_hung_chatd)],
                                settings={"CONTROL_TIMEOUT_MS": str(TIMEOUT_MS)}, default=("lighttpd-socket",)))
