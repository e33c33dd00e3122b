#!/usr/bin/python3
"""Integration test: what each program says when it cannot start.

Runs the real chatd, chat-api, chat-sync and chatctl with one bad setting
each and checks the exit status and that stderr has one error line naming
the setting, the path or address (once) and the system's reason, with no
libwebsockets internals: CHATD_LISTEN on a port in use; CONTROL_SOCKET in a
missing folder and in one the user may not write to (as root, chatd runs as
nobody for that case, since root may write anywhere); DATABASE_URL in a
missing folder. Also: an unknown .env key gets "did you mean", and each
program's --help lists the settings it reads and not the others.
Prints "N passed, M failed"; exit 0 on success, 1 on failure."""
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import stack  # noqa: E402

CHATD = os.path.join(stack.BUILDDIR, "src", "chatd", "chatd")
SYNC = os.path.join(stack.BUILDDIR, "src", "sync", "chat-sync")
CHATCTL = os.path.join(stack.BUILDDIR, "src", "ctl", "chatctl")


def run(argv, tmp, extra, prefix=()):
    env = stack.clean_env(dict({"CHAT_ENV_FILE": os.path.join(tmp, "empty.env")}, **extra))
    p = subprocess.run(list(prefix) + argv, env=env, cwd=tmp, stdin=subprocess.DEVNULL,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
    return p.returncode, p.stderr.decode("utf-8", "replace")


def errors(text):
    return [ln for ln in text.splitlines() if ": error: " in ln or ln.startswith("chatctl: ")]


def check_one_line(chk, what, code, text, setting, value, reason):
    errs = errors(text)
    chk.eq(code, 1, "%s: exit status 1" % what)
    if not chk.eq(len(errs), 1, "%s: one error line" % what):
        print(text)
        return
    line = errs[0]
    chk.ok(setting in line and line.count(value) == 1 and line.count(reason) == 1,
           "%s: names %s, %s and the reason once" % (what, setting, value), line)
    chk.eq(text.count(value), 1, "%s: the path or address appears once in all of stderr" % what)
    chk.ok("lws" not in text and "chmod" not in text, "%s: no library internals" % what, text)


def t_chatd_listen(chk, tmp):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", 0))
    s.listen(1)
    addr = "127.0.0.1:%d" % s.getsockname()[1]
    try:
        code, text = run([CHATD], tmp, {"CHATD_LISTEN": addr, "CONTROL_SOCKET": os.path.join(tmp, "c1.sock"),
                                        "DATABASE_URL": "sqlite:" + os.path.join(tmp, "chat.db")})
    finally:
        s.close()
    check_one_line(chk, "chatd, CHATD_LISTEN in use", code, text, "CHATD_LISTEN", addr,
                   os.strerror(98))


def t_chatd_control_missing(chk, tmp):
    sock = os.path.join(tmp, "no-such-dir", "control.sock")
    code, text = run([CHATD], tmp, {"CHATD_LISTEN": "127.0.0.1:%d" % stack.free_port(), "CONTROL_SOCKET": sock,
                                    "DATABASE_URL": "sqlite:" + os.path.join(tmp, "chat.db")})
    check_one_line(chk, "chatd, CONTROL_SOCKET in a missing folder", code, text, "CONTROL_SOCKET", sock,
                   os.strerror(2))


def t_chatd_control_unwritable(chk, tmp):
    """A folder the user may not write to. Root may write anywhere, so as
    root chatd (a copy the account can reach) runs as nobody."""
    base = os.path.join(tmp, "unwritable")
    os.mkdir(base)
    os.chmod(tmp, 0o755)  # nobody must reach the copy and the folders
    ro = os.path.join(base, "ro")
    os.mkdir(ro, 0o555)
    dbdir = os.path.join(base, "db")
    os.mkdir(dbdir, 0o700)
    prefix, prog = [], CHATD
    if os.geteuid() == 0:
        setpriv = stack.which("setpriv")
        if not chk.ok(setpriv is not None, "setpriv (util-linux) is installed"):
            return
        nobody = pwd.getpwnam("nobody")
        os.chmod(base, 0o755)
        os.chown(dbdir, nobody.pw_uid, nobody.pw_gid)
        prog = os.path.join(base, "chatd")
        shutil.copy(CHATD, prog)
        os.chmod(prog, 0o755)
        prefix = [setpriv, "--reuid=%d" % nobody.pw_uid, "--regid=%d" % nobody.pw_gid, "--clear-groups"]
    sock = os.path.join(ro, "control.sock")
    code, text = run([prog], base, {"CHATD_LISTEN": "127.0.0.1:%d" % stack.free_port(), "CONTROL_SOCKET": sock,
                                    "DATABASE_URL": "sqlite:" + os.path.join(dbdir, "chat.db"),
                                    "CHAT_ENV_FILE": "/dev/null"}, prefix)
    check_one_line(chk, "chatd, CONTROL_SOCKET in a folder it may not write", code, text, "CONTROL_SOCKET", sock,
                   os.strerror(13))


def t_database_missing_folder(chk, tmp):
    db = os.path.join(tmp, "no-such-dir", "chat.db")
    url = {"DATABASE_URL": "sqlite:" + db}
    cases = [
        ("chat-api", [stack.CHAT_API, "--socket", os.path.join(tmp, "api.sock")], {}),
        ("chatd", [CHATD], {"CHATD_LISTEN": "127.0.0.1:%d" % stack.free_port(),
                            "CONTROL_SOCKET": os.path.join(tmp, "c3.sock")}),
        ("chat-sync", [SYNC, "--once"], {}),
    ]
    for name, argv, extra in cases:
        code, text = run(argv, tmp, dict(extra, **url))
        # "sqlite:PATH" is not the path: only the path counts
        check_one_line(chk, "%s, DATABASE_URL in a missing folder" % name, code, text, "DATABASE_URL", db,
                       os.strerror(2))


def t_did_you_mean(chk, tmp):
    env_file = os.path.join(tmp, "typo.env")
    with open(env_file, "w") as f:
        f.write("DATABSE_URL=sqlite:%s/typo.db\nlog_level=debug\nNOTHING_LIKE_IT=1\n" % tmp)
    code, text = run([SYNC, "--once"], tmp, {"CHAT_ENV_FILE": env_file,
                                             "DATABASE_URL": "sqlite:" + os.path.join(tmp, "chat.db")})
    chk.eq(code, 0, "chat-sync runs with unknown keys")
    chk.ok("unknown setting DATABSE_URL ignored (did you mean DATABASE_URL?)" in text, "a typo gets did you mean",
           text)
    chk.ok("unknown setting log_level ignored (did you mean LOG_LEVEL?)" in text, "lower case gets did you mean",
           text)
    chk.ok("unknown setting NOTHING_LIKE_IT ignored\n" in text, "no suggestion when nothing is close", text)


def t_help(chk, tmp):
    cases = [
        ("chat-api", [stack.CHAT_API, "--help"], ["ADMIN_API_KEY", "API_THREADS", "DATABASE_URL"],
         ["QUEUE_LOW_FRAMES", "CALLBACK_TIMEOUT_SECONDS", "BIND_ADDRESS"]),
        ("chatd", [CHATD, "--help"], ["CHATD_LISTEN", "CONTROL_SOCKET", "TOKEN_SECRET"],
         ["ADMIN_API_KEY", "SYNC_INTERVAL_SECONDS", "API_THREADS"]),
        ("chat-sync", [SYNC, "--help"], ["CALLBACK_TIMEOUT_SECONDS", "ROOM_EVENT_CALLBACK_URL", "DATABASE_URL"],
         ["CHATD_LISTEN", "ADMIN_API_KEY", "MAX_FRAME_BYTES"]),
        ("chatctl", [CHATCTL, "--help"], ["CONTROL_SOCKET", "CONTROL_TIMEOUT_MS", "DATABASE_URL"],
         ["ADMIN_API_KEY", "CHATD_LISTEN", "LOG_LEVEL"]),
    ]
    for name, argv, has, lacks in cases:
        p = subprocess.run(argv, env=stack.clean_env(), stdout=subprocess.PIPE, timeout=30)
        out = p.stdout.decode()
        settings = out.split("Settings read", 1)[-1]
        listed = {ln.split()[0] for ln in settings.splitlines()[1:] if ln.startswith("  ")}
        chk.ok(p.returncode == 0 and set(has) <= listed and not set(lacks) & listed,
               "%s --help lists the settings it reads" % name, repr(sorted(listed)))


def main():
    stack.setup_process()
    chk = stack.Checker("start-up errors: one line naming the setting, the value and the reason")
    for prog in (stack.CHAT_API, CHATD, SYNC, CHATCTL):
        if not os.access(prog, os.X_OK):
            chk.ok(False, "%s is built" % prog)
            return chk.finish()
    tmp = tempfile.mkdtemp(prefix="chatd-it-startup-")
    try:
        open(os.path.join(tmp, "empty.env"), "w").close()
        chk.run("CHATD_LISTEN in use", t_chatd_listen, chk, tmp)
        chk.run("CONTROL_SOCKET in a missing folder", t_chatd_control_missing, chk, tmp)
        chk.run("CONTROL_SOCKET in an unwritable folder", t_chatd_control_unwritable, chk, tmp)
        chk.run("DATABASE_URL in a missing folder", t_database_missing_folder, chk, tmp)
        chk.run("did you mean", t_did_you_mean, chk, tmp)
        chk.run("--help", t_help, chk, tmp)
    finally:
        stack.reap_orphans()
        shutil.rmtree(tmp, ignore_errors=True)
    return chk.finish()


if __name__ == "__main__":
    sys.exit(main())
