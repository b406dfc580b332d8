#!/usr/bin/env python3
# Record raw meter bytes into a file that tools/decode.py and tools/meter_sim.py read.
#
#   From the dongle (it publishes each frame as hex on <prefix>/<device_id>/raw when
#   mqtt_raw is on):
#     python3 tools/capture.py mqtt --host BROKER [--port 1883] [--user U --password P]
#                                   (--topic T | --prefix han --device-id ID | all devices)
#                                   [--count N] [--duration S] [--hex] -o FILE
#   From a USB-serial adapter on the meter line (behind the same front end as the dongle):
#     python3 tools/capture.py serial --device /dev/ttyUSB0 [--baud 2400] [--parity even]
#                                     [--gap-ms 200] [--count N] [--duration S] [--hex] -o FILE
#
# Output: raw bytes (default), or with --hex one frame per line as hex text. decode.py
# ignores whitespace in hex input, so both forms decode the same: decode.py [--hex] FILE.
# "-o -" writes to stdout. Frames are flushed to the file as they arrive.
import argparse
import binascii
import os
import signal
import sys
import time

INVERT_NOTE = (
    "capture: note: pyserial cannot invert RX. The meter's line is inverted (P1 idles low, the "
    "M-Bus opto stage inverts once): put the adapter behind a front end whose output idles "
    "high, or invert in the adapter itself (FT232R/FT231X: set 'Invert RXD' in the chip's "
    "EEPROM with the vendor's tool). See docs/hardware.md, 'Which RX inversion goes with which "
    "circuit'.")


class Writer:
    # Frames to a file, raw or one hex line each; counts frames and bytes.
    def __init__(self, path, as_hex):
        self.as_hex = as_hex
        if path in (None, "-"):
            self.f = sys.stdout if as_hex else sys.stdout.buffer
            self.close_f = False
        else:
            self.f = open(path, "w" if as_hex else "wb")
            self.close_f = True
        self.frames = 0
        self.bytes = 0

    def frame(self, data):
        if not data:
            return
        if self.as_hex:
            self.f.write(binascii.hexlify(data).decode() + "\n")
        else:
            self.f.write(data)
        self.f.flush()
        self.frames += 1
        self.bytes += len(data)

    def close(self):
        if self.close_f:
            self.f.close()


def parse_hex_payload(payload):
    # The dongle's raw topic carries hex text; tolerate spaces, newlines and upper case.
    text = payload.decode("ascii", "replace") if isinstance(payload, bytes) else payload
    return binascii.unhexlify("".join(text.split()))


def raw_topic(a):
    if a.topic:
        return a.topic
    return "%s/%s/raw" % (a.prefix, a.device_id or "+")


def capture_mqtt(a, out):
    try:
        import paho.mqtt.client as mqtt
    except ImportError:
        sys.exit("capture: the mqtt source needs paho-mqtt (pip install paho-mqtt)")
    topic = raw_topic(a)
    state = {"done": False, "error": None}
    try:
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=a.client_id or "")
    except AttributeError:  # paho-mqtt 1.x
        client = mqtt.Client(client_id=a.client_id or "")
    if a.user:
        client.username_pw_set(a.user, a.password)
    if a.tls:
        client.tls_set(ca_certs=a.ca or None)

    def on_connect(c, userdata, flags, rc, *props):
        if getattr(rc, "is_failure", rc != 0):
            state["error"] = "broker refused the connection: %s" % rc
            state["done"] = True
            return
        c.subscribe(topic, qos=0)

    def on_subscribe(c, userdata, mid, *rest):
        print("capture: subscribed to %s on %s:%d" % (topic, a.host, a.port), file=sys.stderr,
              flush=True)

    def on_message(c, userdata, msg):
        try:
            data = parse_hex_payload(msg.payload)
        except (binascii.Error, ValueError):
            print("capture: skipped a message on %s that is not hex" % msg.topic, file=sys.stderr)
            return
        out.frame(data)
        if a.verbose:
            print("capture: %s %d bytes" % (msg.topic, len(data)), file=sys.stderr)
        if a.count and out.frames >= a.count:
            state["done"] = True

    client.on_connect = on_connect
    client.on_subscribe = on_subscribe
    client.on_message = on_message
    try:
        client.connect(a.host, a.port, keepalive=60)
    except OSError as e:
        sys.exit("capture: cannot reach the broker %s:%d: %s" % (a.host, a.port, e))
    end = time.time() + a.duration if a.duration else None
    try:
        while not state["done"] and (end is None or time.time() < end):
            client.loop(timeout=0.2)
    finally:
        client.disconnect()
    if state["error"]:
        sys.exit("capture: " + state["error"])


