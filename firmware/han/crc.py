# CRC-16 checks over (buf, start, end), nothing sliced, nothing allocated per frame.
#   X.25 (HDLC HCS/FCS, IEC 62056-46): reflected poly 0x8408, init 0xFFFF, final XOR 0xFFFF,
#        sent LSB first. Check value: "123456789" -> 0x906E.
#   ARC  (P1 "!XXXX", IEC 62056-21/DSMR): reflected poly 0xA001, init 0, no final XOR.
#        Check value: "123456789" -> 0xBB3D.
# The byte loops live in han.fast, in the fastest form each interpreter allows; this module
# holds the 256-entry tables and the plain bytecode loops every form is tested against.
from array import array


def _table(poly):
    t = array("H", [0] * 256)
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ poly if c & 1 else c >> 1
        t[i] = c
    return t


X25_TABLE = _table(0x8408)
ARC_TABLE = _table(0xA001)


def x25_loop(buf, start, end):
    t = X25_TABLE
    c = 0xFFFF
    for i in range(start, end):
        c = (c >> 8) ^ t[(c ^ buf[i]) & 0xFF]
    return c ^ 0xFFFF


def arc_loop(buf, start, end, crc=0):
    # crc: the running value, so a telegram can be checked in pieces.
    t = ARC_TABLE
    c = crc
    for i in range(start, end):
        c = (c >> 8) ^ t[(c ^ buf[i]) & 0xFF]
    return c


from han.fast import crc16_arc, crc16_x25  # noqa: E402,F401  (the fast forms)
