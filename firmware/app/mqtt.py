# The device's MQTT side: state, per-value, raw and diagnostics topics, availability with a
# last will, Home Assistant discovery, and a umqtt.simple client kept alive by poll().
# Topics and payloads: docs/mqtt.md.
#
#   pub = Publisher(cfg, "han-a1b2c3", client_factory=None, log=log.info, model=board.title)
#   loop:   pub.poll(now_ms)                      # upkeep: connect, ping, drain, announce
#   frame:  pub.reading(rd, dec, now_ms)          # -> True if the state went out
#   60 s:   pub.diagnostics(d, now_ms)            # -> True if it went out
#   Wi-Fi:  pub.set_ip(ip)                        # configuration_url in discovery
#   end:    pub.close()                           # "offline", disconnect, no more reconnects
#   pub.connected, .connects, .reconnects, .errors, .dropped, .published, .last_error
#
# Nothing here raises to the caller and nothing blocks for long: one connect attempt per poll
# (socket timeout CONNECT_TIMEOUT s), exponential backoff 1 s .. 60 s between attempts, every
# later socket operation bounded by IO_TIMEOUT s. While disconnected, readings are dropped
# (counted), never queued. Topics are bytes (umqtt takes lengths from len()). Secrets (cfg
# SECRETS) never reach a payload or a log line: the password goes only into the CONNECT packet.
# log: a callable taking one preformatted line, or an object with info()/warn() (app.log).
import json

from app import discovery
from app.config import SECRETS
from app.version import VERSION
from han import export, obis

try:
    from time import ticks_add, ticks_diff
except ImportError:  # CPython

    def ticks_diff(a, b):
        return a - b

    def ticks_add(a, b):
        return a + b


CONNECT_TIMEOUT = 5  # s: TCP connect + CONNACK (umqtt >= 1.5 connect(timeout=), else a shim)
IO_TIMEOUT = 3  # s: any later read or write
BACKOFF_MIN = 1000  # ms
BACKOFF_MAX = 60000
STABLE_MS = 60000  # a connection that lasted this long resets the backoff
ID_WAIT_MS = 30000  # announce without a meter id when none has come after this long
ANNOUNCE_PER_POLL = 6  # discovery messages per poll(), so the UART loop keeps running
DRAIN_PER_POLL = 8  # incoming messages handled per poll()

_ONLINE = b"online"
_OFFLINE = b"offline"
_NSLOT = obis.NUM_SLOTS


class _Sock:
    # Wraps the client's socket after connect. umqtt's wait_msg() calls setblocking(True),
    # which on the ESP32 makes the timeout infinite: here it restores the bounded timeout
    # instead. It also notes that bytes arrived (a PINGRESP is otherwise invisible), which is
    # how a silently dead link is found.
    def __init__(self, s, timeout):
        self.s = s
        self.t = timeout
        self.rx = False
        self.settimeout(timeout)

    def read(self, n):
        d = self.s.read(n)
        if d:
            self.rx = True
        return d

    def write(self, buf, n=-1):
        if n < 0:
            return self.s.write(buf)
        return self.s.write(buf, n)

    def setblocking(self, flag):
        if flag:
            self.settimeout(self.t)
        else:
            self.s.setblocking(False)

    def settimeout(self, t):
        try:
            self.s.settimeout(t)
        except (AttributeError, OSError):  # some TLS sockets have none
            if t is not None:
                self.s.setblocking(True)

    def close(self):
        self.s.close()


class _TimedSockets:
    # Stands in for the socket module inside umqtt.simple < 1.5, whose connect() has no
    # timeout: its sockets get CONNECT_TIMEOUT before they connect.
    def __init__(self, mod):
        self.mod = mod

    def socket(self, *a):
        s = self.mod.socket(*a)
        s.settimeout(CONNECT_TIMEOUT)
        return s

    def getaddrinfo(self, *a):
        return self.mod.getaddrinfo(*a)


def _default_factory(client_id, server, port, user, password, keepalive, ssl, ssl_params):
    from umqtt.simple import MQTTClient

    return MQTTClient(client_id, server, port=port, user=user, password=password,
                      keepalive=keepalive, ssl=ssl, ssl_params=ssl_params)


def _nolog(msg):
    pass


def _log_funcs(log):
    # (info, warn) from app.log (a module or object with info/warn) or a plain callable.
    if log is None:
        return _nolog, _nolog
    if hasattr(log, "info"):
        return log.info, getattr(log, "warn", log.info)
    return log, log


def _b(s):
    return s.encode() if isinstance(s, str) else bytes(s)


def _err(e):
    # Short text for a log line. Exception texts here never hold secrets (errno numbers,
    # MQTT return codes, umqtt asserts).
    return "%s %s" % (type(e).__name__, e)


