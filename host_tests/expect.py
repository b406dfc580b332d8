# Reading the corpus' `expected` maps: the sources state values as text ("62414.155 kWh",
# "9.60 A", "02.589 kW @ 200509134558S", "2019-12-16T07:59:40"). This turns them into exact
# numbers and compares them with what the decoder produced, without floats (MicroPython and
# CPython alike). Used by test_corpus.py and test_decode_tool.py.

# unit text -> (base unit, decimal exponent to the base unit)
UNITS = {
    "W": 0, "kW": 3, "MW": 6, "Wh": 0, "kWh": 3, "MWh": 6,
    "var": 0, "kvar": 3, "kVAr": 3, "kVar": 3, "varh": 0, "kvarh": 3, "kVArh": 3, "kVarh": 3,
    "V": 0, "A": 0, "Hz": 0, "m3": 0, "GJ": 0, "s": 0, "%": 0,
}
# Keys that describe rather than name an OBIS code.
DESCRIPTIVE = ("header", "list_id", "timestamp", "datetime", "system_title",
               "security_control", "dlms_object_count", "obis_pattern", "present")


def number(text):
    # "[-]digits[.digits]" -> (mantissa, exponent), or None.
    t = text.strip()
    if not t:
        return None
    neg = t[0] == "-"
    if neg:
        t = t[1:]
    if t.count(".") > 1 or not t.replace(".", "").isdigit():
        return None
    exp = 0
    if "." in t:
        whole, frac = t.split(".")
        t = whole + frac
        exp = -len(frac)
    m = int(t)
    return (-m if neg else m, exp)


def same(a, b):
    # Two (mantissa, exponent) numbers equal in value?
    (m1, e1), (m2, e2) = a, b
    e = min(e1, e2)
    return m1 * 10 ** (e1 - e) == m2 * 10 ** (e2 - e)


def strip_note(text):
    # "66401 (raw; scaler 0, unit varh)" -> "66401"; "X @ time" -> "X".
    if " @ " in text:
        text = text.split(" @ ")[0]
    i = text.find(" (")
    if i > 0:
        text = text[:i]
    return text.strip()


def expected_number(text):
    # "62414.155 kWh" -> value in base units as (mantissa, exponent); None when not a number.
    t = strip_note(text)
    parts = t.split()
    if not parts or len(parts) > 2:
        return None
    n = number(parts[0])
    if n is None:
        return None
    if len(parts) == 2:
        if parts[1] not in UNITS:
            return None
        n = (n[0], n[1] + UNITS[parts[1]])
    return n


def last_group_number(text):
    # P1 multi-group values "(...)(05.980*kW)": the last group as a number in base units.
    i = text.rfind("(")
    j = text.rfind(")")
    if i < 0 or j < i:
        return None
    g = text[i + 1:j].replace("*", " ")
    return expected_number(g)


def obis_key(key):
    # "1.0.1.7.0.255", "1-0:1.7.0", "1.0.1.7.0.255 (meter id, last element)" -> "1-0:1.7.0".
    key = strip_note(key)
    if "-" in key and ":" in key:
        a, rest = key.split("-", 1)
        b, cde = rest.split(":", 1)
        cde = cde.split("*")[0]
        return "%d-%d:%s" % (int(a), int(b), cde)
    parts = key.split(".")
    if len(parts) == 6 and all(p.isdigit() for p in parts):
        return "%s-%s:%s.%s.%s" % tuple(parts[:5])
    return None


def digits_groups(text):
    out = []
    cur = ""
    for ch in text:
        if ch.isdigit():
            cur += ch
        elif cur:
            out.append(int(cur))
            cur = ""
    if cur:
        out.append(int(cur))
    return out


