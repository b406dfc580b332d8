# han.p1: the P1 / IEC 62056-21 ASCII telegram parser. Plain test_* functions with bare
# asserts, so the same file runs under CPython pytest and under MicroPython (run_mpy.py).
# Values are compared exactly: decimal text -> (mantissa, exponent) in integers, no floats.
import corpus
from han import obis, status
from han.crc import crc16_arc
from han.p1 import P1

decode_p1 = P1().decode  # one parser, as the decoder owns one
from han.reading import Reading

# Unit text as the telegrams write it -> (DLMS unit code, exponent to the base unit).
_UNITS = {
    "W": (0x1B, 0), "kW": (0x1B, 3), "MW": (0x1B, 6),
    "Wh": (0x1E, 0), "kWh": (0x1E, 3), "MWh": (0x1E, 6),
    "var": (0x1D, 0), "VAr": (0x1D, 0), "kvar": (0x1D, 3), "kVAr": (0x1D, 3),
    "kVar": (0x1D, 3), "Mvar": (0x1D, 6), "MVAr": (0x1D, 6),
    "varh": (0x20, 0), "VArh": (0x20, 0), "kvarh": (0x20, 3), "kVArh": (0x20, 3),
    "kVarh": (0x20, 3), "Mvarh": (0x20, 6), "MVArh": (0x20, 6),
    "VA": (0x1C, 0), "kVA": (0x1C, 3), "VAh": (0x1F, 0), "kVAh": (0x1F, 3),
    "V": (0x23, 0), "A": (0x21, 0), "Hz": (0x2C, 0), "s": (0x07, 0), "m3": (0x0D, 0),
    "GJ": (0xFF, 0),  # no DLMS code: the value as sent
}
_KILO = (obis.U_W, obis.U_VAR, obis.U_WH, obis.U_VARH)
_HEX = b"0123456789ABCDEFabcdef"

# ---- helpers ----


def _bounds(data):
    # What the stream framer passes: the "!" and the CRC digits after it (0..4), or
    # bang == end == len(data) when the text has no "!" (decrypted Austrian telegram).
    bang = data.find(b"!")
    if bang < 0:
        return len(data), len(data)
    end = bang + 1
    while end < len(data) and end - bang <= 4 and data[end] in _HEX:
        end += 1
    return bang, end


def _decode(data, crc=True, rd=None):
    # (status, reading); crc=False passes no CRC digits (the parser then checks none).
    if rd is None:
        rd = Reading()
    bang, end = _bounds(data)
    if not crc and end > bang:
        end = bang + 1
    return decode_p1(data, 0, bang, end, rd), rd


def _dec(text):
    # "-0012.50" -> (-125, -1): exact decimal as mantissa and exponent.
    neg = text.startswith("-")
    if neg:
        text = text[1:]
    dot = text.find(".")
    e = 0
    if dot >= 0:
        e = dot + 1 - len(text)
        text = text[:dot] + text[dot + 1:]
    m = int(text)
    return (-m if neg else m), e


def _same(m1, e1, m2, e2):
    # m1 * 10**e1 == m2 * 10**e2, in integers.
    e = min(e1, e2)
    return m1 * 10 ** (e1 - e) == m2 * 10 ** (e2 - e)


def _check_num(rd, i, text, dflt=None):
    # Entry i holds the number "value[ unit][ @ time]" (unit converted to the base unit).
    # dflt: (code, exp) when the text has no unit. Returns an error text or None.
    at = text.find(" @ ")
    if at >= 0:
        text = text[:at]
    sp = text.find(" ")
    if sp >= 0:
        code, x = _UNITS[text[sp + 1:]]
        text = text[:sp]
    else:
        code, x = dflt if dflt else (obis.U_NONE, 0)
    m, e = _dec(text)
    if not rd.has(i):
        return "absent"
    if rd.unit[i] != code:
        return "unit %d, want %d" % (rd.unit[i], code)
    if not _same(rd.mantissa(i), rd.exp[i], m, e + x):
        return "%s, want %s e%d" % (rd.decimal(i), text, x)
    return None


def _obis_ints(key):
    # "1-0:1.8.0" -> [1, 0, 1, 8, 0]
    ab, cde = key.split(":")
    a, b = ab.split("-")
    c, d, e = cde.split(".")
    return [int(a), int(b), int(c), int(d), int(e)]


def _is_clock(v):
    # "YYMMDDhhmmssX" (P1) or "YYYYMMDD hh:mm:ss" (NES)
    if len(v) == 13 and v[12] in "WS":
        return v[:12].isdigit()
    if len(v) == 17 and v[8] == " " and v[11] == ":" and v[14] == ":":
        return (v[:8] + v[9:11] + v[12:14] + v[15:]).isdigit()
    return False


def _check_clock(rd, v):
    c = rd.clock
    if len(v) == 13:
        want = [2000 + int(v[0:2]), int(v[2:4]), int(v[4:6]), int(v[6:8]), int(v[8:10]),
                int(v[10:12]), -0x8000, 0x80 if v[12] == "S" else 0]
    else:
        want = [int(v[0:4]), int(v[4:6]), int(v[6:8]), int(v[9:11]), int(v[12:14]),
                int(v[15:17]), -0x8000, 0]
    return rd.clock_ok and [c[k] for k in range(8)] == want


