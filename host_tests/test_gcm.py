# AES-128-GCM (han/gcm.py) against the GCM spec / NIST SP 800-38D AES-128 test vectors, a bit-serial
# reference, and every ciphered record of the real-frame corpus that has a published key.
# Plain test_* functions with bare asserts: the same file runs under pytest and under MicroPython.
from han import status
from han.cipher import new_ecb
from han.gcm import Gcm

import corpus


def _h(s):
    return bytes.fromhex(s)


# The AES-128 test cases of McGrew & Viega, "The Galois/Counter Mode of Operation (GCM)", all with a
# 96-bit IV: (key, iv, plaintext, aad, ciphertext, tag).
_K0 = "00000000000000000000000000000000"
_KF = "feffe9928665731c6d6a8f9467308308"
_IVF = "cafebabefacedbaddecaf888"
_P64 = ("d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72"
        "1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b391aafd255")
_C64 = ("42831ec2217774244b7221b784d0d49ce3aa212f2c02a4e035c17e2329aca12e"
        "21d514b25466931c7d8f6a5aac84aa051ba30b396a0aac973d58e091473f5985")
_VECTORS = (
    # 1: empty plaintext, no AAD
    (_K0, "000000000000000000000000", "", "", "", "58e2fccefa7e3061367f1d57a4e7455a"),
    # 2: one zero block
    (_K0, "000000000000000000000000", "00000000000000000000000000000000", "",
     "0388dace60b6a392f328c2b971b2fe78", "ab6e47d42cec13bdf53a67b21257bddf"),
    # 3: four blocks, no AAD
    (_KF, _IVF, _P64, "", _C64, "4d5c2af327cd64a62cf35abd2ba6fab4"),
    # 4: 60 bytes (last block partial) with 20 bytes of AAD
    (_KF, _IVF, _P64[:120], "feedfacedeadbeeffeedfacedeadbeefabaddad2", _C64[:120],
     "5bc94fbc3221a5db94fae95ae7121a47"),
)


def _open(g, ct, iv, aad, tag, tag_len):
    # ct: bytearray, deciphered in place; the tag and AAD are placed at offsets inside larger
    # buffers so that the index arguments are exercised too.
    ivb = bytearray(3) + iv
    aadb = bytearray(5) + aad + bytearray(2)
    tagb = bytearray(7) + tag
    return g.open(ct, ivb, 3, aadb, 5, len(aad), 0, len(ct), tagb, 7, tag_len)


def test_nist_vectors():
    for key, iv, p, a, c, t in _VECTORS:
        g = Gcm(_h(key))
        for tag_len in (16, 12):
            ct = bytearray(_h(c))
            assert _open(g, ct, _h(iv), _h(a), _h(t), tag_len) == status.OK
            assert ct == _h(p)
        # no tag given: decryption only
        ct = bytearray(_h(c))
        assert g.open(ct, _h(iv), 0, None, 0, 0, 0, len(ct), None, -1, 0) == status.OK
        assert ct == _h(p)


def test_nist_vectors_rejected():
    for key, iv, p, a, c, t in _VECTORS:
        g = Gcm(_h(key))
        # a flipped bit in the tag, the ciphertext, the AAD or the IV fails, and leaves buf alone
        for what in range(4):
            ct = bytearray(_h(c))
            tag = bytearray(_h(t))
            aad = bytearray(_h(a))
            ivb = bytearray(_h(iv))
            if what == 0:
                tag[11] ^= 0x01
            elif what == 1:
                if not ct:
                    continue
                ct[len(ct) - 1] ^= 0x80
            elif what == 2:
                if not aad:
                    continue
                aad[0] ^= 0x10
            else:
                ivb[11] ^= 0x01
            before = bytes(ct)
            assert _open(g, ct, ivb, aad, tag, 12) == status.DECRYPT_FAILED
            assert bytes(ct) == before
        # the wrong key
        wrong = bytearray(_h(key))
        wrong[0] ^= 1
        g = Gcm(bytes(wrong))
        ct = bytearray(_h(c))
        assert _open(g, ct, _h(iv), _h(a), _h(t), 16) == status.DECRYPT_FAILED


