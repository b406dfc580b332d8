#!/usr/bin/env python3
"""End-to-end figures for the firmware on the MicroPython unix port (make bench-e2e).

1. Latency: real frames (Swedish P1, Kamstrup, Aidon, Kaifa) are written into a pty, one at a
   time; the time from writing a frame's last byte to the state message arriving at a
   subscriber of a local mosquitto, over --frames frames (default 1000): p50, p90, p99, max.
   Target p99 < 20 ms on the host.
2. Heap: the live heap after gc.collect() in the firmware's diagnostics during that run, and
   the smallest working heap (beyond the loaded code, which a device keeps in flash) with
   which the firmware still runs a short soak without MemoryError.

Needs mosquitto (make system-deps). Prints a small report; --json writes the numbers too.
"""
import argparse
import json
import os
import pty
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import tty

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
import run_host  # noqa: E402

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
FRAME_IDS = ("avi-se-ell5-p1", "ams-kamstrup-no-list3", "ams-aidon-se-a", "ams-kaifa-no-list2-b")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def wait_port(port, timeout=5):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return True
        except OSError:
            time.sleep(0.05)
    return False


def corpus_frames(ids):
    recs = {}
    with open(run_host.VECTORS) as f:
        for line in f:
            if line.strip():
                r = json.loads(line)
                recs[r["id"]] = r
    return [bytes.fromhex(recs[i]["hex"]) for i in ids]


def pct(xs, p):
    s = sorted(xs)
    return s[min(len(s) - 1, int(round(p / 100.0 * (len(s) - 1))))]


class Sub:
    def __init__(self, port):
        import paho.mqtt.client as paho

        self.cond = threading.Condition()
        self.states = []  # arrival times
        self.diags = []
        self.online = False
        c = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="bench-%d" % os.getpid())
        c.on_connect = lambda cl, u, f, rc, p=None: cl.subscribe("han/#")
        c.on_message = self._msg
        c.connect("127.0.0.1", port, 30)
        c.loop_start()
        self.c = c

    def _msg(self, client, userdata, m):
        t = time.monotonic()
        with self.cond:
            if m.topic.endswith("/state"):
                self.states.append(t)
            elif m.topic.endswith("/status"):
                self.online = m.payload == b"online"
            elif m.topic.endswith("/diagnostics"):
                self.diags.append(json.loads(m.payload))
            self.cond.notify_all()

    def wait_states(self, n, timeout):
        end = time.monotonic() + timeout
        with self.cond:
            while len(self.states) < n:
                left = end - time.monotonic()
                if left <= 0:
                    return False
                self.cond.wait(left)
        return True

    def close(self):
        self.c.loop_stop()
        self.c.disconnect()


def latency(frames, n, port, tmp):
    master, slave = pty.openpty()
    tty.setraw(master)
    path = os.ttyname(slave)
    data = os.path.join(tmp, "lat")
    os.makedirs(data)
    run_host.write_config(data, run_host.host_config("127.0.0.1:%d" % port))
    fw_dir = run_host.prepare_firmware()
    env = run_host.firmware_env(data, "pty:" + path, 5, fw_dir=fw_dir)
    log = open(os.path.join(tmp, "fw.log"), "wb")
    fw = subprocess.Popen(run_host.firmware_cmd(run_host.heap_arg("code+96k", fw_dir), fw_dir),
                          env=env, stdout=log, stderr=subprocess.STDOUT)
    sub = Sub(port)
    lat = []
    try:
        end = time.monotonic() + 20
        while not sub.online and time.monotonic() < end:
            time.sleep(0.05)  # readings before MQTT is up are dropped, not queued
        # warm up: the first readings also carry the discovery announcements
        for i in range(len(frames) * 2):
            os.write(master, frames[i % len(frames)])
            if not sub.wait_states(i + 1, 20):
                raise SystemExit("bench: no reading from the firmware (see %s)" % log.name)
            time.sleep(0.3)
        time.sleep(1.0)
        base = len(sub.states)
        for i in range(n):
            f = frames[i % len(frames)]
            os.write(master, f[:-16])
            time.sleep(0.003)
            os.write(master, f[-16:])
            t0 = time.monotonic()
            if not sub.wait_states(base + i + 1, 5):
                raise SystemExit("bench: frame %d was not published" % i)
            lat.append((sub.states[base + i] - t0) * 1000.0)
            time.sleep(0.005 + (i % 7) * 0.003)  # vary the phase against the firmware's loop
        time.sleep(2.5)
    finally:
        sub.close()
        fw.send_signal(signal.SIGINT)
        try:
            fw.wait(10)
        except subprocess.TimeoutExpired:
            fw.kill()
        log.close()
        os.close(master)
        os.close(slave)
    live = [d.get("heap_used") for d in sub.diags if d.get("heap_used")]
    loops = [d.get("max_loop_ms") or 0 for d in sub.diags]
    return lat, live, max(loops) if loops else None