def _pass_entries(rd, key):
    return [i for i in range(obis.NUM_SLOTS, obis.NUM_SLOTS + rd.npass) if rd.obis_of(i) == key]


def _pass_value(rd, i, want):
    # Passthrough entry i against the corpus text: a number (unit as sent) or text.
    if rd.seen[i] == 1:
        return _check_num(rd, i, want)
    if rd.seen[i] != 2:
        return "empty entry"
    got = rd.pass_text(i)
    if got == want or (len(got) >= 128 and want.startswith(got)):
        return None
    return "text %r, want %r" % (got, want)


def _check_expected(rid, text, rd, expected, derived=()):
    # Every value the corpus lists is decoded (table slot, text slot, clock or passthrough),
    # and nothing is decoded that the telegram does not carry. Returns a list of errors.
    errs = []
    slots = {}
    seen_keys = {}
    for key in expected:
        v = expected[key]
        if key == "header":
            continue
        o = _obis_ints(key)
        slot = obis.lookup(o[0], o[1], o[2], o[3], o[4])
        if obis.TEXT_BASE <= slot < obis.CLOCK:
            seen_keys[key] = 1
            err = _check_texts(rd, slot, key, v if isinstance(v, list) else [v])
            if err:
                errs.append(key + ": " + err)
            continue
        if slot == obis.CLOCK and _is_clock(v):
            if not _check_clock(rd, v) or rd.text_obis_of(obis.NUM_TEXTS) != key:
                errs.append(key + ": clock " + str(rd.clock_iso()))
            continue
        if 0 <= slot < obis.NUM_SLOTS:
            slots[slot] = key
            u = obis.UNITS[slot]
            err = _check_num(rd, slot, v, (u, 3 if u in _KILO else 0))
            if err:
                errs.append(key + ": " + err)
            continue
        seen_keys[key] = 1
        want = v if isinstance(v, list) else [v]
        got = _pass_entries(rd, key)
        if len(got) != len(want):
            errs.append("%s: %d entries, want %d" % (key, len(got), len(want)))
            continue
        for i, w in zip(got, want):
            err = _pass_value(rd, i, w)
            if err:
                errs.append(key + ": " + err)
    for k in range(obis.NUM_TEXTS):
        got = rd.get_text(obis.TEXT_BASE + k)
        key = rd.text_obis_of(k)
        if key is None:  # only the header fills a text slot without an OBIS code
            want = expected["header"][1:49] if k == obis.METER_TYPE - obis.TEXT_BASE else None
            if got != want:
                errs.append("text %d: %r, want %r" % (k, got, want))
        elif key not in seen_keys:
            errs.append("text %d from %s, not in the telegram" % (k, key))
    for i in range(obis.NUM_SLOTS):
        if rd.has(i) and i not in slots:
            errs.append("slot %s decoded but not in the telegram" % obis.NAMES[i])
    for i in range(obis.NUM_SLOTS, obis.NUM_SLOTS + rd.npass):
        k = rd.obis_of(i)
        if k not in seen_keys and k not in derived:
            errs.append("passthrough %s not in the telegram" % k)
    if rd.dropped:
        errs.append("passthrough dropped %d" % rd.dropped)
    return [rid + ": " + e for e in errs]


def _check_texts(rd, slot, key, wants):
    # Every line of a text code is kept: in the text slot (cut to 48) when it won the slot,
    # else in the passthrough (obis.text_rank decides which one wins).
    got = [rd.pass_text(i) for i in _pass_entries(rd, key)]
    if rd.text_obis_of(slot - obis.TEXT_BASE) == key:
        got.append(rd.get_text(slot) or "")
    if len(got) != len(wants):
        return "%d values kept, want %d" % (len(got), len(wants))
    left = list(wants)
    for g in got:
        for w in left:
            if w == g or (len(g) == 48 and w.startswith(g)):
                left.remove(w)
                break
        else:
            return "%r not in %r" % (g, wants)
    return None


def _tele(lines, eol="\r\n", header="/TST5\\2TEST-1"):
    # A telegram with a correct 4-digit CRC.
    t = (header + eol + eol + eol.join(lines) + eol + "!").encode()
    return t + ("%04X" % crc16_arc(t, 0, len(t))).encode() + eol.encode()


def _nothing(rd):
    # The reading holds nothing (as the caller cleared it).
    for i in range(rd.capacity):
        if rd.seen[i]:
            return False
    for t in range(obis.NUM_TEXTS):
        if rd.text_len[t]:
            return False
    return rd.npass == 0 and not rd.clock_ok


_SE_LINES = [
    "0-0:1.0.0(201020085222W)",
    "1-0:1.8.0(00001605.055*kWh)",
    "1-0:2.8.0(00000000.131*kWh)",
    "1-0:1.7.0(0006.000*kW)",
    "1-0:21.7.0(0003.172*kW)",
    "1-0:32.7.0(234.4*V)",
    "1-0:31.7.0(013.6*A)",
]

# ---- the real telegrams ----


def _ascii_records():
    return [r for r in corpus.load() if r["kind"] == "ascii"]


def test_corpus_has_ascii_telegrams():
    assert len(_ascii_records()) >= 20


