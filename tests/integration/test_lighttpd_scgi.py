#!/usr/bin/python3
"""Integration test: lighttpd 1.4, chat-api --scgi on TCP (mod_scgi), WebSockets proxied to a stand-in chatd.
Runs the shared route suite (routes.py) through the web server.
Exit 0 on success, 1 on failure, 77 (skip) if the web server is missing."""
import os
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import stack  # noqa: E402

if __name__ == "__main__":
    sys.exit(stack.main_for_front("lighttpd-scgi", "lighttpd 1.4, chat-api --scgi on TCP (mod_scgi)"))
