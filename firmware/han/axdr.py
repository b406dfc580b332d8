# A-XDR (IEC 61334-6 / DLMS Green Book) element sizes: tag byte, then a fixed-size payload,
# a BER length (strings), or a count (array, structure). Only positions are returned, never
# slices: the callers read the bytes in place.
try:
    from micropython import const
except ImportError:
    from han.compat import const

NULL = const(0x00)
ARRAY = const(0x01)
STRUCTURE = const(0x02)
BOOLEAN = const(0x03)
BIT_STRING = const(0x04)
INT32 = const(0x05)
UINT32 = const(0x06)
OCTET_STRING = const(0x09)
VISIBLE_STRING = const(0x0A)
UTF8_STRING = const(0x0C)
BCD = const(0x0D)
INT8 = const(0x0F)
INT16 = const(0x10)
UINT8 = const(0x11)
UINT16 = const(0x12)
COMPACT_ARRAY = const(0x13)
INT64 = const(0x14)
UINT64 = const(0x15)
ENUM = const(0x16)
FLOAT32 = const(0x17)
FLOAT64 = const(0x18)
DATE_TIME = const(0x19)
DATE = const(0x1A)
TIME = const(0x1B)

# Payload size of fixed-size types by tag (0 = not fixed size), and which integers are signed.
_FIXED = b"\x00\x00\x00\x01\x00\x04\x04\x00\x00\x00\x00\x00\x00\x01\x00\x01\x02\x01\x02\x00\x08\x08\x01\x04\x08\x0c\x05\x04"
_SIGNED = b"\x00\x00\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01\x01\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00\x00"
_MAX_DEPTH = const(8)


def fixed_size(tag):
    return _FIXED[tag] if tag < len(_FIXED) else 0


def is_integer(tag):
    # Integer types whose value is a plain big-endian number (bool, bcd and enum excluded).
    return tag == INT32 or tag == UINT32 or (INT8 <= tag <= UINT16) or tag == INT64 or tag == UINT64


def is_signed(tag):
    return _SIGNED[tag] == 1


def is_string(tag):
    return tag == OCTET_STRING or tag == VISIBLE_STRING or tag == UTF8_STRING


class Cursor:
    # Holds the one value a position function also yields (a length or count), so no
    # tuple is ever built: ber() returns the position after the length, self.n the length.
    def __init__(self):
        self.n = 0

    def ber(self, buf, p, end):
        # BER length: 0..127 in one byte, else 0x81 nn or 0x82 nn nn. -1 when malformed.
        if p >= end:
            return -1
        b = buf[p]
        if b < 0x80:
            self.n = b
            return p + 1
        if b == 0x81 and p + 1 < end:
            self.n = buf[p + 1]
            return p + 2
        if b == 0x82 and p + 2 < end:
            self.n = (buf[p + 1] << 8) | buf[p + 2]
            return p + 3
        return -1

    def skip(self, buf, p, end, depth=0):
        # Position after the element at p, or -1 when it is malformed or runs past end.
        if p >= end or depth > _MAX_DEPTH:
            return -1
        tag = buf[p]
        p += 1
        if tag == ARRAY or tag == STRUCTURE:
            p = self.ber(buf, p, end)
            if p < 0:
                return -1
            for _ in range(self.n):
                p = self.skip(buf, p, end, depth + 1)
                if p < 0:
                    return -1
            return p
        if is_string(tag):
            p = self.ber(buf, p, end)
            p = p + self.n if p >= 0 else -1
        elif tag == BIT_STRING:
            p = self.ber(buf, p, end)
            p = p + (self.n + 7) // 8 if p >= 0 else -1
        elif tag == COMPACT_ARRAY:
            p = self._skip_typedesc(buf, p, end, depth)
            if p >= 0:
                p = self.ber(buf, p, end)
                p = p + self.n if p >= 0 else -1
        elif tag == NULL:
            pass
        else:
            n = fixed_size(tag)
            if n == 0:
                return -1
            p += n
        return p if p <= end else -1

    def _skip_typedesc(self, buf, p, end, depth):
        # Compact-array type description: a tag, or array (count16, desc) or structure (count, descs).
        if p >= end or depth > _MAX_DEPTH:
            return -1
        tag = buf[p]
        p += 1
        if tag == ARRAY:
            return self._skip_typedesc(buf, p + 2, end, depth + 1)
        if tag == STRUCTURE:
            p = self.ber(buf, p, end)
            if p < 0:
                return -1
            for _ in range(self.n):
                p = self._skip_typedesc(buf, p, end, depth + 1)
                if p < 0:
                    return -1
        return p
