# The portal's HTML: one form page, the confirmation, the status page and a short message
# page. Self-contained (inline CSS, no scripts, no external resources) and small, because an
# ESP32 without PSRAM builds each page in RAM. Every value shown goes through esc().
# Secrets are never written into a page: a password field only says whether one is stored.

_CSS = (
    "body{font:16px sans-serif;margin:0 auto;max-width:32em;padding:.6em;color:#222}"
    "h1{font-size:1.3em}fieldset{border:1px solid #bbb;border-radius:6px;margin:.8em 0}"
    "label{display:block;margin:.5em 0 .1em}input,select,button{font-size:16px;box-sizing:border-box}"
    "input[type=text],input[type=password],select{width:100%;padding:.4em}"
    "label.c{display:flex;gap:.5em;align-items:center}"
    ".n{display:flex;justify-content:space-between}.e{color:#b00020}.err{border:2px solid #b00020;"
    "padding:.4em;border-radius:6px}button{padding:.6em 1.2em;margin:.4em 0}small{color:#555}"
    "td{padding:.2em .6em .2em 0;vertical-align:top}"
)

LABELS = {
    "wifi_ssid": "Wi-Fi network",
    "wifi_password": "Wi-Fi password",
    "mqtt_host": "MQTT broker host",
    "mqtt_port": "MQTT port",
    "mqtt_user": "MQTT user",
    "mqtt_password": "MQTT password",
    "mqtt_tls": "TLS",
    "mqtt_prefix": "Topic prefix",
    "ha_discovery": "Home Assistant discovery",
    "meter_protocol": "Meter protocol",
    "meter_baud": "Baud rate",
    "meter_parity": "Parity",
    "meter_invert": "RX inversion",
    "meter_key": "Decryption key",
    "meter_auth_key": "Authentication key",
    "ap_password": "Setup network password",
    "form": "Form",
}

_OPTIONS = {
    "meter_protocol": (("auto", "automatic"), ("p1", "P1 (DSMR text)"), ("hdlc", "HAN HDLC/DLMS"),
                       ("mbus", "M-Bus")),
    "meter_baud": (("0", "automatic"), ("2400", "2400"), ("9600", "9600"), ("19200", "19200"),
                   ("38400", "38400"), ("57600", "57600"), ("115200", "115200")),
    "meter_parity": (("none", "none (8N1)"), ("even", "even (8E1)"), ("odd", "odd (8O1)")),
    "meter_invert": (("auto", "automatic"), ("yes", "inverted"), ("no", "not inverted")),
}


def esc(v):
    s = str(v)
    for a, b in (("&", "&amp;"), ("<", "&lt;"), (">", "&gt;"), ('"', "&quot;"), ("'", "&#39;")):
        if a in s:
            s = s.replace(a, b)
    return s


def _doc(title, parts, refresh=0):
    head = ('<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width,initial-scale=1">')
    if refresh:
        head += '<meta http-equiv="refresh" content="%d">' % refresh
    head += "<title>" + esc(title) + "</title><style>" + _CSS + "</style></head><body>"
    return (head + "".join(parts) + "</body></html>").encode()


class _Form:
    # Collects the pieces of the form page; o() appends, the helpers render one field each.
    def __init__(self, values, stored, errors):
        self.p = []
        self.v = values  # non-secret values to show (stored or just submitted)
        self.stored = stored  # secrets: name -> True when a value is stored
        self.errors = errors

    def o(self, *s):
        self.p.extend(s)

    def _err(self, k):
        if k in self.errors:
            self.o('<div class="e" id="e_', k, '">', esc(LABELS.get(k, k)), " ",
                   esc(self.errors[k]), "</div>")

    def text(self, k, hint=""):
        self.o('<label for="', k, '">', LABELS[k], "</label>")
        self.o('<input type="text" id="', k, '" name="', k, '" value="', esc(self.v.get(k, "")),
               '" autocapitalize="none" autocomplete="off" spellcheck="false"',
               ' placeholder="' + esc(hint) + '"' if hint else "", ">")
        self._err(k)

    def secret(self, k, kind="password", clear=""):
        have = self.stored.get(k)
        hint = "stored; leave empty to keep" if have else "not set"
        self.o('<label for="', k, '">', LABELS[k], "</label>")
        self.o('<input type="', kind, '" id="', k, '" name="', k, '" value="" placeholder="', hint,
               '" autocapitalize="none" autocomplete="off" spellcheck="false">')
        if clear and have:
            self.o('<label class="c"><input type="checkbox" name="clear_', k, '">', clear, "</label>")
        self._err(k)

    def check(self, k):
        on = " checked" if self.v.get(k) else ""
        self.o('<label class="c"><input type="checkbox" id="', k, '" name="', k, '"', on, ">",
               LABELS[k], "</label>")
        self._err(k)

    def select(self, k):
        cur = str(self.v.get(k, ""))
        self.o('<label for="', k, '">', LABELS[k], '</label><select id="', k, '" name="', k, '">')
        for val, text in _OPTIONS[k]:
            self.o('<option value="', val, '"', " selected" if val == cur else "", ">", text,
                   "</option>")
        self.o("</select>")
        self._err(k)