# --- a bit-serial reference (SP 800-38D algorithms 1-4 with big ints), to compare any lengths

def _gf_mul(x, y):
    # Algorithm 1: bit 0 of a block (its most significant bit) is the coefficient of x^0.
    z = 0
    v = y
    for i in range(127, -1, -1):
        if (x >> i) & 1:
            z ^= v
        if v & 1:
            v = (v >> 1) ^ (0xE1 << 120)
        else:
            v >>= 1
    return z


def _ref_seal(key, iv, pt, aad):
    ecb = new_ecb(key)
    blk = bytearray(16)
    ecb.encrypt(bytearray(16), blk)
    h = int.from_bytes(bytes(blk), "big")
    ct = bytearray(pt)
    ctr = 2
    for off in range(0, len(ct), 16):
        cb = bytearray(iv) + bytearray((0, 0, ctr >> 8 & 255, ctr & 255))
        ecb.encrypt(cb, blk)
        for i in range(min(16, len(ct) - off)):
            ct[off + i] ^= blk[i]
        ctr += 1
    y = 0
    for data in (aad, ct):
        for off in range(0, len(data), 16):
            chunk = bytes(data[off:off + 16])
            chunk = chunk + bytes(16 - len(chunk))
            y = _gf_mul(y ^ int.from_bytes(chunk, "big"), h)
    y = _gf_mul(y ^ ((len(aad) * 8) << 64 | (len(ct) * 8)), h)
    ecb.encrypt(bytearray(iv) + bytearray((0, 0, 0, 1)), blk)
    tag = (int.from_bytes(bytes(blk), "big") ^ y).to_bytes(16, "big")
    return bytes(ct), tag


class _Lcg:
    # deterministic bytes, the same under both interpreters
    def __init__(self, seed):
        self.s = seed

    def bytes(self, n):
        out = bytearray(n)
        for i in range(n):
            self.s = (self.s * 1103515245 + 12345) & 0x7FFFFFFF
            out[i] = (self.s >> 16) & 255
        return bytes(out)


def test_against_reference_lengths():
    rnd = _Lcg(7)
    key = rnd.bytes(16)
    g = Gcm(key)
    for n in (0, 1, 15, 16, 17, 31, 32, 33, 47, 64, 100):
        for alen in (0, 1, 16, 17, 33):
            iv = rnd.bytes(12)
            pt = rnd.bytes(n)
            aad = rnd.bytes(alen)
            ct, tag = _ref_seal(key, iv, pt, aad)
            buf = bytearray(ct)
            assert _open(g, buf, iv, aad, tag, 16) == status.OK
            assert bytes(buf) == pt


def test_reference_matches_nist():
    # the reference itself is right (so the comparison above means something)
    for key, iv, p, a, c, t in _VECTORS:
        ct, tag = _ref_seal(_h(key), _h(iv), _h(p), _h(a))
        assert ct == _h(c)
        assert tag == _h(t)


def test_against_cryptography_package():
    # CPython only: AESGCM of the `cryptography` package as an independent implementation
    try:
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    except ImportError:
        return
    rnd = _Lcg(11)
    for n in (0, 5, 16, 40, 257, 700):
        key = rnd.bytes(16)
        iv = rnd.bytes(12)
        pt = rnd.bytes(n)
        aad = rnd.bytes(17)
        sealed = AESGCM(key).encrypt(iv, pt, aad)
        buf = bytearray(sealed[:n])
        assert _open(Gcm(key), buf, iv, aad, sealed[n:], 16) == status.OK
        assert bytes(buf) == pt


def test_bad_indices_do_not_raise():
    g = Gcm(_h(_KF), _h(_K0))
    buf = bytearray(40)
    assert g.decrypt(buf, 0, 10, 0x30, 15, 41, -1) == status.TRUNCATED
    assert g.decrypt(buf, 35, 10, 0x30, 15, 20, -1) == status.TRUNCATED
    assert g.decrypt(buf, 0, 10, 0x30, 15, 30, 30) == status.TRUNCATED  # tag runs past the end
    assert g.decrypt(buf, 0, 10, 0x30, 20, 15, -1) == status.TRUNCATED
    assert g.open(buf, buf, 30, None, 0, 0, 0, 4, None, -1, 0) == status.TRUNCATED


