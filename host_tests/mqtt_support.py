# Reusable MQTT test helpers (pytest, CPython): a real mosquitto on a free loopback port, a
# paho-mqtt collector, and a MicroPython (unix port) process that runs firmware code on
# command. Use from any test file:
#
#   from mqtt_support import broker, Collector, MpyDriver   # `broker` is a pytest fixture
#
#   def test_x(broker, tmp_path):
#       host, port = broker                  # a tuple ...
#       broker.kill(); broker.restart()      # ... with kill / restart / stop (same port)
#       with Collector(host, port, "han/#") as col:
#           col.wait_for(lambda m: m.topic == "han/x/status")
#
# Nothing is mocked: mosquitto is the real broker (/usr/sbin/mosquitto, own temp config, never
# the system service); tests are skipped when it is not installed.
import json
import os
import queue
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MICROPYTHON = os.path.join(ROOT, ".venv", "bin", "micropython")
MPLIB = os.path.join(ROOT, ".venv", "mplib")
MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
MOSQUITTO_PASSWD = shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd"


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def wait_port(host, port, timeout=5.0, up=True):
    # Wait until the port accepts (up=True) or refuses (up=False) connections.
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            socket.create_connection((host, port), 0.2).close()
            ok = True
        except OSError:
            ok = False
        if ok == up:
            return True
        time.sleep(0.02)
    return False


