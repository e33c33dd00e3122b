#!/usr/bin/python3
"""chat-sync's delivery rules (test_sync_delivery.py) on PostgreSQL (pgsuite.py)."""
import os
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pgsuite  # noqa: E402

pgsuite.run("test_sync_delivery.py")
