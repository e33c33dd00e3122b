#!/usr/bin/python3
"""
chat-sync delivery rules against a real receiver process
(contrib/callback/callback_server.py) and a fresh database filled directly
(fast bulk loads; test_sync_stack.py uses real chatd traffic):

- 2,500 messages with CHAT_HISTORY_BATCH_SIZE=1000 arrive as 1000+1000+500,
  in order, each once;
- the receiver down, then back: everything arrives in order;
- 500s and timeouts are retried under the same delivery id; retries used
  up leave the batch pending (exit status 1, cursor unmoved);
- kill -9 of chat-sync mid-run, then a new run: nothing skipped;
- two --once runs started together: no batch and no message twice;
- signatures verify with the secret and fail with a wrong one;
- pipelining (a full batch's successor is built while it is on the wire):
  the next batch is built before the answer, a failed batch 2 is retried
  byte for byte under its id, a partial successor still waits for its
  interval, and a successor built ahead is dropped when another process
  moved the cursor meanwhile.

Prints "N passed, M failed"; exit 0 on success.
"""

import os
import shutil
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import stack  # noqa: E402
import sync_harness as sh  # noqa: E402
import testdb  # noqa: E402
from stack import Checker  # noqa: E402

H = "/chat-history"


def hist(rcv, **kw):
    s = {"CHAT_HISTORY_CALLBACK_URL": rcv.url(H), "CHAT_HISTORY_BATCH_INTERVAL_SECONDS": "1"}
    s.update({k: str(v) for k, v in kw.items()})
    return s


def t_batches(chk, tmp):
    db = sh.FreshDB(tmp)
    ids = db.add_messages(2500)
    rcv = sh.Receiver(tmp, "r-batches").start()
    try:
        code, out = sh.run_once(tmp, db, hist(rcv, CHAT_HISTORY_BATCH_SIZE=1000))
        chk.eq(code, 0, "--once exits 0")
        got = rcv.ok_entries(H)
        chk.eq([e["body"]["count"] for e in got], [1000, 1000, 500], "batches of 1000+1000+500")
        chk.eq(sh.message_ids(got), ids, "every message once, in id order")
        chk.eq(len({e["headers"]["webhook-id"] for e in got}), 3, "a delivery id per batch")
        first = got[0]["body"]["messages"][0] if got else {}
        chk.eq(
            sorted(first.keys()),
            sorted(["id", "room_id", "seq", "type", "is_custom_event", "from", "nickname", "is_admin",
                    "content", "timestamp", "timestamp_ms"]),
            "message shape",
        )
        h = got[0]["headers"] if got else {}
        chk.eq(h.get("content-type"), "application/json", "Content-Type")
        chk.ok(h.get("user-agent", "").startswith("chat-sync/"), "User-Agent chat-sync/VERSION")
        chk.ok(h.get("webhook-timestamp", "").isdigit(), "webhook-timestamp")
        chk.ok("webhook-signature" not in h, "no signature without a secret")
        chk.eq(db.cursor("chat_history")[0], ids[-1], "cursor at the last message")
        # a partial batch waits for its interval, a second run sends nothing twice
        more = db.add_messages(10, age_s=0)
        code, _ = sh.run_once(tmp, db, hist(rcv, CHAT_HISTORY_BATCH_INTERVAL_SECONDS=60))
        chk.eq(len(rcv.ok_entries(H)), 3, "a young partial batch waits for the interval")
        code, _ = sh.run_once(tmp, db, hist(rcv))
        time.sleep(1.1)
        code, _ = sh.run_once(tmp, db, hist(rcv))
        chk.eq(sh.message_ids(rcv.ok_entries(H)), ids + more, "the rest arrives after the interval, once")
    finally:
        rcv.stop()
        db.close()


