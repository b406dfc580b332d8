# The setup portal: access point HAN-XXXX, captive DNS and a small web server with one form.
# Non-blocking, so the main loop can run it beside metering:
#
#   p = Portal(cfg, cfg_path, net, status=None, log=None)
#   p.start()            scan (cached), AP up, DNS on cfg["dns_port"], HTTP on cfg["http_port"]
#   while not p.poll():  bounded work per call; True once a new valid config has been
#       meter_step()     saved and its confirmation page delivered (then: restart)
#   p.stop()
#
# status: a callable returning {label: value} for the status page (meter frames, broker...);
# log: a callable taking one line of text. Neither ever receives a secret from here.
import os
import select
import time

from app import config
from app import portal_form
from app import portal_page
from app.dns import CaptiveDns
from app.http import HttpServer

_EVENTS_PER_POLL = 8
_CONFIRM_GRACE_MS = 3000  # poll() reports a save at the latest this long after it

# The connectivity probes of phones and desktops (micropython.md section 6). Any answer but
# the exact "online" one makes the OS open its portal window; we redirect them all.
PROBES = ("/generate_204", "/gen_204", "/hotspot-detect.html", "/library/test/success.html",
          "/connecttest.txt", "/ncsi.txt", "/redirect", "/canonical.html", "/success.txt",
          "/kindle-wifi/wifistub.html", "/chat")

_PW_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"  # no 0/o, 1/l/i: read off a console


def ap_name(mac_hex):
    return "HAN-" + mac_hex[-4:].upper()


def new_ap_password():
    # 12 random characters (~59 bits) from os.urandom, shown as xxxx-xxxx-xxxx (14 chars).
    # Rejection sampling keeps every character equally likely.
    n = len(_PW_ALPHABET)
    limit = 256 - 256 % n
    out = []
    while len(out) < 12:
        for b in os.urandom(16):
            if b < limit and len(out) < 12:
                out.append(_PW_ALPHABET[b % n])
    s = "".join(out)
    return s[0:4] + "-" + s[4:8] + "-" + s[8:12]


def _qr_escape(s):
    for ch in ("\\", ";", ",", ":", '"'):
        s = s.replace(ch, "\\" + ch)
    return s


def wifi_qr_text(ssid, password):
    # The text a phone camera understands as "join this network" (the WIFI: URI scheme).
    if not password:
        return "WIFI:T:nopass;S:" + _qr_escape(ssid) + ";;"
    return "WIFI:T:WPA;S:" + _qr_escape(ssid) + ";P:" + _qr_escape(password) + ";;"


def device_name(cfg, mac_hex):
    return cfg.get("device_name") or ap_name(mac_hex)


