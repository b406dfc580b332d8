# The portal's form: decode an application/x-www-form-urlencoded body and turn it into a new
# configuration, or into {field: message} naming what is wrong. Pure logic (no sockets), so
# it runs and is tested on CPython and MicroPython alike.
#
# Rules: every value must be UTF-8 and at most _FIELD_MAX bytes before the per-field limits
# of app.config apply; secrets (config.SECRETS) left empty keep the stored value, and a
# "clear_<name>" checkbox removes an optional one; checkboxes absent from the body are off.
from app import config

_FIELD_MAX = 256  # bytes per decoded value; config has tighter limits per field
_MAX_FIELDS = 40

TEXT = ("mqtt_host", "mqtt_user", "mqtt_prefix")
BOOLS = ("mqtt_tls", "ha_discovery")
CHOICES = ("meter_protocol", "meter_parity", "meter_invert")
INTS = ("mqtt_port", "meter_baud")
SECRET_FIELDS = ("wifi_password", "mqtt_password", "meter_key", "meter_auth_key", "ap_password")
CLEARABLE = ("wifi_password", "mqtt_password", "meter_key", "meter_auth_key")
KEYS = ("meter_key", "meter_auth_key")


def _hexval(c):
    if 48 <= c <= 57:
        return c - 48
    c |= 0x20
    if 97 <= c <= 102:
        return c - 87
    return -1


def unquote_plus(raw):
    # Percent-decoding with '+' as space. bytes -> bytes, or None for a broken %-escape.
    out = bytearray()
    i, n = 0, len(raw)
    while i < n:
        c = raw[i]
        if c == 0x2B:  # '+'
            out.append(0x20)
        elif c == 0x25:  # '%'
            if i + 2 >= n:
                return None
            h, lo = _hexval(raw[i + 1]), _hexval(raw[i + 2])
            if h < 0 or lo < 0:
                return None
            out.append(h * 16 + lo)
            i += 2
        else:
            out.append(c)
        i += 1
    return bytes(out)


def utf8_text(b):
    # Strict UTF-8 (no overlong forms, no surrogates, nothing above U+10FFFF) -> str, or None.
    i, n = 0, len(b)
    while i < n:
        c = b[i]
        if c < 0x80:
            i += 1
            continue
        if 0xC2 <= c <= 0xDF:
            k, lo, hi = 1, 0x80, 0xBF
        elif 0xE0 <= c <= 0xEF:
            k = 2
            lo = 0xA0 if c == 0xE0 else 0x80
            hi = 0x9F if c == 0xED else 0xBF
        elif 0xF0 <= c <= 0xF4:
            k = 3
            lo = 0x90 if c == 0xF0 else 0x80
            hi = 0x8F if c == 0xF4 else 0xBF
        else:
            return None
        if i + k >= n:
            return None
        if not lo <= b[i + 1] <= hi:
            return None
        for j in range(i + 2, i + k + 1):
            if not 0x80 <= b[j] <= 0xBF:
                return None
        i += k + 1
    return b.decode("utf-8")


def parse_form(body):
    # bytes -> ({name: str}, {name: message}). Unknown names are kept (and ignored later).
    fields, bad = {}, {}
    if not body:
        return fields, bad
    pairs = body.split(b"&")
    if len(pairs) > _MAX_FIELDS:
        bad["form"] = "has too many fields"
        return fields, bad
    for pair in pairs:
        if not pair:
            continue
        eq = pair.find(b"=")
        k, v = (pair, b"") if eq < 0 else (pair[:eq], pair[eq + 1 :])
        name = unquote_plus(k)
        name = utf8_text(name) if name is not None else None
        if not name or len(name) > 32:
            bad["form"] = "is malformed"
            continue
        val = unquote_plus(v)
        if val is None:
            bad[name] = "is not properly encoded"
            continue
        if len(val) > _FIELD_MAX:
            bad[name] = "is too long (at most %d bytes)" % _FIELD_MAX
            continue
        text = utf8_text(val)
        if text is None:
            bad[name] = "is not valid UTF-8 text"
            continue
        fields[name] = text
    return fields, bad


def _to_int(s):
    s = s.strip()
    if not s or len(s) > 6:
        return None
    for ch in s:
        if ch not in "0123456789":
            return None
    return int(s)


def apply(cfg, fields, bad=None):
    # (current config, decoded fields) -> (new config, errors). errors empty = save it.
    errors = dict(bad or {})
    if "wifi_ssid_hidden" in errors:
        errors["wifi_ssid"] = errors.pop("wifi_ssid_hidden")
    new = dict(cfg)
    ssid = fields.get("wifi_ssid_hidden", "") or fields.get("wifi_ssid", "")
    new["wifi_ssid"] = ssid
    if not ssid and "wifi_ssid" not in errors:
        errors["wifi_ssid"] = "choose a network or type the name of a hidden one"
    for k in TEXT + CHOICES:
        if k in fields:
            new[k] = fields[k].strip()
    for k in BOOLS:
        new[k] = fields.get(k, "") in ("on", "1", "true", "yes")
    for k in INTS:
        if k in fields:
            v = _to_int(fields[k])
            if v is None:
                errors[k] = "must be a whole number"
            else:
                new[k] = v
    for k in SECRET_FIELDS:
        v = fields.get(k, "")
        if k in KEYS:
            v = v.replace(" ", "").replace(":", "").replace("-", "")
        if v:
            new[k] = v
        elif k in CLEARABLE and fields.get("clear_" + k):
            new[k] = ""
    if not new["mqtt_host"]:
        errors.setdefault("mqtt_host", "is needed: the name or address of the MQTT broker")
    elif " " in new["mqtt_host"]:
        errors.setdefault("mqtt_host", "must not contain spaces")
    pw = new["wifi_password"]
    if pw and len(pw) < 8 and fields.get("wifi_password"):
        errors.setdefault("wifi_password", "must be 8 to 63 characters (WPA2)")
    if not new["ap_password"] and not new.get("ap_open"):
        errors.setdefault("ap_password", "is needed for the protected setup network")
    for k, msg in config.validate(new).items():
        errors.setdefault(k, msg)
    return new, errors
