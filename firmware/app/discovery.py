# Home Assistant MQTT discovery: one retained config message per sensor, on
# <ha_prefix>/sensor/<device_id>/<name>/config. Edge code: runs when the set of values the meter
# sends grows, when the meter's identity becomes known, and when Home Assistant comes back
# online; it allocates freely.
#
# Every sensor reads the shared JSON on its state topic. The state message carries only what
# the last frame carried, so the template renders '' for a missing key: Home Assistant ignores an
# empty state of a numeric sensor ("Ignore empty state") and keeps the last value, so an energy
# total is never replaced by 0 or a placeholder. Units are the state JSON's base units (W, var,
# Wh, varh, V, A, Hz): the template passes the exact decimal text through, no float conversion.
import json

from han import obis

# Per DLMS unit code of a table slot: (device_class, state_class, unit).
_BY_UNIT = {
    obis.U_W: ("power", "measurement", "W"),
    obis.U_VAR: ("reactive_power", "measurement", "var"),
    obis.U_WH: ("energy", "total_increasing", "Wh"),
    obis.U_VARH: ("reactive_energy", "total_increasing", "varh"),
    obis.U_V: ("voltage", "measurement", "V"),
    obis.U_A: ("current", "measurement", "A"),
    obis.U_HZ: ("frequency", "measurement", "Hz"),
    obis.U_NONE: ("power_factor", "measurement", None),  # a ratio, -1..1
}

# Diagnostics the main loop sends: (key, name, device_class, state_class, unit). A key is
# found at the top of the diagnostics JSON or one level down ("counters": {"bad_crc": 3}, or
# "serial": {"format": ...} for serial_format); only keys present are announced.
DIAG = (
    ("uptime_s", "Uptime", "duration", "measurement", "s"),
    ("free_heap", "Free heap", "data_size", "measurement", "B"),
    ("rssi", "Wi-Fi signal", "signal_strength", "measurement", "dBm"),
    ("ip", "IP address", None, None, None),
    ("version", "Firmware version", None, None, None),
    ("last_frame_age_s", "Last frame age", "duration", "measurement", "s"),
    ("reconnects", "MQTT reconnects", None, "total_increasing", None),
    ("wifi_reconnects", "Wi-Fi reconnects", None, "total_increasing", None),
    ("max_loop_ms", "Longest loop", "duration", "measurement", "ms"),
    ("serial_format", "Serial format", None, None, None),
    ("bytes", "Bytes received", "data_size", "total_increasing", "B"),
    ("frames_ok", "Frames OK", None, "total_increasing", None),
    ("bad_crc", "Bad checksums", None, "total_increasing", None),
    ("too_long", "Frames too long", None, "total_increasing", None),
    ("truncated", "Frames truncated", None, "total_increasing", None),
    ("decrypt_failed", "Decryption failures", None, "total_increasing", None),
    ("unknown_layout", "Unknown layouts", None, "total_increasing", None),
    ("malformed", "Malformed frames", None, "total_increasing", None),
)


def diag_paths(d):
    # [(index into DIAG, JSON path)] of the diagnostics keys present in d.
    out = []
    for n in range(len(DIAG)):
        key = DIAG[n][0]
        path = None
        if key in d:
            path = key
        else:
            for k, v in d.items():
                if isinstance(v, dict):
                    sub = key[len(k) + 1:] if key.startswith(k + "_") else key
                    if sub in v:
                        path = k + "." + sub
                        break
        if path is not None:
            out.append((n, path))
    return out


# Who made the meter, from the start of its id, list id, type or the ciphering system title
# (the first 3 bytes of a DLMS system title are the FLAG manufacturer id).
_MAKERS = (
    ("AIDON", "Aidon"), ("7359992", "Aidon"),
    ("KFM", "Kaifa"), ("6970631", "Kaifa"), ("MA10", "Kaifa"), ("MA30", "Kaifa"),
    ("KAM", "Kamstrup"), ("5706567", "Kamstrup"), ("6841", "Kamstrup"), ("6861", "Kamstrup"),
    ("LGZ", "Landis+Gyr"), ("LGF", "Landis+Gyr"),
    ("ISK", "Iskraemeco"),
    ("SAG", "Sagemcom"),
)


def slot_label(i):
    # "active_power_import_l1" -> "Active power import L1"
    words = obis.NAMES[i].split("_")
    out = []
    for w in words:
        if len(w) == 2 and w[0] == "l" and w[1] in "123":
            w = "L" + w[1]
        out.append(w)
    s = " ".join(out)
    return s[0].upper() + s[1:]


def manufacturer(meter_id=None, meter_type=None, list_id=None, system_title=None):
    cands = []
    if system_title:
        try:
            cands.append(bytes(system_title[:3]).decode())
        except (UnicodeError, ValueError):
            pass
    for t in (list_id, meter_id, meter_type):
        if t:
            cands.append(t)
    for t in cands:
        u = t.upper()
        for prefix, name in _MAKERS:
            if u.startswith(prefix):
                return name
    return None


def device_block(device_id, name, meter_id=None, meter_type=None, maker=None, sw=None,
                 hw=None, ip=None):
    ids = [device_id]
    if meter_id:
        ids.append("meter-" + meter_id)
    dev = {"identifiers": ids, "name": name}
    if maker:
        dev["manufacturer"] = maker
    dev["model"] = meter_type or "HAN meter"
    if meter_id:
        dev["serial_number"] = meter_id
    if sw:
        dev["sw_version"] = sw
    if hw:
        dev["hw_version"] = hw
    if ip:
        dev["configuration_url"] = "http://%s/" % ip
    return dev


def _template(path):
    return "{{ value_json.%s if value_json.%s is defined else '' }}" % (path, path)


def _config(device_id, key, path, label, state_topic, avail_topic, dev, origin, cls, scls,
            unit):
    c = {
        "name": label,
        "unique_id": device_id + "_" + key,
        "state_topic": state_topic,
        "value_template": _template(path),
        "availability_topic": avail_topic,
    }
    if cls:
        c["device_class"] = cls
    if scls:
        c["state_class"] = scls
    if unit:
        c["unit_of_measurement"] = unit
    c["device"] = dev
    c["origin"] = origin
    return c


def config_topic(ha_prefix, device_id, key):
    return "%s/sensor/%s/%s/config" % (ha_prefix, device_id, key)


def slot_config(i, device_id, state_topic, avail_topic, dev, origin):
    # (topic, payload) for numeric table slot i.
    cls, scls, unit = _BY_UNIT[obis.UNITS[i]]
    key = obis.NAMES[i]
    return key, json.dumps(_config(device_id, key, key, slot_label(i), state_topic,
                                   avail_topic, dev, origin, cls, scls, unit))


def diag_config(n, path, device_id, diag_topic, avail_topic, dev, origin):
    # (key, payload) for DIAG[n], read from the diagnostics JSON at path.
    key, label, cls, scls, unit = DIAG[n]
    c = _config(device_id, key, path, label, diag_topic, avail_topic, dev, origin, cls, scls,
                unit)
    c["entity_category"] = "diagnostic"
    return key, json.dumps(c)
