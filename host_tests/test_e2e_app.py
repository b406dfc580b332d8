# The application loop (app.app.App) and serial autodetection on CPython with fakes: a fake
# clock that only moves when the loop waits, a fake UART whose bytes are right only at the
# right line settings, a fake network, publisher and portal. The same App code runs on the
# device and on the unix port (test_e2e.py).
import json
import os

import corpus
from app import config as config_mod
from app import led as led_mod
from app.app import RESTART, App, prepare_config
from app.serial_detect import SerialDetect, candidates
from han import export

P1 = corpus.frame_bytes(corpus.by_id("avi-se-ell5-p1"))
KAIFA = corpus.frame_bytes(corpus.by_id("ams-kaifa-no-list2-b"))
NO_END_P1 = corpus.frame_bytes(corpus.by_id("ams-sagemcom-t210d-at-p1"))  # no "!CRC" line


class Clock:
    def __init__(self):
        self.t = 1000

    def ticks_ms(self):
        return self.t

    def ticks_diff(self, a, b):
        return a - b

    def ticks_add(self, a, b):
        return a + b

    def sleep_ms(self, ms):
        self.t += ms


class Board:
    invert_rx = True
    title = "test board"


class LineUart:
    # A meter pushing `frame` every `every` ms, readable only at (baud, parity, invert);
    # at other settings the bytes come out mangled, as a UART at the wrong rate would give.
    def __init__(self, clock, frame, baud=2400, parity=0, invert=True, every=2000, silent_after=None):
        self.clock = clock
        self.frame = frame
        self.want = (baud, parity, invert)
        self.every = every
        self.next = clock.t + 100
        self.pending = b""
        self.settings = None
        self.inits = []
        self.silent_after = silent_after

    def init(self, baudrate=9600, bits=8, parity=None, stop=1, invert=False):
        self.settings = (baudrate, parity, invert)
        self.inits.append(self.settings)

    def readinto(self, buf):
        now = self.clock.t
        if now >= self.next and (self.silent_after is None or now < self.silent_after):
            self.next += self.every
            data = self.frame
            if self.settings != self.want:
                data = bytes((b * 7 + 3) & 0xFF for b in data[: len(data) // 3])
            self.pending += data
        if not self.pending:
            return None
        n = min(len(buf), len(self.pending))
        buf[:n] = self.pending[:n]
        self.pending = self.pending[n:]
        return n

    def wait(self, ms):
        self.clock.t += ms
        return False


class Net:
    def __init__(self, up=True):
        self.up = up
        self.connects = 0

    def mac_hex(self):
        return "0200000000aa"

    def sta_connect(self, ssid, pw):
        self.connects += 1

    def sta_connected(self):
        return self.up

    def sta_status(self):
        return "connected" if self.up else "network not found"

    def rssi(self):
        return -60 if self.up else None

    def ip(self):
        return "10.0.0.2" if self.up else None


class Pub:
    def __init__(self):
        self.connected = True
        self.reconnects = 0
        self.readings = []
        self.diags = []
        self.polls = 0
        self.closed = False

    def poll(self, now):
        self.polls += 1

    def reading(self, rd, dec, now):
        self.readings.append(export.numbers(rd))

    def diagnostics(self, d, now):
        self.diags.append(json.loads(json.dumps(d)))

    def set_ip(self, ip):
        pass

    def close(self):
        self.closed = True


class Portal:
    def __init__(self, save_after=None):
        self.started = 0
        self.stopped = 0
        self.polls = 0
        self.save_after = save_after

    def start(self):
        self.started += 1

    def stop(self):
        self.stopped += 1

    def poll(self):
        self.polls += 1
        return self.save_after is not None and self.polls >= self.save_after


def cfg(**kw):
    c = config_mod.merged({"wifi_ssid": "home", "wifi_password": "pw-secret",
                           "mqtt_host": "broker"})
    c.update(kw)
    return c


KAIFA_LINE = {"baud": 2400, "parity": "even", "invert": True}


def make_app(tmp_path, uart_kw=None, frame=KAIFA, c=None, net=None, portal=None, **kw):
    clock = Clock()
    uart = LineUart(clock, frame, **(uart_kw or {}))
    pub = Pub()
    led = led_mod.Led(None, True, out=None)
    app = App(c or cfg(), Board(), uart, net or Net(), pub, clock, led=led,
              state_path=str(tmp_path / "serial.json"),
              portal_factory=(lambda a: portal) if portal else None, diag_ms=5000, **kw)
    return app, clock, uart, pub


def test_autodetect_finds_2400_8e1_inverted_and_remembers_it(tmp_path):
    app, clock, uart, pub = make_app(tmp_path, detect_opts={"dwell_ms": 3000})
    app.run(max_ms=60000)
    assert app.detect.info()["detect"] == "locked"
    assert uart.settings == (2400, 0, True)
    assert pub.readings and pub.readings[-1]["voltage_l1"] == "236.7"
    saved = json.load(open(tmp_path / "serial.json"))
    assert saved == {"baud": 2400, "parity": "even", "invert": True}
    # the order tried: 115200 8N1 (board inversion first, then the other), then 2400 8E1
    assert uart.inits[:3] == [(115200, None, True), (115200, None, False), (2400, 0, True)]
    assert pub.diags[-1]["serial"]["format"] == "2400 8E1 inverted"
    # next boot: the remembered settings first, found on the first try
    app2, _, uart2, pub2 = make_app(tmp_path, remembered=saved)
    app2.run(max_ms=5000)
    assert uart2.inits == [(2400, 0, True)] and pub2.readings


def test_autodetect_not_inverted_and_other_bauds(tmp_path):
    for baud, parity, inv in ((2400, None, False), (38400, None, True), (115200, None, False)):
        app, clock, uart, pub = make_app(tmp_path, {"baud": baud, "parity": parity, "invert": inv},
                                         frame=P1, detect_opts={"dwell_ms": 3000})
        app.run(max_ms=60000)
        assert uart.settings == (baud, parity, inv)
        assert app.detect.info()["detect"] == "locked"
        assert pub.readings[-1]["active_energy_import"] == "1605055"


def test_configured_settings_are_used_alone(tmp_path):
    c = cfg(meter_baud=2400, meter_parity="even", meter_invert="yes")
    app, clock, uart, pub = make_app(tmp_path, c=c)
    app.run(max_ms=20000)
    assert uart.inits == [(2400, 0, True)]
    assert app.detect.info()["detect"] == "fixed"


def test_detection_starts_again_after_five_minutes_without_frames(tmp_path):
    app, clock, uart, pub = make_app(tmp_path, {"silent_after": 1000 + 30000},
                                     detect_opts={"dwell_ms": 3000})
    app.run(max_ms=30000)
    assert app.detect.info()["detect"] == "locked"
    n = len(uart.inits)
    app.running = True
    app.run(max_ms=5 * 60000 + 10000)
    assert app.detect.info()["detect"] == "searching"
    assert len(uart.inits) > n
    # the old setting is tried first again
    assert uart.inits[n] == (2400, 0, True)


def test_candidates_order_and_remembered_first():
    c = candidates(cfg(), True)
    assert c[0] == (115200, "none", True) and c[1] == (115200, "none", False)
    assert (38400, "none", False) in c and len(c) == 10
    c = candidates(cfg(meter_invert="no"), True, {"baud": 9600, "parity": "none", "invert": False})
    assert c[0] == (9600, "none", False) and len(c) == 5


def test_idle_gap_flushes_a_telegram_without_an_end_marker(tmp_path):
    app, clock, uart, pub = make_app(tmp_path, {"baud": 115200, "parity": None}, frame=NO_END_P1)
    app.run(max_ms=10000)
    assert pub.readings, list(app.dec.counters)
    assert pub.readings[0]["active_energy_import"] == "9699947"


def test_led_states(tmp_path):
    net = Net()
    app, clock, uart, pub = make_app(tmp_path, net=net, remembered=KAIFA_LINE)
    assert app.led_state(clock.t) == led_mod.BOOTING
    app.run(max_ms=10000)
    assert app.led.state == led_mod.DATA_OK
    pub.connected = False
    app.running = True
    app.run(max_ms=1000)
    assert app.led.state == led_mod.NET_TROUBLE
    pub.connected = True
    uart.silent_after = clock.t
    app.running = True
    app.run(max_ms=31000)
    assert app.led.state == led_mod.NO_DATA


def test_wifi_outage_opens_the_portal_beside_retrying_and_metering(tmp_path):
    net = Net(up=False)
    portal = Portal()
    app, clock, uart, pub = make_app(tmp_path, net=net, portal=portal, c=cfg(ap_after_s=60),
                                     remembered=KAIFA_LINE)
    app.run(max_ms=30000)
    assert portal.started == 0 and net.connects >= 1
    assert pub.polls == 0  # no MQTT attempts without Wi-Fi
    app.running = True
    app.run(max_ms=40000)
    assert portal.started == 1 and app.portal_reason == "wifi"
    assert net.connects >= 3  # still retrying, with backoff
    assert len(pub.readings) >= 20  # metering went on
    assert app.led.state == led_mod.PORTAL
    net.up = True
    app.running = True
    app.run(max_ms=2000)
    assert portal.stopped == 1 and app.portal is None


def test_portal_save_restarts_the_app(tmp_path):
    portal = Portal(save_after=50)
    app, clock, uart, pub = make_app(tmp_path, portal=portal, portal_now="not configured",
                                     remembered=KAIFA_LINE)
    assert app.run(max_ms=60000) == RESTART
    assert portal.started == 1 and pub.closed


def test_diagnostics_content(tmp_path):
    app, clock, uart, pub = make_app(tmp_path, remembered=KAIFA_LINE)
    app.run(max_ms=12000)
    d = pub.diags[-1]
    assert d["counters"]["frames_ok"] >= 4 and d["counters"]["bytes"] > 0
    assert set(d["counters"]) >= {"bad_crc", "truncated", "decrypt_failed", "skipped_bytes"}
    assert d["last_frame_age_s"] <= 2 and d["version"] and d["rssi"] == -60
    assert d["serial"]["baud"] == 2400
    assert "pw-secret" not in json.dumps(d)


def test_first_boot_makes_and_saves_a_setup_password(tmp_path):
    path = str(tmp_path / "config.json")

    class Log:
        def warn(self, *a):
            pass

    c, problem = prepare_config(path, Net(), Log())
    assert problem == "no configuration file"
    assert len(c["ap_password"]) >= 8
    assert json.load(open(path))["ap_password"] == c["ap_password"]
    c2, problem2 = prepare_config(path, Net(), Log())
    assert problem2 is None and c2["ap_password"] == c["ap_password"]
    # a corrupt file is kept aside, not lost
    with open(path, "w") as f:
        f.write("{not json")
    c3, problem3 = prepare_config(path, Net(), Log())
    assert "JSON" in problem3 and os.path.exists(path + ".bad")
    assert config_mod.load(path)[1] is None


def test_serial_detect_saves_once_and_survives_a_failing_save():
    calls = []

    def bad_save(rec):
        calls.append(rec)
        raise OSError(28)

    d = SerialDetect([(2400, "even", True)], lambda *a: None, save=bad_save)
    counters = [0] * 9
    d.start(0, counters)
    counters[1] = 1
    d.poll(100, counters, lambda a, b: a - b)
    assert d.info()["detect"] == "fixed" and calls


def test_device_board_builds_uart_led_button_wdt_from_the_profile(monkeypatch):
    # The ESP32 path of app/board.py against a stand-in `machine` module: the arguments the
    # real UART, Pin and WDT get come from boards/esp32_devkitc.json.
    import sys
    import types

    from app import board as board_mod

    calls = []

    class UART:
        INV_RX = 4

        def __init__(self, uid, **kw):
            calls.append(("UART", uid, kw))

        def init(self, **kw):
            calls.append(("init", kw))

        def readinto(self, buf):
            return None

    class Pin:
        IN, OUT, PULL_UP = 1, 2, 3

        def __init__(self, pin, mode, pull=None):
            self.pin = pin
            calls.append(("Pin", pin, mode, pull))
            self.v = 0

        def value(self, v=None):
            if v is None:
                return self.v
            calls.append(("led", self.pin, v))

    class WDT:
        def __init__(self, timeout):
            calls.append(("WDT", timeout))

        def feed(self):
            pass

    fake = types.ModuleType("machine")
    fake.UART, fake.Pin, fake.WDT = UART, Pin, WDT
    monkeypatch.setitem(sys.modules, "machine", fake)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    b = board_mod.load(os.path.join(root, "boards", "esp32_devkitc.json"))
    assert b.is_device and b.invert_rx and b.data_dir == ""
    u = b.make_uart()
    u.init(baudrate=2400, bits=8, parity=0, stop=1, invert=True)
    kind, uid, kw = calls[0]
    assert (kind, uid) == ("UART", 2)
    assert kw["rx"] == 16 and kw["tx"] == 17 and kw["rxbuf"] == 4096 and kw["timeout"] == 0
    assert kw["invert"] == UART.INV_RX and kw["parity"] == 0 and kw["baudrate"] == 2400
    u.init(baudrate=115200, bits=8, parity=None, stop=1, invert=False)
    assert calls[-1] == ("init", {"baudrate": 115200, "bits": 8, "parity": None, "stop": 1,
                                  "invert": 0})
    assert u.readinto(bytearray(8)) is None
    led = b.make_led()
    led.set(led_mod.BOOTING, 0)
    assert ("led", 25, 1) in calls
    assert b.button_held()  # pulled up, reads 0 = pressed in this stand-in
    assert ("Pin", 27, Pin.IN, Pin.PULL_UP) in calls
    b.make_wdt(30000).feed()
    assert ("WDT", 30000) in calls
