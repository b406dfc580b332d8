# The device configuration: one flat JSON object in one file, defaults in code.
# load() never raises for a bad file: it says what is wrong so boot can go to the portal.
# save() writes a temp file and renames it over the old one, so a power cut leaves the old
# or the new file, never half of one. Secrets are never logged: use redacted() for output.
import json
import os

DEFAULTS = {
    "wifi_ssid": "",
    "wifi_password": "",
    "mqtt_host": "",
    "mqtt_port": 1883,
    "mqtt_user": "",
    "mqtt_password": "",
    "mqtt_tls": False,
    "mqtt_ca": "",  # path of a PEM CA file on the device, for TLS
    "mqtt_prefix": "han",
    "mqtt_client_id": "",  # empty: the device id
    "mqtt_keepalive": 60,
    "mqtt_per_value": False,  # also publish one topic per value
    "mqtt_raw": False,  # publish every frame as hex on <prefix>/<id>/raw
    "mqtt_min_interval": 0,  # seconds between state messages; 0 = every reading
    "ha_discovery": True,
    "ha_prefix": "homeassistant",
    "meter_protocol": "auto",  # auto | p1 | hdlc | mbus
    "meter_baud": 0,  # 0 = detect
    "meter_parity": "none",  # none | even | odd (used when meter_baud is set)
    "meter_invert": "auto",  # auto | yes | no
    "meter_key": "",  # 32 hex digits: AES-128 decryption key (GUEK)
    "meter_auth_key": "",  # 32 hex digits: authentication key (GAK), optional
    "meter_kamstrup_energy": "10wh",  # 10wh (Kamstrup NVE spec) | wh (Swedish Kamstrup HAN)
    "ap_password": "",  # setup network password; made at first boot
    "ap_open": False,
    "ap_after_s": 300,  # open the setup network beside retrying after this long without Wi-Fi
    "dns_port": 53,
    "http_port": 80,
    "device_name": "",  # empty: HAN-<last 4 hex of the MAC>
}

SECRETS = ("wifi_password", "mqtt_password", "meter_key", "meter_auth_key", "ap_password")

_CHOICES = {
    "meter_protocol": ("auto", "p1", "hdlc", "mbus"),
    "meter_parity": ("none", "even", "odd"),
    "meter_invert": ("auto", "yes", "no"),
    "meter_kamstrup_energy": ("10wh", "wh"),
}
_BAUDS = (0, 2400, 9600, 19200, 38400, 57600, 115200)
_MAXLEN = {"wifi_ssid": 32, "wifi_password": 63, "mqtt_host": 253, "mqtt_user": 128,
           "mqtt_password": 128, "mqtt_ca": 64, "mqtt_prefix": 64, "mqtt_client_id": 23,
           "ha_prefix": 64, "ap_password": 63, "device_name": 32}


def _utf8_len(s):
    return len(s.encode("utf-8"))


def _check_hex_key(v):
    if v == "":
        return None
    if len(v) != 32:
        return "must be 32 hex digits (16 bytes), got %d characters" % len(v)
    for c in v:
        if c not in "0123456789abcdefABCDEF":
            return "must contain only hex digits 0-9 and A-F"
    return None


def _check_field(k, v):
    d = DEFAULTS[k]
    if isinstance(d, bool):
        return None if isinstance(v, bool) else "must be true or false"
    if isinstance(d, int):
        if isinstance(v, bool) or not isinstance(v, int):
            return "must be a whole number"
        if k == "mqtt_port" and not 1 <= v <= 65535:
            return "must be a port number from 1 to 65535"
        if k in ("dns_port", "http_port") and not 1 <= v <= 65535:
            return "must be a port number from 1 to 65535"
        if k == "meter_baud" and v not in _BAUDS:
            return "must be one of " + ", ".join(str(b) for b in _BAUDS)
        if k == "mqtt_keepalive" and not 0 <= v <= 3600:
            return "must be from 0 to 3600 seconds"
        if k in ("mqtt_min_interval", "ap_after_s") and not 0 <= v <= 86400:
            return "must be from 0 to 86400 seconds"
        return None
    if not isinstance(v, str):
        return "must be text"
    if k in _CHOICES and v not in _CHOICES[k]:
        return "must be one of " + ", ".join(_CHOICES[k])
    if k in ("meter_key", "meter_auth_key"):
        return _check_hex_key(v)
    n = _MAXLEN.get(k)
    if n and _utf8_len(v) > n:
        return "must be at most %d bytes" % n
    for c in v:
        if ord(c) < 32:
            return "must not contain control characters"
    if k == "ap_password" and v and len(v) < 8:
        return "must be at least 8 characters (WPA2)"
    if k == "mqtt_prefix" and ("+" in v or "#" in v):
        return "must not contain + or #"
    return None


def validate(cfg):
    # {field: message} for every field that is wrong; empty when the config is usable.
    errors = {}
    for k, v in cfg.items():
        if k not in DEFAULTS:
            errors[k] = "is not a known setting"
            continue
        msg = _check_field(k, v)
        if msg:
            errors[k] = msg
    return errors


def merged(overrides):
    cfg = dict(DEFAULTS)
    cfg.update(overrides)
    return cfg


def is_provisioned(cfg):
    return bool(cfg.get("wifi_ssid")) and bool(cfg.get("mqtt_host"))


def load(path):
    # (config, problem): problem is None, or a sentence for the log and the portal.
    try:
        with open(path) as f:
            raw = f.read()
    except OSError:
        return merged({}), "no configuration file"
    try:
        data = json.loads(raw)
    except ValueError:
        return merged({}), "configuration file is not valid JSON"
    if not isinstance(data, dict):
        return merged({}), "configuration file is not a JSON object"
    errors = validate(data)
    if errors:
        return merged({}), "configuration invalid: " + ", ".join(
            k + " " + errors[k] for k in sorted(errors))
    return merged(data), None


def save(path, cfg):
    errors = validate(cfg)
    if errors:
        raise ValueError("invalid configuration: " + ", ".join(sorted(errors)))
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(json.dumps(cfg))
    os.rename(tmp, path)


def redacted(cfg):
    # A copy safe for logs and pages: secrets shown only as set or not set.
    out = {}
    for k, v in cfg.items():
        out[k] = ("(set)" if v else "(not set)") if k in SECRETS else v
    return out
