# Stream-level edge cases built from real telegrams (both interpreters): long lines, 4 KB
# telegrams, telegrams longer than the buffer, and recovery after each.
import corpus
from decode_support import counter, run
from han.crc import crc16_arc


def _with_crc(body):
    # body: b"/...!" -> the telegram with its CRC-16/ARC digits and CR LF.
    c = crc16_arc(body, 0, len(body))
    return body + ("%04X" % c).encode() + b"\r\n"


def _swedish_body():
    t = corpus.frame_bytes(corpus.by_id("p1r-se-ell5"))
    return t[: t.index(b"!") + 1]


def _long_telegram(extra_lines, line_len):
    body = _swedish_body()
    head, tail = body[:-1], body[-1:]
    for k in range(extra_lines):
        head += b"0-0:98.1." + str(k).encode() + b"(" + b"7" * line_len + b")\r\n"
    return _with_crc(head + tail)


def test_line_over_1100_chars_and_4k_telegram_decode():
    t = _long_telegram(3, 1200)
    assert len(t) > 4096
    dec, out = run(t, chunk=100)
    assert len(out) == 1, list(dec.counters)
    names = out[0][1]["names"]
    assert names["active_energy_import"] == "6678394"
    assert names["current_l3"] == "1.7"


def test_telegram_longer_than_the_buffer_is_too_long_then_recovers():
    huge = _long_telegram(8, 1000)  # ~8.7 KB > 6 KB window
    good = corpus.frame_bytes(corpus.by_id("p1r-se-ell5"))
    dec, out = run(huge + good, chunk=256)
    assert counter(dec, "too_long") >= 1
    assert len(out) == 1
    assert out[0][1]["names"]["active_power_import"] == "1727"


def test_truncated_telegram_followed_by_next_telegram():
    good = corpus.frame_bytes(corpus.by_id("p1r-se-ell5"))
    dec, out = run(good[:300] + good)
    assert len(out) == 1
    assert counter(dec, "truncated") == 1


def test_p1_then_hdlc_on_the_same_line():
    # The bytes tell P1 ("/") and HDLC (7E) apart: both decode from one stream.
    p1 = corpus.frame_bytes(corpus.by_id("avi-se-ell5-p1"))
    hd = corpus.frame_bytes(corpus.by_id("ams-aidon-se-a"))
    dec, out = run(p1 + hd + p1[:200] + hd)
    assert len(out) == 3
    assert counter(dec, "truncated") == 1


def test_mbus_two_telegram_push_decrypts():
    r = corpus.by_id("ams-kaifa-ma309-pl-enc-mbus")
    data = corpus.frame_bytes(r)
    dec, out = run(data, bytes.fromhex(r["key_hex"]))
    assert len(out) == 1
    # the second telegram alone is an incomplete message, the first alone too
    cut = data.index(b"\x16\x68") + 1
    dec, out = run(data[cut:], bytes.fromhex(r["key_hex"]))
    assert out == [] and counter(dec, "truncated") == 1
    dec, out = run(data[:cut], bytes.fromhex(r["key_hex"]))
    assert out == [] and counter(dec, "truncated") == 1


def test_gbt_blocks_out_of_order_are_dropped():
    r = corpus.by_id("scs-lg-e450-ch-cfg2026")
    frames = [bytes.fromhex(h) for h in r["frames_hex"]]
    dec, out = run(frames[0] + frames[2] + frames[1] + frames[3])
    assert out == []
    dec, out = run(b"".join(frames))
    assert len(out) == 1
