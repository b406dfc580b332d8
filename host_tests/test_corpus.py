# Every real frame of the corpus through the full streaming decoder: the values the sources
# assert, the rejections of the broken copies, and the same result however the bytes are
# chunked. Runs under CPython (pytest) and MicroPython (run_mpy.py).
import corpus
import expect
from decode_support import counter, key_of, run

_ENCRYPTED = ("encrypted-hdlc", "encrypted-mbus", "encrypted-ascii")


def _positive(r):
    return r.get("expected") and r.get("crc_ok") is not False


def test_every_expected_value_decodes():
    bad = []
    checked = 0
    for r in corpus.load():
        if not _positive(r):
            continue
        data = corpus.frame_bytes(r)
        if r["kind"] in _ENCRYPTED and not r.get("key_hex"):
            dec, out = run(data)
            assert out == [], r["id"]
            assert counter(dec, "decrypt_failed") >= 1, r["id"]
            mism = expect.compare(r["expected"], {}, {"title": "".join("%02X" % b for b in dec.title)})
        else:
            dec, out = run(data, key_of(r), key_of(r, "auth_key_hex"))
            if not out:
                bad.append("%s: no reading (%s)" % (r["id"], list(dec.counters)))
                continue
            decoded, info = out[-1]
            mism = expect.compare(r["expected"], decoded, info)
        checked += 1
        for m in mism:
            bad.append("%s: %s" % (r["id"], m))
    assert checked >= 55, checked
    assert not bad, "\n".join(bad)


def test_broken_frames_are_rejected_and_counted():
    n = 0
    for r in corpus.load():
        if r.get("crc_ok") is not False:
            continue
        n += 1
        dec, out = run(corpus.frame_bytes(r), key_of(r), key_of(r, "auth_key_hex"))
        assert out == [], r["id"]
        failures = counter(dec, "bad_crc") + counter(dec, "truncated") + counter(dec, "too_long")
        assert failures >= 1, r["id"]
    assert n >= 8


def test_incomplete_messages_give_no_reading():
    # A lone first HDLC segment, and GBT blocks 1-2 of 3: buffered, then counted truncated.
    for vid in ("ams-iskra-ie5-hr-segment1", "ams-lg-e450-ch-gbt-incomplete"):
        dec, out = run(corpus.frame_bytes(corpus.by_id(vid)))
        assert out == [], vid
        assert counter(dec, "truncated") == 1, vid


def test_chunking_does_not_change_the_result():
    # One byte at a time, 7 bytes, and whole: identical readings for every record.
    for r in corpus.load():
        data = corpus.frame_bytes(r)
        k, ak = key_of(r), key_of(r, "auth_key_hex")
        _, whole = run(data, k, ak)
        for chunk in (1, 7):
            _, parts = run(data, k, ak, chunk=chunk)
            assert parts == whole, (r["id"], chunk)


def test_all_frames_in_one_stream_with_noise_between():
    # Every unencrypted frame back to back, with garbage between them, in one decoder.
    stream = bytearray()
    want = 0
    for r in corpus.load():
        if r["kind"] not in ("hdlc", "ascii") or r.get("key_hex"):
            continue
        data = corpus.frame_bytes(r)
        if r["kind"] == "ascii" and b"!" not in data:
            continue  # a decrypted text with no end marker ends only with the input
        _, alone = run(data)
        want += len(alone)
        stream += data + b"\x00\x13\x37garbage\x55\xaa\r\n"
    dec, out = run(bytes(stream), chunk=64)
    assert len(out) == want, (len(out), want)
    assert counter(dec, "skipped_bytes") > 0


def test_wrong_or_missing_key_is_decrypt_failed_not_silence():
    r = corpus.by_id("ams-lg-e450-at-enc-1")
    data = corpus.frame_bytes(r)
    wrong = bytes(16)
    for key, ak in ((wrong, None), (wrong, key_of(r, "auth_key_hex")), (None, None)):
        dec, out = run(data, key, ak)
        assert out == []
        assert counter(dec, "decrypt_failed") == 1
        assert counter(dec, "frames_ok") == 0
    # right key, wrong authentication key: the tag check fails
    dec, out = run(data, key_of(r), bytes(16))
    assert out == [] and counter(dec, "decrypt_failed") == 1
    # right key, no authentication key: decrypts without the tag check
    dec, out = run(data, key_of(r))
    assert len(out) == 1


def test_absent_values_are_absent_not_zero():
    # Kaifa list 1 carries only active power import.
    _, out = run(corpus.frame_bytes(corpus.by_id("hass-kaifa-ma304h4-no-list1")))
    names = out[0][1]["names"]
    assert names == {"active_power_import": "1415"}, names
    # A one-phase list 2: no L2/L3 quantities at all.
    _, out = run(corpus.frame_bytes(corpus.by_id("hass-kaifa-1ph-list2")))
    names = out[0][1]["names"]
    assert "current_l1" in names and "voltage_l1" in names
    for n in ("current_l2", "current_l3", "voltage_l2", "voltage_l3", "active_energy_import"):
        assert n not in names, n


def test_frame_interrupted_by_the_next_one():
    good = corpus.frame_bytes(corpus.by_id("hass-kamstrup-list2"))
    stream = good[:100] + good + good[:50] + good
    dec, out = run(stream)
    assert len(out) == 2
    assert counter(dec, "truncated") + counter(dec, "bad_crc") == 2


def test_flipped_bit_is_bad_crc_and_next_frame_decodes():
    good = corpus.frame_bytes(corpus.by_id("ams-aidon-se-a"))
    bad = bytearray(good)
    bad[300] ^= 0x10
    dec, out = run(bytes(bad) + good)
    assert len(out) == 1
    assert counter(dec, "bad_crc") == 1


def test_p1_crc_flip_rejected_and_next_telegram_decodes():
    good = corpus.frame_bytes(corpus.by_id("avi-se-ell5-p1"))
    bad = bytearray(good)
    bad[200] = 0x39 if bad[200] != 0x39 else 0x38
    dec, out = run(bytes(bad) + good)
    assert len(out) == 1
    assert counter(dec, "bad_crc") == 1


def test_missing_opening_flag_loses_only_that_frame():
    good = corpus.frame_bytes(corpus.by_id("hass-kaifa-list3"))
    dec, out = run(good[1:] + good + good)
    assert len(out) == 2