def t_down_then_back(chk, tmp):
    db = sh.FreshDB(tmp)
    ids = db.add_messages(250)
    rcv = sh.Receiver(tmp, "r-down")
    code, out = sh.run_once(tmp, db, hist(rcv, CHAT_HISTORY_BATCH_SIZE=100, CALLBACK_TIMEOUT_SECONDS=1))
    chk.eq(code, 1, "--once exits 1 while the receiver is down")
    c = db.cursor("chat_history")
    chk.ok(c is not None and c[0] == 0 and c[1] and c[4], "cursor unmoved, batch recorded, failing_since set", repr(c))
    chk.ok(c is not None and c[5], "last_error recorded", repr(c))
    pending_id = c[1] if c else None
    rcv.start()
    try:
        code, out = sh.run_once(tmp, db, hist(rcv, CHAT_HISTORY_BATCH_SIZE=100))
        chk.eq(code, 0, "--once exits 0 once it is back")
        got = rcv.ok_entries(H)
        chk.eq(sh.message_ids(got), ids, "everything arrives, in order, once")
        chk.eq(got[0]["headers"]["webhook-id"] if got else None, pending_id,
               "the pending batch keeps its delivery id across runs")
        c = db.cursor("chat_history")
        chk.ok(c[1] is None and c[4] is None and c[5] is None, "failure state cleared", repr(c))
    finally:
        rcv.stop()
        db.close()


def t_retries(chk, tmp):
    db = sh.FreshDB(tmp)
    ids = db.add_messages(5)
    rcv = sh.Receiver(tmp, "r-500", ["--fail-first", "2", "--status", "500"]).start()
    try:
        code, _ = sh.run_once(tmp, db, hist(rcv, CALLBACK_MAX_RETRIES=3))
        e = rcv.entries(H)
        chk.eq([x["status"] for x in e], [500, 500, 200], "two 500s, then a 2xx")
        chk.eq(len({x["headers"]["webhook-id"] for x in e}), 1, "same delivery id on every retry")
        chk.eq(code, 0, "exit 0 after a successful retry")
        chk.eq(sh.message_ids(rcv.ok_entries(H)), ids, "delivered once accepted")
    finally:
        rcv.stop()
    ids2 = db.add_messages(3)
    slow = sh.Receiver(tmp, "r-slow", ["--delay", "2.5", "--delay-first", "1"]).start()
    try:
        t0 = time.monotonic()
        code, _ = sh.run_once(tmp, db, hist(slow, CALLBACK_TIMEOUT_SECONDS=1, CALLBACK_MAX_RETRIES=2))
        # the receiver records the slow request only when its delay is over
        slow.wait_for(lambda r: len(r.entries(H)) >= 2, 5)
        e = slow.entries(H)
        chk.ok(len(e) >= 2, "a timed-out attempt is retried", repr([x["status"] for x in e]))
        chk.eq(len({x["headers"]["webhook-id"] for x in e}), 1, "same delivery id after a timeout")
        chk.eq(code, 0, "exit 0 after the retry")
        chk.ok(time.monotonic() - t0 < 10, "CALLBACK_TIMEOUT_SECONDS bounds the attempt")
        chk.eq(sh.message_ids(slow.ok_entries(H))[-3:], ids2, "the batch arrives")
    finally:
        slow.stop()
    ids3 = db.add_messages(2)
    bad = sh.Receiver(tmp, "r-503", ["--status", "503"]).start()
    try:
        code, _ = sh.run_once(tmp, db, hist(bad, CALLBACK_MAX_RETRIES=2))
        chk.eq(code, 1, "retries used up: exit 1")
        chk.eq(len(bad.entries(H)), 3, "1 attempt + CALLBACK_MAX_RETRIES retries")
        c = db.cursor("chat_history")
        chk.eq(c[0], ids2[-1], "cursor stays before the failing batch")
        chk.ok(c[5] and "503" in c[5], "last_error names the status", repr(c))
    finally:
        bad.stop()
    good = sh.Receiver(tmp, "r-ok").start()
    try:
        code, _ = sh.run_once(tmp, db, hist(good))
        chk.eq(sh.message_ids(good.ok_entries(H)), ids3, "the failing batch is delivered next run")
    finally:
        good.stop()
        db.close()


