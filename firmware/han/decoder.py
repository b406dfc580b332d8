# The streaming decoder: feed it bytes exactly as the UART delivers them (any chunk size,
# split anywhere, several frames per chunk); it finds, checks and unwraps every frame and
# fills the Reading. Allocation-free after construction; bad input is counted, never raised.
#
# Bytes are copied into one window buffer and scanned from `scan`. A frame starts with
#   7E  HDLC type 3 (IEC 62056-46), delimited by its length field (no byte stuffing)
#   2F  '/' of a P1 / IEC 62056-21 ASCII telegram, ending "!" + CRC digits
#   68  M-Bus long frame 68 L L 68 ... CS 16 (EN 13757-2), DLMS in the user data
#   DB  a bare general-glo-ciphering APDU (Luxembourg Smarty and other encrypted P1)
# A candidate that fails its checks is counted and the scan resumes one byte after its
# start, so a frame interrupted by the next one, a flipped bit or leading garbage costs only
# that frame. Bytes belonging to no frame are kept (bounded) until flush(), which decodes
# them as a bare LLC/APDU payload when they are one (tools/decode.py on a print-out).
from array import array

from han import status
from han.crc import crc16_x25
from han.dlms import Dlms
from han.fast import copy
from han.p1 import P1
from han.reading import FMT_APDU, FMT_HDLC, FMT_MBUS, FMT_P1
from han.scaling import make_of
from han.status import (C_BAD_CRC, C_BYTES, C_DECRYPT, C_MALFORMED, C_OK, C_SKIPPED,
                        C_TOO_LONG, C_TRUNCATED, C_UNKNOWN, DECRYPT_FAILED, MALFORMED,
                        MORE, OK, TOO_LONG, TRUNCATED, UNKNOWN_LAYOUT)

try:
    from micropython import const
except ImportError:
    from han.compat import const

_NEED = const(-1)  # candidate incomplete: wait for more bytes
_NO = const(-2)  # not a frame start after all
_ASM_NONE = const(0)
_ASM_SEG = const(1)  # HDLC segmentation (format A8xx)
_ASM_GBT = const(2)  # DLMS general block transfer (E0)
_ASM_MBUS = const(3)  # M-Bus multi-telegram
_CR = const(0x0D)
_LF = const(0x0A)

# status code -> counter index (OK and MORE count elsewhere)
_COUNTER = bytes((C_OK, C_OK, C_BAD_CRC, C_TOO_LONG, C_TRUNCATED, C_DECRYPT, C_UNKNOWN, C_MALFORMED))


