# P1 / IEC 62056-21 mode D ASCII telegrams (Swedish H1/P1, DSMR, Belgian e-MUCS, Danish,
# Austrian and Luxembourg decrypted text) into a preallocated han.reading.Reading.
#
# Wire format (one object per line, CR LF or LF only):
#   /XXXZ<ident>                      header: manufacturer id, baud character, free text
#   (empty line)
#   A-B:C.D.E(value*unit)             "*unit" optional; F may follow E as "*255" or ".255"
#   A-B:C.D.E(YYMMDDhhmmssX)(v*unit)  a value with its capture time (DSMR gas, Belgian peak)
#   A-B:C.D.E(n)(A-B:C.D.E)(...)...   logs and profiles: a group holds an OBIS reference
#   (value)                           DSMR 2.2/3: gas reading on its own line, announced by
#                                     0-n:24.3.0(...)(0-n:24.2.1)(m3) on the line before
#   !CCCC                             CRC-16/ARC over "/" .. "!" in hex (3 digits = leading
#                                     zero dropped); no digits = the meter sends no CRC
#
# Allocation-free on MicroPython: the buffer is walked by index, numbers go through
# Reading.set_digits, and the results of the group scan sit in the parser's own array,
# made once: P1().decode(buf, start, bang, end, rd).
from array import array

from han.crc import crc16_arc
from han.obis import UNITS, lookup, text_rank

try:
    from micropython import const
except ImportError:
    from han.compat import const

# Status codes (han.status) and table constants (han.obis), copied as const for speed;
# host_tests/test_p1.py checks that they still match.
_OK = const(0)
_BAD_CRC = const(2)
_MALFORMED = const(7)
_NSLOT = const(31)  # obis.NUM_SLOTS
_TEXT_BASE = const(64)  # obis.TEXT_BASE
_METER_TYPE = const(65)  # obis.METER_TYPE
_CLOCK = const(80)  # obis.CLOCK
_NTEXT = const(3)  # obis.NUM_TEXTS: Reading.tag_obis index of the clock

# DLMS unit codes (obis.U_*, plus s and m3).
_U_NONE = const(0xFF)
_U_W = const(0x1B)
_U_VAR = const(0x1D)
_U_WH = const(0x1E)
_U_VARH = const(0x20)

# Longest passthrough text kept per line (a 1100-byte 0-0:98.1.0 profile must not fill the
# Reading's whole text pool).
_PASS_MAX = const(192)

# Unit names after "*", lower-cased, once a k (10**3) or M (10**6) prefix is taken off, and
# their DLMS codes. Matching is case-insensitive: kvar, kVAr, kVar all work. Other units
# (GJ of heat meters, ...) keep the value as sent, with unit code U_NONE.
_UNIT_NAMES = (b"w", b"wh", b"v", b"a", b"var", b"varh", b"va", b"vah", b"hz", b"s", b"m3")
_UNIT_CODES = b"\x1b\x1e\x23\x21\x1d\x20\x1c\x1f\x2c\x07\x0d"

# Exponent of a table slot's value when the meter sends no unit: the P1 standard units are
# kW, kvar, kWh, kvarh (10**3 of the base unit), V, A, Hz (protocols.md 1.4).
_DEF_EXP = bytes(3 if u in (_U_W, _U_VAR, _U_WH, _U_VARH) else 0 for u in UNITS)

# Results of _groups() for the current line, and state carried between lines.
_N = const(0)  # number of top-level "(...)" groups
_FS = const(1)  # first group: index after "("
_FE = const(2)  # first group: index of ")"
_LS = const(3)  # last group: index after "("
_LE = const(4)  # last group: index of ")"
_PS = const(5)  # the group before the last: index after "(" (-1: none)
_NS = const(6)  # last group holding a number: start of the number (-1: none)
_NE = const(7)  # ... end of the number ("*" or ")")
_UE = const(8)  # ... end of its unit (the ")")
_REF = const(9)  # last group holding ":" (an OBIS reference): index after "(" (-1: none)
_ARM = const(10)  # 1: the line before announced a "(value)" line for self.ref
_RU = const(11)  # unit of that value, as _unit() returns it
_DONE = const(12)  # object lines decoded in this telegram