def min_heap(port, tmp, frames=3000):
    # The smallest working heap (beyond the code) for a short soak without MemoryError. On the
    # unix port this is set by fragmentation (the .mpy loader leaves the code scattered
    # through the heap), not by the live data, which is much smaller.
    fw_dir = run_host.prepare_firmware()
    code = run_host.code_footprint(fw_dir)
    ok = None
    for extra_k in (40, 48, 56, 64, 72, 80, 88, 96, 128):
        d = os.path.join(tmp, "heap%d" % extra_k)
        os.makedirs(d)
        r = subprocess.run([sys.executable, os.path.join(HERE, "run_host.py"), "--broker",
                            "127.0.0.1:%d" % port, "--soak", str(frames), "--soak-every",
                            str(frames), "--diag-s", "0.2", "--data", d,
                            "--heapsize", "code+%dk" % extra_k],
                           capture_output=True, text=True, timeout=300)
        out = r.stdout + r.stderr
        # it must run clean: no MemoryError anywhere (the publisher would catch one in
        # connect and retry), connected to the broker, every frame through
        if (r.returncode == 0 and "SOAK done" in out and "MemoryError" not in out
                and "mqtt: connected" in out):
            ok = extra_k
            break
    return code, ok


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=1000)
    ap.add_argument("--json", help="also write the figures to this file")
    a = ap.parse_args(argv)
    tmp = tempfile.mkdtemp(prefix="han-bench-")
    port = free_port()
    with open(os.path.join(tmp, "m.conf"), "w") as f:
        f.write("listener %d 127.0.0.1\nallow_anonymous true\npersistence false\n" % port)
    broker = subprocess.Popen([MOSQUITTO, "-c", os.path.join(tmp, "m.conf")],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        if not wait_port(port):
            raise SystemExit("bench: mosquitto did not start")
        lat, live, max_loop = latency(corpus_frames(FRAME_IDS), a.frames, port, tmp)
        code, extra_k = min_heap(port, tmp)
    finally:
        broker.terminate()
        broker.wait(5)
        shutil.rmtree(tmp, ignore_errors=True)
    res = {"frames": len(lat), "p50_ms": pct(lat, 50), "p90_ms": pct(lat, 90),
           "p99_ms": pct(lat, 99), "max_ms": max(lat), "live_heap_max": max(live) if live else None,
           "code_bytes": code, "live_data_max": (max(live) - code) if live else None,
           "min_working_heap_k": extra_k, "max_loop_ms": max_loop,
           "load_avg": os.getloadavg()[0]}
    print("end-to-end latency, last byte into the pty -> state message at a subscriber "
          "(%d frames: P1, Kamstrup, Aidon, Kaifa):" % res["frames"])
    print("  p50 %.2f ms   p90 %.2f ms   p99 %.2f ms   max %.2f ms   (target p99 < 20 ms: %s)"
          % (res["p50_ms"], res["p90_ms"], res["p99_ms"], res["max_ms"],
             "met" if res["p99_ms"] < 20 else "MISSED"))
    print("  longest firmware loop pass: %s ms; host load average %.1f"
          % (max_loop, res["load_avg"]))
    print("heap on the unix port (x64):")
    print("  loaded code %d bytes (frozen into flash on a device image)" % code)
    if live:
        print("  live heap after gc.collect(): max %d bytes = code + %d bytes of data"
              % (res["live_heap_max"], res["live_data_max"]))
    print("  smallest working heap that runs a %s: %s" % (
        "3000-frame soak", ("code + %d KB" % extra_k) if extra_k else "none of the tried sizes"))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(res, f, indent=1)
    return 0 if res["p99_ms"] < 20 else 1


if __name__ == "__main__":
    sys.exit(main())