class Decoder:
    def __init__(self, reading, key=None, auth_key=None, bufsize=6144, asmsize=2048,
                 kamstrup_wh=False, current_exp=None, voltage_exp=None, energy_exp=None):
        # kamstrup_wh: Swedish Kamstrup energy registers in Wh (not the NVE lists' 10 Wh);
        # *_exp: the user's per-meter scaling for frames that carry no scaler (scaling.py).
        self.rd = reading
        self.win = bytearray(bufsize)
        self.cap = bufsize
        self.wlen = 0
        self.scan = 0
        self.junk = 0  # start of the bytes that belong to no frame
        self.asm = bytearray(asmsize)
        self.alen = 0
        self.asm_kind = _ASM_NONE
        self.asm_next = 0  # next expected GBT block / M-Bus sequence number
        self.p1_s = -1  # P1 candidate start, terminator search resume point, saw a line end
        self.p1_at = 0
        self.counters = array("l", [0] * len(status.COUNTER_NAMES))
        self.ready = False
        self.last_status = OK
        self.frame_kind = 0
        self.frame_buf = self.win
        self.frame_start = 0
        self.frame_end = 0
        self.title = bytearray(8)  # system title of the last ciphered frame
        self.title_ok = False
        self.security = 0  # its security control byte
        self.p1 = P1()
        self.dlms = Dlms(reading, kamstrup_wh, current_exp, voltage_exp, energy_exp)
        self.gcm = None
        self.set_keys(key, auth_key)

    def set_keys(self, key, auth_key=None):
        # The GCM work area is made once and reused when the keys change.
        if not key:
            self.gcm = None
        elif self.gcm is None:
            from han.gcm import Gcm

            self.gcm = Gcm(key, auth_key)
        else:
            self.gcm.set_keys(key, auth_key)

    # ---- input ----

    def feed(self, buf, start, end):
        # Copy buf[start:end] in (as much as fits) and scan. Returns the index of the first
        # byte not consumed; stops early when a reading is ready (self.ready), so the caller
        # loops until ready is False and everything is consumed.
        self.ready = False
        n = end - start
        if n > 0:
            if self.cap - self.wlen < n:
                self._make_room(n)
            take = self.cap - self.wlen
            if take > n:
                take = n
            copy(self.win, self.wlen, buf, start, take)
            self.wlen += take
            self.counters[C_BYTES] += take
            start += take
        self._run()
        return start

    def flush(self):
        # End of input, or the line went idle: finish what is buffered. Returns True when
        # that produced a reading; call again until it returns False.
        self.ready = False
        while True:
            self._run()
            if self.ready:
                return True
            s = self.scan
            if s >= self.wlen:
                break
            if self.junk < s and self._bare(self.junk, self.wlen):
                return self.ready
            if self.win[s] == 0x2F:  # a telegram without "!" (decrypted Austrian text)
                r = self._p1(s, True)
                if r >= 0:
                    self.scan = r
                    self.junk = r
                    if self.ready:
                        return True
                    continue
            if s >= self.junk and self.wlen - s > 2:  # not just a closing flag
                self._count(TRUNCATED)
            self.scan = s + 1
        if self.junk < self.wlen and self._bare(self.junk, self.wlen):
            return self.ready
        self.counters[C_SKIPPED] += self.wlen - self.junk
        if self.asm_kind != _ASM_NONE:
            self._count(TRUNCATED)
            self.asm_kind = _ASM_NONE
        self.wlen = 0
        self.scan = 0
        self.junk = 0
        self.p1_s = -1
        return False

    def _make_room(self, n):
        # Move the unscanned tail to the front; drop kept junk, then a candidate longer than
        # the window (too long), until n bytes fit or only a full candidate remains.
        self._compact(self.junk if self.junk < self.scan else self.scan)
        if self.cap - self.wlen >= n:
            return
        self.counters[C_SKIPPED] += self.scan - self.junk
        self.junk = self.scan
        self._compact(self.scan)
        if self.wlen == self.cap:
            self._count(TOO_LONG)
            self.scan += 1  # rescan: whatever cut the candidate off is in there
            self.junk = self.scan
            self.p1_s = -1
            self._compact(self.scan)

    def _compact(self, keep):
        if keep <= 0:
            return
        n = self.wlen - keep
        copy(self.win, 0, self.win, keep, n)  # forward: safe for this overlap
        self.wlen = n
        self.scan -= keep
        self.junk -= keep
        if self.p1_s >= 0:
            self.p1_s -= keep
            self.p1_at -= keep
        self.frame_start = 0
        self.frame_end = 0

    # ---- scanning ----

    def _run(self):
        win = self.win
        while self.scan < self.wlen:
            s = self.scan
            b = win[s]
            if b == 0x7E:
                r = self._hdlc(s)
            elif b == 0x2F:
                r = self._p1(s, False)
            elif b == 0x68:
                r = self._mbus(s)
            elif b == 0xDB:
                r = self._glo(s)
            else:
                r = _NO
            if r == _NEED:
                return
            if r == _NO:
                self.scan = s + 1
                continue
            self.scan = r
            if self.ready:
                return

    def _frame(self, kind, s, e):
        # A frame passed its checks: the bytes before it were noise.
        self.counters[C_SKIPPED] += s - self.junk if s > self.junk else 0
        self.junk = e
        self.frame_kind = kind
        self.frame_buf = self.win
        self.frame_start = s
        self.frame_end = e

    def _count(self, st):
        self.last_status = st
        if st != MORE:
            self.counters[_COUNTER[st]] += 1
        if st == OK:
            self.ready = True

    # ---- HDLC ----

    def _hdlc(self, s):
        # 7E | format(2): 1010 S L(11) | dest | src (LSB 1 ends each) | control | HCS(2) |
        # information | FCS(2) | 7E. HCS/FCS: CRC-16/X.25, LSB first. L = bytes between flags.
        win = self.win
        wl = self.wlen
        if s + 3 > wl:
            return _NEED
        f1 = win[s + 1]
        if f1 & 0xF0 != 0xA0:
            return _NO
        length = ((f1 & 0x07) << 8) | win[s + 2]
        p = self._address(s + 3)
        if p >= 0:
            p = self._address(p)
        if p < 0:
            return p
        h = p + 1  # after the control byte: HCS, or FCS for a frame without information
        if length < h - s + 1 or h + 2 > s + length + 1:
            return _NO
        if h + 2 > wl:
            return _NEED
        if crc16_x25(win, s + 1, h) != win[h] | (win[h + 1] << 8):
            self._frame_fail(s, status.BAD_CRC)
            return s + 1
        if length + 2 > self.cap:
            self._frame_fail(s, TOO_LONG)
            return s + 1
        e = s + length + 1  # closing flag position
        if e > wl:
            return _NEED
        if crc16_x25(win, s + 1, e - 2) != win[e - 2] | (win[e - 1] << 8):
            cut = e < wl and win[e] != 0x7E
            self._frame_fail(s, TRUNCATED if cut else status.BAD_CRC)
            return s + 1
        self._frame(FMT_HDLC, s, e + 1 if e < wl and win[e] == 0x7E else e)
        if h + 2 < e - 2:
            self._hdlc_info(win, h + 2, e - 2, f1 & 0x08)
        # The closing flag may also open the next frame: resume on it.
        return e

    def _address(self, p):
        # HDLC address: 1 to 4 bytes, the last one with LSB 1.
        win = self.win
        for k in range(4):
            if p + k >= self.wlen:
                return _NEED
            if win[p + k] & 1:
                return p + k + 1
        return _NO

    def _frame_fail(self, s, st):
        self.frame_buf = self.win
        self.frame_start = s
        self.frame_end = s + 1
        self._count(st)

    def _hdlc_info(self, buf, i, e, segmented):
        # Segments (S bit): information fields are concatenated; the LLC header comes with
        # the first one, so a field starting with an LLC header begins a new message.
        llc = buf[i] == 0xE6 and buf[i + 1] == 0xE7 and buf[i + 2] == 0x00
        if self.asm_kind == _ASM_SEG and llc:
            self._count(TRUNCATED)
            self.asm_kind = _ASM_NONE
        if not segmented and self.asm_kind != _ASM_SEG:
            self._decode(buf, i, e, FMT_HDLC)
            return
        if self.asm_kind != _ASM_SEG:
            self.asm_kind = _ASM_SEG
            self.alen = 0
        if not self._append(buf, i, e):
            return
        if segmented:
            self._count(MORE)
        else:
            self.asm_kind = _ASM_NONE
            self._decode(self.asm, 0, self.alen, FMT_HDLC)

    def _append(self, buf, i, e):
        n = e - i
        if self.alen + n > len(self.asm):
            self._count(TOO_LONG)
            self.asm_kind = _ASM_NONE
            return False
        copy(self.asm, self.alen, buf, i, n)
        self.alen += n
        return True

    # ---- M-Bus ----

    def _mbus(self, s):
        # 68 L L 68 | C A CI | [STSAP 01 DTSAP 67] data | CS (sum of C..data) | 16.
        # CI low nibble = sequence number, bit 4 = last telegram of the message.
        win = self.win
        wl = self.wlen
        if s + 4 > wl:
            return _NEED
        n = win[s + 1]
        if win[s + 2] != n or win[s + 3] != 0x68 or n < 3:
            return _NO
        e = s + n + 6
        if e > wl:
            return _NEED
        cs = 0
        for i in range(s + 4, s + 4 + n):
            cs += win[i]
        if cs & 0xFF != win[s + 4 + n] or win[e - 1] != 0x16:
            self._frame_fail(s, status.BAD_CRC if win[e - 1] == 0x16 else TRUNCATED)
            return s + 1
        self._frame(FMT_MBUS, s, e)
        ci = win[s + 6]
        d = s + 7
        if win[d] == 0x01 and win[d + 1] == 0x67:
            d += 2
        seq = ci & 0x0F
        if seq == 0:
            self.asm_kind = _ASM_MBUS
            self.alen = 0
            self.asm_next = 0
        if self.asm_kind != _ASM_MBUS or seq != self.asm_next:
            self._count(TRUNCATED)
            self.asm_kind = _ASM_NONE
            return e
        self.asm_next += 1
        if self._append(win, d, s + 4 + n):
            if ci & 0x10:
                self.asm_kind = _ASM_NONE
                self._decode(self.asm, 0, self.alen, FMT_MBUS)
            else:
                self._count(MORE)
        return e

    # ---- bare general-glo-ciphering ----

    def _glo(self, s):
        # DB 08 <system title 8> <BER length> SC ... : self-delimiting by its length.
        win = self.win
        wl = self.wlen
        if s + 11 > wl:
            return _NEED
        if win[s + 1] != 8 or not _is_flag_id(win, s + 2):
            return _NO
        cur = self.dlms.cur
        p = cur.ber(win, s + 10, wl)
        if p < 0:
            return _NEED if s + 13 > wl else _NO
        if p >= wl:
            return _NEED
        sc = win[p]
        if sc & 0xC0 or not sc & 0x20 or cur.n < 5:
            return _NO
        e = p + cur.n
        if e - s > self.cap:
            return _NO
        if e > wl:
            return _NEED
        self._frame(FMT_APDU, s, e)
        self._decode(win, s, e, FMT_APDU)
        return e

    # ---- P1 ----

    def _p1(self, s, at_end):
        # "/" and a three-letter FLAG id, lines, "!" and 0-4 hex CRC digits. The "!" is found
        # with bytearray.find (C speed, no allocation); a telegram that fails its checks is
        # rescanned from s + 1, so a frame that cut it off (a second header, or binary bytes
        # with a "!" somewhere) is found again.
        win = self.win
        wl = self.wlen
        if self.p1_s != s:
            if s + 4 > wl:
                return _NEED if not at_end else _NO
            if not (_is_letter(win[s + 1]) and _is_letter(win[s + 2]) and _is_letter(win[s + 3])):
                return _NO
            self.p1_s = s
            self.p1_at = s + 4
        p = win.find(b"!", self.p1_at, wl)
        if p < 0:
            self.p1_at = wl
            if at_end and win.find(b"\n", s, wl) > 0:
                self._p1_decode(s, wl, wl)
                return wl
            return _NEED
        q = p + 1
        while q < wl and q - p <= 4 and _is_hex(win[q]):
            q += 1
        if q >= wl and q - p <= 4 and not at_end:
            self.p1_at = p
            return _NEED
        self.p1_s = -1
        if win.find(b"\n", s, p) < 0:
            return _NO  # a "/XXX" in binary data: not a telegram
        j = self._p1_header(s + 1, p)
        if j > 0:  # a second header inside: the first telegram was cut off
            self._frame_fail(s, TRUNCATED)
            return j
        if q == p + 1 and self._binary(s, p):
            # No CRC to vouch for it, and binary bytes inside: a telegram cut off by a
            # binary frame that happens to hold a "!". Never decoded as a reading.
            self._frame_fail(s, TRUNCATED)
            return s + 1
        if self._p1_decode(s, p, q):
            return q
        return s + 1

    def _p1_header(self, a, b):
        # Position of a "/XXX" header (a FLAG id of three letters) in win[a:b], or -1.
        win = self.win
        j = win.find(b"/", a, b)
        while j >= 0:
            if j + 3 < b and _is_letter(win[j + 1]) and _is_letter(win[j + 2]) and _is_letter(win[j + 3]):
                return j
            j = win.find(b"/", j + 1, b)
        return -1

    def _p1_decode(self, s, bang, e):
        # Returns True when the telegram decoded; a failure is counted as truncated when
        # binary bytes show another frame cut in, else as what the parser said.
        rd = self.rd
        rd.clear()
        st = self.p1.decode(self.win, s, bang, e, rd)
        rd.fmt = FMT_P1
        if st != OK:
            self._frame_fail(s, TRUNCATED if self._binary(s, bang) else st)
            return False
        self._frame(FMT_P1, s, e)
        self._count(OK)
        return True

    def _binary(self, s, e):
        win = self.win
        for i in range(s, e):
            c = win[i]
            if c >= 0x80 or (c < 0x20 and c != _CR and c != _LF and c != 0x09):
                return True
        return False

    # ---- payloads: LLC, APDU, block transfer, ciphering ----

    def _bare(self, s, e):
        # Bytes outside any frame, at end of input: decode them when they are a payload.
        win = self.win
        t = win[s]
        if not (t == 0x0F or t == 0xE0 or (t == 0xE6 and e - s > 3 and win[s + 1] == 0xE7)):
            return False
        self._frame(FMT_APDU, s, e)
        self.scan = e
        self._decode(win, s, e, FMT_APDU)
        return True

    def _decode(self, buf, s, e, fmt):
        st = self._payload(buf, s, e, fmt)
        self._count(st)

    def _payload(self, buf, s, e, fmt):
        if e - s >= 3 and buf[s] == 0xE6 and (buf[s + 1] == 0xE7 or buf[s + 1] == 0xE6) and buf[s + 2] == 0:
            s += 3  # LLC: destination LSAP, source LSAP, quality
        if s >= e:
            return MALFORMED
        t = buf[s]
        if t == 0x0F:  # data-notification
            rd = self.rd
            rd.clear()
            rd.fmt = fmt
            return self.dlms.notification(buf, s, e)
        if t == 0xE0:
            return self._gbt(buf, s, e, fmt)
        if t == 0xDB:
            return self._decrypt(buf, s, e, fmt)
        return UNKNOWN_LAYOUT

    def _gbt(self, buf, s, e, fmt):
        # General block transfer: E0 | control (bit 7 = last block) | block number (2) |
        # acknowledged block (2) | BER length | data. Blocks are numbered from 1.
        if s + 6 > e:
            return MALFORMED
        block = (buf[s + 2] << 8) | buf[s + 3]
        cur = self.dlms.cur
        p = cur.ber(buf, s + 6, e)
        if p < 0 or p + cur.n > e:
            return MALFORMED
        if block == 1:
            self.asm_kind = _ASM_GBT
            self.alen = 0
            self.asm_next = 1
        if self.asm_kind != _ASM_GBT or block != self.asm_next:
            self.asm_kind = _ASM_NONE
            return TRUNCATED
        self.asm_next += 1
        if not self._append(buf, p, p + cur.n):
            return TOO_LONG
        if not buf[s + 1] & 0x80:
            return MORE
        self.asm_kind = _ASM_NONE
        return self._payload(self.asm, 0, self.alen, fmt)

    def _decrypt(self, buf, s, e, fmt):
        # general-glo-ciphering: DB | 08 | system title (8) | BER length | SC | invocation
        # counter (4) | ciphertext | tag (12, when SC bit 4). SC bit 5 = encrypted.
        if s + 11 > e or buf[s + 1] != 8:
            return MALFORMED
        cur = self.dlms.cur
        p = cur.ber(buf, s + 10, e)
        if p < 0 or cur.n < 5:
            return MALFORMED
        end = p + cur.n
        if end > e:
            return TRUNCATED
        title = self.title
        for k in range(8):
            title[k] = buf[s + 2 + k]
        self.title_ok = True
        self.dlms.scale.title_make = make_of(title, 0, 8)
        sc = buf[p]
        self.security = sc
        if self.gcm is None:
            return DECRYPT_FAILED
        if buf is not self.asm:  # decrypt a copy: the window keeps the raw frame
            if end - s > len(self.asm):
                return TOO_LONG
            asm = self.asm
            copy(asm, 0, buf, s, end - s)
            p -= s
            end -= s
            s = 0
            buf = asm
        tag = end - 12 if sc & 0x10 else -1
        ct_end = tag if tag >= 0 else end
        if ct_end < p + 5:
            return MALFORMED
        if sc & 0x20 and self.gcm.decrypt(buf, s + 2, p + 1, sc, p + 5, ct_end, tag) != OK:
            return DECRYPT_FAILED  # (SC bit 5 clear: authenticated only, the text is plain)
        st = self._plain(buf, p + 5, ct_end, fmt)
        self.rd.encrypted = True
        return st

    def _plain(self, buf, s, e, fmt):
        # Decrypted content: an APDU, or a whole P1 telegram (Luxembourg Smarty). Anything
        # else means the key was wrong.
        t = buf[s]
        if t == 0x0F or t == 0xE6:
            return self._payload(buf, s, e, fmt)
        if t == 0x2F:
            rd = self.rd
            rd.clear()
            rd.fmt = FMT_P1
            bang = s
            while bang < e and buf[bang] != 0x21:
                bang += 1
            q = bang + 1 if bang < e else e
            while q < e and q - bang <= 4 and _is_hex(buf[q]):
                q += 1
            return self.p1.decode(buf, s, bang, q, rd)
        return DECRYPT_FAILED


def _is_flag_id(buf, p):
    # A system title starts with the maker's three-letter FLAG id (KAM, SAG, LGZ, ...).
    for k in range(3):
        c = buf[p + k]
        if c < 0x41 or c > 0x5A:
            return False
    return True


def _is_letter(c):
    return 0x41 <= c <= 0x5A or 0x61 <= c <= 0x7A


def _is_hex(c):
    return 0x30 <= c <= 0x39 or 0x41 <= c <= 0x46 or 0x61 <= c <= 0x66
