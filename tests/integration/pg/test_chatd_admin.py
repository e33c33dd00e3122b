#!/usr/bin/python3
"""The chatd admin suite (test_chatd_admin.py), through nginx on PostgreSQL (pgsuite.py)."""
import os
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pgsuite  # noqa: E402

pgsuite.run("test_chatd_admin.py", fronts="nginx")
