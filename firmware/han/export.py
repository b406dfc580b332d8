# Edge formatting of a Reading: dicts and JSON text with exact decimals, for MQTT and
# tools/decode.py. This module allocates freely; it runs once per reading, after decoding.
import json

from han import obis
from han.reading import FORMAT_NAMES


def _entries(rd):
    # (name, index) of every numeric table slot the frame carried.
    for i in range(obis.NUM_SLOTS):
        if rd.has(i):
            yield obis.NAMES[i], i


def text_items(rd):
    # [(name, text)]: meter id, type, list id and the meter clock, in that order.
    out = []
    for k in range(obis.NUM_TEXTS):
        v = rd.get_text(obis.TEXT_BASE + k)
        if v is not None:
            out.append((obis.TEXT_NAMES[k], v))
    t = rd.clock_iso()
    if t is not None:
        out.append(("meter_time", t))
    return out


def number_items(rd):
    # [(canonical name, exact decimal text)] in slot order, base units (W, var, Wh, V, A...).
    return [(name, rd.decimal(i)) for name, i in _entries(rd)]


def texts(rd):
    return dict(text_items(rd))


def numbers(rd):
    return dict(number_items(rd))


def obis_items(rd):
    # [("A-B:C.D.E", text, is_number)]: every value with the OBIS code the frame (or list
    # definition) gave it; numbers as exact decimal text in base units.
    out = []
    for k in range(obis.NUM_TEXTS):
        code = rd.text_obis_of(k)
        if code is not None:
            out.append((code, rd.get_text(obis.TEXT_BASE + k), False))
    code = rd.text_obis_of(obis.NUM_TEXTS)
    if code is not None and rd.clock_ok:
        out.append((code, rd.clock_iso(), False))
    for name, i in _entries(rd):
        out.append((rd.obis_of(i), rd.decimal(i), True))
    for i in range(obis.NUM_SLOTS, obis.NUM_SLOTS + rd.npass):
        if rd.seen[i] == 1:
            out.append((rd.obis_of(i), rd.decimal(i), True))
        elif rd.seen[i] == 2:
            out.append((rd.obis_of(i), rd.pass_text(i), False))
    return out


def obis_map(rd):
    return {k: v for k, v, _ in obis_items(rd)}


def units(rd):
    # {"A-B:C.D.E": unit text} for passthrough numbers (table slots have fixed units).
    out = {}
    for i in range(obis.NUM_SLOTS, obis.NUM_SLOTS + rd.npass):
        if rd.seen[i] == 1:
            out[rd.obis_of(i)] = obis.UNIT_TEXT.get(rd.unit[i], "")
    return out


def to_json(items):
    # JSON object text from (key, text, is_number) triples; numbers are written as their
    # exact decimal text, so no float rounding creeps in (228.9 stays 228.9).
    parts = []
    for k, v, num in items:
        parts.append(json.dumps(k) + ":" + (v if num else json.dumps(v)))
    return "{" + ",".join(parts) + "}"


def state_items(rd):
    # The state message: texts, clock and every value the meter sent, canonical names.
    # Lists, not dicts: MicroPython's dicts do not keep insertion order, the message should.
    items = [(k, v, False) for k, v in text_items(rd)]
    items.extend((k, v, True) for k, v in number_items(rd))
    return items


def state_json(rd):
    return to_json(state_items(rd))


def decode_json(rd, extra=()):
    # One line of tools/decode.py output; extra: more (key, text, is_number) items.
    body = to_json([("format", FORMAT_NAMES[rd.fmt], False)] + list(extra) + state_items(rd))
    return body[:-1] + ',"obis":' + to_json(obis_items(rd)) + "}"
