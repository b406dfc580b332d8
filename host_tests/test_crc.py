# CRC-16 variants against their published check values and real frames (both interpreters).
import corpus
from han.crc import crc16_arc, crc16_x25


def test_check_values():
    data = b"123456789"
    assert crc16_x25(data, 0, 9) == 0x906E
    assert crc16_arc(data, 0, 9) == 0xBB3D


def test_ranges_and_running_value():
    data = b"xx123456789yy"
    assert crc16_x25(data, 2, 11) == 0x906E
    assert crc16_arc(data, 7, 11, crc16_arc(data, 2, 7)) == 0xBB3D


def test_hdlc_fcs_of_every_valid_frame():
    # Single-frame HDLC records: FCS over everything between the flags but itself, LSB first.
    n = 0
    for r in corpus.load():
        if r["kind"] != "hdlc" or r.get("crc_ok") is not True or r.get("frame_count") != 1:
            continue
        f = corpus.frame_bytes(r)
        length = ((f[1] & 7) << 8) | f[2]
        assert crc16_x25(f, 1, length - 1) == f[length - 1] | (f[length] << 8), r["id"]
        n += 1
    assert n > 20