def t_kill9(chk, tmp):
    db = sh.FreshDB(tmp)
    ids = db.add_messages(3000)
    rcv = sh.Receiver(tmp, "r-kill", ["--delay", "0.1"]).start()
    try:
        p = sh.start(tmp, db, hist(rcv, CHAT_HISTORY_BATCH_SIZE=100), mode="--once", name="sync-killed")
        rcv.wait_for(lambda r: len(r.ok_entries(H)) >= 5, 20)
        sh.kill9(p)
        before = len(rcv.ok_entries(H))
        chk.ok(0 < before < 30, "killed mid-run", "after %d batches" % before)
        code, _ = sh.run_once(tmp, db, hist(rcv, CHAT_HISTORY_BATCH_SIZE=100))
        chk.eq(code, 0, "the next run exits 0")
        got = sh.message_ids(rcv.ok_entries(H))
        # at least once: the batch in flight at the kill may come twice, nothing else
        dedup = []
        for i in got:
            if not dedup or i > dedup[-1]:
                dedup.append(i)
        chk.eq(dedup, ids, "nothing skipped, order kept")
        chk.ok(len(got) - len(ids) <= 100, "at most the batch in flight again", "%d extra" % (len(got) - len(ids)))
        wids = [e["headers"]["webhook-id"] for e in rcv.ok_entries(H)]
        dup = [w for w in set(wids) if wids.count(w) > 1]
        chk.ok(len(dup) <= 1, "a repeated batch keeps its delivery id", repr(dup))
    finally:
        rcv.stop()
        db.close()


def t_two_at_once(chk, tmp):
    db = sh.FreshDB(tmp)
    ids = db.add_messages(2000)
    rcv = sh.Receiver(tmp, "r-two", ["--delay", "0.02"]).start()
    try:
        s = hist(rcv, CHAT_HISTORY_BATCH_SIZE=50)
        a = sh.start(tmp, db, s, mode="--once", name="sync-a")
        b = sh.start(tmp, db, s, mode="--once", name="sync-b")
        ca, cb = a.p.wait(60), b.p.wait(60)
        chk.eq((ca, cb), (0, 0), "both exit 0")
        code, _ = sh.run_once(tmp, db, s)
        got = rcv.ok_entries(H)
        chk.eq(sorted(sh.message_ids(got)), ids, "every message exactly once")
        wids = [e["headers"]["webhook-id"] for e in got]
        chk.eq(len(wids), len(set(wids)), "no batch twice")
    finally:
        rcv.stop()
        db.close()


SECRET = "whsec_" + "c2VjcmV0LWtleS1mb3ItY2hhdC1zeW5jLXRlc3Rz"  # base64("secret-key-for-chat-sync-tests")


