#!/usr/bin/python3
"""Integration test: every curl example of the original (seed) README, run
verbatim with bash against the quick start (contrib/quickstart.sh serve) on
its default address, port 3000 -- the commands say http://localhost:3000.
Only {room_id} is replaced, by the id of the room the first example creates.

The quick start runs with a private env file (ADMIN_API_KEY=
your_secret_api_key as in the seed, a temporary database), a temporary
state folder and this build tree; the test then stops it with SIGTERM and
checks that everything it started is gone.

Exit 0 on success, 1 on failure, 77 (skip) when port 3000 is already in use
or the quick start's web server is not installed."""
import json
import os
import subprocess
import sys
import tempfile
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import routes  # noqa: E402
import stack  # noqa: E402
import testdb  # noqa: E402

# Copied from the seed README, byte for byte (blocks under "API 接口").
SEED_CREATE = """curl -X POST http://localhost:3000/management/rooms \\
  -H "Content-Type: application/json" \\
  -H "X-Api-Key: your_secret_api_key" \\
  -d '{
    "room_name": "测试房间",
    "admin_user_ids": ["admin1", "admin2"]
  }'
"""
SEED_LIST = """curl -X GET http://localhost:3000/management/rooms \\
  -H "X-Api-Key: your_secret_api_key"
"""
SEED_SYNC_GET = """curl -X GET http://localhost:3000/management/sync \\
  -H "X-Api-Key: your_secret_api_key"
"""
SEED_SYNC_POST = """curl -X POST http://localhost:3000/management/sync \\
  -H "X-Api-Key: your_secret_api_key"
"""
SEED_SYNC_ROOMS = """curl -X GET http://localhost:3000/management/sync/rooms \\
  -H "X-Api-Key: your_secret_api_key"
"""
SEED_CHAT_HISTORY = """curl -X GET "http://localhost:3000/management/sync/chat-history/{room_id}?page=1&limit=1000&from=1640995200&to=1640998800" \\
  -H "X-Api-Key: your_secret_api_key"
"""
SEED_SESSION_HISTORY = """curl -X GET "http://localhost:3000/management/sync/session-history/{room_id}?page=1&limit=500&from=1640995200&to=1640998800" \\
  -H "X-Api-Key: your_secret_api_key"
"""

PORT = 3000