def test_constants_match_shared_modules():
    # p1.py copies these as const(); they must follow han.obis and han.status.
    assert (obis.NUM_SLOTS, obis.TEXT_BASE, obis.METER_TYPE, obis.CLOCK) == (31, 64, 65, 80)
    assert obis.NUM_TEXTS == 3
    assert (status.OK, status.BAD_CRC, status.MALFORMED) == (0, 2, 7)
    units = (obis.U_NONE, obis.U_W, obis.U_VAR, obis.U_WH, obis.U_VARH)
    assert units == (0xFF, 0x1B, 0x1D, 0x1E, 0x20)


def test_corpus_crc_verdicts():
    for r in _ascii_records():
        data = corpus.frame_bytes(r)
        st, rd = _decode(data)
        if r["crc_ok"] is False:
            assert st == status.BAD_CRC, r["id"]
            assert _nothing(rd), r["id"]
        else:
            assert st == status.OK, (r["id"], st)


def test_corpus_values():
    # Every value printed in each telegram, exactly; CRC-failing telegrams are decoded with
    # the CRC check left out, so their lines are covered too.
    errs = []
    for r in _ascii_records():
        data = corpus.frame_bytes(r)
        st, rd = _decode(data, crc=r["crc_ok"] is not False)
        assert st == status.OK, (r["id"], st)
        derived = ("0-1:24.2.1",) if "0-1:24.3.0(" in r["text"] else ()
        errs.extend(_check_expected(r["id"], r["text"], rd, r["expected"], derived))
    assert not errs, errs


def test_corpus_swedish_values():
    r = corpus.by_id("avi-se-ell5-p1")
    st, rd = _decode(corpus.frame_bytes(r))
    assert st == status.OK
    assert rd.decimal(obis.CURRENT_L1 + 2) == "10.2"  # the source's own assertion
    assert rd.decimal(obis.ACTIVE_ENERGY_IMPORT) == "1605055"  # Wh
    assert rd.decimal(obis.REACTIVE_ENERGY_EXPORT) == "185707"  # varh
    assert rd.decimal(obis.ACTIVE_POWER_IMPORT) == "6000"  # W
    assert rd.decimal(obis.VOLTAGE_L1 + 1) == "233.3"
    assert rd.get_text(obis.METER_TYPE) == "ELL5\\253833635_A"
    assert rd.clock_iso() == "2020-10-20T08:52:22"
    assert rd.clock[7] == 0 and rd.npass == 0


def test_corpus_easymeter_f_group_and_high_resolution():
    # "1-0:1.8.0*255(00052185.7825309*kWh)": F after E, 7 decimals kept exactly.
    st, rd = _decode(corpus.frame_bytes(corpus.by_id("dsmr-easymeter-q3d")))
    assert st == status.OK
    assert rd.decimal(obis.ACTIVE_ENERGY_IMPORT) == "52185782.5309"
    assert rd.decimal(obis.ACTIVE_POWER_IMPORT_L1) == "747.85"
    i = _pass_entries(rd, "0-0:96.1.255")[0]
    assert rd.pass_text(i) == "1ESY1313002565"
    i = _pass_entries(rd, "1-0:0.0.0")[0]  # a device number: leading zero kept
    assert rd.seen[i] == 2 and rd.pass_text(i) == "0272031312565"


def test_corpus_value_with_capture_time():
    # (time)(value): the value is the last group that holds a number.
    st, rd = _decode(corpus.frame_bytes(corpus.by_id("dsmr-fluvius-be")))
    assert st == status.OK
    i = _pass_entries(rd, "1-0:1.6.0")[0]
    assert rd.decimal(i) == "2589" and rd.unit[i] == obis.U_W
    i = _pass_entries(rd, "0-1:24.2.3")[0]
    assert rd.decimal(i) == "112.384" and rd.unit[i] == 0x0D  # m3
    i = _pass_entries(rd, "0-0:98.1.0")[0]  # month peaks: kept as text
    assert rd.pass_text(i).startswith("(3)(1-0:1.6.0)(1-0:1.6.0)(200501000000S)")
    assert rd.clock[7] == 0x80  # "S": summer time


def test_corpus_gas_on_its_own_line():
    # DSMR 2.2/3: "0-1:24.3.0(..)(0-1:24.2.1)(m3)" then "(00001.001)" on the next line.
    for rid in ("dsmr-v22-iskra", "dsmr-v3-iskra"):
        st, rd = _decode(corpus.frame_bytes(corpus.by_id(rid)))
        assert st == status.OK
        got = _pass_entries(rd, "0-1:24.2.1")
        assert len(got) == 1, rid
        assert rd.decimal(got[0]) == "1.001" and rd.unit[got[0]] == 0x0D, rid
        assert rd.has(obis.ACTIVE_POWER_IMPORT)


def test_corpus_unpadded_crc():
    # "!B9F" is 0x0B9F; lower case is accepted as well; a wrong digit is not.
    data = corpus.frame_bytes(corpus.by_id("dsmr-warmtelink-unpadded-crc"))
    bang, end = _bounds(data)
    assert end - bang == 4
    assert decode_p1(data, 0, bang, end, Reading()) == status.OK
    low = data.replace(b"!B9F", b"!b9f")
    assert decode_p1(low, 0, bang, end, Reading()) == status.OK
    pad = data.replace(b"!B9F", b"!0B9F")
    assert decode_p1(pad, 0, bang, end + 1, Reading()) == status.OK
    bad = data.replace(b"!B9F", b"!B9E")
    assert decode_p1(bad, 0, bang, end, Reading()) == status.BAD_CRC
    st, rd = _decode(data)
    i = _pass_entries(rd, "0-1:24.2.1")[0]
    assert rd.unit[i] == obis.U_NONE and rd.decimal(i) == "240.860"  # GJ: as sent


