#!/usr/bin/env python3
"""make demo: the real firmware on the MicroPython unix port, a simulated meter, a broker.

    python3 tools/demo.py                        embedded broker (amqtt) on a free loopback port
    python3 tools/demo.py --broker host:1883     an existing broker (make demo BROKER=host:port)
    DEMO_SECONDS=15 python3 tools/demo.py        stop by itself after 15 s

Starts (1) an MQTT broker unless one is given, (2) tools/meter_sim.py on a pty, pushing real
Aidon, Kaifa, Kamstrup and Swedish P1 frames from the corpus every ~2 s, and (3) the firmware
(firmware/main.py compiled to .mpy, host board, -X heapsize=code+96k) with a config in a
temporary data directory that points at the broker. It subscribes to the firmware's topics
and shows what arrives: on a terminal a table refreshed in place, otherwise one plain line
per message. Ctrl-C (or DEMO_SECONDS) stops everything and removes the temporary files.
"""
import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
import run_host  # noqa: E402

VENV_BIN = os.path.join(ROOT, ".venv", "bin")
METERS = ("ams-aidon-se-a", "ams-kaifa-no-list2-b", "ams-kamstrup-no-list3", "avi-se-ell5-p1")
KAMSTRUP_BAD = "hass-kamstrup-bad-fcs"  # one damaged frame per round: the counters move
ENERGY = (("active_energy_import", "import"), ("active_energy_export", "export"))


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def wait_port(host, port, timeout):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            socket.create_connection((host, port), 0.3).close()
            return True
        except OSError:
            time.sleep(0.1)
    return False


