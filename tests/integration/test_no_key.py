#!/usr/bin/python3
"""Integration test: with ADMIN_API_KEY unset, or set but empty, every
management route answers 503 api_key_not_configured -- with or without an
X-Api-Key header -- and never opens access. Runs chat-api behind nginx
(fastcgi_pass) and behind lighttpd (bin-path spawn).
Exit 0 on success, 1 on failure, 77 (skip) if neither server is installed."""
import os
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import routes  # noqa: E402
import stack  # noqa: E402


def main():
    stack.setup_process()
    if not os.access(stack.CHAT_API, os.X_OK):
        print("chat-api not found at %s: build first" % stack.CHAT_API)
        return 1
    fronts = [f for f in ("nginx", "lighttpd-spawn") if stack.which(stack.FRONTS[f][2])]
    if not fronts:
        print("SKIP: neither nginx nor lighttpd is installed")
        return stack.SKIP
    chk = stack.Checker("ADMIN_API_KEY unset or empty: every route 503")
    code = None
    try:
        for front in fronts:
            for label, key in (("unset", None), ("empty", "")):
                st = stack.Stack(front, admin_key=key, fake_chatd=False)
                chk.section("%s, key %s" % (front, label))
                try:
                    with st:
                        routes.no_key_suite(st.client, chk, "%s/%s" % (front, label))
                        r = st.client.get("/management/health")
                        chk.ok("ADMIN_API_KEY" in ((r.json or {}).get("error") or {}).get("message", ""),
                               "the message names ADMIN_API_KEY", r.snippet())
                except stack.StackError as exc:
                    chk.ok(False, "stack start", str(exc))
                complaints = st.stop()
                chk.ok(not complaints, "clean shutdown", "; ".join(complaints))
    except (KeyboardInterrupt, SystemExit, stack.Watchdog) as exc:
        chk.ok(False, "interrupted", repr(exc))
        code = 1
    finally:
        stack.reap_orphans()
    result = chk.finish()
    return code or result


if __name__ == "__main__":
    sys.exit(main())