def t_signature(chk, tmp):
    db = sh.FreshDB(tmp)
    ids = db.add_messages(3)
    good = sh.Receiver(tmp, "r-sig", ["--secret", SECRET]).start()
    wrong = sh.Receiver(tmp, "r-wrong", ["--secret", "whsec_d3Jvbmcgc2VjcmV0"]).start()
    raw = sh.Receiver(tmp, "r-raw", ["--secret", "plain text secret"]).start()
    try:
        code, _ = sh.run_once(tmp, db, dict(hist(good), CALLBACK_SIGNING_SECRET=SECRET))
        e = good.entries(H)
        chk.ok(e and e[0]["verified"] is True and e[0]["status"] == 200, "signature verifies with the secret",
               repr(e[:1]))
        chk.ok(e and e[0]["headers"].get("webhook-signature", "").startswith("v1,"), "v1, signature header")
        code, log = sh.run_once(tmp, db, dict(hist(wrong), CALLBACK_SIGNING_SECRET=SECRET,
                                                   CALLBACK_MAX_RETRIES="0"), name="sync-wrong")
        db.add_messages(1)
        code, log = sh.run_once(tmp, db, dict(hist(wrong), CALLBACK_SIGNING_SECRET=SECRET,
                                                   CALLBACK_MAX_RETRIES="0"), name="sync-wrong")
        e = wrong.entries(H)
        chk.ok(e and e[0]["verified"] is False and e[0]["status"] == 401, "fails with a wrong secret", repr(e[:1]))
        chk.eq(code, 1, "a refused signature is a failure")
        chk.ok(SECRET not in log and "c2VjcmV0" not in log, "the secret is never logged")
        code, _ = sh.run_once(tmp, db, dict(hist(raw), CALLBACK_SIGNING_SECRET="plain text secret"))
        e = raw.entries(H)
        chk.ok(e and e[0]["verified"] is True, "a secret without whsec_ is used as raw bytes", repr(e[:1]))
        chk.eq(sh.message_ids(raw.ok_entries(H)), [ids[-1] + 1], "the refused batch arrives later")
    finally:
        good.stop()
        wrong.stop()
        raw.stop()
        db.close()


def hist_ids(entries):
    return [(e["body"]["messages"][0]["id"], e["body"]["messages"][-1]["id"]) for e in entries]


def t_pipeline_retry(chk, tmp):
    db = sh.FreshDB(tmp)
    ids = db.add_messages(2500)

    def decide(n, e):
        first = e["body"]["messages"][0]["id"]
        if n == 1:
            # Batch 2 was built while batch 1 was on the wire: a change
            # made now, before batch 1's answer, must not be in it. (Rows
            # never change in use; this only shows when batch 2 was read.)
            time.sleep(0.3)
            # (A connection of its own, as the receiver acts mid-request.)
            db.execute("UPDATE messages SET content = 'changed' WHERE id = ?", (ids[1000],))
        if first == ids[1000] and sum(1 for x in rcv.log if x["body"]["messages"][0]["id"] == first) == 1:
            return 500  # batch 2, first attempt
        return 200

    rcv = sh.ScriptedReceiver(decide).start()
    try:
        code, out = sh.run_once(tmp, db, hist(rcv, CHAT_HISTORY_BATCH_SIZE=1000, CALLBACK_MAX_RETRIES=2))
        chk.eq(rcv.errors, [], "the receiver script ran")
        chk.eq(code, 0, "--once exits 0")
        e = rcv.entries(H)
        chk.eq([x["status"] for x in e], [200, 500, 200, 200], "batch 2 fails once, then everything is accepted")
        chk.eq([x["body"]["count"] for x in e], [1000, 1000, 1000, 500], "1000, 1000 (failed), 1000 again, 500")
        chk.eq(hist_ids(e), [(ids[0], ids[999]), (ids[1000], ids[1999]), (ids[1000], ids[1999]),
                             (ids[2000], ids[2499])], "in order; the failed batch is retried before anything else")
        chk.eq(sh.message_ids(rcv.ok_entries(H)), ids, "every message once, in id order")
        wids = [x["headers"]["webhook-id"] for x in e]
        chk.ok(len(wids) == 4 and wids[1] == wids[2], "the retry keeps the delivery id", repr(wids))
        chk.eq(len(set(wids)), 3, "a delivery id per batch")
        chk.ok(len(e) == 4 and e[1]["raw"] == e[2]["raw"], "the retry is byte for byte the same body")
        b2 = e[1]["body"]["messages"][0] if len(e) > 1 else {}
        chk.eq(b2.get("content"), "message 1001", "batch 2 was built while batch 1 was on the wire")
        c = db.cursor("chat_history")
        chk.eq((c[0], c[1], c[3], c[5]), (ids[-1], None, 0, None), "cursor at the end, nothing pending")
    finally:
        rcv.stop()
        db.close()


