# DLMS/COSEM data-notification (tag 0F) decoding into a Reading.
#
#   0F | long-invoke-id-and-priority (4) | date-time | body
#   date-time: 09 0C <12> (Kaifa, older Kamstrup), 0C <12> (Kamstrup since rev 3.0, L+G,
#              Iskra), 19 <12>, or 00 (none: Aidon, Swedish Kaifa)
#
# Bodies as the manufacturers use them (protocols.md 2.8):
#   inline OBIS: the body's leaves, read in order, are OBIS octet-strings (09 06 A B C D E F)
#     each followed by its value and optionally by a scaler-unit structure
#     (02 02 0F <scaler> 16 <unit>). One walker serves Aidon (array of structures),
#     Kamstrup (structure: list id, then OBIS/value pairs), Swedish Kaifa (OBIS/value pairs)
#     and Austrian/Polish Sagemcom/Kaifa (OBIS, value, scaler-unit triplets).
#   push object list (L+G, Iskra CH): structure whose first element is the array of captured
#     objects (class, OBIS, attribute, index); the other elements are their values in order.
#   positional (Kaifa KFM_001, list 1 meters, distributor layouts): values only; the OBIS
#     codes come from the list definition (positional.py).
# Where a frame sends no scaler, the make's documented implicit scaling applies (scaling.py).
from han import axdr, obis, positional, scaling
from han.axdr import Cursor
from han.status import MALFORMED, OK, UNKNOWN_LAYOUT

try:
    from micropython import const
except ImportError:
    from han.compat import const

_MAX_CAPTURE = const(64)
_FREE = const(0)
_HAVE_OBIS = const(1)