class Portal:
    def __init__(self, cfg, cfg_path, net, status=None, log=None):
        self.cfg = cfg
        self.path = cfg_path
        self.net = net
        self.status = status
        self.log = log or (lambda line: None)
        self.scan_list = []
        self.name = ap_name(net.mac_hex())
        self.token = ""
        self.dns = None
        self.http = None
        self.poller = None
        self._saved_at = None
        self._report = False

    # -- life cycle ------------------------------------------------------------------------

    def start(self):
        cfg = self.cfg
        self.rescan()  # before the AP: a scan with the AP up drops its clients
        if not cfg.get("ap_password") and not cfg.get("ap_open"):
            # normally made by the main loop at first boot; never run a WPA2 AP without one
            cfg["ap_password"] = new_ap_password()
            try:
                config.save(self.path, cfg)
                self.log("portal: created a setup network password (see the console banner)")
            except (OSError, ValueError):
                self.log("portal: could not store the new setup network password")
        self.token = "".join("%02x" % b for b in os.urandom(12))
        self.net.ap_start(self.name, cfg.get("ap_password", ""), open_=bool(cfg.get("ap_open")))
        ip = self.net.ap_ip()
        bind = self.net.bind_ip()
        self.poller = select.poll()
        self.dns = CaptiveDns(bind, cfg["dns_port"], ip)
        self.poller.register(self.dns.sock, select.POLLIN)
        self.http = HttpServer(bind, cfg["http_port"], self.handle, self.poller, self.log)
        port = cfg["http_port"]
        self.url = "http://" + ip + ("" if port == 80 else ":%d" % port) + "/"
        self.log("portal: %s %s, dns %s:%d, http %s:%d" % (
            self.name, "open" if cfg.get("ap_open") else "wpa2", bind, cfg["dns_port"], bind, port))

    def stop(self):
        if self.http:
            self.http.close()
            self.http = None
        if self.dns:
            try:
                self.poller.unregister(self.dns.sock)
            except (OSError, KeyError, ValueError):
                pass
            self.dns.close()
            self.dns = None
        self.net.ap_stop()
        self.log("portal: stopped")

    def poll(self):
        now = time.ticks_ms()
        events = self.poller.poll(0)
        for obj, ev in events[:_EVENTS_PER_POLL]:
            if self.dns and obj is self.dns.sock:
                try:
                    self.dns.handle()
                except MemoryError:
                    pass  # that query goes unanswered; the client asks again
            elif self.http:
                self.http.event(obj, ev, now)
        if self.http:
            self.http.expire(now)
        if self._saved_at is not None and not self._report:
            if time.ticks_diff(now, self._saved_at) >= _CONFIRM_GRACE_MS:
                self._report = True
        if self._report:
            self._report = False
            self._saved_at = None
            return True
        return False

    def rescan(self):
        # A scan can fail or come back empty while the station is busy reconnecting (the
        # portal may run beside it): keep the previous list then.
        try:
            found = self.net.scan()
        except OSError:
            found = []
        if found or not self.scan_list:
            self.scan_list = found
        return self.scan_list

    # -- pages -----------------------------------------------------------------------------

    def _html(self, body, status=200):
        return status, "text/html; charset=utf-8", body, ""

    def _redirect(self, to=None, status=302):
        return status, "text/html; charset=utf-8", b"", "Location: " + (to or self.url) + "\r\n"

    def _form(self, values=None, errors=None, notice=""):
        cfg = self.cfg
        shown = dict(values or cfg)
        for k in config.SECRETS:
            shown.pop(k, None)
        stored = {k: bool(cfg.get(k)) for k in config.SECRETS}
        return portal_page.form_page(device_name(cfg, self.net.mac_hex()), self.scan_list, shown,
                                     stored, errors or {}, self.token, notice)

    def _status_rows(self):
        rows = [("Setup network", self.name), ("Wi-Fi", self.net.sta_status())]
        r = self.net.rssi()
        if r is not None:
            rows.append(("Signal", "%d dBm" % r))
        extra = {}
        if self.status:
            try:
                extra = self.status() or {}
            except Exception as e:  # the status provider must not break the portal
                extra = {"status": "unavailable (%s)" % type(e).__name__}
        for k in sorted(extra):
            if k not in config.SECRETS:
                rows.append((k, extra[k]))
        return rows

    def handle(self, req):
        path = req.path
        if req.method == "POST":
            return self._post(req)
        if path == "/" or path == "/index.html":
            if not self._our_host(req):
                return self._redirect()
            return self._html(self._form())
        if path == "/status":
            return self._html(portal_page.status_page(self.name, self._status_rows()))
        if path == "/favicon.ico":
            return 404, "text/plain", b"", ""
        # every probe and any other URL, whatever its Host: to the portal
        return self._redirect()

    def _our_host(self, req):
        host = req.headers.get("host", "")
        return not host or self.url.startswith("http://" + host + "/") or host == self.net.ap_ip()

    def _post(self, req):
        ctype = req.headers.get("content-type", "")
        if not ctype.startswith("application/x-www-form-urlencoded"):
            return 415, "text/plain", b"form data only\n", ""
        fields, bad = portal_form.parse_form(req.body)
        if fields.get("token") != self.token:
            # a page from elsewhere, or a form from before a restart
            return self._html(portal_page.message_page(
                "Form expired", "Please open the setup page again and resubmit."), 403)
        if req.path == "/scan":
            self.rescan()
            return self._redirect(self.url, 303)
        if req.path != "/save":
            return 404, "text/plain", b"", ""
        new, errors = portal_form.apply(self.cfg, fields, bad)
        if not errors:
            try:
                config.save(self.path, new)
            except (OSError, ValueError):
                errors = {"form": "could not be stored on the device; try again"}
        if errors:
            self.log("portal: submission refused: " + ", ".join(sorted(errors)))
            return self._html(self._form(new, errors), 200)
        ap_changed = new.get("ap_password") != self.cfg.get("ap_password")
        self.cfg = new
        self.log("portal: configuration saved")
        self._saved_at = time.ticks_ms()
        req.on_sent = self._confirmed
        broker = "%s:%d%s" % (new["mqtt_host"], new["mqtt_port"], " (TLS)" if new["mqtt_tls"] else "")
        return self._html(portal_page.saved_page(device_name(new, self.net.mac_hex()),
                                                 new["wifi_ssid"], broker, ap_changed))

    def _confirmed(self):
        self._report = True
