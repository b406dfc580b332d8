# End-to-end test helpers: the real firmware on the MicroPython unix port (host board), the
# meter simulator on a pty, and a real mosquitto (mqtt_support.broker / Broker / Collector).
#
#   sim = Sim(tmp_path, ["avi-se-ell5-p1"], speed=10, interval=5)      # tools/meter_sim.py
#   fw = Firmware(tmp_path, "pty:" + sim.link, broker=(host, port), diag_s=1)
#   fw.wait_line("mqtt: connected"); ...; rc = fw.stop()
#
# Expected values come from the corpus through the CPython decoder (decode_support.run),
# whose output test_corpus.py checks against the sources' own values.
import json
import os
import signal
import subprocess
import sys
import threading
import time
from decimal import Decimal

import corpus
import expect
from decode_support import key_of, run
from han import obis

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOOLS = os.path.join(ROOT, "tools")
if TOOLS not in sys.path:
    sys.path.insert(0, TOOLS)
import run_host  # noqa: E402

ENERGY = ("active_energy_import", "active_energy_export",
          "reactive_energy_import", "reactive_energy_export")
# One meter of each family the issue names: Aidon (SE list), Kaifa (NO list 2, positional),
# Kamstrup (NO list 2), a Swedish P1 telegram.
FOUR_METERS = ("ams-aidon-se-a", "ams-kaifa-no-list2-b", "ams-kamstrup-no-list3",
               "avi-se-ell5-p1")

_fw_cache = {}


def firmware_dir():
    if "dir" not in _fw_cache:
        _fw_cache["dir"] = run_host.prepare_firmware()
    return _fw_cache["dir"]


def heap_for(spec):
    key = "heap:" + spec
    if key not in _fw_cache:
        _fw_cache[key] = run_host.heap_arg(spec, firmware_dir())
    return _fw_cache[key]


class Proc:
    # A child process whose output lines are collected by a thread, with timestamps.
    def __init__(self, cmd, env=None, cwd=None):
        self.lines = []
        self._lock = threading.Lock()
        self.proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True, bufsize=1,
                                     errors="replace")
        self._t = threading.Thread(target=self._read, daemon=True)
        self._t.start()

    def _read(self):
        for line in self.proc.stdout:
            with self._lock:
                self.lines.append((time.monotonic(), line.rstrip("\n")))

    def output(self):
        with self._lock:
            return "\n".join(l for _, l in self.lines)

    def wait_line(self, text, timeout=10.0, after=0.0):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            with self._lock:
                for t, l in self.lines:
                    if t >= after and text in l:
                        return l
            if self.proc.poll() is not None:
                time.sleep(0.1)
                with self._lock:
                    for t, l in self.lines:
                        if t >= after and text in l:
                            return l
                return None
            time.sleep(0.02)
        return None

    @property
    def alive(self):
        return self.proc.poll() is None

    def stop(self, sig=signal.SIGINT, timeout=10.0):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._t.join(2)
        return self.proc.returncode


class Sim(Proc):
    # tools/meter_sim.py on a pty, reachable at self.link (a symlink that survives restarts).
    def __init__(self, tmp_path, ids, speed=10.0, interval=5.0, loop=True, count=None,
                 extra=(), link=None):
        self.link = link or os.path.join(str(tmp_path), "meter-tty")
        cmd = [sys.executable, os.path.join(TOOLS, "meter_sim.py"), "--ids", ",".join(ids),
               "--pty", "--link", self.link, "--speed", str(speed), "--interval", str(interval),
               "--quiet", "--seed", "7"]
        cmd += ["--loop"] if loop else ["--count", str(count)]
        super().__init__(cmd + list(extra))
        first = None
        end = time.monotonic() + 10
        while time.monotonic() < end and first is None:
            with self._lock:
                first = self.lines[0][1] if self.lines else None
            time.sleep(0.02)
        assert first and first.startswith("PTY "), "meter_sim did not start: %r" % first
        self.pty = first.split(None, 1)[1]


class Firmware(Proc):
    # The firmware (firmware/main.py as compiled .mpy, like a device) on the unix port.
    def __init__(self, tmp_path, uart, broker=None, cfg=None, diag_s=1.0, heapsize="code+96k",
                 env=None, config=True, name="fw"):
        self.data = os.path.join(str(tmp_path), name)
        os.makedirs(self.data, exist_ok=True)
        if config:
            c = run_host.host_config("%s:%d" % tuple(broker) if broker else None, **(cfg or {}))
            run_host.write_config(self.data, c)
        fw = firmware_dir()
        extra = {"HAN_IDLE_MS": "150"}
        extra.update(env or {})
        e = run_host.firmware_env(self.data, uart, diag_s, extra, fw_dir=fw)
        super().__init__(run_host.firmware_cmd(heap_for(heapsize), fw), env=e)

    def crashed(self):
        out = self.output()
        return "Traceback" in out or "MemoryError" in out or "fatal error" in out


def mqtt_json(payload):
    # Numbers as exact decimals (the firmware writes the meter's decimal text).
    return json.loads(payload, parse_float=Decimal, parse_int=Decimal)


def frame_values(vid):
    # {canonical name: Decimal} the decoder makes of a corpus frame, plus its texts.
    r = corpus.by_id(vid)
    _, out = run(corpus.frame_bytes(r), key_of(r), key_of(r, "auth_key_hex"))
    assert out, "corpus frame %s does not decode" % vid
    decoded, info = out[-1]
    return {k: Decimal(v) for k, v in info["names"].items()}, decoded, info


def expected_by_name(vid):
    # The corpus' own expected values for table slots: {canonical name: Decimal}.
    r = corpus.by_id(vid)
    out = {}
    for key, want in (r.get("expected") or {}).items():
        code = expect.obis_key(key)
        if code is None or not isinstance(want, str):
            continue
        a, rest = code.split("-", 1)
        b, cde = rest.split(":", 1)
        c, d, e = (int(x) for x in cde.split("."))
        slot = obis.lookup(int(a), int(b), c, d, e)
        if slot < 0 or slot >= obis.NUM_SLOTS:
            continue
        n = expect.expected_number(want)
        if n is None:
            continue
        out[obis.NAMES[slot]] = Decimal(n[0]).scaleb(n[1])
    return out


def numbers_of(state):
    return {k: v for k, v in state.items() if isinstance(v, Decimal)}


def diag_msgs(col):
    return [mqtt_json(m.payload) for m in col.snapshot() if m.topic.endswith("/diagnostics")]


def state_msgs(col):
    return [mqtt_json(m.payload) for m in col.snapshot() if m.topic.endswith("/state")]
