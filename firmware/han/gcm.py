# AES-128-GCM decryption for DLMS general-glo-ciphering, allocation-free per frame.
#
#   g = Gcm(key, auth_key=None)       # 16-byte bytes each (key None: every decrypt fails)
#   st = g.decrypt(buf, st, ic, sc, ct_start, ct_end, tag_pos)
#   g.set_keys(key, auth_key)
#
# decrypt() deciphers buf[ct_start:ct_end] in place. IV = system title (buf[st:st+8]) ||
# invocation counter (buf[ic:ic+4]). The 12-byte tag at buf[tag_pos] is verified only when an
# authentication key is known, sc has bit 4 (0x10) set and tag_pos >= 0; AAD = SC || AK (17 bytes).
# Without an AK (or SC 0x20, or no tag) GHASH is skipped entirely: decryption needs only the key.
# Result: status.OK; status.DECRYPT_FAILED (no key, or the tag was checked and does not match:
# buf is then left untouched, no unauthenticated plaintext is released); status.TRUNCATED when an
# index lies outside buf (nothing is raised).
#
# The lower-level open() takes any 96-bit IV, AAD and tag (used by the NIST test vectors).
#
# Everything the per-frame path touches is preallocated in __init__/set_keys. The 128-bit field
# elements are held as eight 16-bit limbs (limb 0 = bytes 0-1, big-endian), so every int stays far
# below 2**30 (small ints on a 32-bit ESP32); there is no slicing, bytes(), float, tuple or raise
# in decrypt()/open(). GHASH uses Shoup's 4-bit table method: a 16-entry table of n*H (n = a 4-bit
# polynomial), held as eight array('H') of 16 (one per limb, so the inner loop indexes without
# arithmetic), and a 16-entry table for the reduction of the four bits shifted out at each step.
# A Gcm object takes about 2 KB of heap; an 8-bit table would cost 4.5 KB for ~25 % speed.
#
# Notation follows NIST SP 800-38D: bit 0 of a block is the most significant bit of byte 0 and is
# the coefficient of x^0; multiplication by x is a right shift, reduced by R = 11100001 || 0^120
# (x^128 = 1 + x + x^2 + x^7).
from array import array

try:
    from micropython import const
except ImportError:
    from han.compat import const

from han import status
from han.cipher import new_ecb

_TAG_LEN = const(12)  # DLMS truncates the GCM tag to 12 bytes
_AAD_LEN = const(17)  # SC || AK
_SC_AUTH = const(0x10)  # security control bit 4: authenticated


