# Result codes of the decoder's stages and the names of its failure counters.
# Hot-path functions return these ints; nothing in the decoder raises for bad input.
try:
    from micropython import const
except ImportError:
    from han.compat import const

OK = const(0)  # a reading was produced
MORE = const(1)  # a valid frame that is one part of a longer message (segment, GBT block)
BAD_CRC = const(2)  # HCS/FCS, M-Bus checksum or P1 CRC mismatch
TOO_LONG = const(3)  # longer than the buffers (or a length field beyond the maximum)
TRUNCATED = const(4)  # ended early: cut off, interrupted by the next frame, missing parts
DECRYPT_FAILED = const(5)  # no key, wrong key, or authentication tag mismatch
UNKNOWN_LAYOUT = const(6)  # frame valid, but its content is not a layout we can map
MALFORMED = const(7)  # frame valid, but its content does not parse (bad A-XDR, bad P1 line)

# Counter index -> name (Decoder.counters is an array in this order).
COUNTER_NAMES = (
    "bytes", "frames_ok", "bad_crc", "too_long", "truncated",
    "decrypt_failed", "unknown_layout", "malformed", "skipped_bytes",
)
C_BYTES = const(0)
C_OK = const(1)
C_BAD_CRC = const(2)
C_TOO_LONG = const(3)
C_TRUNCATED = const(4)
C_DECRYPT = const(5)
C_UNKNOWN = const(6)
C_MALFORMED = const(7)
C_SKIPPED = const(8)