class P1:
    def __init__(self):
        self.g = array("i", [0] * 13)  # group scan results and line state (_N .. _DONE)
        self.code = bytearray(5)  # A..E of the current line
        self.ref = bytearray(5)  # A..E of the OBIS reference in a profile line

    def decode(self, buf, start, bang, end, rd):
        # buf[start] is "/", buf[bang] the "!" (bang == end when the text has none), CRC digits
        # in buf[bang+1:end]. Fills rd (cleared by the caller); returns a han.status code.
        if bang < end and buf[bang] == 0x21 and not _crc_ok(buf, start, bang, end):
            return _BAD_CRC
        g = self.g
        g[_ARM] = 0
        g[_DONE] = 0
        p = _eol(buf, start + 1, bang)  # the header line, "/" left out
        if p > start + 1:
            rd.set_text(_METER_TYPE, buf, start + 1, p - start - 1)
        while p < bang:
            ch = buf[p]
            if 0x30 <= ch <= 0x39:
                p = self._line(buf, p, bang, rd)
            elif ch == 0x28:  # "(": a value on its own line
                p = self._cont(buf, p, bang, rd)
            elif ch == 0x0D or ch == 0x0A or ch == 0x20 or ch == 0x09 or ch == 0:
                p += 1
            else:  # not an object line: skip it
                p = _eol(buf, p, bang)
        return _OK if g[_DONE] else _MALFORMED

    def _groups(self, buf, p, lim):
        # "(..)(..)..." from p to the end of the line (CR, LF or lim), nested parentheses as in
        # "((ER11))" included; notes in self.g where the groups, the last number and a reference are.
        # Returns the index of the end of the line.
        n = 0
        depth = 0
        s = 0
        ls = -1
        ps = -1
        fs = fe = le = 0
        ns = ne = ue = ref = -1
        while p < lim:
            c = buf[p]
            if c > 0x29 and c != 0x3A:  # the common case: a plain value character
                p += 1
                continue
            if c == 0x28:  # "("
                if depth == 0:
                    s = p + 1
                depth += 1
            elif c == 0x29:  # ")"
                if depth == 1:
                    if n == 0:
                        fs = s
                        fe = p
                    n += 1
                    ps = ls
                    ls = s
                    le = p
                    k = _numeric(buf, s, p)
                    if k >= 0:
                        ns = s
                        ne = k
                        ue = p
                if depth:
                    depth -= 1
            elif c == 0x3A:  # ":" inside a group: an OBIS reference
                if depth == 1:
                    ref = s
            elif c == 0x0D or c == 0x0A:
                break
            p += 1
        g = self.g
        g[_N] = n
        g[_FS] = fs
        g[_FE] = fe
        g[_LS] = ls
        g[_LE] = le
        g[_PS] = ps
        g[_NS] = ns
        g[_NE] = ne
        g[_UE] = ue
        g[_REF] = ref
        return p

    def _line(self, buf, p, lim, rd):
        # One object line at p (a digit). Returns the index of its end of line.
        o = self.code
        q = _obis(buf, p, lim, o)
        if q < 0 or q >= lim or buf[q] != 0x28:
            return _eol(buf, p, lim)
        e = self._groups(buf, q, lim)
        g = self.g
        g[_ARM] = 0
        if g[_N] == 0:
            return e
        slot = lookup(o[0], o[1], o[2], o[3], o[4])
        if slot == _CLOCK:  # a date-time we cannot read is kept as text
            if g[_N] == 1 and _clock(buf, g[_FS], g[_FE], rd):
                rd.tag_obis(_NTEXT, o[0], o[1], o[2], o[3], o[4])
            else:
                self._text(buf, rd, o)
            g[_DONE] += 1
            return e
        if slot >= _TEXT_BASE:  # meter id, meter type, list id: the first group as sent
            if g[_FE] > g[_FS]:
                rd.put_text(slot, o[0], o[1], o[2], o[3], o[4], buf, g[_FS], g[_FE] - g[_FS],
                            text_rank(o[0], o[2], o[3], o[4]))
            else:  # "()": no id; the header's meter type stays
                self._text(buf, rd, o)
            g[_DONE] += 1
            return e
        if g[_REF] >= 0 and self._isref(buf, g[_REF], e):  # a log or profile: kept as text
            self._profile(buf, rd)
        elif g[_NS] >= 0 and (slot >= 0 or not _is_id(o)):
            self._number(buf, rd, o, slot, _U_NONE)
        else:
            self._text(buf, rd, o)
        g[_DONE] += 1
        return e

    def _number(self, buf, rd, o, slot, dflt):
        # The last numeric group of the line into slot (or the passthrough when slot < 0 or the
        # unit does not fit the slot). dflt: the unit when the value has none (U_NONE: unknown;
        # a table slot then takes its P1 standard unit, e.g. kvar for "1-0:3.7.0(00.000)").
        g = self.g
        ne = g[_NE]
        ue = g[_UE]
        u = _unit(buf, ne + 1, ue) if ne < ue else dflt
        if slot >= 0:
            if ne >= ue and u == _U_NONE:
                u = (_DEF_EXP[slot] << 8) | UNITS[slot]
            elif (u & 0xFF) != UNITS[slot]:
                slot = -1
        i = rd.entry(slot, o[0], o[1], o[2], o[3], o[4], u & 0xFF)
        if i >= 0:
            rd.set_digits(i, buf, g[_NS], ne, u >> 8)

    def _text(self, buf, rd, o):
        # The line's value as text in the passthrough: the group's content, or all groups
        # "(..)(..)" as sent when there are several.
        g = self.g
        if g[_N] == 1:
            s = g[_FS]
            n = g[_FE] - s
        else:
            s = g[_FS] - 1
            n = g[_LE] + 1 - s
        if n > _PASS_MAX:
            n = _PASS_MAX
        i = rd.entry(-1, o[0], o[1], o[2], o[3], o[4], _U_NONE)
        if i >= 0:
            rd.set_pass_text(i, buf, s, n)

    def _profile(self, buf, rd):
        # A log or profile line (self.ref holds its last OBIS reference) goes to the passthrough as
        # text. "...(0-1:24.2.1)(m3)" at its end (DSMR 2.2/3 gas) announces the value on the
        # next line: remember that the code in self.ref and the unit apply to it.
        g = self.g
        self._text(buf, rd, self.code)
        if g[_N] >= 2 and g[_PS] == g[_REF]:
            u = _unit(buf, g[_LS], g[_LE])
            if u != _U_NONE:
                g[_RU] = u
                g[_ARM] = 1

    def _isref(self, buf, s, e):
        # Does the group at s hold just an OBIS code ("(0-0:96.7.19)")? Parsed into self.ref.
        q = _obis(buf, s, e, self.ref)
        return 0 <= q < e and buf[q] == 0x29

    def _cont(self, buf, p, lim, rd):
        # "(value)" alone on a line: taken when the line before announced it (see _profile),
        # with the code and unit given there; ignored otherwise.
        e = self._groups(buf, p, lim)
        g = self.g
        if g[_ARM] and g[_N] == 1 and g[_NS] >= 0:
            r = self.ref
            slot = lookup(r[0], r[1], r[2], r[3], r[4])
            if slot >= _NSLOT:
                slot = -1
            self._number(buf, rd, r, slot, g[_RU])
            g[_DONE] += 1
        g[_ARM] = 0
        return e