class Demo:
    def __init__(self, broker=None, seconds=None, tty=None, out=sys.stdout):
        self.out = out
        self.tty = out.isatty() if tty is None else tty
        self.seconds = seconds
        self.tmp = tempfile.mkdtemp(prefix="han-demo-")
        self.procs = []  # (name, Popen) in start order
        self.broker = broker
        self.lock = threading.Lock()
        self.meters = {}  # label -> (time, state dict)
        self.order = []
        self.diag = {}
        self.status = "?"
        self.device = None
        self.readings = 0
        self.lines = 0
        self.stopping = False

    # ---- processes ----

    def _start(self, name, cmd, **kw):
        logf = open(os.path.join(self.tmp, name + ".log"), "wb")
        p = subprocess.Popen(cmd, stdout=kw.pop("stdout", logf), stderr=subprocess.STDOUT,
                             start_new_session=True, **kw)
        logf.close()
        self.procs.append((name, p))
        return p

    def start_broker(self):
        if self.broker:
            host, port = run_host.parse_hostport(self.broker)
            if not wait_port(host, port, 3):
                raise SystemExit("demo: no MQTT broker answers at %s:%d" % (host, port))
            return host, port
        port = free_port()
        conf = os.path.join(self.tmp, "amqtt.yaml")
        with open(conf, "w") as f:
            f.write("listeners:\n  default:\n    type: tcp\n    bind: 127.0.0.1:%d\n"
                    "plugins:\n  amqtt.plugins.authentication.AnonymousAuthPlugin:\n"
                    "    allow_anonymous: true\n" % port)
        self._start("broker", [os.path.join(VENV_BIN, "amqtt"), "-c", conf])
        if not wait_port("127.0.0.1", port, 20):
            raise SystemExit("demo: the embedded broker did not start (see %s)" % self.tmp)
        return "127.0.0.1", port

    def start_meter(self):
        link = os.path.join(self.tmp, "meter-tty")
        ids = ",".join(METERS + (KAMSTRUP_BAD,))
        # 10 meter-seconds between pushes, 5x faster: a frame about every 2 s
        p = self._start("meter", [sys.executable, os.path.join(HERE, "meter_sim.py"), "--ids", ids,
                                  "--pty", "--link", link, "--speed", "5", "--interval", "10",
                                  "--loop", "--quiet"], stdout=subprocess.PIPE)
        first = p.stdout.readline().decode().strip()
        if not first.startswith("PTY "):
            raise SystemExit("demo: the meter simulator did not start: %r" % first)
        threading.Thread(target=lambda: p.stdout.read(), daemon=True).start()
        return link, first[4:]

    def start_firmware(self, host, port, link):
        data = os.path.join(self.tmp, "data")
        os.makedirs(data)
        run_host.write_config(data, run_host.host_config("%s:%d" % (host, port)))
        fw = run_host.prepare_firmware()
        env = run_host.firmware_env(data, "pty:" + link, 5, fw_dir=fw)
        return self._start("firmware", run_host.firmware_cmd(run_host.heap_arg("code+96k", fw), fw),
                           env=env)

    def stop(self):
        if self.stopping:
            return
        self.stopping = True
        # firmware first, with SIGINT: it publishes "offline" and disconnects cleanly
        for name, p in reversed(self.procs):
            if p.poll() is None:
                try:
                    p.send_signal(signal.SIGINT if name == "firmware" else signal.SIGTERM)
                except ProcessLookupError:
                    pass
                try:
                    p.wait(5)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait(5)
        shutil.rmtree(self.tmp, ignore_errors=True)

    # ---- MQTT ----

    def subscribe(self, host, port):
        import paho.mqtt.client as paho

        c = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="han-demo-%d" % os.getpid())
        c.on_connect = lambda cl, u, f, rc, p=None: cl.subscribe("han/#")
        c.on_message = self.on_message
        c.reconnect_delay_set(1, 5)
        c.connect_async(host, port, 30)
        c.loop_start()
        return c

    def on_message(self, client, userdata, m):
        parts = m.topic.split("/")
        if len(parts) < 3:
            return
        kind = parts[-1]
        with self.lock:
            self.device = parts[1]
            if kind == "status":
                self.status = m.payload.decode(errors="replace")
                self.plain("status: %s" % self.status)
            elif kind == "diagnostics":
                try:
                    self.diag = json.loads(m.payload)
                except ValueError:
                    return
                self.plain("diagnostics: " + diag_line(self.diag))
            elif kind == "state":
                try:
                    st = json.loads(m.payload)
                except ValueError:
                    return
                label = meter_label(st)
                if label not in self.meters:
                    self.order.append(label)
                self.meters[label] = (time.monotonic(), st)
                self.readings += 1
                self.plain("reading: %-22s %s" % (label, reading_line(st)))

    def plain(self, text):
        if not self.tty:
            self.out.write(time.strftime("%H:%M:%S ") + text + "\n")
            self.out.flush()
            self.lines += 1

    # ---- the live view ----

    def render(self, host, port, pty):
        now = time.monotonic()
        d = self.diag
        c = d.get("counters", {})
        rows = [
            "\x1b[1mHAN reader demo\x1b[0m  firmware %s on MicroPython (unix port), host board"
            % (d.get("version") or "?"),
            "broker %s:%d   meter simulator on %s   device %s: %s"
            % (host, port, pty, self.device or "?", self.status),
            "frames ok %s  bad crc %s  truncated %s  decrypt failed %s  skipped bytes %s  "
            "MQTT reconnects %s  serial %s  heap free %s  uptime %s s"
            % (c.get("frames_ok", "-"), c.get("bad_crc", "-"), c.get("truncated", "-"),
               c.get("decrypt_failed", "-"), c.get("skipped_bytes", "-"), d.get("reconnects", "-"),
               (d.get("serial") or {}).get("format", "-"), d.get("free_heap", "-"),
               d.get("uptime_s", "-")),
            "",
            "%-24s %9s %9s  %-17s %-17s %-17s %14s %12s %5s"
            % ("meter", "power in", "power out", "L1", "L2", "L3", "import kWh", "export kWh", "age"),
        ]
        for label in self.order:
            t, st = self.meters[label]
            rows.append("%-24s %9s %9s  %-17s %-17s %-17s %14s %12s %4ds" % (
                label[:24], watts(st.get("active_power_import")), watts(st.get("active_power_export")),
                phase(st, 1), phase(st, 2), phase(st, 3), kwh(st.get("active_energy_import")),
                kwh(st.get("active_energy_export")), now - t))
        if not self.order:
            rows.append("(waiting for the first reading)")
        rows += ["", "%d readings received. Ctrl-C stops the demo." % self.readings]
        # home, each line cleared to its end, the rest of the screen cleared: no flicker
        self.out.write("\x1b[H" + "".join(r + "\x1b[K\n" for r in rows) + "\x1b[J")
        self.out.flush()

    def run(self):
        for sig in (signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, _interrupt)
        client = None
        try:
            host, port = self.start_broker()
            link, pty = self.start_meter()
            fw = self.start_firmware(host, port, link)
            client = self.subscribe(host, port)
            if not self.tty:
                self.plain("demo: broker %s:%d, meter on %s, processes %s, files in %s" % (
                    host, port, pty, " ".join("%s=%d" % (n, p.pid) for n, p in self.procs),
                    self.tmp))
            t_end = time.monotonic() + self.seconds if self.seconds else None
            while t_end is None or time.monotonic() < t_end:
                if fw.poll() is not None:
                    self.plain("demo: the firmware exited with %s" % fw.returncode)
                    tail = open(os.path.join(self.tmp, "firmware.log"), "rb").read()[-2000:]
                    sys.stderr.write(tail.decode(errors="replace"))
                    return 1
                if self.tty:
                    with self.lock:
                        self.render(host, port, pty)
                time.sleep(0.5)
        except KeyboardInterrupt:
            pass
        finally:
            if client is not None:
                client.loop_stop()
                client.disconnect()
            self.stop()
        if not self.tty:
            self.plain("demo: stopped after %d readings" % self.readings)
        else:
            self.out.write("demo stopped: %d readings received, everything shut down\n"
                           % self.readings)
        return 0


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def meter_label(st):
    for k in ("meter_type", "list_id", "meter_id"):
        if st.get(k):
            return str(st[k]).strip("/")
    return "(meter without id)"


