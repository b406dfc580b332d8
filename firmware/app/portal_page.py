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
    ".r{text-align:right;margin-bottom:-.8em}.e{color:#b00020}.err{border:2px solid #b00020;"
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


def _doc(title, body, refresh=0):
    # Yields the page in pieces: the server streams them through a small buffer, so no
    # page-sized string or bytes object is ever built (no large contiguous allocation).
    yield ('<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
           '<meta name="viewport" content="width=device-width,initial-scale=1">')
    if refresh:
        yield '<meta http-equiv="refresh" content="%d">' % refresh
    yield "<title>"
    yield esc(title)
    yield "</title><style>"
    yield _CSS
    yield "</style></head><body>"
    yield from body
    yield "</body></html>"


def _err(errors, k):
    if k in errors:
        yield '<div class="e" id="e_%s">%s %s</div>' % (k, esc(LABELS.get(k, k)), esc(errors[k]))


def _text(v, errors, k, hint=""):
    yield '<label for="%s">%s</label>' % (k, LABELS[k])
    yield ('<input type="text" id="%s" name="%s" value="%s" autocapitalize="none" '
           'autocomplete="off" spellcheck="false"' % (k, k, esc(v.get(k, ""))))
    if hint:
        yield ' placeholder="%s"' % esc(hint)
    yield ">"
    yield from _err(errors, k)


def _secret(stored, errors, k, kind="password", clear=""):
    have = stored.get(k)
    yield '<label for="%s">%s</label>' % (k, LABELS[k])
    yield ('<input type="%s" id="%s" name="%s" value="" placeholder="%s" autocapitalize="none" '
           'autocomplete="off" spellcheck="false">'
           % (kind, k, k, "stored; leave empty to keep" if have else "not set"))
    if clear and have:
        yield '<label class="c"><input type="checkbox" name="clear_%s">%s</label>' % (k, clear)
    yield from _err(errors, k)


def _check(v, errors, k):
    yield '<label class="c"><input type="checkbox" id="%s" name="%s"%s>%s</label>' % (
        k, k, " checked" if v.get(k) else "", LABELS[k])
    yield from _err(errors, k)


def _select(v, errors, k):
    cur = str(v.get(k, ""))
    yield '<label for="%s">%s</label><select id="%s" name="%s">' % (k, LABELS[k], k, k)
    for val, text in _OPTIONS[k]:
        yield '<option value="%s"%s>%s</option>' % (val, " selected" if val == cur else "", text)
    yield "</select>"
    yield from _err(errors, k)


def _bars(rssi):
    return "▂▄▆█"[: 1 if rssi < -80 else 2 if rssi < -70 else 3 if rssi < -60 else 4]


def _networks(scan, cur, errors):
    listed = False
    i = 0
    for ssid, rssi, secure in scan:
        sel = ssid == cur
        listed = listed or sel
        yield ('<label class="c"><input type="radio" name="wifi_ssid" id="net%d" value="%s"%s>'
               "<span>%s</span><small>%s %d dBm %s</small></label>"
               % (i, esc(ssid), " checked" if sel else "", esc(ssid), _bars(rssi), rssi,
                  "secured" if secure else "open"))
        i += 1
    if not scan:
        yield "<p><small>No networks found. Rescan, or type the name below.</small></p>"
    yield ('<label for="wifi_ssid_hidden">Other (hidden) network name</label>'
           '<input type="text" id="wifi_ssid_hidden" name="wifi_ssid_hidden" value="%s" '
           'autocapitalize="none" autocomplete="off">' % ("" if listed else esc(cur)))
    yield from _err(errors, "wifi_ssid")


def _form_body(name, scan, v, stored, errors, token, notice):
    yield "<h1>%s setup</h1>" % esc(name)
    if notice:
        yield "<p>%s</p>" % esc(notice)
    if errors:
        yield '<div class="err" id="errors"><b>Not saved.</b> Please correct:<ul>'
        for k in sorted(errors):
            yield "<li>%s: %s</li>" % (esc(LABELS.get(k, k)), esc(errors[k]))
        yield "</ul>The stored configuration is unchanged.</div>"
    yield ('<form method="post" action="/scan" class="r">'
           '<input type="hidden" name="token" value="%s"><button id="rescan">Rescan networks'
           "</button></form>"
           '<form method="post" action="/save" id="setup" novalidate>'
           '<input type="hidden" name="token" value="%s"><fieldset><legend>Wi-Fi</legend>'
           % (token, token))
    yield from _networks(scan, v.get("wifi_ssid", ""), errors)
    yield from _secret(stored, errors, "wifi_password", clear="open network (no password)")
    yield "</fieldset><fieldset><legend>MQTT broker</legend>"
    yield from _text(v, errors, "mqtt_host", "e.g. 192.168.1.10 or broker.lan")
    yield from _text(v, errors, "mqtt_port")
    yield from _text(v, errors, "mqtt_user")
    yield from _secret(stored, errors, "mqtt_password", clear="no password")
    yield from _check(v, errors, "mqtt_tls")
    yield from _text(v, errors, "mqtt_prefix")
    yield from _check(v, errors, "ha_discovery")
    yield ("</fieldset><fieldset><legend>Meter</legend><small>Leave on automatic unless the "
           "meter is not found.</small>")
    for k in ("meter_protocol", "meter_baud", "meter_parity", "meter_invert"):
        yield from _select(v, errors, k)
    yield from _secret(stored, errors, "meter_key", "text", "remove the key")
    yield from _secret(stored, errors, "meter_auth_key", "text", "remove the key")
    yield ("<small>32 hex digits each, from the grid operator; only for encrypted meters."
           "</small></fieldset><fieldset><legend>Setup network</legend>")
    yield from _secret(stored, errors, "ap_password")
    yield ("<small>For joining %s next time; 8 to 63 characters.</small></fieldset>"
           '<button type="submit" id="save">Save and restart</button></form>'
           '<p><a href="/status">Device status</a></p>' % esc(name))


def form_page(name, scan, values, stored, errors, token, notice=""):
    # name: the device's name; scan: [(ssid, rssi, secure)]; values: non-secret values to
    # show (stored or just submitted); stored: {secret: True if one is stored}
    return _doc(name + " setup", _form_body(name, scan, values, stored, errors, token, notice))


def _saved_body(name, ssid, broker, ap_changed):
    yield ('<h1 id="saved">Saved</h1><p>The device now restarts as <b id="name">%s</b>, joins '
           '<b id="ssid">%s</b> and publishes to <b id="broker">%s</b>.</p>'
           % (esc(name), esc(ssid), esc(broker)))
    if ap_changed:
        yield "<p>The setup network password was changed.</p>"
    yield ("<p>Reconnect this phone to your usual network. If the device cannot reach "
           "Wi-Fi, its setup network opens again after a while.</p>")


def saved_page(name, ssid, broker, ap_changed):
    return _doc("Saved", _saved_body(name, ssid, broker, ap_changed))


def _status_body(name, rows):
    yield '<h1>%s status</h1><table id="status">' % esc(name)
    for k, v in rows:
        yield "<tr><td>%s</td><td>%s</td></tr>" % (esc(k), esc(v))
    yield '</table><p><small>Refreshes every 5 s.</small></p><p><a href="/">Setup</a></p>'


def status_page(name, rows):
    # rows: [(label, value)] already free of secrets
    return _doc(name + " status", _status_body(name, rows), refresh=5)


def message_page(title, text):
    return _doc(title, ("<h1>%s</h1><p>%s</p><p><a href=\"/\">Setup</a></p>" % (esc(title), esc(text)),))