def t_pipeline_partial_waits(chk, tmp):
    db = sh.FreshDB(tmp)
    ids = db.add_messages(2000)
    young = db.add_messages(500, age_s=0)
    rcv = sh.ScriptedReceiver(lambda n, e: 200).start()
    try:
        s = hist(rcv, CHAT_HISTORY_BATCH_SIZE=1000, CHAT_HISTORY_BATCH_INTERVAL_SECONDS=60)
        code, out = sh.run_once(tmp, db, s)
        chk.eq(code, 0, "--once exits 0")
        chk.eq([x["body"]["count"] for x in rcv.entries(H)], [1000, 1000], "two full batches, no partial one")
        chk.eq(sh.message_ids(rcv.ok_entries(H)), ids, "in order, once")
        c = db.cursor("chat_history")
        chk.eq((c[0], c[1], c[2]), (ids[-1], None, None), "the partial batch built ahead was not recorded")
        # Once the young rows are due they go as usual.
        db.execute("UPDATE messages SET created_at = created_at - 120000 WHERE id >= ?", (young[0],))
        code, out = sh.run_once(tmp, db, s)
        chk.eq([x["body"]["count"] for x in rcv.entries(H)], [1000, 1000, 500], "the partial batch after its interval")
        chk.eq(sh.message_ids(rcv.ok_entries(H)), ids + young, "everything once, in order")
    finally:
        rcv.stop()
        db.close()


def t_pipeline_cursor_moved(chk, tmp):
    db = sh.FreshDB(tmp)
    ids = db.add_messages(2500)
    def decide(n, e):
        if n == 1:
            # As if another process had delivered batches 1 and 2 while
            # batch 1 was on the wire (after batch 2 was built ahead).
            time.sleep(0.3)
            db.execute("UPDATE cursors SET last_id = ?, delivery_id = NULL, batch_last_id = NULL"
                       " WHERE target = 'chat_history'", (ids[1999],))
        return 200

    rcv = sh.ScriptedReceiver(decide).start()
    try:
        code, out = sh.run_once(tmp, db, hist(rcv, CHAT_HISTORY_BATCH_SIZE=1000))
        chk.eq(rcv.errors, [], "the receiver script ran")
        chk.eq(code, 0, "--once exits 0")
        e = rcv.entries(H)
        chk.eq(hist_ids(e), [(ids[0], ids[999]), (ids[2000], ids[2499])],
               "the batch built ahead is dropped; delivery goes on from the moved cursor")
        chk.ok("dropping the next batch built ahead" in out, "the drop is logged")
        c = db.cursor("chat_history")
        chk.eq((c[0], c[1]), (ids[-1], None), "cursor at the end")
    finally:
        rcv.stop()
        db.close()


TESTS = [
    ("2500 messages in batches of 1000", t_batches),
    ("receiver down, then back", t_down_then_back),
    ("retries: 500s, timeouts, retries used up", t_retries),
    ("kill -9 mid-run, then a new run", t_kill9),
    ("two --once runs at the same time", t_two_at_once),
    ("signatures", t_signature),
    ("pipelining: batch 2 fails once, then recovers", t_pipeline_retry),
    ("pipelining: a partial batch built ahead waits", t_pipeline_partial_waits),
    ("pipelining: cursor moved while a batch was on the wire", t_pipeline_cursor_moved),
]


def main():
    stack.setup_process()
    sh.require_sync()
    chk = Checker("chat-sync delivery")
    for name, fn in TESTS:
        tmp = sh.tmpdir("chat-sync-it-")
        try:
            chk.run(name, fn, chk, tmp)
            testdb.check_no_password(chk, tmp)
        finally:
            if os.environ.get("KEEP_TMP") == "1":
                stack.log("kept %s" % tmp)
            else:
                shutil.rmtree(tmp, ignore_errors=True)
        stack.reap_orphans()
    return chk.finish()


if __name__ == "__main__":
    sys.exit(main())