def watts(v):
    if v is None:
        return "-"
    return "%.0f W" % float(v)


def kwh(v):
    if v is None:
        return "-"
    return "%.3f" % (float(v) / 1000)


def phase(st, n):
    v = st.get("voltage_l%d" % n)
    a = st.get("current_l%d" % n)
    if v is None and a is None:
        return "-"
    return "%s V %s A" % ("-" if v is None else "%.1f" % float(v),
                          "-" if a is None else "%.2f" % float(a))


def reading_line(st):
    parts = ["P+ " + watts(st.get("active_power_import"))]
    if st.get("active_power_export") is not None:
        parts.append("P- " + watts(st.get("active_power_export")))
    for n in (1, 2, 3):
        p = phase(st, n)
        if p != "-":
            parts.append("L%d %s" % (n, p))
    for k, name in ENERGY:
        if st.get(k) is not None:
            parts.append("%s %s kWh" % (name, kwh(st.get(k))))
    return ", ".join(parts)


def diag_line(d):
    c = d.get("counters", {})
    return ("frames ok %s, bad crc %s, truncated %s, decrypt failed %s, reconnects %s, "
            "last frame %s s ago, serial %s, heap free %s" % (
                c.get("frames_ok"), c.get("bad_crc"), c.get("truncated"), c.get("decrypt_failed"),
                d.get("reconnects"), d.get("last_frame_age_s"),
                (d.get("serial") or {}).get("format"), d.get("free_heap")))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--broker", default=os.environ.get("BROKER") or None,
                    help="use this MQTT broker (host:port) instead of the embedded one")
    ap.add_argument("--seconds", type=float, default=float(os.environ.get("DEMO_SECONDS") or 0),
                    help="stop after this long (default: until Ctrl-C)")
    ap.add_argument("--plain", action="store_true", help="plain lines even on a terminal")
    a = ap.parse_args(argv)
    demo = Demo(a.broker, a.seconds or None, tty=False if a.plain else None)
    return demo.run()


if __name__ == "__main__":
    sys.exit(main())