def test_corpus_no_bang_austrian_text():
    # Decrypted /EST5 text: no "!" and no CRC; the framer passes bang == end == len.
    data = corpus.frame_bytes(corpus.by_id("ams-sagemcom-t210d-at-p1"))
    assert data.find(b"!") < 0
    rd = Reading()
    assert decode_p1(data, 0, len(data), len(data), rd) == status.OK
    assert rd.decimal(obis.ACTIVE_ENERGY_IMPORT) == "9699947"
    assert rd.decimal(obis.REACTIVE_POWER_EXPORT) == "216"  # the last line, no CR LF after it


def test_corpus_malformed_obis_token():
    # "1-0:4:24.7.0(...)" is skipped; the rest of the telegram is decoded.
    r = corpus.by_id("ams-kamstrup-omnia-dk-p1-badcrc")
    st, rd = _decode(corpus.frame_bytes(r), crc=False)
    assert st == status.OK
    assert not rd.has(obis.REACTIVE_POWER_EXPORT_L1)
    assert rd.decimal(obis.REACTIVE_POWER_EXPORT_L1 + 1) == "182"
    assert rd.decimal(obis.CURRENT_L1 + 2) == "2.1"
    assert rd.npass == 0


def test_corpus_encrypted_ascii_plaintext():
    # Luxembourg Smarty: the inner CRC fails by design (notes), so BAD_CRC; without the
    # CRC every value is decoded, unit-less table values in the P1 standard unit (kvar).
    r = corpus.by_id("oh-smarty-lu-enc")
    data = r["plaintext_text"].encode()
    st, rd = _decode(data)
    assert st == status.BAD_CRC and _nothing(rd)
    st, rd = _decode(data, crc=False)
    assert st == status.OK
    errs = _check_expected(r["id"], r["plaintext_text"], rd, r["expected"])
    assert not errs, errs
    assert rd.decimal(obis.REACTIVE_POWER_EXPORT) == "7"  # "1-0:4.7.0(00.007)"
    i = _pass_entries(rd, "0-0:17.0.0")[0]
    assert rd.decimal(i) == "77.376" and rd.unit[i] == obis.U_NONE
    assert len(rd.get_text(obis.METER_ID)) == 48  # 96 hex digits, cut to the text slot


def test_corpus_buffer_types_and_offsets():
    # bytes, bytearray, memoryview; the telegram in the middle of a larger buffer.
    r = corpus.by_id("dsmr-v5-two-mbus")
    data = corpus.frame_bytes(r)
    bang, end = _bounds(data)
    pre = b"\x00garbage!1234\r\n"
    big = bytearray(pre + data + b"/XYZ5\r\n1-0:1.8.0(1*kWh)\r\n")
    n = len(pre)
    for buf, off in ((data, 0), (bytearray(data), 0), (memoryview(data), 0), (big, n)):
        rd = Reading()
        assert decode_p1(buf, off, off + bang, off + end, rd) == status.OK
        assert not _check_expected(r["id"], r["text"], rd, r["expected"])


def test_corpus_robust_to_truncation_and_noise():
    # Cut every telegram short at many points and replace bytes with parser-relevant ones:
    # no exception, and always OK or MALFORMED (no CRC checked: nothing hides the parse).
    for r in _ascii_records():
        data = corpus.frame_bytes(r)
        bang, _ = _bounds(data)
        for cut in range(1, bang, 7):
            st = decode_p1(data, 0, cut, cut, Reading())
            assert st == status.OK or st == status.MALFORMED
    data = bytearray(corpus.frame_bytes(corpus.by_id("dsmr-fluvius-be")))
    bang, _ = _bounds(data)
    rd = Reading()
    for pos in range(1, bang, 5):
        old = data[pos]
        for ch in b"():*.-\n9x\xff\x00":
            data[pos] = ch
            rd.clear()
            st = decode_p1(data, 0, bang, bang + 1, rd)
            assert st == status.OK or st == status.MALFORMED
        data[pos] = old


# ---- constructed telegrams ----


def test_three_digit_crc():
    # Find a telegram whose CRC is below 0x1000 and send it with 3 digits.
    for k in range(2000):
        t = ("/TST5\r\n\r\n1-0:1.7.0(%04d*W)\r\n!" % k).encode()
        c = crc16_arc(t, 0, len(t))
        if c < 0x1000:
            break
    assert c < 0x1000
    for digits in ("%X" % c, "%x" % c, "%04X" % c):
        data = t + digits.encode() + b"\r\n"
        rd = Reading()
        assert decode_p1(data, 0, len(t) - 1, len(t) + len(digits), rd) == status.OK
        assert _same(rd.mantissa(obis.ACTIVE_POWER_IMPORT), rd.exp[obis.ACTIVE_POWER_IMPORT], k, 0)
    data = t + ("%X" % (c ^ 1)).encode()
    assert decode_p1(data, 0, len(t) - 1, len(data), Reading()) == status.BAD_CRC