class Broker:
    # A private mosquitto: listener on 127.0.0.1:<port>, no persistence. users: {name: password}
    # turns anonymous access off (needs mosquitto_passwd).
    def __init__(self, port=None, users=None, workdir=None):
        self.host = "127.0.0.1"
        self.port = port or free_port()
        self.dir = workdir or tempfile.mkdtemp(prefix="mqtt-broker-")
        self.proc = None
        self.users = users
        lines = ["listener %d 127.0.0.1" % self.port, "persistence false"]
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            # started as root, mosquitto would switch to its own user, which cannot read
            # files in pytest's private tmp_path
            lines.append("user root")
        if users:
            pw = os.path.join(self.dir, "passwd")
            open(pw, "w").close()
            os.chmod(pw, 0o600)
            for u, p in users.items():
                subprocess.run([MOSQUITTO_PASSWD, "-b", pw, u, p], check=True,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            lines += ["allow_anonymous false", "password_file " + pw]
        else:
            lines.append("allow_anonymous true")
        self.conf = os.path.join(self.dir, "mosquitto.conf")
        with open(self.conf, "w") as f:
            f.write("\n".join(lines) + "\n")
        self.logf = os.path.join(self.dir, "mosquitto.log")

    def start(self):
        log = open(self.logf, "ab")
        self.proc = subprocess.Popen([MOSQUITTO, "-c", self.conf, "-v"], stdout=log,
                                     stderr=subprocess.STDOUT)
        log.close()
        if not wait_port(self.host, self.port):
            self.stop()
            raise RuntimeError("mosquitto did not start on port %d" % self.port)
        return self

    def kill(self):
        # SIGKILL: the broker vanishes without a goodbye (clients see a closed socket).
        if self.proc is not None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(5)
            self.proc = None
            wait_port(self.host, self.port, 2.0, up=False)

    def restart(self):
        self.kill()
        # the port may linger in TIME_WAIT; mosquitto sets SO_REUSEADDR, retry briefly anyway
        for _ in range(20):
            try:
                return self.start()
            except RuntimeError:
                time.sleep(0.1)
        raise RuntimeError("mosquitto did not restart")

    def stop(self):
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
            self.proc = None

    @property
    def running(self):
        return self.proc is not None and self.proc.poll() is None


class BrokerAddr(tuple):
    # (host, port) that also carries the Broker: broker.kill(), .restart(), .stop(), .broker
    def __new__(cls, b):
        t = tuple.__new__(cls, (b.host, b.port))
        t.broker = b
        return t

    host = property(lambda self: self[0])
    port = property(lambda self: self[1])

    def kill(self):
        self.broker.kill()

    def restart(self):
        self.broker.restart()

    def stop(self):
        self.broker.stop()


def _need_mosquitto():
    if not os.path.exists(MOSQUITTO):
        pytest.skip("mosquitto not installed (make system-deps)")


@pytest.fixture
def broker(tmp_path):
    # A fresh mosquitto per test: yields (host, port) with .kill() / .restart() / .stop().
    _need_mosquitto()
    b = Broker(workdir=str(tmp_path)).start()
    try:
        yield BrokerAddr(b)
    finally:
        b.stop()


class Msg:
    __slots__ = ("topic", "payload", "retain", "t")

    def __init__(self, topic, payload, retain):
        self.topic = topic
        self.payload = payload
        self.retain = retain
        self.t = time.monotonic()

    def text(self):
        return self.payload.decode("utf-8")

    def json(self):
        return json.loads(self.payload)

    def __repr__(self):
        r = ", retained" if self.retain else ""
        return "Msg(%r, %r%s)" % (self.topic, self.payload[:80], r)


class Collector:
    # A paho-mqtt subscriber that records every message (topic, payload bytes, retain flag).
    def __init__(self, host, port, *topics, user=None, password=None):
        import paho.mqtt.client as paho

        self.msgs = []
        self._lock = threading.Lock()
        self._ready = threading.Event()
        self.topics = topics or ("#",)
        c = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="collector-%d" % free_port())
        if user:
            c.username_pw_set(user, password)
        c.on_connect = self._on_connect
        c.on_message = self._on_message
        c.on_subscribe = lambda *a: self._ready.set()
        self.client = c
        c.connect(host, port, 30)
        c.loop_start()
        if not self._ready.wait(5):
            raise RuntimeError("collector could not subscribe")

    def _on_connect(self, client, userdata, flags, rc, props=None):
        client.subscribe([(t, 0) for t in self.topics])

    def _on_message(self, client, userdata, m):
        with self._lock:
            self.msgs.append(Msg(m.topic, bytes(m.payload), bool(m.retain)))

    def publish(self, topic, payload, retain=False):
        self.client.publish(topic, payload, qos=1, retain=retain).wait_for_publish(5)

    def snapshot(self):
        with self._lock:
            return list(self.msgs)

    def on(self, topic):
        return [m for m in self.snapshot() if m.topic == topic]

    def last(self, topic):
        ms = self.on(topic)
        return ms[-1] if ms else None

    def wait_for(self, pred, timeout=5.0):
        end = time.monotonic() + timeout
        while True:
            for m in self.snapshot():
                if pred(m):
                    return m
            if time.monotonic() > end:
                return None
            time.sleep(0.02)

    def wait_count(self, pred, n, timeout=5.0):
        end = time.monotonic() + timeout
        while True:
            ms = [m for m in self.snapshot() if pred(m)]
            if len(ms) >= n or time.monotonic() > end:
                return ms
            time.sleep(0.02)

    def clear(self):
        with self._lock:
            self.msgs = []

    def close(self):
        self.client.loop_stop()
        try:
            self.client.disconnect()
        except Exception:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()


