# The board: a profile from boards/<name>.json (copied to the device as /board.json) turned
# into the few hardware objects the application uses: the meter UART, the status LED, the
# setup button, the watchdog, the network and a clock. On the unix port (profile chip
# "host") the UART is a pty/serial device/TCP socket (app.uart_host), the LED prints its
# state, the button is the HAN_BUTTON environment variable and there is no watchdog.
#
# Host environment: HAN_BOARD_FILE (profile path), HAN_DATA (data directory with
# config.json), HAN_UART (pty:/path | serial:/dev/tty.. | tcp:host:port), HAN_BUTTON=held.
import json
import sys
import time

import os

_DEVICE_BOARD = "/board.json"
# Used when a device has no /board.json (ESP32-DevKitC wiring): better than no firmware.
_FALLBACK = {"name": "esp32_devkitc", "title": "ESP32 (no /board.json, DevKitC pins)",
             "chip": "esp32", "uart": {"id": 2, "rx": 16, "tx": 17, "invert_rx": True,
                                       "rxbuf": 4096}, "led": None, "button": None}


def getenv(name):
    # os.getenv on the unix port and CPython; None on the ESP32 (no environment there).
    g = getattr(os, "getenv", None)
    return g(name) if g is not None else None


def is_host_platform():
    return sys.platform not in ("esp32",)


class Clock:
    # time.ticks_* on MicroPython; a monotonic millisecond stand-in on CPython.
    def __init__(self):
        if hasattr(time, "ticks_ms"):
            self.ticks_ms = time.ticks_ms
            self.ticks_diff = time.ticks_diff
            self.ticks_add = time.ticks_add
            self.sleep_ms = time.sleep_ms

    def ticks_ms(self):
        return int(time.monotonic() * 1000)

    def ticks_diff(self, a, b):
        return a - b

    def ticks_add(self, a, b):
        return a + b

    def sleep_ms(self, ms):
        time.sleep(ms / 1000)


def load(path=None):
    if path is None:
        path = getenv("HAN_BOARD_FILE")
    if path is None:
        path = _DEVICE_BOARD
    try:
        with open(path) as f:
            spec = json.loads(f.read())
    except (OSError, ValueError) as e:
        if is_host_platform():
            raise
        print("board: cannot read %s (%s), using fallback pins" % (path, e))
        spec = _FALLBACK
    return Board(spec)


class Board:
    def __init__(self, spec):
        self.spec = spec
        self.name = spec.get("name", "?")
        self.title = spec.get("title", self.name)
        self.is_device = spec.get("chip") != "host"
        u = spec.get("uart") or {}
        self.uart_spec = u
        self.invert_rx = bool(u.get("invert_rx", False))
        # Idle gap before a buffered frame is finished: the device's UART is continuous; a
        # pty fed by another process can pause under load, so the host waits longer.
        self.idle_ms = 50 if self.is_device else 150
        self.clock = Clock()
        self.data_dir = "" if self.is_device else (getenv("HAN_DATA") or ".")
        self._button = None

    # ---- meter UART ----

    def make_uart(self, log=None):
        if not self.is_device:
            from app.uart_host import HostUart

            spec = getenv("HAN_UART")
            if not spec:
                kind = self.uart_spec.get("kind", "pty")
                spec = kind + ":" + self.uart_spec.get("path", "")
            return HostUart(spec, log)
        return MachineUart(self.uart_spec)

    # ---- LED, button, watchdog, network ----

    def make_led(self):
        from app.led import Led

        if not self.is_device:
            return Led(None, True, out=print)
        ls = self.spec.get("led")
        if not ls:
            return None
        from machine import Pin

        return Led(Pin(ls["pin"], Pin.OUT), ls.get("active_high", True))

    def button_held(self):
        if not self.is_device:
            return getenv("HAN_BUTTON") == "held"
        bs = self.spec.get("button")
        if not bs:
            return False
        if self._button is None:
            from machine import Pin

            pull = Pin.PULL_UP if bs.get("pull_up", True) else None
            self._button = Pin(bs["pin"], Pin.IN, pull)
        active = 0 if bs.get("pull_up", True) else 1
        return self._button.value() == active

    def button_long_hold(self, ms):
        # True when the button stays held for ms (checked every 50 ms).
        if not self.is_device:
            return getenv("HAN_BUTTON") == "safe"
        t0 = time.ticks_ms()
        while time.ticks_diff(time.ticks_ms(), t0) < ms:
            if not self.button_held():
                return False
            time.sleep_ms(50)
        return True

    def make_wdt(self, timeout_ms):
        # Only on the device, only in the production path (main.py -> app.start): an ESP32
        # watchdog cannot be stopped once armed (micropython.md section 4).
        if not self.is_device:
            return None
        from machine import WDT

        return WDT(timeout=timeout_ms)

    def make_net(self):
        try:
            from app.net import make_net
        except ImportError:
            return _HostNetFallback()
        return make_net(self.spec)


class MachineUart:
    # machine.UART on the ESP32, created at the first init() with a large RX ring buffer
    # (the default 256 bytes overflow silently, micropython.md section 3).
    def __init__(self, spec):
        self.spec = spec
        self.u = None
        self.poller = None

    def init(self, baudrate=9600, bits=8, parity=None, stop=1, invert=False, **kw):
        from machine import UART

        s = self.spec
        args = {"baudrate": baudrate, "bits": bits, "parity": parity, "stop": stop,
                "rx": s["rx"], "rxbuf": s.get("rxbuf", 4096), "timeout": 0, "timeout_char": 0,
                "invert": UART.INV_RX if invert else 0}
        if s.get("tx") is not None:
            args["tx"] = s["tx"]
        if self.u is None:
            self.u = UART(s["id"], **args)
            try:
                import select

                self.poller = select.poll()
                self.poller.register(self.u, select.POLLIN)
            except (ImportError, OSError, TypeError):
                self.poller = None
        else:
            # only the line settings: passing rxbuf/pins again would reinstall the driver
            self.u.init(baudrate=baudrate, bits=bits, parity=parity, stop=stop,
                        invert=args["invert"])

    def readinto(self, buf):
        return self.u.readinto(buf)  # None when empty (timeout=0)

    def wait(self, ms):
        if self.poller is not None:
            for _o, _ev in self.poller.ipoll(ms):
                return True
            return False
        time.sleep_ms(ms)
        return False


class _HostNetFallback:
    # Used only when app.net is missing: the host's network, always up.
    def mac_hex(self):
        return "02000000a1b2"

    def sta_connect(self, ssid, pw):
        pass

    def sta_connected(self):
        return True

    def sta_status(self):
        return "connected"

    def rssi(self):
        return None

    def ip(self):
        return "127.0.0.1"

    def scan(self):
        return []

    def ap_start(self, ssid, pw, open_=False):
        pass

    def ap_stop(self):
        pass

    def ap_ip(self):
        return "127.0.0.1"