def test_no_crc():
    # "!" with no digits, and no "!" at all: accepted without a check.
    t = b"/TST5\r\n\r\n1-0:1.8.0(00001234.567*kWh)\r\n!\r\n"
    bang = t.find(b"!")
    rd = Reading()
    assert decode_p1(t, 0, bang, bang + 1, rd) == status.OK
    assert rd.decimal(obis.ACTIVE_ENERGY_IMPORT) == "1234567"
    rd = Reading()
    assert decode_p1(t, 0, bang, bang, rd) == status.OK
    rd = Reading()
    t = b"/TST5\r\n\r\n1-0:1.8.0(00001234.567*kWh)"
    assert decode_p1(t, 0, len(t), len(t), rd) == status.OK
    assert rd.decimal(obis.ACTIVE_ENERGY_IMPORT) == "1234567"


def test_bad_crc_publishes_nothing():
    data = bytearray(_tele(_SE_LINES))
    data[30] ^= 1  # a digit in the clock line
    st, rd = _decode(data)
    assert st == status.BAD_CRC and _nothing(rd)
    st, rd = _decode(_tele(_SE_LINES))
    assert st == status.OK and rd.has(obis.ACTIVE_ENERGY_IMPORT)


def test_lf_only_and_cr_only():
    for eol in ("\n", "\r", "\r\n"):
        st, rd = _decode(_tele(_SE_LINES, eol=eol))
        assert st == status.OK, eol
        assert rd.get_text(obis.METER_TYPE) == "TST5\\2TEST-1"
        assert rd.decimal(obis.ACTIVE_ENERGY_IMPORT) == "1605055"
        assert rd.decimal(obis.CURRENT_L1) == "13.6"
        assert rd.clock_iso() == "2020-10-20T08:52:22"


def test_missing_phase_lines_stay_absent():
    st, rd = _decode(_tele(_SE_LINES))
    assert st == status.OK
    for i in (obis.ACTIVE_POWER_IMPORT_L1, obis.VOLTAGE_L1, obis.CURRENT_L1):
        assert rd.has(i)
        assert not rd.has(i + 1) and not rd.has(i + 2)  # L2, L3 not sent
    assert not rd.has(obis.REACTIVE_POWER_IMPORT)
    assert not rd.has(obis.FREQUENCY)
    assert rd.npass == 0


def test_unit_variants():
    lines = [
        "1-0:1.7.0(1.5*MW)", "1-0:2.7.0(250*W)",
        "1-0:3.7.0(0000.200*kvar)", "1-0:4.7.0(0000.470*kVAr)",
        "1-0:23.7.0(1.000*kVar)", "1-0:43.7.0(12*var)", "1-0:63.7.0(0.5*Mvar)",
        "1-0:1.8.0(00012.3456*MWh)", "1-0:2.8.0(000000027*Wh)",
        "1-0:3.8.0(1.5*kvarh)", "1-0:4.8.0(2*Mvarh)",
        "1-0:32.7.0(0041160.00*V)", "1-0:31.7.0(0123.1*A)", "1-0:14.7.0(49.98*Hz)",
        "1-0:13.7.0(0.987)",
        "1-0:9.7.0(2.5*kVA)", "1-0:9.8.0(17*kVAh)", "1-0:10.7.0(3*VA)",
        "0-1:24.2.1(123.45*m3)", "0-2:24.2.1(1.5*GJ)", "0-0:96.7.19(0000002014*s)",
        "0-0:96.50.0(12*furlong)", "0-0:96.51.0(-12.5)", "1-0:24.7.0(0.3*kVArh)",
        "1-0:44.7.0(0.3*kvarh)",
    ]
    st, rd = _decode(_tele(lines))
    assert st == status.OK
    want = {
        obis.ACTIVE_POWER_IMPORT: "1500000", obis.ACTIVE_POWER_EXPORT: "250",
        obis.REACTIVE_POWER_IMPORT: "200", obis.REACTIVE_POWER_EXPORT: "470",
        obis.REACTIVE_POWER_IMPORT_L1: "1000", obis.REACTIVE_POWER_IMPORT_L1 + 1: "12",
        obis.REACTIVE_POWER_IMPORT_L1 + 2: "500000",
        obis.ACTIVE_ENERGY_IMPORT: "12345600", obis.ACTIVE_ENERGY_EXPORT: "27",
        obis.REACTIVE_ENERGY_IMPORT: "1500", obis.REACTIVE_ENERGY_EXPORT: "2000000",
        obis.VOLTAGE_L1: "41160.00", obis.CURRENT_L1: "123.1", obis.FREQUENCY: "49.98",
        obis.POWER_FACTOR: "0.987",
    }
    for i in want:
        assert rd.has(i) and rd.decimal(i) == want[i], (obis.NAMES[i], rd.decimal(i))
    # a table quantity with a unit that does not fit its slot goes to the passthrough
    assert not rd.has(obis.REACTIVE_POWER_EXPORT_L1)
    assert not rd.has(obis.REACTIVE_POWER_EXPORT_L1 + 1)
    pw = {
        "1-0:9.7.0": ("2500", 0x1C), "1-0:9.8.0": ("17000", 0x1F), "1-0:10.7.0": ("3", 0x1C),
        "0-1:24.2.1": ("123.45", 0x0D), "0-2:24.2.1": ("1.5", obis.U_NONE),
        "0-0:96.7.19": ("2014", 0x07), "0-0:96.50.0": ("12", obis.U_NONE),
        "0-0:96.51.0": ("-12.5", obis.U_NONE), "1-0:24.7.0": ("300", obis.U_VARH),
        "1-0:44.7.0": ("300", obis.U_VARH),
    }
    for k in pw:
        got = _pass_entries(rd, k)
        assert len(got) == 1, k
        i = got[0]
        assert rd.seen[i] == 1 and (rd.decimal(i), rd.unit[i]) == pw[k], (k, rd.decimal(i))