def clock_fields(text):
    # Expected date-time text in its several source forms -> (Y, M, D, h, m, s) or None.
    t = text.strip()
    if len(t) == 13 and t[:12].isdigit() and t[12] in "WS":  # P1 YYMMDDhhmmssX
        g = [int(t[i:i + 2]) for i in range(0, 12, 2)]
        return (2000 + g[0], g[1], g[2], g[3], g[4], g[5])
    g = digits_groups(t)
    if g and g[0] > 10**7:  # YYYYMMDD hh:mm:ss
        g = [g[0] // 10000, g[0] // 100 % 100, g[0] % 100] + g[1:]
    if len(g) < 6:
        return None
    if "/" in t:  # MM/DD/YY
        return (2000 + g[2] if g[2] < 100 else g[2], g[0], g[1], g[3], g[4], g[5])
    if g[0] > 31:  # Y-M-D
        return tuple(g[:6])
    return (g[2], g[1], g[0], g[3], g[4], g[5])  # D.M.Y


def iso_fields(iso):
    # Our meter_time "YYYY-MM-DDThh:mm:ss[+hh:mm]" -> (local fields, UTC fields or None).
    g = digits_groups(iso[:19])
    local = tuple(g[:6])
    if len(iso) <= 19:
        return local, None
    sign = 1 if iso[19] == "+" else -1
    off = sign * (int(iso[20:22]) * 60 + int(iso[23:25]))
    y, mo, d, h, mi, s = local
    mins = h * 60 + mi - off
    # enough for the corpus: offsets move the time within the same day or across midnight
    days = mins // (24 * 60)
    mins -= days * 24 * 60
    return local, (y, mo, d + days, mins // 60, mins % 60, s)


def compare(expected, decoded, info):
    """Mismatches between a record's `expected` map and a decoded frame.

    decoded: {"A-B:C.D.E": (text, is_number)} plus the state items; info: dict with
    meter_type, list_id, meter_time, title, security, objects (count of OBIS values)."""
    bad = []
    for key, want in expected.items():
        if key in DESCRIPTIVE or key.startswith("datetime"):
            msg = _descriptive(key, want, info)
        else:
            msg = _obis_value(key, want, decoded, info)
        if msg:
            bad.append("%s: %s" % (key, msg))
    return bad


def _descriptive(key, want, info):
    if key == "header":
        got = info.get("meter_type") or ""
        return None if want.lstrip("/") == got else "header %r != %r" % (want, got)
    if key == "list_id":
        return None if info.get("list_id") == want else "list id %r" % info.get("list_id")
    if key in ("timestamp", "datetime"):
        return _clock(want, info.get("meter_time"))
    if key == "system_title":
        got = info.get("title") or ""
        return None if want.split()[0].upper() == got.upper() else "title %r" % got
    if key == "security_control":
        return None if int(want.split()[0], 16) == info.get("security") else "sc %r" % info.get("security")
    if key == "dlms_object_count":
        return None if info.get("objects") == want else "objects %r" % info.get("objects")
    return None  # obis_pattern, present: prose, nothing to compare


def _clock(want, got):
    if not got:
        return "no meter time"
    exp = clock_fields(want)
    if exp is None:
        return "cannot read expected time %r" % want
    local, utc = iso_fields(got)
    return None if exp == local or exp == utc else "time %s != %r" % (got, want)


def _obis_value(key, want, decoded, info):
    code = obis_key(key)
    if code is None:
        return "unknown key form"
    if code.endswith(":1.0.0") and not isinstance(want, list):
        return _clock(want, info.get("meter_time"))
    got = decoded.get(code)
    if isinstance(want, list):  # a code sent on several lines: at least one is kept
        return None if got is not None else "missing"
    if got is None:
        return None if want == "" else "missing"
    text, is_num = got
    w = expected_number(want)
    if w is None and "(" in want:
        w = last_group_number(want)
    if is_num:
        if w is None:
            return "expected text %r, got number %s" % (want, text)
        return None if same(w, number(text)) else "%s != %r" % (text, want)
    want_text = strip_note(want)
    if text == want_text or text == want:
        return None
    return "%r != %r" % (text, want)
