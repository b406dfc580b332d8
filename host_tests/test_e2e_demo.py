# `make demo` in a test: the demo runs ~15 s without a terminal (plain lines), shows readings
# from all four meter makes, then stops by itself and leaves no process or file behind.
import os
import re
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _gone(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    # still there: a zombie of an exited parent is reaped by init soon
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().split(") ")[1].startswith("Z")
    except OSError:
        return True


def test_demo_shows_readings_and_cleans_up():
    env = dict(os.environ, DEMO_SECONDS="15")
    env.pop("BROKER", None)
    t0 = time.monotonic()
    r = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "demo.py")], env=env,
                       capture_output=True, text=True, timeout=90)
    took = time.monotonic() - t0
    out = r.stdout
    assert r.returncode == 0, out[-2000:] + r.stderr[-2000:]
    assert "\x1b[" not in out  # no ANSI codes when stdout is not a terminal
    readings = [l for l in out.splitlines() if " reading: " in l]
    assert len(readings) >= 4, out
    text = "\n".join(readings)
    assert "import 1605.055 kWh" in text  # Swedish P1: 1-0:1.8.0(00001605.055*kWh)
    assert "L1 228.9 V 9.60 A" in text  # Aidon
    assert "MA304H3E" in text  # Kaifa
    assert "6841131BN243101040" in text  # Kamstrup
    assert "status: online" in out
    assert re.search(r"demo: stopped after \d+ readings", out)
    assert took < 60
    m = re.search(r"processes (.*?), files in (\S+)", out)
    assert m, out
    pids = [int(x.split("=")[1]) for x in m.group(1).split()]
    assert len(pids) == 3  # broker, meter, firmware
    time.sleep(0.5)
    assert all(_gone(p) for p in pids), pids
    assert not os.path.exists(m.group(2))