def test_no_key():
    g = Gcm(None)
    buf = bytearray(40)
    assert g.decrypt(buf, 0, 10, 0x20, 15, 40, -1) == status.DECRYPT_FAILED
    g.set_keys(_h(_KF), None)
    assert g.decrypt(buf, 0, 10, 0x20, 15, 40, -1) == status.OK


# --- the corpus

def _ber_len(b, q):
    # BER length at b[q]: (length, index after it)
    v = b[q]
    if v < 0x80:
        return v, q + 1
    if v == 0x81:
        return b[q + 1], q + 2
    if v == 0x82:
        return (b[q + 1] << 8) | b[q + 2], q + 3
    raise ValueError("BER length")


def _hdlc_payload(raw):
    # information fields of consecutive HDLC type-3 frames, LLC (E6 E7 00 / E6 E6 00) dropped, and
    # general-block-transfer blocks (E0 ctrl blockno(2) ack(2) len data) joined
    out = bytearray()
    i = 0
    while i < len(raw):
        assert raw[i] == 0x7E
        if i + 1 < len(raw) and raw[i + 1] == 0x7E:
            i += 1
            continue
        flen = ((raw[i + 1] & 7) << 8) | raw[i + 2]
        p = i + 3
        while not raw[p] & 1:  # destination address
            p += 1
        p += 1
        while not raw[p] & 1:  # source address
            p += 1
        p += 1 + 1 + 2  # control, HCS
        end = i + flen - 1  # FCS at i+flen-1, i+flen; closing flag at i+flen+1
        info = raw[p:end]
        if len(info) >= 3 and info[0] == 0xE6 and info[1] in (0xE6, 0xE7):
            info = info[3:]
        if len(info) and info[0] == 0xE0:
            n, q = _ber_len(info, 6)
            info = info[q:q + n]
        out += info
        assert raw[i + flen + 1] == 0x7E
        i += flen + 2
        if i < len(raw) and raw[i] != 0x7E:
            i -= 1  # the closing flag is also the next frame's opening flag
    return bytes(out)


def _mbus_payload(raw):
    # user data of consecutive M-Bus long frames (68 L L 68 C A CI 01 67 data CS 16), joined
    out = bytearray()
    i = 0
    while i < len(raw):
        assert raw[i] == 0x68 and raw[i + 3] == 0x68 and raw[i + 1] == raw[i + 2]
        ln = raw[i + 1]
        assert raw[i + 7] == 0x01 and raw[i + 8] == 0x67
        out += raw[i + 9:i + 4 + ln]
        assert raw[i + 4 + ln + 1] == 0x16
        i += ln + 6
    return bytes(out)


def _apdu(r):
    raw = corpus.frame_bytes(r)
    k = r["kind"]
    if k == "encrypted-hdlc":
        return _hdlc_payload(raw)
    if k == "encrypted-mbus":
        return _mbus_payload(raw)
    return raw


def _glo(b):
    # DB 08 <title 8> <BER len> <SC> <IC 4> <ciphertext> [<tag 12> when SC & 0x10]
    assert b[0] == 0xDB and b[1] == 8
    n, q = _ber_len(b, 10)
    assert q + n <= len(b)
    sc = b[q]
    end = q + n
    tag_pos = -1
    if sc & 0x10:
        tag_pos = end - 12
        end = tag_pos
    return 2, q + 1, sc, q + 5, end, tag_pos  # st, ic, sc, ct_start, ct_end, tag_pos


def _keyed():
    out = []
    for r in corpus.load():
        if r.get("key_hex"):
            out.append(r)
    return out


def _expected(r):
    if r.get("plaintext_apdu_hex"):
        return _h(r["plaintext_apdu_hex"])
    return r["plaintext_text"].encode()