# The MicroPython side: a REPL-like driver. Each request line is a JSON string of source code;
# "=" + expression returns its value. Replies: "@@OK <json>" or "@@ERR <text>". Every other
# output line (the firmware's log) is kept in MpyDriver.lines.
DRIVER = r'''
import sys, json
from time import ticks_ms, ticks_diff, ticks_add, sleep_ms
from han.reading import Reading
from han import obis, export

LOGS = []
RAISED = []

def log(msg):
    LOGS.append(msg)
    print("LOG " + msg)

def run(ms, step=10):
    # Call pub.poll() every `step` ms for `ms` ms; an exception escaping poll() is recorded.
    t0 = ticks_ms()
    while ticks_diff(ticks_ms(), t0) < ms:
        try:
            pub.poll(ticks_ms())
        except Exception as e:
            RAISED.append(repr(e))
        sleep_ms(step)
    return pub.connected

def run_until(cond, ms, step=10):
    t0 = ticks_ms()
    while ticks_diff(ticks_ms(), t0) < ms:
        try:
            pub.poll(ticks_ms())
        except Exception as e:
            RAISED.append(repr(e))
        if cond():
            return ticks_diff(ticks_ms(), t0)
        sleep_ms(step)
    return None

def mk(values, texts=None, rd=None):
    # A Reading built by hand: values {canonical name: decimal text}, texts {meter_id: ...}.
    rd = rd or Reading()
    rd.clear()
    for name, v in values.items():
        slot = obis.NAMES.index(name)
        i = rd.entry(slot, 1, 0, 0, 0, 0, obis.UNITS[slot])
        b = v.encode()
        assert rd.set_digits(i, b, 0, len(b), 0)
    for k, v in (texts or {}).items():
        b = v.encode()
        rd.set_text(obis.TEXT_BASE + obis.TEXT_NAMES.index(k), b, 0, len(b))
    return rd

class FakeDec:
    def __init__(self, raw=b""):
        self.frame_buf = bytearray(b"xx" + raw + b"yy")
        self.frame_start = 2
        self.frame_end = 2 + len(raw)

def decode_hex(h, key=None):
    # Decode a corpus frame with the real decoder; (Reading, Decoder) of the last reading.
    from han.decoder import Decoder
    import binascii
    rd = Reading()
    dec = Decoder(rd, key=key)
    buf = binascii.unhexlify(h)
    pos = 0
    got = False
    while True:
        pos = dec.feed(buf, pos, len(buf))
        if dec.ready:
            got = True
            break
        if pos >= len(buf):
            break
    if not got:
        got = dec.flush()
    assert got, "no reading"
    return rd, dec

NS = globals()
while True:
    line = sys.stdin.readline()
    if not line:
        break
    try:
        code = json.loads(line)
        if code.startswith("="):
            r = eval(code[1:], NS)
        else:
            exec(code, NS)
            r = None
        print("@@OK " + json.dumps(r))
    except Exception as e:
        print("@@ERR %s: %s" % (type(e).__name__, e))
'''


class MpyDriver:
    # One MicroPython process running DRIVER with firmware/ and umqtt.simple on its path.
    def __init__(self, tmpdir, timeout=20.0):
        if not os.path.exists(MICROPYTHON):
            pytest.skip("MicroPython unix port not installed (make setup)")
        path = os.path.join(str(tmpdir), "mqtt_driver.py")
        with open(path, "w") as f:
            f.write(DRIVER)
        env = dict(os.environ)
        env["MICROPYPATH"] = ":".join((".frozen", os.path.join(ROOT, "firmware"), MPLIB))
        self.timeout = timeout
        self.proc = subprocess.Popen([MICROPYTHON, path], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env,
                                     cwd=ROOT, bufsize=0)
        self.lines = []  # every non-reply output line
        self._q = queue.Queue()
        t = threading.Thread(target=self._reader, daemon=True)
        t.start()

    def _reader(self):
        for raw in self.proc.stdout:
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            if line.startswith("@@"):
                self._q.put(line)
            else:
                self.lines.append(line)
        self._q.put(None)

    def __call__(self, code, timeout=None):
        # Run code (statements, or "=expr" for a value) in the driver; returns the value.
        self.proc.stdin.write((json.dumps(code) + "\n").encode())
        self.proc.stdin.flush()
        try:
            r = self._q.get(timeout=timeout or self.timeout)
        except queue.Empty:
            raise AssertionError("MicroPython did not answer: %r\n%s" % (code, self.output()))
        if r is None:
            raise AssertionError("MicroPython exited: %r\n%s" % (code, self.output()))
        if r.startswith("@@ERR"):
            raise AssertionError("MicroPython error for %r: %s\n%s" % (code, r[6:], self.output()))
        return json.loads(r[5:])

    def output(self):
        return "\n".join(self.lines[-40:])

    def kill(self):
        # SIGKILL: no clean DISCONNECT, so the broker publishes the last will.
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(5)

    def close(self):
        if self.proc.poll() is None:
            try:
                self.proc.stdin.close()
                self.proc.wait(3)
            except Exception:
                self.kill()

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.kill()