class Publisher:
    def __init__(self, cfg, device_id, client_factory=None, log=None, model=None):
        self.cfg = cfg
        self.device_id = device_id
        self._factory = client_factory or _default_factory
        self._info, self._warn = _log_funcs(log)
        self.model = model  # board / hardware name: device hw_version
        self.ip = None
        self.client = None
        self.connected = False
        self.connects = 0  # successful connects
        self.reconnects = 0  # successful connects after the first
        self.errors = 0  # failed attempts and lost connections
        self.dropped = 0  # readings not published because disconnected
        self.published = 0  # state messages sent
        self.last_error = None
        base = cfg.get("mqtt_prefix") or "han"
        base = "%s/%s/" % (base, device_id)
        self.base = base
        self.t_state = _b(base + "state")
        self.t_status = _b(base + "status")
        self.t_raw = _b(base + "raw")
        self.t_diag = _b(base + "diagnostics")
        self._ha = bool(cfg.get("ha_discovery"))
        self.ha_prefix = cfg.get("ha_prefix") or "homeassistant"
        self.t_ha_status = _b(self.ha_prefix + "/status")
        self._next_try = None  # ticks of the next connect attempt; None = now
        self._backoff = BACKOFF_MIN
        self._up_at = 0
        self._last_ping = 0
        self._last_rx = 0
        self._ha_online = False
        # Min-interval bookkeeping: start of the current window and which slots went out in it.
        self._win = None
        self._sent = bytearray(_NSLOT)
        # Discovery: slots the meter has ever sent, diagnostics keys seen.
        self._seen = bytearray(_NSLOT)
        self._diag_seen = []
        self._queue = []  # pending announcements: slot ints and diagnostics key strings
        self._meter = (None, None, None, None)  # id, type, list id, maker
        self._t0 = None  # ticks of the first poll/reading (for ID_WAIT_MS)
        self._dev = None  # current device block (None until the identity is settled)
        self._origin = None
        self.closed = False

    # ---- public API ----

    def poll(self, now_ms):
        try:
            self._upkeep(now_ms)
        except Exception as e:  # anything umqtt or the socket throws: never to the caller
            self._lost(now_ms, e)

    def reading(self, rd, dec, now_ms):
        # Publish a decoded reading; True if the state message went out.
        try:
            if self._t0 is None:
                self._t0 = now_ms
            new = self._note_reading(rd, dec)
            self._settle_device(now_ms)
            if not self.connected:
                self.dropped += 1
                return False
            if not self._due(rd, now_ms):
                return False
            payload = _b(export.state_json(rd))
            topics = self._per_value(rd) if self.cfg.get("mqtt_per_value") else None
            raw = self._raw_hex(dec) if self.cfg.get("mqtt_raw") else None
        except Exception as e:  # a formatting bug must not stop the loop
            self._warn("mqtt: cannot format reading: " + _err(e))
            return False
        try:
            if new and self._dev is not None:
                self._announce(now_ms, len(self._queue))  # configs before the state they read
            self.client.publish(self.t_state, payload)
            if topics:
                for t, v in topics:
                    self.client.publish(t, v)
            if raw is not None:
                self.client.publish(self.t_raw, raw)
            self.published += 1
            return True
        except Exception as e:
            self._lost(now_ms, e)
            return False

    def diagnostics(self, d, now_ms):
        # Publish the main loop's diagnostics dict as JSON; True if it went out.
        try:
            d = {k: v for k, v in d.items() if k not in SECRETS}
            ip = d.get("ip")
            if ip:
                self.set_ip(ip)
            if self._ha and len(self._diag_seen) < len(discovery.DIAG):
                for item in discovery.diag_paths(d):
                    if item not in self._diag_seen:
                        self._diag_seen.append(item)
                        if self._dev is not None:
                            self._queue.append(item)
            if not self.connected:
                return False
            payload = _b(json.dumps(d))
        except Exception as e:
            self._warn("mqtt: cannot format diagnostics: " + _err(e))
            return False
        try:
            self.client.publish(self.t_diag, payload)
            return True
        except Exception as e:
            self._lost(now_ms, e)
            return False

    def set_ip(self, ip):
        # The device's address, for the discovery configuration_url.
        if ip != self.ip:
            self.ip = ip
            if self._dev is not None:
                self._dev = None  # rebuilt (and everything re-announced) on the next poll

    def close(self):
        # Graceful and final: "offline" now (the broker drops the will on a clean DISCONNECT);
        # poll() does not reconnect afterwards.
        self.closed = True
        c = self.client
        if c is not None and self.connected:
            try:
                c.publish(self.t_status, _OFFLINE, True)
                c.disconnect()
            except Exception:
                pass
        self._drop_client()

    # ---- connection upkeep ----

    def _upkeep(self, now):
        if self._t0 is None:
            self._t0 = now
        if self.closed or not self.cfg.get("mqtt_host"):
            return
        self._settle_device(now)
        if not self.connected:
            if self._next_try is None or ticks_diff(now, self._next_try) >= 0:
                self._connect(now)
            return
        c = self.client
        s = c.sock
        for _ in range(DRAIN_PER_POLL):
            s.rx = False
            c.check_msg()
            s.settimeout(IO_TIMEOUT)  # check_msg() left the socket blocking: bound it again
            if not s.rx:
                break
            self._last_rx = now
        ka = self._keepalive()
        if ka:
            if ticks_diff(now, self._last_rx) > ka * 1000:
                raise OSError(110)  # no PINGRESP for two ping periods: a dead link
            if ticks_diff(now, self._last_ping) >= ka * 500:
                c.ping()
                self._last_ping = now
        if self._ha_online:
            self._ha_online = False
            self._requeue_all()
        if self._queue:
            self._announce(now, ANNOUNCE_PER_POLL)

    def _keepalive(self):
        return self.cfg.get("mqtt_keepalive", 60) or 0

    def _connect(self, now):
        cfg = self.cfg
        host = cfg.get("mqtt_host")
        port = cfg.get("mqtt_port", 1883)
        try:
            user = cfg.get("mqtt_user") or None
            pw = None
            if user:
                user = _b(user)
                pw = _b(cfg.get("mqtt_password") or "")
            ssl, ssl_params = self._tls()
            cid = _b(cfg.get("mqtt_client_id") or self.device_id)
            c = self._factory(cid, host, port, user, pw, self._keepalive(), ssl, ssl_params)
            self.client = c
            c.set_last_will(self.t_status, _OFFLINE, True)
            self._open(c)
            s = _Sock(c.sock, IO_TIMEOUT)
            c.sock = s
            c.set_callback(self._on_msg)
            c.publish(self.t_status, _ONLINE, True)
            if self._ha:
                c.subscribe(self.t_ha_status)
                s.settimeout(IO_TIMEOUT)
        except Exception as e:
            self._drop_client()
            self.errors += 1
            self.last_error = _err(e)
            self._schedule(now)
            self._warn("mqtt: connect to %s:%s failed (%s), next try in %d s"
                      % (host, port, self.last_error, self._backoff // 1000))
            self._grow()
            return False
        self.connected = True
        self.connects += 1
        if self.connects > 1:
            self.reconnects += 1
        self._up_at = now
        self._last_ping = now
        self._last_rx = now
        self._info("mqtt: connected to %s:%s" % (host, port))
        if self._dev is not None:
            self._requeue_all()  # the broker may have lost retained configs
        return True

    def _open(self, c):
        # connect() with a timeout; umqtt.simple < 1.5 has no timeout argument.
        try:
            c.connect(timeout=CONNECT_TIMEOUT)
            return
        except TypeError:
            if getattr(c, "sock", None) is not None:  # raised inside a newer connect()
                raise
        try:
            import umqtt.simple as m

            if isinstance(c, m.MQTTClient) and not isinstance(m.socket, _TimedSockets):
                m.socket = _TimedSockets(m.socket)
        except ImportError:
            pass
        c.connect()

    def _tls(self):
        # (ssl, ssl_params) for the client. umqtt >= 1.6 uses the SSLContext; older versions
        # take ssl as a flag and call ssl.wrap_socket(sock, **ssl_params). Not testable on the
        # host: umqtt.simple 1.3.4 imports the missing `ussl`.
        cfg = self.cfg
        if not cfg.get("mqtt_tls"):
            return False, {}
        import ssl

        ca = None
        if cfg.get("mqtt_ca"):
            with open(cfg["mqtt_ca"], "rb") as f:
                ca = f.read()
        params = {"server_hostname": cfg.get("mqtt_host")}
        if ca:
            params["cert_reqs"] = ssl.CERT_REQUIRED
            params["cadata"] = ca
        else:
            self._warn("mqtt: TLS without a CA file: the broker's certificate is not checked")
        if not hasattr(ssl, "SSLContext"):
            return True, params
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        if ca:
            ctx.load_verify_locations(cadata=ca)
            ctx.verify_mode = ssl.CERT_REQUIRED
        else:
            ctx.verify_mode = ssl.CERT_NONE
        return ctx, params

    def _lost(self, now, e):
        was = self.connected
        self._drop_client()
        self.errors += 1
        self.last_error = _err(e)
        if was and ticks_diff(now, self._up_at) >= STABLE_MS:
            self._backoff = BACKOFF_MIN
        self._schedule(now)
        self._warn("mqtt: %s (%s), reconnect in %d s"
                  % ("connection lost" if was else "error", self.last_error,
                     self._backoff // 1000))
        self._grow()

    def _schedule(self, now):
        self._next_try = ticks_add(now, self._backoff)

    def _grow(self):
        self._backoff = min(self._backoff * 2, BACKOFF_MAX)

    def _drop_client(self):
        c = self.client
        self.client = None
        self.connected = False
        if c is not None and getattr(c, "sock", None) is not None:
            try:
                c.sock.close()
            except Exception:
                pass

    def _on_msg(self, topic, msg):
        # umqtt callback: only note it; publishing from here could recurse.
        if topic == self.t_ha_status and msg == _ONLINE:
            self._ha_online = True

    # ---- state ----

    def _due(self, rd, now):
        # mqtt_min_interval: within a window, a reading goes out only if it carries a value
        # not yet sent in that window (so an hourly list with the energy totals is never
        # dropped for the 2 s list beside it).
        iv = self.cfg.get("mqtt_min_interval", 0) or 0
        if not iv:
            return True
        sent = self._sent
        if self._win is None or ticks_diff(now, self._win) >= iv * 1000:
            self._win = now
            for i in range(_NSLOT):
                sent[i] = rd.seen[i] == 1
            return True
        new = False
        for i in range(_NSLOT):
            if rd.seen[i] == 1 and not sent[i]:
                sent[i] = 1
                new = True
        return new

    def _per_value(self, rd):
        out = []
        for k, v in export.texts(rd).items():
            out.append((_b(self.base + k), _b(v)))
        for k, v in export.numbers(rd).items():
            out.append((_b(self.base + k), _b(v)))
        return out

    def _raw_hex(self, dec):
        from binascii import hexlify

        buf = getattr(dec, "frame_buf", None)
        if buf is None:
            return None
        s, e = dec.frame_start, dec.frame_end
        return hexlify(memoryview(buf)[s:e])

    # ---- discovery ----

    def _note_reading(self, rd, dec):
        # Remember which slots the meter sends and who it is; True if a slot is new.
        new = False
        for i in range(_NSLOT):
            if rd.seen[i] == 1 and not self._seen[i]:
                self._seen[i] = 1
                new = True
                if self._dev is not None:
                    self._queue.append(i)
        # The identity only fills in (a list with the id, another with the type): a value once
        # known is kept until reboot, so the device block, and with it every retained config,
        # does not churn when lists differ or a second meter shows up on the bus.
        old = self._meter
        if old[0] and old[1] and old[3]:
            return new
        mid = old[0] or rd.get_text(obis.METER_ID)
        mtype = old[1] or rd.get_text(obis.METER_TYPE)
        lid = old[2] or rd.get_text(obis.LIST_ID)
        title = dec.title if getattr(dec, "title_ok", False) else None  # ciphered frames
        maker = old[3] or discovery.manufacturer(mid, mtype, lid, title)
        meter = (mid, mtype, lid, maker)
        if meter != old:
            self._meter = meter
            if self._dev is not None and (mid != old[0] or mtype != old[1] or maker != old[3]):
                self._dev = None  # the device block grew: rebuild and re-announce
        return new

    def _settle_device(self, now):
        # The device block exists once the meter id is known, or ID_WAIT_MS after start for
        # meters that send none (diagnostics are announced even without any meter).
        if not self._ha or self._dev is not None:
            return
        mid, mtype, lid, maker = self._meter
        if not mid and (self._t0 is None or ticks_diff(now, self._t0) < ID_WAIT_MS):
            return
        name = self.cfg.get("device_name") or self.device_id
        self._dev = discovery.device_block(self.device_id, name, mid, mtype, maker, VERSION,
                                           self.model, self.ip)
        self._origin = {"name": "han-reader", "sw_version": VERSION}
        self._requeue_all()

    def _requeue_all(self):
        if self._dev is None:
            return
        q = [i for i in range(_NSLOT) if self._seen[i]]
        q.extend(self._diag_seen)
        self._queue = q

    def _announce(self, now, n):
        # Publish up to n pending discovery configs (retained).
        if not self._ha or self._dev is None:
            self._queue = []
            return
        c = self.client
        avail = self.t_status.decode()
        while self._queue and n > 0:
            item = self._queue[0]
            if isinstance(item, int):
                key, payload = discovery.slot_config(item, self.device_id, self.t_state.decode(),
                                                     avail, self._dev, self._origin)
            else:
                key, payload = discovery.diag_config(item[0], item[1], self.device_id,
                                                     self.t_diag.decode(), avail, self._dev,
                                                     self._origin)
            c.publish(_b(discovery.config_topic(self.ha_prefix, self.device_id, key)),
                      _b(payload), True)
            self._queue.pop(0)
            n -= 1
