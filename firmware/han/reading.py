# Reading: preallocated slots for one decoded frame. Nothing here allocates after __init__
# except the accessors marked "edge", which build Python ints and strings for publishing.
#
# A number is stored as a sign and a 64-bit magnitude in four 16-bit limbs plus a decimal
# exponent: value = (-1)**sign * magnitude * 10**exp, in the slot's base unit (W, var, Wh,
# varh, V, A, Hz). Limbs keep every intermediate a small int on 32-bit ports, so registers
# above 2**30 (Wh counters of large meters, 64-bit DLMS integers) are exact and still cost
# no heap. Entries 0..NUM_SLOTS-1 are the table's slots; the rest is a bounded passthrough
# for OBIS codes outside the table, so nothing a meter sends is silently lost.
from array import array

from han import obis

try:
    from micropython import const
except ImportError:
    from han.compat import const

_TEXT_MAX = const(48)
_NSLOT = const(31)  # obis.NUM_SLOTS

# Frame formats (Reading.fmt).
FMT_NONE = const(0)
FMT_HDLC = const(1)
FMT_P1 = const(2)
FMT_MBUS = const(3)
FMT_APDU = const(4)
FORMAT_NAMES = ("", "hdlc", "p1", "mbus", "apdu")


class Reading:
    def __init__(self, passthrough=32, text_pool=512):
        n = _NSLOT + passthrough
        self.capacity = n
        self.limbs = array("H", [0] * (4 * n))
        self.neg = bytearray(n)
        self.exp = array("b", [0] * n)
        self.seen = bytearray(n)  # 1 number, 2 text (passthrough only)
        self.unit = bytearray(n)
        self.obis = bytearray(6 * n)  # the OBIS code as the frame (or list definition) gave it
        self.text = bytearray(_TEXT_MAX * obis.NUM_TEXTS)
        self.text_len = bytearray(obis.NUM_TEXTS)
        self.text_rank = bytearray(obis.NUM_TEXTS)
        self.text_obis = bytearray(6 * (obis.NUM_TEXTS + 1))  # texts, then the clock; F=0: none
        self.pool = bytearray(text_pool)  # passthrough strings: (offset, length) per entry
        self.pool_off = array("H", [0] * n)
        self.pool_len = array("H", [0] * n)
        # Meter clock: year, month, day, hour, minute, second, deviation (minutes, 0x8000 =
        # unspecified), status (bit 7 = daylight saving); clock_ok when present.
        self.clock = array("h", [0] * 8)
        self.npass = 0
        self.dropped = 0  # passthrough entries that did not fit
        self.clear()

    def clear(self):
        n = self.capacity
        for i in range(n):
            self.seen[i] = 0
        for i in range(obis.NUM_TEXTS):
            self.text_len[i] = 0
            self.text_rank[i] = 0
        for i in range(obis.NUM_TEXTS + 1):
            self.text_obis[6 * i + 5] = 0
        self.npass = 0
        self.dropped = 0
        self.pool_used = 0
        self.clock_ok = False
        self.fmt = FMT_NONE
        self.encrypted = False

    # ---- writing (hot path, allocation-free) ----

    def entry(self, slot, a, b, c, d, e, unit):
        # Index for a value with this OBIS code: its table slot, else a new passthrough
        # entry; -1 when the passthrough is full (counted in dropped).
        i = slot
        if i < 0:
            i = _NSLOT + self.npass
            if i >= self.capacity:
                self.dropped += 1
                return -1
            self.npass += 1
        _code(self.obis, 6 * i, a, b, c, d, e)
        self.unit[i] = unit
        return i

    def set_small(self, i, v, exp):
        # v: a small int (|v| < 2**30 on 32-bit ports).
        lb = self.limbs
        k = 4 * i
        if v < 0:
            self.neg[i] = 1
            v = -v
        else:
            self.neg[i] = 0
        lb[k] = v & 0xFFFF
        lb[k + 1] = (v >> 16) & 0xFFFF
        lb[k + 2] = 0
        lb[k + 3] = 0
        self.exp[i] = exp
        self.seen[i] = 1

    def set_be(self, i, buf, pos, n, signed, exp):
        # Big-endian integer of n (1..8) bytes at buf[pos], two's complement when signed.
        lb = self.limbs
        k = 4 * i
        for j in range(4):
            lb[k + j] = 0
        neg = signed and buf[pos] >= 0x80
        end = pos + n
        j = 0
        while end > pos:  # least significant byte pairs first
            lo = buf[end - 1]
            hi = buf[end - 2] if end - 2 >= pos else (0xFF if neg else 0)
            lb[k + j] = (hi << 8) | lo
            j += 1
            end -= 2
        if neg:
            while j < 4:
                lb[k + j] = 0xFFFF
                j += 1
            self._negate(k)
        self.neg[i] = 1 if neg else 0
        self.exp[i] = exp
        self.seen[i] = 1

    def _negate(self, k):
        # Two's complement of the 64-bit limb value in place: the magnitude of a negative.
        lb = self.limbs
        carry = 1
        for j in range(4):
            t = (lb[k + j] ^ 0xFFFF) + carry
            lb[k + j] = t & 0xFFFF
            carry = t >> 16

    def set_digits(self, i, buf, start, end, exp):
        # ASCII decimal "[-]digits[.digits]" in buf[start:end]; exp is the unit's exponent.
        # Returns False (entry left unset) when the text is not such a number. Digits are
        # gathered in a small int, four at a time into the limbs once there are more than
        # nine (10**9 < 2**30; limb * 10**4 + carry < 2**30 too).
        lb = self.limbs
        k = 4 * i
        neg = 0
        p = start
        if p < end and buf[p] == 0x2D:  # '-'
            neg = 1
            p += 1
        acc = 0
        nacc = 0  # digits in acc once the limbs are in use
        ndig = 0
        frac = -1
        big = False
        while p < end:
            c = buf[p] - 48
            p += 1
            if c < 0 or c > 9:
                if (c == -2 or c == -4) and frac < 0:  # '.' or ','
                    frac = 0
                    continue
                return False
            ndig += 1
            if frac >= 0:
                frac += 1
            if not big:
                if ndig <= 9:
                    acc = acc * 10 + c
                    continue
                big = True
                self._limbs_set(k, acc)
                acc = 0
            acc = acc * 10 + c
            nacc += 1
            if nacc == 4:
                self._limbs_muladd(k, 10000, acc)
                acc = 0
                nacc = 0
        if ndig == 0 or ndig > 19:
            return False
        if big:
            self._limbs_muladd(k, 10 ** nacc, acc)
        else:
            self._limbs_set(k, acc)
        self.neg[i] = neg
        self.exp[i] = exp - (frac if frac > 0 else 0)
        self.seen[i] = 1
        return True

    def _limbs_set(self, k, v):
        lb = self.limbs
        lb[k] = v & 0xFFFF
        lb[k + 1] = v >> 16
        lb[k + 2] = 0
        lb[k + 3] = 0

    def _limbs_muladd(self, k, m, add):
        # limbs = limbs * m + add, for m <= 10**4 and add < 10**4.
        lb = self.limbs
        c = add
        for j in range(4):
            t = lb[k + j] * m + c
            lb[k + j] = t & 0xFFFF
            c = t >> 16

    def set_text(self, t, buf, pos, n):
        # Text slot t (obis.METER_ID ...), bytes copied as sent, cut at 48.
        t -= obis.TEXT_BASE
        if n > _TEXT_MAX:
            n = _TEXT_MAX
        o = t * _TEXT_MAX
        tx = self.text
        for j in range(n):
            tx[o + j] = buf[pos + j]
        self.text_len[t] = n

    def put_text(self, t, a, b, c, d, e, buf, pos, n, rank):
        # A text that came with an OBIS code: kept in slot t unless a text of higher rank is
        # there already (a serial number beats a logical device name), else in passthrough.
        k = t - obis.TEXT_BASE
        if self.text_len[k]:
            if rank <= self.text_rank[k]:  # the first of equal rank stays
                i = self.entry(-1, a, b, c, d, e, obis.U_NONE)
                if i >= 0:
                    self.set_pass_text(i, buf, pos, n)
                return
            self._demote_text(k)
        self.set_text(t, buf, pos, n)
        self.text_rank[k] = rank
        self.tag_obis(k, a, b, c, d, e)

    def _demote_text(self, k):
        # Text k is replaced by one of higher rank: keep the old value in passthrough.
        o = 6 * k
        ob = self.text_obis
        if ob[o + 5] != 255:
            return
        i = self.entry(-1, ob[o], ob[o + 1], ob[o + 2], ob[o + 3], ob[o + 4], obis.U_NONE)
        if i >= 0:
            self.set_pass_text(i, self.text, k * _TEXT_MAX, self.text_len[k])

    def tag_obis(self, k, a, b, c, d, e):
        # The OBIS code of text k (0..NUM_TEXTS-1) or of the clock (NUM_TEXTS).
        _code(self.text_obis, 6 * k, a, b, c, d, e)

    def set_pass_text(self, i, buf, pos, n):
        # A string value for passthrough entry i, kept in the bounded pool.
        room = len(self.pool) - self.pool_used
        if n > room:
            n = room
        o = self.pool_used
        pl = self.pool
        for j in range(n):
            pl[o + j] = buf[pos + j]
        self.pool_off[i] = o
        self.pool_len[i] = n
        self.pool_used = o + n
        self.seen[i] = 2

    def set_clock(self, year, month, day, hour, minute, second, deviation, status):
        c = self.clock
        c[0] = year
        c[1] = month
        c[2] = day
        c[3] = hour
        c[4] = minute
        c[5] = second
        c[6] = deviation
        c[7] = status
        self.clock_ok = True

    # ---- reading (edge: these allocate) ----

    def has(self, i):
        return self.seen[i] == 1

    def mantissa(self, i):
        lb = self.limbs
        k = 4 * i
        v = (lb[k + 3] << 48) | (lb[k + 2] << 32) | (lb[k + 1] << 16) | lb[k]
        return -v if self.neg[i] else v

    def decimal(self, i):
        # Exact decimal text of entry i, e.g. "228.9", "62414155", "-0.45".
        return decimal_text(self.mantissa(i), self.exp[i])

    def get_text(self, t):
        t -= obis.TEXT_BASE
        n = self.text_len[t]
        if not n:
            return None
        o = t * _TEXT_MAX
        return _text(self.text, o, n)

    def pass_text(self, i):
        return _text(self.pool, self.pool_off[i], self.pool_len[i])

    def text_obis_of(self, k):
        # "A-B:C.D.E" of text k (or the clock, k = NUM_TEXTS), None when it came without one.
        o = 6 * k
        b = self.text_obis
        if b[o + 5] != 255:
            return None
        return obis.obis_text(b[o], b[o + 1], b[o + 2], b[o + 3], b[o + 4])

    def obis_of(self, i):
        o = 6 * i
        b = self.obis
        return obis.obis_text(b[o], b[o + 1], b[o + 2], b[o + 3], b[o + 4])

    def clock_iso(self):
        # ISO 8601 local time, with the UTC offset when the meter states its deviation.
        if not self.clock_ok:
            return None
        c = self.clock
        s = "%04d-%02d-%02dT%02d:%02d:%02d" % (c[0], c[1], c[2], c[3], c[4], c[5])
        dev = c[6]
        if dev != -0x8000:
            off = -dev  # deviation = minutes from local time to UTC
            sign = "+" if off >= 0 else "-"
            off = abs(off)
            s += "%s%02d:%02d" % (sign, off // 60, off % 60)
        return s


def _code(ob, o, a, b, c, d, e):
    # An OBIS code A..E at ob[o]; F = 255 also marks the code as present.
    ob[o] = a
    ob[o + 1] = b
    ob[o + 2] = c
    ob[o + 3] = d
    ob[o + 4] = e
    ob[o + 5] = 255


def decimal_text(m, exp):
    # m * 10**exp as exact decimal text, trailing fractional zeros kept as the meter sent them.
    if exp >= 0:
        return str(m * 10**exp)
    neg = m < 0
    s = str(-m if neg else m)
    n = -exp
    if len(s) <= n:
        s = "0" * (n - len(s) + 1) + s
    s = s[:-n] + "." + s[-n:]
    return "-" + s if neg else s


def _latin1(buf, o, n):
    return "".join(chr(buf[o + j]) for j in range(n))


def _text(buf, o, n):
    # Printable text as is; binary octet-strings (not text at all) as hex.
    for j in range(n):
        c = buf[o + j]
        if c < 0x20 or c == 0x7F:
            return "".join("%02x" % buf[o + j] for j in range(n))
    return _latin1(buf, o, n)