def test_unitless_table_values_take_p1_units():
    lines = ["1-0:1.7.0(01.250)", "1-0:1.8.0(000123.456)", "1-0:3.7.0(00.000)",
             "1-0:4.8.0(2.5)", "1-0:32.7.0(230.1)", "1-0:31.7.0(5)", "1-0:14.7.0(50.0)"]
    st, rd = _decode(_tele(lines))
    assert st == status.OK
    assert rd.decimal(obis.ACTIVE_POWER_IMPORT) == "1250"
    assert rd.decimal(obis.ACTIVE_ENERGY_IMPORT) == "123456"
    assert rd.decimal(obis.REACTIVE_POWER_IMPORT) == "0"
    assert rd.decimal(obis.REACTIVE_ENERGY_EXPORT) == "2500"
    assert rd.decimal(obis.VOLTAGE_L1) == "230.1"
    assert rd.decimal(obis.CURRENT_L1) == "5"
    assert rd.decimal(obis.FREQUENCY) == "50.0"


def test_nested_parentheses_and_empty_groups():
    lines = ["1-0:0.2.0((ER11))", "0-0:96.13.0()", "1-0:1.8.0(000100.000*kWh)",
             "0-0:96.13.1(((x)(y)))", "1-0:2.8.0(000001.000*kWh)"]
    st, rd = _decode(_tele(lines))
    assert st == status.OK
    i = _pass_entries(rd, "1-0:0.2.0")[0]
    assert rd.pass_text(i) == "(ER11)"
    i = _pass_entries(rd, "0-0:96.13.0")[0]
    assert rd.seen[i] == 2 and rd.pass_text(i) == ""
    i = _pass_entries(rd, "0-0:96.13.1")[0]
    assert rd.pass_text(i) == "((x)(y))"
    assert rd.decimal(obis.ACTIVE_ENERGY_IMPORT) == "100000"
    assert rd.decimal(obis.ACTIVE_ENERGY_EXPORT) == "1000"


def test_long_profile_line():
    # Sanxing SX631 style 0-0:98.1.0 of 1100+ characters, between ordinary lines.
    groups = "(12)(1-0:1.6.0)(1-0:1.6.0)" + "(230101000000W)(221215183000W)(05.123*kW)" * 28
    prof = "0-0:98.1.0" + groups
    assert len(prof) > 1100
    lines = ["1-0:1.8.0(00001605.055*kWh)", prof, "1-0:32.7.0(234.4*V)", "0-0:96.1.0(METER42)"]
    st, rd = _decode(_tele(lines))
    assert st == status.OK
    assert rd.decimal(obis.ACTIVE_ENERGY_IMPORT) == "1605055"
    assert rd.decimal(obis.VOLTAGE_L1) == "234.4"
    assert rd.get_text(obis.METER_ID) == "METER42"
    i = _pass_entries(rd, "0-0:98.1.0")[0]
    t = rd.pass_text(i)
    assert groups.startswith(t) and 64 <= len(t) < 400  # kept, but bounded


def test_malformed_lines_do_not_sink_the_telegram():
    lines = ["1-0:4:24.7.0(0000.000*kVAr)", "1-0:1.7.0(0001.000*kW)", "garbage line (1)",
             "1-0:256.7.0(5*W)", "1-0:1.8(12*kWh)", "1-0-1.8.0(12*kWh)", "1-0:2.7.0 (5*kW)",
             "1-0:1.8.0", "1-0:21.7.0(0000.500*kW", "1-0:41.7.0(0000.600*kW)", ":(",
             "1-0:2.8.0(1.2.3*kWh)", "1-0:3.8.0(12a*kvarh)", "99999999999",
             "1-0:61.7.0(0000.700*kW)"]
    st, rd = _decode(_tele(lines))
    assert st == status.OK
    assert rd.decimal(obis.ACTIVE_POWER_IMPORT) == "1000"
    assert not rd.has(obis.ACTIVE_POWER_EXPORT) and not rd.has(obis.REACTIVE_POWER_EXPORT_L1)
    assert not rd.has(obis.ACTIVE_POWER_IMPORT_L1)  # unclosed group: no value
    assert rd.decimal(obis.ACTIVE_POWER_IMPORT + 9) == "600"  # L2
    assert rd.decimal(obis.ACTIVE_POWER_IMPORT + 10) == "700"  # L3
    assert not rd.has(obis.ACTIVE_ENERGY_EXPORT) and not rd.has(obis.REACTIVE_ENERGY_IMPORT)
    # non-numbers on table codes are kept as passthrough text
    i = _pass_entries(rd, "1-0:2.8.0")[0]
    assert rd.pass_text(i) == "1.2.3*kWh"


