#!/usr/bin/python3
"""Integration test of `make install DESTDIR=...` and `make uninstall`:
the programs land in bindir, the man pages in mandir, the systemd units in
the unit folder with ExecStart pointing at bindir and CHAT_ENV_FILE at
sysconfdir (no placeholder left), the settings example as
sysconfdir/chatd/chatd.env.example (an operator's chatd.env is left alone),
the docs and web server examples in docdir; uninstall removes all of it.
The install paths come from the Makefile (install_* in the environment).
Prints "N passed, M failed"; exit 0 on success, 1 on failure."""
import filecmp
import os
import re
import shutil
import subprocess
import sys
import tempfile

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import stack  # noqa: E402

PROGRAMS = ["chat-api", "chatd", "chat-sync", "chatctl"]
UNITS = ["chatd.service", "chat-api.service", "chat-api-activated.service", "chat-api.socket",
         "chat-sync.service", "chat-sync-once.service", "chat-sync.timer"]
MANS = ["man1/chatctl.1", "man5/chatd.env.5", "man8/chatd.8", "man8/chat-api.8", "man8/chat-sync.8"]
DOCS = ["README.md", "deployment.md", "chatctl.md", "callbacks.md", "api.md", "examples/render-config.sh",
        "examples/nginx/chatd.conf", "examples/apache/chatd.conf", "examples/lighttpd/chatd-socket.conf",
        "examples/lighttpd/chatd-spawn.conf", "examples/lighttpd/chatd-scgi.conf"]


def make(target, destdir):
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES")}
    p = subprocess.run(["make", "-C", stack.BUILDDIR, target, "DESTDIR=" + destdir], env=env,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, timeout=600)
    return p.returncode, p.stdout.decode("utf-8", "replace")


def main():
    chk = stack.Checker("make install / make uninstall")
    dirs = {k: os.environ.get("install_" + k) for k in ("bindir", "sysconfdir", "mandir", "docdir", "unitdir")}
    if not chk.ok(all(dirs.values()), "install paths come from the Makefile", repr(dirs)):
        return chk.finish()
    tmp = tempfile.mkdtemp(prefix="chatd-it-install-")
    root = os.path.join(tmp, "root")

    def at(path, *rest):
        return os.path.join(root + path, *rest)

    try:
        # An operator's settings are there before the install.
        conf = at(dirs["sysconfdir"], "chatd", "chatd.env")
        os.makedirs(os.path.dirname(conf))
        with open(conf, "w") as f:
            f.write("ADMIN_API_KEY=operators-own\n")
        code, out = make("install", root)
        if not chk.eq(code, 0, "make install DESTDIR=... succeeds"):
            print(out[-3000:])
            return chk.finish()

        for prog in PROGRAMS:
            path = at(dirs["bindir"], prog)
            chk.ok(os.access(path, os.X_OK), "%s installed in bindir" % prog, path)
        p = subprocess.run([at(dirs["bindir"], "chatd"), "--version"], stdout=subprocess.PIPE, timeout=30)
        chk.ok(p.returncode == 0 and p.stdout.startswith(b"chatd "), "installed chatd runs", repr(p.stdout))
        for man in MANS:
            chk.ok(os.path.isfile(at(dirs["mandir"], man)), "man page %s installed" % man)
        for doc in DOCS:
            chk.ok(os.path.isfile(at(dirs["docdir"], doc)), "%s installed in docdir" % doc)

        example = at(dirs["sysconfdir"], "chatd", "chatd.env.example")
        chk.ok(os.path.isfile(example) and filecmp.cmp(example, os.path.join(stack.CONTRIB, "env.example"),
                                                        shallow=False),
               "contrib/env.example installed as sysconfdir/chatd/chatd.env.example")
        with open(conf) as f:
            chk.eq(f.read(), "ADMIN_API_KEY=operators-own\n", "the operator's chatd.env is left alone")

        env_line = "Environment=CHAT_ENV_FILE=%s/chatd/chatd.env" % dirs["sysconfdir"]
        units = UNITS if dirs["unitdir"] != "no" else []  # --without-systemdsystemunitdir
        for unit in units:
            path = at(dirs["unitdir"], unit)
            if not chk.ok(os.path.isfile(path), "unit %s installed" % unit, path):
                continue
            with open(path) as f:
                text = f.read()
            chk.eq(re.findall(r"@[a-z_]+@", text), [], "%s: no placeholder left" % unit)
            execs = re.findall(r"^ExecStart=(\S+)", text, re.M)
            if unit.endswith(".service"):
                chk.ok(len(execs) == 1 and os.path.dirname(execs[0]) == dirs["bindir"]
                       and os.path.basename(execs[0]) in PROGRAMS and os.access(root + execs[0], os.X_OK),
                       "%s: ExecStart runs a program in bindir" % unit, repr(execs))
                chk.ok(env_line in text.splitlines(), "%s: settings from sysconfdir" % unit, env_line)
        if units:
            with open(at(dirs["unitdir"], "chatd.service")) as f:
                text = f.read()
            chk.ok("Type=notify" in text and "WatchdogSec=" in text, "chatd.service is Type=notify with a watchdog")
            with open(at(dirs["unitdir"], "chat-sync.service")) as f:
                m = re.search(r"^WatchdogSec=(\d+)s$", f.read(), re.M)
            chk.ok(m is not None and int(m.group(1)) > 2 * 30,
                   "chat-sync.service's WatchdogSec exceeds twice CALLBACK_TIMEOUT_SECONDS' default", repr(m))

        code, out = make("uninstall", root)
        chk.eq(code, 0, "make uninstall succeeds")
        left = sorted(os.path.relpath(os.path.join(d, f), root) for d, _, fs in os.walk(root) for f in fs)
        chk.eq(left, [os.path.relpath(conf, root)], "uninstall leaves only the operator's chatd.env")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return chk.finish()


if __name__ == "__main__":
    sys.exit(main())
