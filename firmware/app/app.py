# The device application: one superloop that reads the meter, publishes readings and keeps
# the network, the setup portal, the LED and the watchdog going. Metering never waits for the
# network: every network step is bounded (Publisher.poll, a non-blocking Wi-Fi connect with
# backoff, Portal.poll), and the UART is read into one preallocated chunk.
#
#   app = App(cfg, board, uart, net, publisher, clock, ...)   # hardware through the constructor
#   app.run()            # until stop(); returns RESTART after the portal saved a new config
#
# start(...) at the bottom builds everything from the platform (ESP32 or the unix port with
# the host board) and is what main.py calls.
import gc
import json
import os
import sys

from app import config as config_mod
from app import led as led_mod
from app import log as log_mod
from app.serial_detect import SerialDetect, candidates, good_frames, uart_parity
from app.version import VERSION
from han import status
from han.decoder import Decoder
from han.reading import FORMAT_NAMES, Reading

try:
    from micropython import const
except ImportError:
    def const(x):
        return x

STOP = const(0)
RESTART = const(1)
SAFE_MODE = const(2)

_NO_DATA_MS = const(30000)  # LED shows "no meter data" after this long without a frame
_LED_EVAL_MS = const(200)
_NET_EVAL_MS = const(500)
_WIFI_BACKOFF_MIN = const(5000)
_WIFI_BACKOFF_MAX = const(60000)
_WIFI_CONNECT_WAIT = const(20000)  # give one connect attempt this long before retrying
_DETECT_EVAL_MS = const(100)


def make_decoder(cfg):
    return Decoder(Reading(), hex_key(cfg.get("meter_key")), hex_key(cfg.get("meter_auth_key")),
                   kamstrup_wh=cfg.get("meter_kamstrup_energy") == "wh")


def hex_key(text):
    # "00112233..." (32 hex digits) -> 16 bytes; "" -> None
    if not text:
        return None
    return bytes(int(text[i:i + 2], 16) for i in range(0, 32, 2))