def test_no_object_line_is_malformed():
    for lines in ([], ["garbage"], ["1-0:1.8.0"], ["1-0:4:24.7.0(1*kW)"]):
        st, rd = _decode(_tele(lines))
        assert st == status.MALFORMED, lines
    rd = Reading()
    assert decode_p1(b"/", 0, 1, 1, rd) == status.MALFORMED
    assert decode_p1(b"/!", 0, 1, 2, rd) == status.MALFORMED
    assert decode_p1(b"/!", 0, 0, 0, rd) == status.MALFORMED  # bang before any text
    assert rd.get_text(obis.METER_TYPE) is None


def test_header_and_meter_type():
    st, rd = _decode(_tele(["1-0:1.7.0(1*kW)"], header="/ISK5\\2M550T-1012"))
    assert rd.get_text(obis.METER_TYPE) == "ISK5\\2M550T-1012"
    # a table line naming the meter type overrides the header
    st, rd = _decode(_tele(["0-0:96.1.7(Kaifa MA304H4E)", "1-0:1.7.0(1*kW)"]))
    assert rd.get_text(obis.METER_TYPE) == "Kaifa MA304H4E"
    st, rd = _decode(_tele(["0-0:96.1.7()", "0-0:96.1.0()", "1-0:1.7.0(1*kW)"]))
    assert rd.get_text(obis.METER_TYPE) == "TST5\\2TEST-1" and rd.get_text(obis.METER_ID) is None
    assert rd.pass_text(_pass_entries(rd, "0-0:96.1.7")[0]) == ""
    long = "/" + "X" * 80
    st, rd = _decode(_tele(["1-0:1.7.0(1*kW)"], header=long))
    assert st == status.OK and rd.get_text(obis.METER_TYPE) == "X" * 48


def test_clock_forms():
    st, rd = _decode(_tele(["0-0:1.0.0(240407122854S)", "1-0:1.7.0(1*kW)"]))
    assert rd.clock_iso() == "2024-04-07T12:28:54" and rd.clock[7] == 0x80
    assert rd.clock[6] == -0x8000
    assert rd.text_obis_of(obis.NUM_TEXTS) == "0-0:1.0.0"
    st, rd = _decode(_tele(["0-1:1.0.0(240407122854W)", "1-0:1.7.0(1*kW)"]))  # Kamstrup B=1
    assert rd.clock_iso() == "2024-04-07T12:28:54" and rd.clock[7] == 0
    assert rd.text_obis_of(obis.NUM_TEXTS) == "0-1:1.0.0"
    st, rd = _decode(_tele(["0-0:1.0.0(20240111 09:35:00)", "1-0:1.7.0(1*kW)"]))  # NES
    assert rd.clock_iso() == "2024-01-11T09:35:00" and rd.npass == 0
    for bad in ("2024-01-11 09:35:00", "20240111 0935:00", "2404071228S", "24040712285XW",
                "240407122854", "20240111 09:35:0x"):
        st, rd = _decode(_tele(["0-0:1.0.0(" + bad + ")", "1-0:1.7.0(1*kW)"]))
        assert st == status.OK and not rd.clock_ok, bad
        i = _pass_entries(rd, "0-0:1.0.0")[0]
        assert rd.pass_text(i) == bad


def test_identifiers_stay_text():
    lines = ["0-0:96.1.1(00000000000000)", "0-1:96.1.0(000000000000)", "0-0:96.13.1(303132)",
             "1-0:0.0.0(0272031312565)", "0-0:96.14.0(0002)", "1-0:1.7.0(1*kW)"]
    st, rd = _decode(_tele(lines))
    assert rd.get_text(obis.METER_ID) == "00000000000000"
    for key, want in (("0-1:96.1.0", "000000000000"), ("0-0:96.13.1", "303132"),
                      ("1-0:0.0.0", "0272031312565")):
        i = _pass_entries(rd, key)[0]
        assert rd.seen[i] == 2 and rd.pass_text(i) == want, key
    i = _pass_entries(rd, "0-0:96.14.0")[0]  # tariff indicator: a number
    assert rd.seen[i] == 1 and rd.decimal(i) == "2"


def test_meter_id_lines_all_kept():
    # Several id lines: obis.text_rank picks the one in the slot, the rest is passthrough.
    st, rd = _decode(_tele(["0-0:96.1.1(4D413330394D)", "0-0:96.1.0(3330303537373735)",
                            "1-0:1.7.0(1*kW)", "0-0:42.0.0(LGZ1030655933512)"]))
    assert st == status.OK
    assert rd.get_text(obis.METER_ID) == "3330303537373735"
    assert rd.text_obis_of(obis.METER_ID - obis.TEXT_BASE) == "0-0:96.1.0"
    assert rd.pass_text(_pass_entries(rd, "0-0:96.1.1")[0]) == "4D413330394D"
    assert rd.pass_text(_pass_entries(rd, "0-0:42.0.0")[0]) == "LGZ1030655933512"


