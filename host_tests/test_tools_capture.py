# tools/capture.py against a real mosquitto (the dongle's raw topic) and a pty (a USB-serial
# adapter on the meter line); the files it writes decode with tools/decode.py.
import json
import os
import pty
import select
import socket
import subprocess
import sys
import time
import tty

import pytest

from conftest import ROOT

MOSQUITTO = "/usr/sbin/mosquitto"
CAPTURE = os.path.join(ROOT, "tools", "capture.py")
DECODE = os.path.join(ROOT, "tools", "decode.py")


def corpus(vid):
    with open(os.path.join(ROOT, "host_tests", "vectors", "frames.jsonl")) as f:
        for line in f:
            if line.strip() and json.loads(line)["id"] == vid:
                return bytes.fromhex(json.loads(line)["hex"])
    raise KeyError(vid)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def wait_stderr_line(proc, text, timeout=10):
    # Read the child's stderr until a line containing text shows up.
    end = time.time() + timeout
    seen = b""
    while time.time() < end:
        r, _, _ = select.select([proc.stderr], [], [], 0.1)
        if r:
            chunk = os.read(proc.stderr.fileno(), 4096)
            if not chunk:
                break
            seen += chunk
            if text.encode() in seen:
                return seen
    raise AssertionError("no %r from capture; got %r" % (text, seen))


@pytest.fixture
def broker(tmp_path):
    if not os.path.exists(MOSQUITTO):
        pytest.skip("mosquitto is not installed")
    port = free_port()
    conf = tmp_path / "mosquitto.conf"
    conf.write_text("listener %d 127.0.0.1\nallow_anonymous true\npersistence false\n" % port)
    proc = subprocess.Popen([MOSQUITTO, "-c", str(conf)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.05)
    yield port
    proc.terminate()
    proc.wait(timeout=10)


def publish(port, messages):
    import paho.mqtt.client as mqtt

    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    c.connect("127.0.0.1", port)
    c.loop_start()
    for topic, payload in messages:
        c.publish(topic, payload, qos=1).wait_for_publish(5)
    c.loop_stop()
    c.disconnect()


@pytest.mark.parametrize("as_hex", [True, False])
def test_capture_from_the_raw_topic(broker, tmp_path, as_hex):
    frames = [corpus("hass-aidon-list2"), corpus("hass-aidon-list3"), bytes.fromhex("7e00ff")]
    out = tmp_path / ("cap.hex" if as_hex else "cap.bin")
    cmd = [sys.executable, CAPTURE, "mqtt", "--host", "127.0.0.1", "--port", str(broker),
           "--prefix", "han", "--device-id", "dev1", "--count", "3", "--duration", "20",
           "-o", str(out)] + (["--hex"] if as_hex else [])
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, stdout=subprocess.PIPE)
    wait_stderr_line(proc, "subscribed to han/dev1/raw")
    publish(broker, [("han/other/raw", "00"),  # another dongle: not ours
                     ("han/dev1/raw", frames[0].hex()),
                     ("han/dev1/state", "{}"),
                     ("han/dev1/raw", frames[1].hex().upper()),
                     ("han/dev1/raw", "zz not hex"),
                     ("han/dev1/raw", frames[2].hex())])
    assert proc.wait(timeout=20) == 0
    if as_hex:
        assert out.read_text().splitlines() == [f.hex() for f in frames]
    else:
        assert out.read_bytes() == b"".join(frames)
    # the capture decodes with the lead's decoder: two good frames, then the junk
    if os.path.exists(DECODE):
        r = subprocess.run([sys.executable, DECODE] + (["--hex"] if as_hex else []) + [str(out)],
                           capture_output=True, text=True, timeout=60)
        objs = [json.loads(l) for l in r.stdout.splitlines() if l.startswith("{")]
        assert len(objs) >= 2, r.stderr


def test_capture_from_a_serial_line(tmp_path):
    master, slave = pty.openpty()
    tty.setraw(master)
    out = tmp_path / "serial.hex"
    cmd = [sys.executable, CAPTURE, "serial", "--device", os.ttyname(slave), "--baud", "2400",
           "--parity", "even", "--gap-ms", "150", "--count", "2", "--duration", "20", "--hex",
           "--invert", "-o", str(out)]
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, stdout=subprocess.PIPE)
    err = wait_stderr_line(proc, "a gap of 150 ms ends a frame")
    assert b"pyserial cannot invert" in err
    f1, f2 = corpus("hass-aidon-list2"), bytes.fromhex("2f414243")
    for i in range(0, len(f1), 40):  # in chunks, as a UART delivers them
        os.write(master, f1[i:i + 40])
        time.sleep(0.01)
    time.sleep(0.5)
    os.write(master, f2)
    assert proc.wait(timeout=20) == 0
    os.close(master)
    os.close(slave)
    assert out.read_text().splitlines() == [f1.hex(), f2.hex()]


def test_unreachable_broker_fails_clearly(tmp_path):
    r = subprocess.run([sys.executable, CAPTURE, "mqtt", "--port", str(free_port()),
                        "--duration", "1", "-o", str(tmp_path / "x")],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode != 0 and "cannot reach the broker" in r.stderr
