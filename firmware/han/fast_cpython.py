# CPython forms of han.fast (allocation does not matter here, speed does): slice copies and
# CRCs two bytes per step over a 65536-entry table, iterating over the data as 16-bit words
# in C. A reflected 16-bit CRC steps over a little-endian word w as c = T16[c ^ w], where
# T16[x] is two byte steps of x with zero input.
import sys
from array import array

from han.crc import ARC_TABLE, X25_TABLE


def _table16(t8):
    t = array("H", bytes(2 * 65536))
    for x in range(65536):
        c = (x >> 8) ^ t8[x & 0xFF]
        t[x] = (c >> 8) ^ t8[c & 0xFF]
    return t


_ARC16 = _table16(ARC_TABLE)
_X2516 = _table16(X25_TABLE)
_SWAP = sys.byteorder != "little"


def copy(dst, d, src, s, n):
    dst[d:d + n] = src[s:s + n]


def _crc(buf, start, end, c, t8, t16):
    n = (end - start) & ~1
    if n:
        w = array("H")
        w.frombytes(bytes(buf[start:start + n]))
        if _SWAP:
            w.byteswap()
        for x in w:
            c = t16[c ^ x]
    if (end - start) & 1:
        c = (c >> 8) ^ t8[(c ^ buf[end - 1]) & 0xFF]
    return c


def crc16_x25(buf, start, end):
    return _crc(buf, start, end, 0xFFFF, X25_TABLE, _X2516) ^ 0xFFFF


def crc16_arc(buf, start, end, crc=0):
    return _crc(buf, start, end, crc, ARC_TABLE, _ARC16)