def _bars(rssi):
    return "▂▄▆█"[: 1 if rssi < -80 else 2 if rssi < -70 else 3 if rssi < -60 else 4]


def form_page(name, scan, values, stored, errors, token, notice=""):
    # name: the device's name; scan: [(ssid, rssi, secure)]; values: non-secret config values
    f = _Form(values, stored, errors)
    f.o("<h1>", esc(name), " setup</h1>")
    if notice:
        f.o("<p>", esc(notice), "</p>")
    if errors:
        f.o('<div class="err" id="errors"><b>Not saved.</b> Please correct:<ul>')
        for k in sorted(errors):
            f.o("<li>", esc(LABELS.get(k, k)), ": ", esc(errors[k]), "</li>")
        f.o("</ul>The stored configuration is unchanged.</div>")
    f.o('<form method="post" action="/scan" class="n"><b>Wi-Fi</b>'
        '<input type="hidden" name="token" value="', token, '">'
        '<button id="rescan">Rescan</button></form>')
    f.o('<form method="post" action="/save" id="setup" novalidate>'
        '<input type="hidden" name="token" value="', token, '"><fieldset><legend>Wi-Fi</legend>')
    cur = values.get("wifi_ssid", "")
    listed = False
    for i, (ssid, rssi, secure) in enumerate(scan):
        sel = ssid == cur
        listed = listed or sel
        f.o('<label class="c"><input type="radio" name="wifi_ssid" id="net', str(i), '" value="',
            esc(ssid), '"', " checked" if sel else "", "><span>", esc(ssid), "</span><small>",
            _bars(rssi), " ", str(rssi), " dBm", " secured" if secure else " open",
            "</small></label>")
    if not scan:
        f.o("<p><small>No networks found. Rescan, or type the name below.</small></p>")
    f.o('<label for="wifi_ssid_hidden">Other (hidden) network name</label>'
        '<input type="text" id="wifi_ssid_hidden" name="wifi_ssid_hidden" value="',
        "" if listed else esc(cur), '" autocapitalize="none" autocomplete="off">')
    f._err("wifi_ssid")
    f.secret("wifi_password", clear="open network (no password)")
    f.o("</fieldset><fieldset><legend>MQTT broker</legend>")
    f.text("mqtt_host", "e.g. 192.168.1.10 or broker.lan")
    f.text("mqtt_port")
    f.text("mqtt_user")
    f.secret("mqtt_password", clear="no password")
    f.check("mqtt_tls")
    f.text("mqtt_prefix")
    f.check("ha_discovery")
    f.o("</fieldset><fieldset><legend>Meter</legend><small>Leave on automatic unless the meter "
        "is not found.</small>")
    for k in ("meter_protocol", "meter_baud", "meter_parity", "meter_invert"):
        f.select(k)
    f.secret("meter_key", "text", "remove the key")
    f.secret("meter_auth_key", "text", "remove the key")
    f.o("<small>32 hex digits each, from the grid operator; only for encrypted meters."
        "</small></fieldset><fieldset><legend>Setup network</legend>")
    f.secret("ap_password")
    f.o("<small>For joining ", esc(name), " next time; 8 to 63 characters.</small></fieldset>"
        '<button type="submit" id="save">Save and restart</button></form>'
        '<p><a href="/status">Device status</a></p>')
    return _doc(name + " setup", f.p)


def saved_page(name, ssid, ap_changed):
    parts = ['<h1 id="saved">Saved</h1><p>The device now restarts as <b id="name">', esc(name),
             '</b> and joins <b id="ssid">', esc(ssid), "</b>.</p>"]
    if ap_changed:
        parts.append("<p>The setup network password was changed.</p>")
    parts.append("<p>Reconnect this phone to your usual network. If the device cannot reach "
                 "Wi-Fi, its setup network opens again after a while.</p>")
    return _doc("Saved", parts)


def status_page(name, rows):
    # rows: [(label, value)] already free of secrets
    parts = ["<h1>", esc(name), ' status</h1><table id="status">']
    for k, v in rows:
        parts.extend(("<tr><td>", esc(k), "</td><td>", esc(v), "</td></tr>"))
    parts.append('</table><p><small>Refreshes every 5 s.</small></p><p><a href="/">Setup</a></p>')
    return _doc(name + " status", parts, refresh=5)


def message_page(title, text):
    return _doc(title, ["<h1>", esc(title), "</h1><p>", esc(text), '</p><p><a href="/">Setup</a></p>'])
