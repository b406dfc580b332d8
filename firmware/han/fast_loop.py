# Plain bytecode forms of han.fast: allocation-free, run anywhere; the reference the others
# are tested against.
from han.crc import arc_loop as crc16_arc  # noqa: F401
from han.crc import x25_loop as crc16_x25  # noqa: F401


def copy(dst, d, src, s, n):
    for i in range(n):
        dst[d + i] = src[s + i]
