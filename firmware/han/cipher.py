# The one AES block primitive the decoder needs: AES-128 ECB encryption of one 16-byte block.
#
#   ecb = new_ecb(key)          # key: 16 bytes; allocates, so call it only when the key changes
#   ecb.encrypt(inbuf, outbuf)  # 16-byte block in, 16-byte block written into outbuf
#
# On MicroPython this is cryptolib.aes(key, 1) (mode 1 = ECB) as it is: its encrypt(in, out)
# writes into `out` and allocates nothing (checked with gc.mem_alloc deltas and under
# micropython.heap_lock on the unix port). Such an object can only encrypt: one that has encrypted
# refuses to decrypt, which GCM never needs (CTR and GHASH both use the forward cipher).
# On CPython (no cryptolib) a small adapter over the `cryptography` package gives the same shape;
# allocation does not matter there.
try:
    import cryptolib
except ImportError:
    cryptolib = None

_MODE_ECB = 1


def new_ecb(key):
    if cryptolib is not None:
        return cryptolib.aes(key, _MODE_ECB)
    return _EcbAdapter(key)


class _EcbAdapter:
    # CPython only: the `cryptography` package's AES in ECB mode, behind encrypt(inbuf, outbuf).
    def __init__(self, key):
        from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

        self._enc = Cipher(algorithms.AES(bytes(key)), modes.ECB()).encryptor()

    def encrypt(self, inbuf, outbuf):
        outbuf[0:16] = self._enc.update(bytes(inbuf[0:16]))