def run_curl(chk, what, command):
    """Runs one example with bash; returns its parsed JSON output or None."""
    try:
        r = subprocess.run(["/bin/bash", "-c", command], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=30, env=stack.clean_env())
    except subprocess.TimeoutExpired:
        chk.ok(False, "%s: curl finished within 30 s" % what)
        return None
    chk.eq(r.returncode, 0, "%s: curl exit status" % what)
    try:
        out = json.loads(r.stdout.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        chk.ok(False, "%s: output is JSON" % what, repr(r.stdout[:300]))
        return None
    chk.ok(not (isinstance(out, dict) and "error" in out), "%s: no error" % what, repr(out)[:300])
    return out


def suite(chk, db_path):
    created = run_curl(chk, "create room (seed)", SEED_CREATE) or {}
    chk.eq((created.get("room_name"), created.get("admin_user_ids")), ("测试房间", ["admin1", "admin2"]),
           "created room's name and admins")
    rid = created.get("room_id")
    if not rid:
        chk.ok(False, "room id from the create example")
        return
    # Some history inside the examples' window so they return rows.
    routes.load_history(testdb.Database(path=db_path), rid, 30, 4)

    listed = run_curl(chk, "list rooms (seed)", SEED_LIST) or {}
    chk.ok(rid in [r.get("room_id") for r in listed.get("rooms") or []], "list shows the room")
    sync = run_curl(chk, "GET sync (seed)", SEED_SYNC_GET) or {}
    chk.ok(rid in [r.get("room_id") for r in sync.get("rooms") or []], "legacy sync shows the room")
    trig = run_curl(chk, "POST sync (seed)", SEED_SYNC_POST) or {}
    chk.eq(trig.get("status"), "accepted", "manual sync accepted")
    rooms = run_curl(chk, "GET sync/rooms (seed)", SEED_SYNC_ROOMS) or {}
    chk.ok(rid in [r.get("room_id") for r in rooms.get("rooms") or []], "sync/rooms shows the room")
    hist = run_curl(chk, "chat history (seed)", SEED_CHAT_HISTORY.replace("{room_id}", rid)) or {}
    chk.eq((hist.get("page"), hist.get("limit"), hist.get("total"), len(hist.get("messages") or [])),
           (1, 1000, 30, 30), "chat history page, limit, total, rows")
    sess = run_curl(chk, "session history (seed)", SEED_SESSION_HISTORY.replace("{room_id}", rid)) or {}
    chk.eq((sess.get("page"), sess.get("limit"), sess.get("total"), len(sess.get("sessions") or [])),
           (1, 500, 4, 4), "session history page, limit, total, rows")


def main():
    stack.setup_process()
    if stack.port_in_use(PORT):
        print("SKIP: port %d is already in use; the seed examples need the quick start on it" % PORT)
        return stack.SKIP
    if not os.access(stack.CHAT_API, os.X_OK):
        print("chat-api not found at %s: build first" % stack.CHAT_API)
        return 1
    front = os.environ.get("QUICKSTART_FRONT", "nginx")
    if stack.which(front) is None:
        print("SKIP: %s (the quick start's web server) is not installed" % front)
        return stack.SKIP
    if stack.which("curl") is None:
        print("SKIP: curl is not installed")
        return stack.SKIP

    chk = stack.Checker("seed README curl examples against the quick start (%s, port %d)" % (front, PORT))
    tmp = tempfile.mkdtemp(prefix="chatd-it-seed-")
    env_file = os.path.join(tmp, "chatd.env")
    db_path = os.path.join(tmp, "chat.db")
    with open(env_file, "w") as f:
        f.write("ADMIN_API_KEY=your_secret_api_key\n"
                "DATABASE_URL=sqlite:%s\n"
                "CONTROL_SOCKET=%s\n"
                "CHATD_LISTEN=127.0.0.1:%d\n" % (db_path, os.path.join(tmp, "control.sock"), stack.free_port()))
    env = stack.clean_env({
        "CHAT_ENV_FILE": env_file,
        "QUICKSTART_STATE_DIR": os.path.join(tmp, "state"),
        "QUICKSTART_BUILDDIR": stack.BUILDDIR,
        "QUICKSTART_FRONT": front,
        "BIND_ADDRESS": "127.0.0.1:%d" % PORT,
    })
    if "CHAT_API_BIN" in os.environ:
        print("note: CHAT_API_BIN is ignored here; the quick start uses %s/src/api/chat-api" % stack.BUILDDIR)
    qs = stack.Proc("quickstart", ["/bin/bash", os.path.join(stack.SRCDIR, "contrib", "quickstart.sh"), "serve"],
                    env, tmp)
    code = None
    try:
        client = stack.Client("127.0.0.1", PORT, "your_secret_api_key")
        deadline = time.monotonic() + 30
        ready = False
        while time.monotonic() < deadline and qs.running():
            try:
                r = client.get("/management/health", timeout=3)
                # The web server may answer before the quick start has seen it do
                # so; only after its banner does SIGTERM mean "stop serving" (0).
                if isinstance(r.json, dict) and "quick start is running" in qs.tail(400):
                    ready = True
                    break
            except OSError:
                pass
            time.sleep(0.2)
        if chk.ok(ready, "quick start answers on port %d" % PORT, qs.tail()):
            started = stack._descendants(qs.pid)
            chk.ok(len(started) >= 2, "quick start runs chat-api and %s" % front,
                   " ".join(stack._cmdline(p) for p in started))
            suite(chk, db_path)
            mode = os.stat(os.path.join(tmp, "state")).st_mode & 0o777
            chk.ok(mode & 0o007 == 0, "the quick start's state folder is closed to other users", oct(mode))
            for p in (db_path, db_path + "-wal", db_path + "-shm"):
                if os.path.exists(p):
                    chk.eq(oct(os.stat(p).st_mode & 0o777), oct(0o600), "%s is owner-only" % os.path.basename(p))
            chk.ok(qs.running(), "quick start still running after the examples")
    except (KeyboardInterrupt, SystemExit, stack.Watchdog) as exc:
        chk.ok(False, "interrupted", repr(exc))
        code = 1
    finally:
        if chk.failures:
            print("---- quick start output ----")
            print(qs.tail(60))
        complaints = stack.stop_process_tree(qs, term_wait=30)
        chk.ok(not complaints, "SIGTERM stops the quick start and all it started", "; ".join(complaints))
        chk.eq(qs.p.returncode, 0, "quick start exits 0 when stopped by SIGTERM")
        stack.reap_orphans()
        chk.ok(not stack.port_in_use(PORT), "port %d free again" % PORT)
        if os.environ.get("KEEP_TMP") != "1":
            import shutil

            shutil.rmtree(tmp, ignore_errors=True)
    result = chk.finish()
    return code or result


if __name__ == "__main__":
    sys.exit(main())