def _ak(r):
    if r.get("auth_key_hex"):
        return _h(r["auth_key_hex"])
    return None


def test_corpus_decrypts():
    recs = _keyed()
    assert len(recs) >= 4
    ids = []
    for r in recs:
        ids.append(r["id"])
        apdu = _apdu(r)
        st, ic, sc, cs, ce, tp = _glo(apdu)
        gcm = r["gcm"]
        assert sc == int(gcm["security_control"], 16)
        assert apdu[st:st + 8] == _h(gcm["system_title"])
        assert apdu[ic:ic + 4] == _h(gcm["invocation_counter"])
        g = Gcm(_h(r["key_hex"]), _ak(r))
        buf = bytearray(apdu)
        assert g.decrypt(buf, st, ic, sc, cs, ce, tp) == status.OK
        assert bytes(buf[cs:ce]) == _expected(r)
        # the header and tag are not touched
        assert buf[:cs] == apdu[:cs] and buf[ce:] == apdu[ce:]
    assert "oh-smarty-lu-enc" in ids and "scs-lg-e450-ch-enc" in ids
    assert "ams-lg-e450-at-enc-1" in ids and "ams-kaifa-ma309-pl-enc-mbus" in ids


def test_corpus_tag_is_checked():
    checked = 0
    for r in _keyed():
        if r["gcm"].get("auth_tag_ok") is not True:
            continue
        checked += 1
        apdu = _apdu(r)
        st, ic, sc, cs, ce, tp = _glo(apdu)
        assert tp >= 0 and _ak(r) is not None
        good = _h(r["key_hex"])
        # a flipped tag byte, a flipped ciphertext byte, the wrong AK, the wrong key
        for what in range(4):
            buf = bytearray(apdu)
            key = good
            ak = _ak(r)
            if what == 0:
                buf[tp + 5] ^= 0x40
            elif what == 1:
                buf[cs + 3] ^= 0x01
            elif what == 2:
                ak = bytes(16)
            else:
                key = bytes(16)
            g = Gcm(key, ak)
            before = bytes(buf)
            assert g.decrypt(buf, st, ic, sc, cs, ce, tp) == status.DECRYPT_FAILED
            assert bytes(buf) == before  # nothing released on a failed tag
        # the right keys but the tag position given as absent: decrypts without a check
        buf = bytearray(apdu)
        buf[tp] ^= 0xFF
        assert Gcm(good, _ak(r)).decrypt(buf, st, ic, sc, cs, ce, -1) == status.OK
        assert bytes(buf[cs:ce]) == _expected(r)
    assert checked >= 2


def test_corpus_without_auth_key():
    # no AK: GHASH skipped, a bad tag goes unnoticed, a wrong key gives garbage (not a failure)
    for r in _keyed():
        apdu = _apdu(r)
        st, ic, sc, cs, ce, tp = _glo(apdu)
        buf = bytearray(apdu)
        if tp >= 0:
            buf[tp] ^= 0xFF
        g = Gcm(_h(r["key_hex"]))
        assert g.decrypt(buf, st, ic, sc, cs, ce, tp) == status.OK
        assert bytes(buf[cs:ce]) == _expected(r)
        wrong = bytearray(_h(r["key_hex"]))
        wrong[15] ^= 0x01
        g.set_keys(bytes(wrong), None)
        buf = bytearray(apdu)
        assert g.decrypt(buf, st, ic, sc, cs, ce, tp) == status.OK
        assert bytes(buf[cs:ce]) != _expected(r)


def test_set_keys_switches():
    # one object, keys changed back and forth, gives the same results as fresh objects
    recs = _keyed()
    g = Gcm(bytes(16))
    for r in recs + recs:
        g.set_keys(_h(r["key_hex"]), _ak(r))
        apdu = _apdu(r)
        st, ic, sc, cs, ce, tp = _glo(apdu)
        buf = bytearray(apdu)
        assert g.decrypt(buf, st, ic, sc, cs, ce, tp) == status.OK
        assert bytes(buf[cs:ce]) == _expected(r)