def _crc_ok(buf, start, bang, end):
    # "!" then up to 4 hex digits (either case); none means the meter sends no CRC.
    v = 0
    n = 0
    p = bang + 1
    while p < end and n < 4:
        c = buf[p]
        if 0x30 <= c <= 0x39:
            c -= 0x30
        else:
            c |= 0x20  # lower case
            if c < 0x61 or c > 0x66:
                break
            c -= 0x57
        v = (v << 4) | c
        n += 1
        p += 1
    return n == 0 or crc16_arc(buf, start, bang + 1) == v


def _eol(buf, p, lim):
    # Index of the CR or LF ending the line at p (lim when there is none).
    while p < lim:
        c = buf[p]
        if c == 0x0A or c == 0x0D:
            return p
        p += 1
    return lim


_SEP = b"-:.."  # the separator after A, B, C, D


def _obis(buf, p, lim, o):
    # "A-B:C.D.E", then optionally "*F" or ".F", at p: A..E into o. Returns the index after
    # the code, or -1 when it is not one (the line is then skipped, e.g. "1-0:4:24.7.0").
    k = 0  # the field being read: 0..4 = A..E, 5 = F
    while True:
        s = p
        e = p + 3  # at most 3 digits (0..255): bounded, so v stays a small int
        if e > lim:
            e = lim
        v = 0
        while p < e:
            c = buf[p] - 0x30
            if c < 0 or c > 9:
                break
            v = v * 10 + c
            p += 1
        if p == s or v > 255:
            return -1
        if k == 5:
            return p
        o[k] = v
        if p >= lim:
            return p if k == 4 else -1
        c = buf[p]
        if k == 4:  # E ends the code unless "*F" or ".F" follows
            if c != 0x2A and c != 0x2E:
                return p
        elif c != _SEP[k]:
            return -1
        k += 1
        p += 1


