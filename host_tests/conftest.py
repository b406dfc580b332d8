# pytest setup: the firmware and tools on sys.path, and paths to the host tools.
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
for p in (os.path.join(ROOT, "firmware"), os.path.join(ROOT, "host_tests"), os.path.join(ROOT, "tools")):
    if p not in sys.path:
        sys.path.insert(0, p)

VENV = os.path.join(ROOT, ".venv")
MICROPYTHON = os.path.join(VENV, "bin", "micropython")
MPLIB = os.path.join(VENV, "mplib")
