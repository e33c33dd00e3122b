#!/usr/bin/python3
"""Two chat-sync daemons on one database (test_sync_two_daemons.py) on PostgreSQL (pgsuite.py): the advisory lock."""
import os
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pgsuite  # noqa: E402

pgsuite.run("test_sync_two_daemons.py")