class Gcm:
    def __init__(self, key, auth_key=None):
        self._zero = bytearray(16)  # the all-zero block (for H = E_K(0^128))
        self._h = bytearray(16)  # H
        self._m0 = array("H", [0] * 16)  # the 4-bit table split by limb: mk[n] = limb k of n*H
        self._m1 = array("H", [0] * 16)
        self._m2 = array("H", [0] * 16)
        self._m3 = array("H", [0] * 16)
        self._m4 = array("H", [0] * 16)
        self._m5 = array("H", [0] * 16)
        self._m6 = array("H", [0] * 16)
        self._m7 = array("H", [0] * 16)
        self._r4 = array("H", [0] * 16)  # reduction of the 4 bits shifted out of x^4 * Z
        self._y = bytearray(16)  # GHASH state Y
        self._cb = bytearray(16)  # counter block: IV || 32-bit counter
        self._ks = bytearray(16)  # keystream block / E_K(J0)
        self._lb = bytearray(16)  # GHASH length block: len(A) || len(C) in bits, 64 bits each
        self._iv = bytearray(12)  # system title || invocation counter
        self._aad = bytearray(_AAD_LEN)  # SC || AK
        self._ecb = None
        self._has_ak = False
        # Reduction table: bit i of the nibble counted from its most significant bit (i = 0..3)
        # sits at position 124 + i; x^4 moves it to x^(128+i) = x^i * (1 + x + x^2 + x^7), i.e.
        # 0xE100 >> i in the top limb.
        r4 = self._r4
        for r in range(16):
            v = 0
            for i in range(4):
                if r & (8 >> i):
                    v ^= 0xE100 >> i
            r4[r] = v
        self.set_keys(key, auth_key)

    def set_keys(self, key, auth_key=None):
        # Allocates (a new cipher object): call it when the keys change, not per frame.
        if key is None:
            self._ecb = None
        else:
            if len(key) != 16:
                raise ValueError("key must be 16 bytes")
            self._ecb = new_ecb(bytes(key))
            # H = E_K(0^128), the hash subkey (SP 800-38D, 7.1 step 1)
            self._ecb.encrypt(self._zero, self._h)
            self._build_table()
        if auth_key is None:
            self._has_ak = False
        else:
            if len(auth_key) != 16:
                raise ValueError("auth_key must be 16 bytes")
            aad = self._aad
            for i in range(16):
                aad[1 + i] = auth_key[i]
            self._has_ak = True

    def _build_table(self):
        # mk[n] = limb k of n(x) * H for the 4-bit polynomial n whose most significant bit (8) is
        # x^0: entry 8 = H, 4 = H*x, 2 = H*x^2, 1 = H*x^3, the others by linearity (XOR).
        # Runs in set_keys only (the list and tuple here are allocated once per key change).
        ms = (self._m0, self._m1, self._m2, self._m3, self._m4, self._m5, self._m6, self._m7)
        h = self._h
        t = [0] * 8  # H * x^i as limbs
        for k in range(8):
            t[k] = (h[2 * k] << 8) | h[2 * k + 1]
            ms[k][0] = 0
        bit = 8
        while bit:
            for k in range(8):
                ms[k][bit] = t[k]
            # t = t * x: shift right one bit; if bit 127 fell out, XOR R (0xE1 || 0^120).
            carry = t[7] & 1
            for k in range(7, 0, -1):
                t[k] = (t[k] >> 1) | ((t[k - 1] & 1) << 15)
            t[0] = (t[0] >> 1) ^ (0xE100 if carry else 0)
            bit >>= 1
        for p in (2, 4, 8):
            for j in range(1, p):
                for k in range(8):
                    ms[k][p + j] = ms[k][p] ^ ms[k][j]

    def _ghash(self, src, pos, end):
        # GHASH_H over src[pos:end] (SP 800-38D, 6.4): for each block X_i, Y = (Y ^ X_i) * H; a
        # partial last block is padded with zeros (the 0^v / 0^u padding of 7.2 step 5).
        # The product Z = X * H is evaluated by Horner's rule over the 32 nibbles of X, last first:
        # Z = Z * x^4 ^ m[nibble]. A byte's low nibble holds the higher powers, so it comes first.
        # Z * x^4 is a right shift by 4 bits (the limbs' low nibbles move into the next limb's top)
        # plus the reduction r4[] of the 4 bits shifted out, XORed into the top limb.
        y = self._y
        m0 = self._m0
        m1 = self._m1
        m2 = self._m2
        m3 = self._m3
        m4 = self._m4
        m5 = self._m5
        m6 = self._m6
        m7 = self._m7
        r4 = self._r4
        while pos < end:
            n = end - pos
            z0 = z1 = z2 = z3 = z4 = z5 = z6 = z7 = 0
            for b in range(15, -1, -1):
                x = y[b]
                if b < n:
                    x ^= src[pos + b]
                # low nibble: Z = Z * x^4 ^ m[x & 15]
                j = x & 15
                r = z7 & 15
                z7 = (z7 >> 4) ^ ((z6 & 15) << 12) ^ m7[j]
                z6 = (z6 >> 4) ^ ((z5 & 15) << 12) ^ m6[j]
                z5 = (z5 >> 4) ^ ((z4 & 15) << 12) ^ m5[j]
                z4 = (z4 >> 4) ^ ((z3 & 15) << 12) ^ m4[j]
                z3 = (z3 >> 4) ^ ((z2 & 15) << 12) ^ m3[j]
                z2 = (z2 >> 4) ^ ((z1 & 15) << 12) ^ m2[j]
                z1 = (z1 >> 4) ^ ((z0 & 15) << 12) ^ m1[j]
                z0 = (z0 >> 4) ^ r4[r] ^ m0[j]
                # high nibble: Z = Z * x^4 ^ m[x >> 4]
                j = x >> 4
                r = z7 & 15
                z7 = (z7 >> 4) ^ ((z6 & 15) << 12) ^ m7[j]
                z6 = (z6 >> 4) ^ ((z5 & 15) << 12) ^ m6[j]
                z5 = (z5 >> 4) ^ ((z4 & 15) << 12) ^ m5[j]
                z4 = (z4 >> 4) ^ ((z3 & 15) << 12) ^ m4[j]
                z3 = (z3 >> 4) ^ ((z2 & 15) << 12) ^ m3[j]
                z2 = (z2 >> 4) ^ ((z1 & 15) << 12) ^ m2[j]
                z1 = (z1 >> 4) ^ ((z0 & 15) << 12) ^ m1[j]
                z0 = (z0 >> 4) ^ r4[r] ^ m0[j]
            y[0] = z0 >> 8
            y[1] = z0 & 255
            y[2] = z1 >> 8
            y[3] = z1 & 255
            y[4] = z2 >> 8
            y[5] = z2 & 255
            y[6] = z3 >> 8
            y[7] = z3 & 255
            y[8] = z4 >> 8
            y[9] = z4 & 255
            y[10] = z5 >> 8
            y[11] = z5 & 255
            y[12] = z6 >> 8
            y[13] = z6 & 255
            y[14] = z7 >> 8
            y[15] = z7 & 255
            pos += 16

    def open(self, buf, iv_buf, iv_pos, aad_buf, aad_pos, aad_len, ct_start, ct_end,
             tag_buf, tag_pos, tag_len):
        # Authenticated decryption (SP 800-38D, 7.2) with a 96-bit IV iv_buf[iv_pos:iv_pos+12],
        # AAD aad_buf[aad_pos:aad_pos+aad_len] and ciphertext buf[ct_start:ct_end], deciphered in
        # place. tag_len 0 (or tag_buf None): no tag, GHASH is skipped. Otherwise the first tag_len
        # bytes (1..16) of the computed tag are compared with tag_buf[tag_pos:tag_pos+tag_len]
        # before anything is deciphered; on a mismatch buf is left as it was.
        ecb = self._ecb
        if ecb is None:
            return status.DECRYPT_FAILED
        if ct_start < 0 or ct_end < ct_start or ct_end > len(buf):
            return status.TRUNCATED
        if iv_pos < 0 or iv_pos + 12 > len(iv_buf):
            return status.TRUNCATED
        cb = self._cb
        ks = self._ks
        # Step 2: J0 = IV || 0^31 || 1 (the IV is 96 bits).
        for i in range(12):
            cb[i] = iv_buf[iv_pos + i]
        if tag_buf is not None and tag_len > 0:
            if tag_len > 16 or tag_pos < 0 or tag_pos + tag_len > len(tag_buf):
                return status.TRUNCATED
            if aad_len > 0 and (aad_pos < 0 or aad_pos + aad_len > len(aad_buf)):
                return status.TRUNCATED
            # Step 5: S = GHASH_H(A || 0^v || C || 0^u || [len(A)]64 || [len(C)]64), over the
            # ciphertext, so it is done before the in-place decryption.
            y = self._y
            for i in range(16):
                y[i] = 0
            if aad_len > 0:
                self._ghash(aad_buf, aad_pos, aad_pos + aad_len)
            self._ghash(buf, ct_start, ct_end)
            lb = self._lb
            a = aad_len << 3  # bit lengths; < 2**30 for any buffer below 128 MiB
            c = (ct_end - ct_start) << 3
            for i in range(4):
                lb[i] = 0
                lb[8 + i] = 0
            lb[4] = (a >> 24) & 255
            lb[5] = (a >> 16) & 255
            lb[6] = (a >> 8) & 255
            lb[7] = a & 255
            lb[12] = (c >> 24) & 255
            lb[13] = (c >> 16) & 255
            lb[14] = (c >> 8) & 255
            lb[15] = c & 255
            self._ghash(lb, 0, 16)
            # Step 6: T = MSB_t(GCTR_K(J0, S)) = MSB_t(E_K(J0) ^ S).
            cb[12] = 0
            cb[13] = 0
            cb[14] = 0
            cb[15] = 1
            ecb.encrypt(cb, ks)
            # Step 7: compare with the received tag (every byte, no early exit).
            diff = 0
            for i in range(tag_len):
                diff |= ks[i] ^ y[i] ^ tag_buf[tag_pos + i]
            if diff:
                return status.DECRYPT_FAILED
        # Step 3: P = GCTR_K(inc32(J0), C): keystream blocks E_K(IV || ctr) for ctr = 2, 3, ...
        cb[12] = 0
        cb[13] = 0
        cb[14] = 0
        cb[15] = 2
        pos = ct_start
        while pos < ct_end:
            ecb.encrypt(cb, ks)
            n = ct_end - pos
            if n > 16:
                n = 16
            for i in range(n):
                buf[pos + i] ^= ks[i]
            pos += 16
            # inc32: the last 32 bits of the counter block, modulo 2**32
            k = 15
            while k >= 12:
                v = (cb[k] + 1) & 255
                cb[k] = v
                if v:
                    break
                k -= 1
        return status.OK

    def decrypt(self, buf, st, ic, sc, ct_start, ct_end, tag_pos):
        # general-glo-ciphering: IV = system title (8) || invocation counter (4); the tag is
        # checked only with a known AK, SC bit 4 set and a tag present; AAD = SC || AK.
        if st < 0 or st + 8 > len(buf) or ic < 0 or ic + 4 > len(buf):
            return status.TRUNCATED
        iv = self._iv
        for i in range(8):
            iv[i] = buf[st + i]
        for i in range(4):
            iv[8 + i] = buf[ic + i]
        if self._has_ak and (sc & _SC_AUTH) and tag_pos >= 0:
            aad = self._aad
            aad[0] = sc & 255
            return self.open(buf, iv, 0, aad, 0, _AAD_LEN, ct_start, ct_end, buf, tag_pos, _TAG_LEN)
        return self.open(buf, iv, 0, None, 0, 0, ct_start, ct_end, None, -1, 0)
