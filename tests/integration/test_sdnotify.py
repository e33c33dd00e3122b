#!/usr/bin/python3
"""Integration test: systemd's notification protocol, with this test as the
service manager. Each program, started with NOTIFY_SOCKET naming a datagram
socket the test listens on, sends READY=1 only once it serves (chat-api: its
FastCGI socket accepts; chatd: its WebSocket port and control socket both
accept; chat-sync --daemon: its targets are set up), WATCHDOG=1 about every
WATCHDOG_USEC/2 when that is set, and STOPPING=1 on SIGTERM; without
NOTIFY_SOCKET it runs as before.
Exit 0 on success, 1 on failure."""
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import stack  # noqa: E402


class Manager:
    """The service manager's end: a datagram socket collecting states."""

    def __init__(self, path):
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)
        self.got = []  # (monotonic time, state)

    def wait_for(self, state, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for t, s in self.got:
                if state in s.split("\n"):
                    return t
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                data = self.sock.recv(4096)
            except socket.timeout:
                break
            self.got.append((time.monotonic(), data.decode()))
        return None

    def count(self, state):
        return sum(1 for _, s in self.got if state in s.split("\n"))

    def close(self):
        self.sock.close()


def connects(path):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.connect(path)
        return True
    except OSError:
        return False
    finally:
        s.close()


def t_chat_api(chk, tmp):
    env_file = os.path.join(tmp, "api.env")
    with open(env_file, "w") as f:
        f.write("ADMIN_API_KEY=k\nDATABASE_URL=sqlite:%s/api.db\nCONTROL_SOCKET=%s/none.sock\n" % (tmp, tmp))
    mgr = Manager(os.path.join(tmp, "notify-api"))
    api_sock = os.path.join(tmp, "api.sock")
    env = stack.clean_env({"CHAT_ENV_FILE": env_file, "NOTIFY_SOCKET": mgr.path,
                           "WATCHDOG_USEC": "200000"})
    p = subprocess.Popen([stack.CHAT_API, "--socket", api_sock], env=env,
                         stdout=subprocess.DEVNULL, stderr=open(os.path.join(tmp, "api.log"), "w"))
    try:
        ready = mgr.wait_for("READY=1", 20)
        chk.ok(ready is not None, "chat-api sends READY=1")
        chk.ok(connects(api_sock), "chat-api's socket accepts when READY=1 has arrived")
        # 100 ms pings: several within a generous window
        deadline = time.monotonic() + 20
        while mgr.count("WATCHDOG=1") < 3 and time.monotonic() < deadline:
            mgr.wait_for("never", 0.2)
        chk.ok(mgr.count("WATCHDOG=1") >= 3, "chat-api pings the watchdog (WATCHDOG_USEC=200000)",
               repr(mgr.got[-5:]))
        p.send_signal(signal.SIGTERM)
        chk.ok(mgr.wait_for("STOPPING=1", 20) is not None, "chat-api sends STOPPING=1 on SIGTERM")
        chk.eq(p.wait(20), 0, "chat-api exits 0")
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        mgr.close()

    # Without WATCHDOG_USEC: ready, but no pings; without NOTIFY_SOCKET: nothing breaks.
    mgr = Manager(os.path.join(tmp, "notify-api2"))
    env = stack.clean_env({"CHAT_ENV_FILE": env_file, "NOTIFY_SOCKET": mgr.path})
    p = subprocess.Popen([stack.CHAT_API, "--socket", api_sock], env=env,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        chk.ok(mgr.wait_for("READY=1", 20) is not None, "READY=1 without a watchdog")
        mgr.wait_for("never", 0.5)
        chk.eq(mgr.count("WATCHDOG=1"), 0, "no watchdog pings unless WATCHDOG_USEC is set")
        p.send_signal(signal.SIGTERM)
        chk.eq(p.wait(20), 0, "exits 0")
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        mgr.close()
    env = stack.clean_env({"CHAT_ENV_FILE": env_file, "NOTIFY_SOCKET": os.path.join(tmp, "nobody-listens")})
    p = subprocess.Popen([stack.CHAT_API, "--socket", api_sock], env=env,
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 20
        while not connects(api_sock) and time.monotonic() < deadline and p.poll() is None:
            time.sleep(0.05)
        chk.ok(connects(api_sock), "a NOTIFY_SOCKET nobody listens on does not stop chat-api")
        p.send_signal(signal.SIGTERM)
        _, err = p.communicate(timeout=20)
        chk.eq(p.returncode, 0, "exits 0")
        chk.eq(err.decode().count("cannot notify systemd"), 1, "the failure is logged once")
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


def tcp_connects(port):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.connect(("127.0.0.1", port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def daemon_cycle(chk, tmp, name, argv, env_file, serving=None):
    """READY=1 (then serving() holds), three pings at WATCHDOG_USEC=200000,
    STOPPING=1 on SIGTERM, exit 0."""
    mgr = Manager(os.path.join(tmp, "notify-" + name))
    env = stack.clean_env({"CHAT_ENV_FILE": env_file, "NOTIFY_SOCKET": mgr.path, "WATCHDOG_USEC": "200000"})
    log = open(os.path.join(tmp, name + ".log"), "w")
    p = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=log)
    try:
        ready = mgr.wait_for("READY=1", 20)
        chk.ok(ready is not None, "%s sends READY=1" % name)
        if serving is not None:
            chk.ok(serving(), "%s serves when READY=1 has arrived" % name)
        deadline = time.monotonic() + 20
        while mgr.count("WATCHDOG=1") < 3 and time.monotonic() < deadline:
            mgr.wait_for("never", 0.2)
        chk.ok(mgr.count("WATCHDOG=1") >= 3, "%s pings the watchdog (WATCHDOG_USEC=200000)" % name,
               repr(mgr.got[-5:]))
        chk.eq(mgr.count("STOPPING=1"), 0, "%s sends no STOPPING=1 before a signal" % name)
        p.send_signal(signal.SIGTERM)
        chk.ok(mgr.wait_for("STOPPING=1", 20) is not None, "%s sends STOPPING=1 on SIGTERM" % name)
        chk.eq(p.wait(30), 0, "%s exits 0" % name)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        log.close()
        mgr.close()

    # No WATCHDOG_USEC: ready, no pings.
    mgr = Manager(os.path.join(tmp, "notify2-" + name))
    env = stack.clean_env({"CHAT_ENV_FILE": env_file, "NOTIFY_SOCKET": mgr.path})
    p = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        chk.ok(mgr.wait_for("READY=1", 20) is not None, "%s: READY=1 without a watchdog" % name)
        mgr.wait_for("never", 0.5)
        chk.eq(mgr.count("WATCHDOG=1"), 0, "%s: no watchdog pings unless WATCHDOG_USEC is set" % name)
        p.send_signal(signal.SIGTERM)
        chk.eq(p.wait(30), 0, "%s exits 0" % name)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        mgr.close()


def t_chatd(chk, tmp):
    chatd = os.path.join(stack.BUILDDIR, "src", "chatd", "chatd")
    if not chk.ok(os.access(chatd, os.X_OK), "chatd is built", chatd):
        return
    port = stack.free_port()
    ctl = os.path.join(tmp, "control.sock")
    env_file = os.path.join(tmp, "chatd.env")
    with open(env_file, "w") as f:
        f.write("DATABASE_URL=sqlite:%s/chatd.db\nCONTROL_SOCKET=%s\nCHATD_LISTEN=127.0.0.1:%d\n" % (tmp, ctl, port))
    daemon_cycle(chk, tmp, "chatd", [chatd], env_file, lambda: tcp_connects(port) and connects(ctl))


def t_chat_sync(chk, tmp):
    sync = os.path.join(stack.BUILDDIR, "src", "sync", "chat-sync")
    if not chk.ok(os.access(sync, os.X_OK), "chat-sync is built", sync):
        return
    env_file = os.path.join(tmp, "sync.env")
    with open(env_file, "w") as f:
        # a receiver nobody runs: deliveries fail at once and are retried
        f.write("DATABASE_URL=sqlite:%s/sync.db\nCONTROL_SOCKET=%s/none.sock\n"
                "ROOM_EVENT_CALLBACK_URL=http://127.0.0.1:%d/hook\n" % (tmp, tmp, stack.free_port()))
    daemon_cycle(chk, tmp, "chat-sync", [sync, "--daemon"], env_file)
    # --once is not a service that stays: it says nothing
    mgr = Manager(os.path.join(tmp, "notify-once"))
    try:
        p = subprocess.run([sync, "--once"], env=stack.clean_env({"CHAT_ENV_FILE": env_file,
                                                                  "CALLBACK_MAX_RETRIES": "0",
                                                                  "NOTIFY_SOCKET": mgr.path}),
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60)
        mgr.wait_for("never", 0.2)
        chk.eq((p.returncode in (0, 1), mgr.got), (True, []), "chat-sync --once sends no notifications")
    finally:
        mgr.close()


def main():
    stack.setup_process()
    if not os.access(stack.CHAT_API, os.X_OK):
        print("chat-api not found at %s: build first" % stack.CHAT_API)
        return 1
    chk = stack.Checker("systemd notifications (READY, WATCHDOG, STOPPING)")
    tmp = tempfile.mkdtemp(prefix="chatd-notify-")
    try:
        chk.section("chat-api")
        t_chat_api(chk, tmp)
        chk.section("chatd")
        t_chatd(chk, tmp)
        chk.section("chat-sync --daemon")
        t_chat_sync(chk, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return chk.finish()


if __name__ == "__main__":
    sys.exit(main())