def capture_serial(a, out):
    try:
        import serial
    except ImportError:
        sys.exit("capture: the serial source needs pyserial (pip install pyserial)")
    if a.invert:
        print(INVERT_NOTE, file=sys.stderr)
    parity = {"none": serial.PARITY_NONE, "even": serial.PARITY_EVEN,
              "odd": serial.PARITY_ODD}[a.parity]
    try:
        port = serial.serial_for_url(a.device, baudrate=a.baud, parity=parity,
                                     bytesize=8, stopbits=1, timeout=0.02)
    except (serial.SerialException, OSError) as e:
        sys.exit("capture: cannot open %s: %s" % (a.device, e))
    print("capture: reading %s at %d %s; a gap of %d ms ends a frame" % (
        a.device, a.baud, "8%s1" % a.parity[0].upper(), a.gap_ms), file=sys.stderr, flush=True)
    end = time.time() + a.duration if a.duration else None
    buf = bytearray()
    last = time.time()
    try:
        while end is None or time.time() < end:
            chunk = port.read(4096)
            now = time.time()
            if chunk:
                buf += chunk
                last = now
            elif buf and (now - last) * 1000 >= a.gap_ms:
                out.frame(bytes(buf))
                buf = bytearray()
                if a.count and out.frames >= a.count:
                    break
    finally:
        if buf:
            out.frame(bytes(buf))
        port.close()


def main(argv=None):
    ap = argparse.ArgumentParser(description="record raw meter frames for decode.py / meter_sim.py")
    sub = ap.add_subparsers(dest="source", required=True)
    for p in (sub.add_parser("mqtt", help="the dongle's raw-frame topic"),
              sub.add_parser("serial", help="a USB-serial adapter on the meter line")):
        p.add_argument("-o", "--output", default="-", help="file to write ('-' = stdout)")
        p.add_argument("--hex", action="store_true", help="hex text, one frame per line")
        p.add_argument("--count", type=int, default=0, help="stop after this many frames")
        p.add_argument("--duration", type=float, default=0, help="stop after this many seconds")
        p.add_argument("-v", "--verbose", action="store_true")
    m = sub.choices["mqtt"]
    m.add_argument("--host", default="127.0.0.1")
    m.add_argument("--port", type=int, default=1883)
    m.add_argument("--user", default="")
    m.add_argument("--password", default=os.environ.get("MQTT_PASSWORD", ""))
    m.add_argument("--tls", action="store_true")
    m.add_argument("--ca", default="")
    m.add_argument("--client-id", default="")
    m.add_argument("--topic", default="", help="full topic (wildcards allowed)")
    m.add_argument("--prefix", default="han", help="the dongle's mqtt_prefix")
    m.add_argument("--device-id", default="", help="one dongle; default: every dongle (+)")
    s = sub.choices["serial"]
    s.add_argument("--device", required=True, help="serial port or pyserial URL")
    s.add_argument("--baud", type=int, default=2400,
                   help="2400 (HAN-NVE M-Bus), 115200 (Swedish P1)")
    s.add_argument("--parity", choices=("none", "even", "odd"), default="none",
                   help="even for Aidon/Kaifa/M-Bus long frames, none for Kamstrup and P1")
    s.add_argument("--gap-ms", type=int, default=200, help="silence that ends a frame")
    s.add_argument("--invert", action="store_true",
                   help="the line needs inverting: prints how (pyserial cannot)")
    a = ap.parse_args(argv)
    out = Writer(a.output, a.hex)
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    try:
        (capture_mqtt if a.source == "mqtt" else capture_serial)(a, out)
    except KeyboardInterrupt:
        pass
    finally:
        out.close()
    print("capture: %d frames, %d bytes%s" % (
        out.frames, out.bytes, "" if a.output == "-" else " -> " + a.output), file=sys.stderr)
    return 0 if out.frames else 1


if __name__ == "__main__":
    sys.exit(main())
