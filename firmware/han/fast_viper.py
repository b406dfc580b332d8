# MicroPython-only forms of han.fast: @viper loops over raw byte pointers, no allocation,
# about 15x the speed of bytecode (micropython.md §9). Viper integers are machine words:
# every value here stays within 16 bits.
import micropython

from han.crc import ARC_TABLE, X25_TABLE


@micropython.viper
def copy(dst, d: int, src, s: int, n: int):
    pd = ptr8(dst)  # noqa: F821 - viper builtin
    ps = ptr8(src)  # noqa: F821
    i = 0
    while i < n:
        pd[d + i] = ps[s + i]
        i += 1


@micropython.viper
def _crc(buf, start: int, end: int, crc: int, table) -> int:
    t = ptr16(table)  # noqa: F821
    b = ptr8(buf)  # noqa: F821
    c = crc
    i = start
    while i < end:
        c = (c >> 8) ^ t[(c ^ b[i]) & 0xFF]
        i += 1
    return c


def crc16_x25(buf, start, end):
    return _crc(buf, start, end, 0xFFFF, X25_TABLE) ^ 0xFFFF


def crc16_arc(buf, start, end, crc=0):
    return _crc(buf, start, end, crc, ARC_TABLE)