def test_f_group_forms_and_duplicates():
    lines = ["1-0:1.8.0*255(000001.000*kWh)", "1-0:2.8.0.255(000002.000*kWh)",
             "1-0:1.7.0*255(01.000*kW)", "1-0:1.7.0(02.000*kW)",
             "0-0:17.0.0(16500)", "0-0:17.0.0(16500)"]
    st, rd = _decode(_tele(lines))
    assert rd.decimal(obis.ACTIVE_ENERGY_IMPORT) == "1000"
    assert rd.decimal(obis.ACTIVE_ENERGY_EXPORT) == "2000"
    assert rd.decimal(obis.ACTIVE_POWER_IMPORT) == "2000"  # the last duplicate wins
    assert len(_pass_entries(rd, "0-0:17.0.0")) == 2
    assert rd.obis_of(obis.ACTIVE_ENERGY_IMPORT) == "1-0:1.8.0"


def test_large_and_negative_numbers():
    lines = ["1-0:1.8.0(9999999999999999999*Wh)", "1-0:31.7.0(-012.5*A)",
             "1-0:2.8.0(99999999999999999999*Wh)", "1-0:13.7.0(-0.95)"]
    st, rd = _decode(_tele(lines))
    assert rd.decimal(obis.ACTIVE_ENERGY_IMPORT) == "9999999999999999999"
    assert rd.decimal(obis.CURRENT_L1) == "-12.5"
    assert rd.decimal(obis.POWER_FACTOR) == "-0.95"
    assert not rd.has(obis.ACTIVE_ENERGY_EXPORT)  # 20 digits: too long for a number
    i = _pass_entries(rd, "1-0:2.8.0")[0]
    assert rd.pass_text(i) == "99999999999999999999*Wh"


def test_value_is_the_last_numeric_group():
    lines = ["0-1:24.2.1(161116200000)(00066.405*m3)", "1-0:1.6.0(200509134558S)(02.589*kW)",
             "0-0:96.8.0(5*s)(abc)", "1-0:1.8.0(1*kWh)(2*kWh)(x)"]
    st, rd = _decode(_tele(lines))
    i = _pass_entries(rd, "0-1:24.2.1")[0]
    assert rd.decimal(i) == "66.405" and rd.unit[i] == 0x0D
    i = _pass_entries(rd, "1-0:1.6.0")[0]
    assert rd.decimal(i) == "2589" and rd.unit[i] == obis.U_W
    i = _pass_entries(rd, "0-0:96.8.0")[0]
    assert rd.decimal(i) == "5" and rd.unit[i] == 0x07
    assert rd.decimal(obis.ACTIVE_ENERGY_IMPORT) == "2000"


def test_gas_continuation_only_when_announced():
    lines = ["0-1:24.3.0(090212160000)(00)(60)(1)(0-1:24.2.1)(m3)", "(00001.001)",
             "(00002.002)", "1-0:1.7.0(1*kW)", "(00003.003)"]
    st, rd = _decode(_tele(lines))
    got = _pass_entries(rd, "0-1:24.2.1")
    assert len(got) == 1 and rd.decimal(got[0]) == "1.001" and rd.unit[got[0]] == 0x0D
    assert rd.npass == 2  # the profile text and the gas value
    st, rd = _decode(_tele(["1-0:1.7.0(1*kW)", "(00001.001)"]))
    assert rd.npass == 0 and st == status.OK
    # the announced unit applies to a table slot too (Wh here, not the P1 default kWh)
    st, rd = _decode(_tele(["0-0:99.1.0(1)(1-0:1.8.0)(Wh)", "(123)"]))
    assert rd.decimal(obis.ACTIVE_ENERGY_IMPORT) == "123"
    st, rd = _decode(_tele(["0-0:99.1.0(1)(1-0:1.8.0)(kWh)", "(1.5*MWh)"]))
    assert rd.decimal(obis.ACTIVE_ENERGY_IMPORT) == "1500000"
    st, rd = _decode(_tele(["0-0:99.1.0(1)(1-0:1.8.0)(m3)", "(7)"]))  # not energy
    assert not rd.has(obis.ACTIVE_ENERGY_IMPORT)
    assert rd.decimal(_pass_entries(rd, "1-0:1.8.0")[0]) == "7"


def test_passthrough_full():
    lines = ["0-0:96.%d.0(%d)" % (k, k) for k in range(2, 60)] + ["1-0:1.7.0(1*kW)"]
    rd = Reading(passthrough=8, text_pool=32)
    st, rd = _decode(_tele(lines), rd=rd)
    assert st == status.OK
    assert rd.npass == 8 and rd.dropped == 50
    assert rd.decimal(obis.ACTIVE_POWER_IMPORT) == "1000"
    lines = ["0-0:96.13.%d(%s)" % (k, "A" * 40) for k in range(6)]
    st, rd = _decode(_tele(lines), rd=Reading(passthrough=8, text_pool=100))
    assert st == status.OK and rd.npass == 6
    assert [len(rd.pass_text(i)) for i in range(31, 37)] == [40, 40, 20, 0, 0, 0]


def test_trailing_garbage_and_blank_lines():
    t = _tele(["", "  ", "1-0:1.7.0(1*kW)", "\x00\x00", "1-0:2.7.0(2*kW)garbage"])
    st, rd = _decode(t + b"\xff\xff\x00junk")
    assert st == status.OK
    assert rd.decimal(obis.ACTIVE_POWER_IMPORT) == "1000"
    assert rd.decimal(obis.ACTIVE_POWER_EXPORT) == "2000"