class Dlms:
    def __init__(self, reading, kamstrup_wh=False, current_exp=None, voltage_exp=None,
                 energy_exp=None):
        self.rd = reading
        self.cur = Cursor()
        self.scale = scaling.Scaling(reading, kamstrup_wh, current_exp, voltage_exp, energy_exp)
        self.cap = bytearray(6 * _MAX_CAPTURE)  # OBIS codes of a push object list
        self.ncap = 0
        self.state = _FREE
        self.po = 0  # position of the pending OBIS code in buf
        self.last = -1  # entry that may still receive a scaler-unit
        self.nobis = 0
        self.nleaf = 0

    def notification(self, buf, s, end):
        # buf[s] == 0x0F. Fills the reading; returns a han.status code.
        p = s + 5  # tag + invoke id
        if p >= end:
            return MALFORMED
        tag = buf[p]
        if tag == 0x09 and p + 1 < end and buf[p + 1] == 12:
            self._clock(buf, p + 2, end)
            p += 14
        elif tag == 0x0C or tag == 0x19:
            self._clock(buf, p + 1, end)
            p += 13
        elif tag == 0x00:
            p += 1
        if p >= end:
            return MALFORMED
        if self.cur.skip(buf, p, end) < 0:
            return MALFORMED
        self.scale.begin()
        st = self._body(buf, p, end)
        if st == OK:
            self.scale.finish()
        return st

    def _body(self, buf, p, end):
        tag = buf[p]
        if tag == axdr.STRUCTURE and self._is_capture_list(buf, p, end):
            return self._captured(buf, p, end)
        self.state = _FREE
        self.last = -1
        self.nobis = 0
        self.nleaf = 0
        if self._inline(buf, p, end, 0) < 0:
            return MALFORMED
        if self.nobis:
            return OK
        return positional.decode(self, buf, p, end)

    # ---- inline OBIS layout ----

    def _inline(self, buf, p, end, depth):
        # One element: an OBIS code, its value, a scaler-unit, a container, or a free item.
        tag = buf[p]
        if self.state == _HAVE_OBIS:
            self.state = _FREE
            return self._value(buf, p, end, self.po)
        if tag == axdr.OCTET_STRING and buf[p + 1] == 6 and p + 8 <= end:
            self.po = p + 2
            self.nleaf += 1
            self.state = _HAVE_OBIS
            self.nobis += 1
            self.last = -1
            return p + 8
        if tag == axdr.STRUCTURE and self._is_scaler_unit(buf, p, end):
            if self.last >= 0:
                self.scale.explicit(self.last, buf[p + 3], buf[p + 5])
                self.last = -1
            return p + 6
        if tag == axdr.ARRAY or tag == axdr.STRUCTURE:
            cur = self.cur
            p = cur.ber(buf, p + 1, end)
            if p < 0 or depth > 6:
                return -1
            for _ in range(cur.n):
                p = self._inline(buf, p, end, depth + 1)
                if p < 0:
                    return -1
            return p
        self.nleaf += 1
        if axdr.is_string(tag):
            q = self.cur.ber(buf, p + 1, end)
            if q < 0:
                return -1
            self._free_string(buf, q, self.cur.n, tag)
            return q + self.cur.n
        return self.cur.skip(buf, p, end)

    def _is_scaler_unit(self, buf, p, end):
        return (p + 6 <= end and buf[p + 1] == 2 and buf[p + 2] == axdr.INT8
                and buf[p + 4] == axdr.ENUM)

    def _free_string(self, buf, q, n, tag):
        # A string with no OBIS before it: the list id when it comes first (Kamstrup), a
        # date-time (Sagemcom), otherwise the meter id when none was sent (Austrian lists).
        rd = self.rd
        if n == 12 and tag == axdr.OCTET_STRING and self._clock(buf, q, q + 12):
            return
        if self.nleaf == 1 and not rd.text_len[2]:
            rd.set_text(obis.LIST_ID, buf, q, n)
            self.scale.list_id(buf, q, n)
        elif not rd.text_len[0] and self.nobis:
            rd.set_text(obis.METER_ID, buf, q, n)

    def _value(self, buf, p, end, po):
        # The value element at p for the OBIS code at buf[po..po+5].
        a = buf[po]
        b = buf[po + 1]
        c = buf[po + 2]
        d = buf[po + 3]
        e = buf[po + 4]
        return self.put(buf, p, end, obis.lookup(a, b, c, d, e), a, b, c, d, e)

    def put(self, buf, p, end, slot, a, b, c, d, e):
        # Store the element at p under OBIS a-b:c.d.e (slot from the table, -1 = passthrough).
        # Returns the position after it (-1 when malformed).
        rd = self.rd
        tag = buf[p]
        if axdr.is_integer(tag):
            n = axdr.fixed_size(tag)
            if p + 1 + n > end:
                return -1
            if slot >= obis.NUM_SLOTS:
                slot = -1
            i = rd.entry(slot, a, b, c, d, e, obis.UNITS[slot] if slot >= 0 else obis.U_NONE)
            if i >= 0:
                rd.set_be(i, buf, p + 1, n, axdr.is_signed(tag), 0)
                self.scale.implicit(i, slot)
                self.last = i
            return p + 1 + n
        if axdr.is_string(tag):
            q = self.cur.ber(buf, p + 1, end)
            n = self.cur.n
            if q < 0 or q + n > end:
                return -1
            if slot == obis.CLOCK and n == 12 and self._clock(buf, q, end):
                rd.tag_obis(obis.NUM_TEXTS, a, b, c, d, e)
                return q + n
            if obis.TEXT_BASE <= slot < obis.CLOCK:
                rd.put_text(slot, a, b, c, d, e, buf, q, n, obis.text_rank(a, c, d, e))
                if slot == obis.LIST_ID:
                    self.scale.list_id(buf, q, n)
            else:
                i = rd.entry(-1, a, b, c, d, e, obis.U_NONE)
                if i >= 0:
                    rd.set_pass_text(i, buf, q, n)
            return q + n
        if tag == axdr.DATE_TIME and slot == obis.CLOCK and self._clock(buf, p + 1, end):
            rd.tag_obis(obis.NUM_TEXTS, a, b, c, d, e)
        return self.cur.skip(buf, p, end)

    # ---- push object list layout ----

    def _is_capture_list(self, buf, p, end):
        # The structure at p starts with an array whose items are 4-element structures
        # beginning with a class id (uint16) and an OBIS code: 01 n 02 04 12 cc cc 09 06 ...
        p = self.cur.ber(buf, p + 1, end)
        if p < 0 or p + 3 >= end or buf[p] != axdr.ARRAY:
            return False
        p = self.cur.ber(buf, p + 1, end)
        return (p >= 0 and p + 7 < end and buf[p] == axdr.STRUCTURE and buf[p + 1] == 4
                and buf[p + 2] == axdr.UINT16 and buf[p + 5] == axdr.OCTET_STRING
                and buf[p + 6] == 6)

    def _captured(self, buf, p, end):
        cur = self.cur
        p = cur.ber(buf, p + 1, end)
        nval = cur.n
        q = cur.ber(buf, p + 1, end)  # the array of captured objects
        ncap = cur.n
        if ncap > _MAX_CAPTURE:
            return UNKNOWN_LAYOUT
        cap = self.cap
        for k in range(ncap):  # each: 02 04 12 <class 2> 09 06 <obis 6> 0F <attr> 12 <index 2>
            if q + 13 > end or buf[q + 5] != axdr.OCTET_STRING:
                return MALFORMED
            for j in range(6):
                cap[6 * k + j] = buf[q + 7 + j]
            q = cur.skip(buf, q, end)
            if q < 0:
                return MALFORMED
        self.ncap = ncap
        # The array is itself the value of the first captured object (the push setup's object
        # list) when the counts match; otherwise values start after it.
        k = 1 if ncap == nval else 0
        p = q
        for _ in range(nval - 1):
            if k < ncap:
                o = 6 * k
                a = cap[o]
                b = cap[o + 1]
                c = cap[o + 2]
                d = cap[o + 3]
                e = cap[o + 4]
                p = self.put(buf, p, end, obis.lookup(a, b, c, d, e), a, b, c, d, e)
            else:
                p = cur.skip(buf, p, end)
            if p < 0:
                return MALFORMED
            k += 1
        return OK

    # ---- date-time ----

    def _clock(self, buf, q, end):
        # COSEM date-time (12 bytes): year(2) month day weekday hour minute second
        # hundredths deviation(int16, minutes local->UTC, 0x8000 = unspecified) status.
        # Stored only when it names an actual moment; returns whether it did.
        if q + 12 > end:
            return False
        year = (buf[q] << 8) | buf[q + 1]
        month = buf[q + 2]
        day = buf[q + 3]
        hour = buf[q + 5]
        minute = buf[q + 6]
        second = buf[q + 7]
        if not (1 <= month <= 12 and 1 <= day <= 31 and hour < 24 and minute < 60):
            return False
        if year < 1970 or year > 2200:
            return False
        if second > 59:
            second = 0
        dev = (buf[q + 9] << 8) | buf[q + 10]
        if dev >= 0x8000:
            dev -= 0x10000
        status = buf[q + 11]
        if status == 0xFF:
            status = 0
        self.rd.set_clock(year, month, day, hour, minute, second, dev, status)
        return True