def _numeric(buf, s, e):
    # "[-]digits[.digits][*unit]" in buf[s:e] (1..19 digits, "." or ","): the index of the
    # "*" (or e); -1 when it is not a number.
    p = s
    if p < e and buf[p] == 0x2D:
        p += 1
    nd = 0
    dot = 0
    while p < e:
        c = buf[p]
        if 0x30 <= c <= 0x39:
            nd += 1
        elif c == 0x2E or c == 0x2C:
            if dot:
                return -1
            dot = 1
        elif c == 0x2A:
            break
        else:
            return -1
        p += 1
    if nd == 0 or nd > 19:
        return -1
    return p


def _unit(buf, s, e):
    # Unit text buf[s:e] -> (exponent << 8) | DLMS code, e.g. "kWh" -> 3 << 8 | Wh;
    # an unknown unit -> U_NONE with exponent 0.
    n = e - s
    x = 0
    if n > 1:
        c = buf[s]
        if c == 0x6B:  # k
            x = 3
        elif c == 0x4D:  # M
            x = 6
        if x:
            s += 1
            n -= 1
    names = _UNIT_NAMES
    for i in range(len(names)):
        t = names[i]
        if len(t) == n:
            j = 0
            while j < n and (buf[s + j] | 0x20) == t[j]:
                j += 1
            if j == n:
                return (x << 8) | _UNIT_CODES[i]
    return _U_NONE


def _is_id(o):
    # Codes whose digits are an identifier or a message, not a quantity: 96.1.x equipment
    # ids, 96.13.x messages, 42.0.0 device name, x.0.0.x device numbers (leading zeros kept).
    c = o[2]
    d = o[3]
    return (c == 96 and (d == 1 or d == 13)) or c == 42 or (c == 0 and d == 0)


def _clock(buf, s, e, rd):
    # "YYMMDDhhmmssX" in buf[s:e], X = W (normal time) or S (summer time); or
    # "YYYYMMDD hh:mm:ss" (NES meters, Denmark), which states no season.
    n = e - s
    if n == 13:
        x = buf[s + 12]
        if (x != 0x57 and x != 0x53) or not _digits(buf, s, s + 12):
            return False
        rd.set_clock(2000 + _d2(buf, s), _d2(buf, s + 2), _d2(buf, s + 4), _d2(buf, s + 6),
                     _d2(buf, s + 8), _d2(buf, s + 10), -0x8000, 0x80 if x == 0x53 else 0)
        return True
    if n != 17 or buf[s + 8] != 0x20 or buf[s + 11] != 0x3A or buf[s + 14] != 0x3A:
        return False
    if not (_digits(buf, s, s + 8) and _digits(buf, s + 9, s + 11)
            and _digits(buf, s + 12, s + 14) and _digits(buf, s + 15, s + 17)):
        return False
    rd.set_clock(_d2(buf, s) * 100 + _d2(buf, s + 2), _d2(buf, s + 4), _d2(buf, s + 6),
                 _d2(buf, s + 9), _d2(buf, s + 12), _d2(buf, s + 15), -0x8000, 0)
    return True


def _digits(buf, s, e):
    for i in range(s, e):
        c = buf[i]
        if c < 0x30 or c > 0x39:
            return False
    return True


def _d2(buf, i):
    return (buf[i] - 0x30) * 10 + buf[i + 1] - 0x30
