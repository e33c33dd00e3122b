#!/usr/bin/python3
"""
chat-sync's dead letters (docs/callbacks.md) with the real pieces: chat-api
behind lighttpd, chat-sync (--once and --daemon), chatctl, and the real
receiver (contrib/callback/callback_server.py) answering 400 to every batch
that holds a "poison" message:

- a refused batch is set aside after CALLBACK_DEAD_LETTER_ATTEMPTS attempts,
  counted across --once runs, and later batches are delivered;
- GET /management/callbacks/dead-letters and chatctl dead-letters list it
  (target, delivery id, range, attempts, last status and error); the health
  route counts it;
- replay (REST for one, chatctl for all) makes chat-sync resend it under its
  original delivery id, byte for byte; on the 2xx it leaves the list;
- discard (REST and chatctl) removes it; the rows stay in the database.

Prints "N passed, M failed"; exit 0 on success.
"""

import json
import os
import subprocess
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import stack  # noqa: E402
import sync_harness as sh  # noqa: E402
from stack import Checker  # noqa: E402

H = "/chat-history"
CHATCTL = os.environ.get("CHATCTL_BIN") or os.path.join(stack.BUILDDIR, "src", "ctl", "chatctl")
DL = "/management/callbacks/dead-letters"
POISON = [15, 35, 55, 75]  # one poison message in each of four batches of ten


def fill(db):
    """A room and 80 messages, four of them poison, in db (a
    testdb.Database); returns their ids."""
    room = "00000000-0000-4000-8000-00000000d1e0"
    t = int((time.time() - 5) * 1000)
    rows = [(room, seq, "poison %d" % seq if seq in POISON else "message %d" % seq, t) for seq in range(1, 81)]
    ids = db.write([
        ("INSERT INTO rooms (id, name, created_at) VALUES (?, 'dl', ?)", (room, t)),
        ("INSERT INTO messages (room_id, seq, kind, user_id, nickname, content, created_at)"
         " VALUES (?, ?, 0, 'u1', 'n1', ?, ?)", rows),
        ("UPDATE rooms SET last_seq = 80 WHERE id = ?", (room,)),
        ("SELECT id FROM messages WHERE room_id = ? ORDER BY seq", (room,)),
    ])
    return [r[0] for r in ids]


def db_int(db, sql):
    return db.scalar(sql)


