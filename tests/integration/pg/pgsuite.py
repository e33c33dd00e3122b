"""
Runs one of tests/integration's suites on PostgreSQL: sets CHAT_TEST_DB=pg
(testdb.py: one throwaway server for the script, a fresh database per
stack) and runs the suite's script as its own main. fronts narrows a
suite that runs on every installed web server to those named (the
database under test is the same behind each).

Python 3 standard library only.
"""

import os
import runpy
import sys

SUITES = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))


def run(script, fronts=None):
    os.environ["CHAT_TEST_DB"] = "pg"
    if fronts:
        os.environ["CHATD_FRONTS"] = fronts
    sys.argv = [os.path.join(SUITES, script)]
    sys.path.insert(0, SUITES)
    runpy.run_path(sys.argv[0], run_name="__main__")
