# The decoder's test files again, on the real MicroPython unix port (host-only wrapper).
import os
import subprocess

import pytest

from conftest import MICROPYTHON, ROOT
from decoder_tests import MODULES


@pytest.mark.parametrize("module", MODULES)
def test_module_passes_on_micropython(module):
    if not os.path.exists(os.path.join(ROOT, "host_tests", module + ".py")):
        pytest.fail("missing decoder test file " + module)
    env = dict(os.environ, MICROPYPATH=".frozen:firmware:host_tests")
    p = subprocess.run([MICROPYTHON, "-X", "heapsize=8m", "host_tests/run_mpy.py", module], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=900)
    out = p.stdout + p.stderr
    assert p.returncode == 0, out[-4000:]
    assert " 0 failed" in out and "PASS " in out, out[-2000:]