def chatctl(st, *args):
    env = stack.clean_env({"CHAT_ENV_FILE": st.env_file})
    p = subprocess.run([CHATCTL] + list(args), env=env, cwd=st.tmp, stdin=subprocess.DEVNULL,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
    return p.returncode, p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace")


def letters(st):
    r = st.client.get(DL)
    return r.json["dead_letters"] if r.status == 200 else None


def run(chk, st, rcv_port):
    tmp = st.tmp
    ids = fill(st.db)
    rcv = sh.Receiver(tmp, "r-reject", ["--reject", "poison", "--status", "400"], port=rcv_port).start()
    try:
        # Run 1: the poison batch fails twice (its retries) and stays pending.
        code, out = sh.run_once(tmp, st.db_path, {"CALLBACK_MAX_RETRIES": "1"}, env_file=st.env_file)
        chk.eq(code, 1, "run 1 exits 1: a batch is still failing")
        chk.eq(letters(st), [], "two attempts of three: not a dead letter yet")
        chk.eq(db_int(st.db, "SELECT attempts FROM cursors WHERE target = 'chat_history'"), 2,
               "the cursor counts the attempts")
        # Run 2: the third attempt, counted across runs, sets it aside; delivery goes on.
        code, out = sh.run_once(tmp, st.db_path, {"CALLBACK_MAX_RETRIES": "1"}, env_file=st.env_file)
        chk.ok("set aside as a dead letter" in out, "chat-sync logs the dead letter", out[-2000:])
        got = letters(st)
        chk.eq(len(got or []), 1, "one dead letter after run 2")
        h = st.client.get("/management/health").json
        cb = h.get("callbacks", {}).get("chat_history", {})
        chk.eq(cb.get("dead_letters"), 1, "health counts the dead letter under its target")
        chk.eq(h.get("database", {}).get("dead_letters"), 1, "health counts dead letters in total")
        # Run 3: more retries per run; every other poison batch becomes a dead letter in turn.
        code, out = sh.run_once(tmp, st.db_path, {"CALLBACK_MAX_RETRIES": "5"}, env_file=st.env_file)
        chk.eq(code, 0, "run 3 exits 0: nothing is left failing")
        delivered = sh.message_ids(rcv.ok_entries(H))
        want = [i for n, i in enumerate(ids) if (n // 10) % 2 == 0]
        chk.eq(delivered, want, "every batch but the refused ones delivered, in order")
        refused = [e for e in rcv.entries(H) if e["status"] == 400]
        first_ids = []
        for e in refused:
            if e["headers"]["webhook-id"] not in first_ids:
                first_ids.append(e["headers"]["webhook-id"])
        sha = {e["headers"]["webhook-id"]: e["sha256"] for e in refused}
        chk.eq(len(first_ids), 4, "four refused batches")

        got = letters(st) or []
        chk.eq([d["delivery_id"] for d in got], first_ids, "four dead letters, listed in order")
        d1 = got[0] if got else {}
        chk.eq((d1.get("target"), d1.get("after_id"), d1.get("last_id"), d1.get("count")),
               ("chat_history", ids[9], ids[19], 10), "target and range of the rows")
        chk.eq((d1.get("attempts"), d1.get("last_status")), (3, 400), "attempts and last status")
        chk.ok((d1.get("last_error") or "").startswith("HTTP 400"), "last error", repr(d1))
        chk.ok(d1.get("first_attempt_at_ms") and d1.get("last_attempt_at_ms") >= d1.get("first_attempt_at_ms"),
               "first and last attempt times", repr(d1))
        chk.eq(d1.get("replay_requested_at"), None, "not marked for replay")
        r = st.client.get(DL + "?target=periodic_sync")
        chk.eq((r.status, r.json.get("count")), (200, 0), "?target= filters")
        r = st.client.get(DL + "?target=nope")
        chk.status(r, 400, "an unknown target is refused")
        r = st.client.get(DL + "?limit=3")
        chk.eq((r.json.get("count"), r.json.get("has_more")), (3, True), "limit pages, has_more")

        rc, out, err = chatctl(st, "dead-letters", "--json")
        lst = json.loads(out) if rc == 0 else {}
        chk.eq([d["delivery_id"] for d in lst.get("dead_letters", [])], first_ids,
               "chatctl dead-letters --json lists the same")
        rc, out, err = chatctl(st, "dead-letters", "list")
        chk.ok(rc == 0 and all(i in out for i in first_ids) and "HTTP 400" in out,
               "chatctl dead-letters list (text)", out + err)

        # Discard: REST for the third, chatctl for the fourth. The rows stay.
        d3, d4 = got[2]["id"], got[3]["id"]
        r = st.client.delete("%s/%d" % (DL, d3))
        chk.status(r, 200, "DELETE discards")
        r = st.client.delete("%s/%d" % (DL, d3))
        chk.status(r, 404, "a discarded letter is gone")
        rc, out, err = chatctl(st, "dead-letters", "discard", str(d4))
        chk.eq(rc, 0, "chatctl dead-letters discard")
        rc, out, err = chatctl(st, "dead-letters", "discard", str(d4))
        chk.ok(rc == 1 and "dead_letter_not_found" in err, "chatctl discard of nothing exits 1", err)
        chk.eq(db_int(st.db, "SELECT count(*) FROM messages"), 80, "discarding deletes no rows")
        chk.eq(len(letters(st) or []), 2, "two dead letters left")

        # Replay: REST for the first, chatctl --all for the rest (the second).
        rcv.stop()
        rcv = sh.Receiver(tmp, "r-ok", port=rcv_port).start()
        r = st.client.post("%s/%d/replay" % (DL, got[0]["id"]))
        chk.status(r, 202, "POST .../{id}/replay is accepted")
        r = st.client.post("%s/%d/replay" % (DL, d3))
        chk.status(r, 404, "replay of a discarded letter: 404")
        rc, out, err = chatctl(st, "dead-letters", "replay", "--all", "--json")
        chk.eq((rc, json.loads(out).get("marked") if rc == 0 else None), (0, 1),
               "chatctl replay --all marks the one not yet marked")
        h = st.client.get("/management/health").json
        chk.eq(h["callbacks"]["chat_history"].get("dead_letters_replay_pending"), 2,
               "health counts the letters marked for replay")
        chk.ok(all(d["replay_requested_at"] for d in letters(st) or []), "both marked")

        p = sh.start(tmp, st.db_path, {}, env_file=st.env_file, name="chat-sync-dl-daemon")
        st.procs.append(p)
        got_ok = stack.wait_until(lambda: rcv.ok_entries(H), "both replays delivered",
                                  lambda e: len(e) >= 2)
        chk.eq([e["headers"]["webhook-id"] for e in got_ok], first_ids[:2],
               "replays carry their original delivery ids, oldest first")
        chk.eq([e["sha256"] for e in got_ok], [sha[i] for i in first_ids[:2]],
               "replays are byte-identical to the refused requests")
        chk.eq(sh.message_ids(got_ok), ids[10:20] + ids[30:40], "the refused rows arrive")
        left = stack.wait_until(lambda: letters(st), "replayed letters leave the list", lambda v: v == [])
        chk.eq(left, [], "a replay answered 2xx leaves the list")
        h = st.client.get("/management/health").json
        chk.eq((h["callbacks"]["chat_history"].get("dead_letters"), h["database"].get("dead_letters")),
               (0, 0), "health counts none")
        stack.stop_process_tree(p)
        st.procs.remove(p)
    finally:
        rcv.stop()


def run_unavailable(chk, st, rcv_port):
    """A receiver that fails without refusing (5xx, 429) keeps its batches in
    order: the attempt limit counts only refusals."""
    tmp = st.tmp
    ids = fill(st.db)
    for status in ("503", "429"):
        rcv = sh.Receiver(tmp, "r-" + status, ["--reject", "poison", "--status", status], port=rcv_port).start()
        try:
            code, out = sh.run_once(tmp, st.db_path, {"CALLBACK_MAX_RETRIES": "5"}, env_file=st.env_file)
            chk.eq(code, 1, "HTTP %s: the run exits 1, the batch still pending" % status)
            chk.eq(letters(st), [], "HTTP %s six times (limit 3): no dead letter" % status)
            chk.ok(db_int(st.db, "SELECT attempts FROM cursors WHERE target = 'chat_history'") >= 3,
                   "HTTP %s: the attempts are counted all the same" % status)
            chk.eq(sh.message_ids(rcv.ok_entries(H)), ids[:10] if status == "503" else [],
                   "HTTP %s: nothing after the failing batch is sent" % status)
        finally:
            rcv.stop()
    # The same batch, now refused: the count already past the limit, it goes at once.
    rcv = sh.Receiver(tmp, "r-400", ["--reject", "poison", "--status", "400"], port=rcv_port).start()
    try:
        sh.run_once(tmp, st.db_path, {"CALLBACK_MAX_RETRIES": "0"}, env_file=st.env_file)
        chk.eq(len(letters(st) or []), 1, "the first refusal past the limit sets the batch aside")
    finally:
        rcv.stop()


def main():
    stack.setup_process()
    sh.require_sync()
    stack.require_tools("lighttpd-socket")
    if not os.access(CHATCTL, os.X_OK):
        print("chatctl not found at %s: build first" % CHATCTL)
        return 1
    port = stack.free_port()
    chk = Checker("chat-sync dead letters")
    settings = {
        "CHAT_HISTORY_CALLBACK_URL": "http://127.0.0.1:%d%s" % (port, H),
        "CHAT_HISTORY_BATCH_SIZE": "10",
        "CHAT_HISTORY_BATCH_INTERVAL_SECONDS": "1",
        "CALLBACK_RETRY_DELAY_SECONDS": "0",
        "CALLBACK_TIMEOUT_SECONDS": "5",
        "CALLBACK_DEAD_LETTER_ATTEMPTS": "3",
    }
    for name, fn in (("dead letters", run), ("no dead letters while the receiver is unavailable", run_unavailable)):
        st = stack.Stack("lighttpd-socket", settings=settings)
        with st:
            chk.run(name, fn, chk, st, port)
        chk.section("%s: shutdown" % name)
        chk.ok(not st.complaints, "every process stopped on SIGTERM; no log holds the database password",
               "; ".join(st.complaints))
    return chk.finish()


if __name__ == "__main__":
    sys.exit(main())