class App:
    def __init__(self, cfg, board, uart, net, publisher, clock, log=None, led=None, wdt=None,
                 cfg_path=None, state_path=None, portal_factory=None, portal_now=False,
                 diag_ms=60000, idle_ms=50, chunk=512, detect_opts=None, remembered=None,
                 on_frame=None, problem=None, decoder=None):
        self.cfg = cfg
        self.board = board
        self.uart = uart
        self.net = net
        self.pub = publisher
        self.clock = clock
        self.log = log or log_mod
        self.led = led
        self.wdt = wdt
        self.cfg_path = cfg_path
        self.state_path = state_path
        self.portal_factory = portal_factory
        self.portal = None
        self.portal_reason = None
        self.portal_wanted = portal_now
        self.diag_ms = diag_ms
        self.idle_ms = idle_ms
        self.on_frame = on_frame
        self.problem = problem
        self.dec = decoder if decoder is not None else make_decoder(cfg)
        self.rd = self.dec.rd
        self.chunk = chunk if isinstance(chunk, bytearray) else bytearray(chunk)
        self.running = False
        self.started = False
        self.result = STOP
        t = clock.ticks_ms()
        self.t_boot = t
        self.t_rx = t
        self.flushed = True
        self.t_frame = None  # last good reading
        self.frames = 0  # readings handed to the publisher
        self.t_diag = t
        self.t_led = t
        self.t_net = t - _NET_EVAL_MS  # look at Wi-Fi on the first pass
        self.t_detect = t
        self.loops = 0
        self.max_loop_ms = 0
        self.wifi_next = t
        self.wifi_backoff = _WIFI_BACKOFF_MIN
        self.wifi_down_since = t
        self.wifi_was_up = False
        self.wifi_reconnects = 0
        self.provisioned = config_mod.is_provisioned(cfg)
        opts = detect_opts or {}
        self.detect = SerialDetect(candidates(cfg, board.invert_rx, remembered), self._apply_serial,
                                   save=self._save_serial, log=self.log, **opts)

    # ---- serial ----

    def _apply_serial(self, baud, parity, invert):
        self.uart.init(baudrate=baud, bits=8, parity=uart_parity(parity), stop=1, invert=invert)
        self.dec.flush()  # a half frame at the old settings is worthless

    def _save_serial(self, rec):
        if self.state_path:
            write_json(self.state_path, rec)

    # ---- the loop ----

    def run(self, max_ms=None):
        c = self.clock
        # max_ms: return after that long, leaving everything as it is (tests run in slices)
        self.running = True
        if not self.started:
            self.started = True
            self.detect.start(c.ticks_ms(), self.dec.counters)
            if self.portal_wanted:
                self._portal_start(self.portal_wanted if isinstance(self.portal_wanted, str)
                                   else "requested")
        t_end = c.ticks_add(c.ticks_ms(), max_ms) if max_ms else None
        try:
            while self.running:
                t0 = c.ticks_ms()
                got = self.step(t0)
                dt = c.ticks_diff(c.ticks_ms(), t0)
                if dt > self.max_loop_ms:
                    self.max_loop_ms = dt
                if t_end is not None and c.ticks_diff(t0, t_end) >= 0:
                    return None
                if not got:
                    self._idle_wait(t0)
        except BaseException:  # also Ctrl-C: the publisher says goodbye (availability offline)
            self._shutdown()
            raise
        self._shutdown()
        return self.result

    def stop(self, result=STOP):
        self.result = result
        self.running = False

    def step(self, now):
        # One pass; True when meter bytes were read (then the loop goes round again at once).
        self.loops += 1
        got = self._meter(now)
        c = self.clock
        if c.ticks_diff(now, self.t_detect) >= _DETECT_EVAL_MS:
            self.t_detect = now
            self.detect.poll(now, self.dec.counters, c.ticks_diff)
        if c.ticks_diff(now, self.t_net) >= _NET_EVAL_MS:
            self.t_net = now
            self._wifi(now)
        if self.pub is not None and self.wifi_was_up:
            self.pub.poll(now)  # bounded: connect timeout, backoff, keepalive
        if self.portal is not None:
            self._portal_poll()
        if c.ticks_diff(now, self.t_diag) >= self.diag_ms:
            self.t_diag = now
            self._diagnostics(now)
        if self.led is not None:
            if c.ticks_diff(now, self.t_led) >= _LED_EVAL_MS:
                self.t_led = now
                self.led.set(self.led_state(now), now)
            self.led.poll(now)
        if self.wdt is not None:
            self.wdt.feed()
        return got

    def _meter(self, now):
        buf = self.chunk
        dec = self.dec
        n = self.uart.readinto(buf)
        if n:
            self.t_rx = now
            self.flushed = False
            pos = 0
            while True:
                pos = dec.feed(buf, pos, n)
                if dec.ready:
                    self._reading(now)
                elif pos >= n:
                    break
            return True
        if not self.flushed and self.clock.ticks_diff(now, self.t_rx) >= self.idle_ms:
            # the line went quiet: finish a frame that has no end marker
            self.flushed = True
            while dec.flush():
                self._reading(now)
        return False

    def _reading(self, now):
        self.t_frame = now
        self.frames += 1
        if self.pub is not None:
            self.pub.reading(self.rd, self.dec, now)
        if self.led is not None:
            self.led.flash(now)
        if self.on_frame is not None:
            self.on_frame(self)

    def _idle_wait(self, now):
        # Nothing arrived: sleep until bytes come, the idle flush is due, or 20 ms pass.
        ms = 20
        if not self.flushed:
            left = self.idle_ms - self.clock.ticks_diff(now, self.t_rx)
            if left < ms:
                ms = left if left > 0 else 0
        if ms:
            self.uart.wait(ms)

    # ---- network ----

    def _wifi(self, now):
        if not self.provisioned:
            return
        c = self.clock
        net = self.net
        up = net.sta_connected()
        if up:
            if not self.wifi_was_up:
                self.wifi_was_up = True
                self.wifi_backoff = _WIFI_BACKOFF_MIN
                self.log.info("wifi: connected, ip %s", net.ip())
                if self.pub is not None:
                    self.pub.set_ip(net.ip())
                if self.portal is not None and self.portal_reason == "wifi":
                    self.log.info("portal: wifi is back, closing the setup network")
                    self._portal_stop()
            return
        if self.wifi_was_up:
            self.wifi_was_up = False
            self.wifi_down_since = now
            self.wifi_reconnects += 1
            self.log.warn("wifi: connection lost (%s)", net.sta_status())
        if c.ticks_diff(now, self.wifi_next) >= 0:
            # WLAN.connect returns at once; the next attempt waits for this one and backs off
            self.log.info("wifi: connecting to %s", self.cfg["wifi_ssid"])
            try:
                net.sta_connect(self.cfg["wifi_ssid"], self.cfg["wifi_password"])
            except Exception as e:
                self.log.warn("wifi: connect failed: %s", e)
            self.wifi_next = c.ticks_add(now, max(self.wifi_backoff, _WIFI_CONNECT_WAIT))
            self.wifi_backoff = min(self.wifi_backoff * 2, _WIFI_BACKOFF_MAX)
        ap_after = self.cfg.get("ap_after_s", 300)
        if (self.portal is None and ap_after and self.portal_factory is not None
                and c.ticks_diff(now, self.wifi_down_since) >= ap_after * 1000):
            self.log.warn("wifi: unreachable for %d s, opening the setup network (still retrying)",
                          ap_after)
            self._portal_start("wifi")

    # ---- setup portal ----

    def _portal_start(self, reason):
        if self.portal_factory is None or self.portal is not None:
            return
        try:
            self.portal = self.portal_factory(self)
            self.portal.start()
            self.portal_reason = reason
            self.log.info("portal: setup network open (%s)", reason)
        except Exception as e:
            self.log.exc(e, "portal: cannot start")
            self.portal = None

    def _portal_poll(self):
        try:
            saved = self.portal.poll()
        except Exception as e:
            self.log.exc(e, "portal")
            saved = False
        if saved:
            self.log.info("portal: new configuration saved, restarting")
            self.stop(RESTART)

    def _portal_stop(self):
        p = self.portal
        self.portal = None
        self.portal_reason = None
        if p is not None:
            try:
                p.stop()
            except Exception as e:
                self.log.exc(e, "portal: stop")

    # ---- status ----

    def led_state(self, now):
        if self.portal is not None:
            return led_mod.PORTAL
        c = self.clock
        if self.t_frame is None or c.ticks_diff(now, self.t_frame) >= _NO_DATA_MS:
            if self.t_frame is None and c.ticks_diff(now, self.t_boot) < 3000:
                return led_mod.BOOTING
            return led_mod.NO_DATA
        if not self.net_ok():
            return led_mod.NET_TROUBLE
        return led_mod.DATA_OK

    def net_ok(self):
        if not self.provisioned or not self.net.sta_connected():
            return False
        return self.pub is not None and self.pub.connected

    def diagnostics(self, now):
        c = self.clock
        cn = self.dec.counters
        counters = {}
        for i in range(len(status.COUNTER_NAMES)):
            counters[status.COUNTER_NAMES[i]] = cn[i]
        d = {
            "version": VERSION,
            "uptime_s": c.ticks_diff(now, self.t_boot) // 1000,
            "free_heap": _gc("mem_free"),
            "heap_used": _gc("mem_alloc"),
            "rssi": self.net.rssi(),
            "ip": self.net.ip(),
            "counters": counters,
            "last_frame_age_s": (None if self.t_frame is None
                                 else c.ticks_diff(now, self.t_frame) // 1000),
            "frames_published": self.frames,
            "last_status": self.dec.last_status,
            "frame_format": FORMAT_NAMES[self.dec.frame_kind] if self.dec.frame_kind < 5 else "",
            "reconnects": self.pub.reconnects if self.pub is not None else 0,
            "wifi_reconnects": self.wifi_reconnects,
            "serial": self.detect.info(),
            "portal": self.portal_reason,
            "max_loop_ms": self.max_loop_ms,
        }
        return d

    def portal_status(self):
        # {label: text} for the portal's status page
        now = self.clock.ticks_ms()
        d = self.diagnostics(now)
        c = d["counters"]
        age = d["last_frame_age_s"]
        return {
            "Firmware": d["version"],
            "Meter frames": "%d ok, %d bad checksum, %d cut short, %d decrypt failed" % (
                c["frames_ok"], c["bad_crc"], c["truncated"], c["decrypt_failed"]),
            "Last meter frame": "never" if age is None else "%d s ago" % age,
            "Meter line": "%s (%s)" % (d["serial"]["format"], d["serial"]["detect"]),
            "MQTT": ("connected" if self.pub is not None and self.pub.connected
                     else "not connected" if self.pub is not None else "not configured"),
        }

    def _diagnostics(self, now):
        gc.collect()  # so free_heap means what is really free (a few ms, once a minute)
        d = self.diagnostics(now)
        self.max_loop_ms = 0
        cn = d["counters"]
        self.log.info("status: frames %d ok, %d bad crc, %d truncated, %d decrypt failed, "
                      "last frame %s s ago, serial %s (%s), mqtt %s, heap %d free",
                      cn["frames_ok"], cn["bad_crc"], cn["truncated"], cn["decrypt_failed"],
                      d["last_frame_age_s"], d["serial"]["format"], d["serial"]["detect"],
                      "up" if self.pub is not None and self.pub.connected else "down",
                      d["free_heap"] or 0)
        if self.pub is not None:
            self.pub.diagnostics(d, now)

    def _shutdown(self):
        if self.portal is not None:
            self._portal_stop()
        if self.pub is not None:
            try:
                self.pub.close()
            except Exception as e:
                self.log.exc(e, "mqtt: close")


def _gc(name):
    f = getattr(gc, name, None)  # MicroPython only (CPython host tests: None)
    return f() if f is not None else None


def write_json(path, obj):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(json.dumps(obj))
    os.rename(tmp, path)


def read_json(path):
    try:
        with open(path) as f:
            return json.loads(f.read())
    except (OSError, ValueError):
        return None


def _exists(path):
    try:
        os.stat(path)
        return True
    except OSError:
        return False


# ---- building the application from the platform ----

def _portal_mod():
    try:
        from app import portal
    except ImportError:  # a build without the portal still meters
        return None
    return portal


def _new_password():
    p = _portal_mod()
    if p is not None:
        return p.new_ap_password()
    return "".join("%02x" % b for b in os.urandom(6))


def _ap_name(mac_hex):
    p = _portal_mod()
    if p is not None:
        return p.ap_name(mac_hex)
    return "HAN-" + mac_hex[-4:].upper()


def prepare_config(cfg_path, net, log):
    # Load the config; on first boot make the setup password and save it. Returns
    # (cfg, problem). A corrupt file is kept as <path>.bad before a fresh one is written.
    cfg, problem = config_mod.load(cfg_path)
    if problem:
        log.warn("config: %s", problem)
    if not cfg.get("ap_password"):
        cfg["ap_password"] = _new_password()
        if problem and problem != "no configuration file" and _exists(cfg_path):
            try:
                os.rename(cfg_path, cfg_path + ".bad")
                log.warn("config: the unusable file was kept as %s.bad", cfg_path)
            except OSError:
                pass
        try:
            config_mod.save(cfg_path, cfg)
        except (OSError, ValueError) as e:
            log.warn("config: cannot save the setup password: %s", e)
    return cfg, problem


def announce_setup(cfg, net, log):
    # The setup network's name and password go to the console at boot: whoever holds the
    # USB cable may set the device up. No other secret is ever printed.
    name = _ap_name(net.mac_hex())
    if cfg.get("ap_open"):
        print("Setup network: %s (open, no password)" % name)
    else:
        print("Setup network: %s  password: %s" % (name, cfg["ap_password"]))
    return name


def device_id(net):
    return "han-" + net.mac_hex()[-6:]


def build(board, data_dir, env, log, wdt=None):
    # Everything App needs, from a loaded board. Returns the App (not yet running).
    cfg_path = data_dir + "/config.json"
    state_path = data_dir + "/serial.json"
    # The long-lived buffers first, while the heap is still in one piece (the decoder's
    # window is 6 KB in one block); everything else is smaller.
    gc.collect()
    dec = make_decoder(config_mod.load(cfg_path)[0])
    chunk = bytearray(512)
    from app import mqtt as mqtt_mod

    portal_mod = _portal_mod()
    net = board.make_net()
    cfg, problem = prepare_config(cfg_path, net, log)
    if hasattr(net, "set_hostname"):  # before the station is activated
        net.set_hostname(cfg.get("device_name") or device_id(net))
    announce_setup(cfg, net, log)
    log.info("config: %s", json.dumps(config_mod.redacted(cfg)))
    held = board.button_held()
    portal_now = None
    if problem:
        portal_now = "not configured" if problem == "no configuration file" else "config problem"
    elif not config_mod.is_provisioned(cfg):
        portal_now = "not configured"
    elif held:
        portal_now = "button"
    if held:
        log.info("button held at boot: setup portal")
    uart = board.make_uart(log)
    led = board.make_led()
    if led is not None:
        led.set(led_mod.BOOTING, 0)
    pub = None
    if config_mod.is_provisioned(cfg):
        pub = mqtt_mod.Publisher(cfg, device_id(net), log=log.info, model=board.title)

    def portal_factory(app):
        return portal_mod.Portal(app.cfg, cfg_path, net, status=app.portal_status, log=log.info)

    if portal_mod is None:
        log.warn("portal: not in this build")
        portal_factory = None

    idle = env("HAN_IDLE_MS")
    opts = {}
    dwell = env("HAN_DETECT_DWELL_MS")
    if dwell:
        opts["dwell_ms"] = int(dwell)
    diag = env("HAN_DIAG_S")
    return App(cfg, board, uart, net, pub, board.clock, log=log, led=led, wdt=wdt,
               cfg_path=cfg_path, state_path=state_path, portal_factory=portal_factory,
               portal_now=portal_now, diag_ms=int(float(diag) * 1000) if diag else 60000,
               idle_ms=int(idle) if idle else board.idle_ms, detect_opts=opts,
               remembered=read_json(state_path), problem=problem, decoder=dec, chunk=chunk)


def start():
    # main.py's entry. Returns STOP, RESTART or SAFE_MODE; never arms the WDT off the device.
    from app import board as board_mod

    env = board_mod.getenv
    lv = env("HAN_LOG")
    if lv:
        log_mod.level = {"debug": 10, "info": 20, "warn": 30, "error": 40}.get(lv, 20)
    board = board_mod.load()
    log_mod.info("HAN reader %s on %s (%s)", VERSION, board.title, sys.platform)
    if board.button_held() and board.button_long_hold(5000):
        log_mod.warn("button held 5 s at boot: safe mode, no application, no watchdog")
        return SAFE_MODE
    wdt = board.make_wdt(30000)
    data_dir = board.data_dir
    while True:
        app = build(board, data_dir, env, log_mod, wdt)
        if board.is_device:
            gc.collect()  # collect early and often: less fragmentation (micropython.md 8)
            gc.threshold(gc.mem_free() // 4 + gc.mem_alloc())
        soak = env("HAN_SOAK")
        if soak:
            from app import diag

            diag.soak(app, board, int(soak), env)
            return STOP
        r = app.run()
        if r != RESTART or board.is_device:
            return r
        log_mod.info("restarting the application with the new configuration")
        gc.collect()
