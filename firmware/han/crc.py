# CRC-16 checks, table driven: 256-entry array('H') tables built once at import, then every
# call works on (buf, start, end) without slicing, so nothing is allocated per frame.
#   X.25 (HDLC HCS/FCS, IEC 62056-46): reflected poly 0x8408, init 0xFFFF, final XOR 0xFFFF,
#        sent LSB first. Check value: "123456789" -> 0x906E.
#   ARC  (P1 "!XXXX", IEC 62056-21/DSMR): reflected poly 0xA001, init 0, no final XOR.
#        Check value: "123456789" -> 0xBB3D.
from array import array


def _table(poly):
    t = array("H", [0] * 256)
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ poly if c & 1 else c >> 1
        t[i] = c
    return t


_X25 = _table(0x8408)
_ARC = _table(0xA001)


def crc16_x25(buf, start, end):
    t = _X25
    c = 0xFFFF
    for i in range(start, end):
        c = (c >> 8) ^ t[(c ^ buf[i]) & 0xFF]
    return c ^ 0xFFFF


def crc16_arc(buf, start, end, crc=0):
    # crc: the running value, so a telegram can be checked in pieces.
    t = _ARC
    c = crc
    for i in range(start, end):
        c = (c >> 8) ^ t[(c ^ buf[i]) & 0xFF]
    return c
