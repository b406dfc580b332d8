# Zero allocation, proven on MicroPython: after construction, feeding any corpus frame (and
# any garbage) allocates nothing in the decoder. Two checks per vector, because heap_lock()
# alone misses exceptions (they fall back to an emergency object under the lock):
#   1. gc.mem_alloc() before and after with the collector disabled: the delta must be 0;
#   2. the same work under micropython.heap_lock(): it must not raise MemoryError.
# Under CPython these tests are skipped: only MicroPython can measure its heap.
import gc
import sys

import corpus
from han.decoder import Decoder
from han.reading import Reading

_MPY = sys.implementation.name == "micropython"


def _skip_on_cpython():
    if not _MPY:
        import pytest

        pytest.skip("allocation is measured on MicroPython only")


def _pump(dec, data, n, chunk, cs):
    # Feed data[0:n] in pieces of cs bytes, draining every reading, then flush.
    readings = 0
    off = 0
    while off < n:
        k = min(cs, n - off)
        for i in range(k):
            chunk[i] = data[off + i]
        off += k
        pos = 0
        while True:
            pos = dec.feed(chunk, pos, k)
            if dec.ready:
                readings += 1
            elif pos >= k:
                break
    while dec.flush():
        readings += 1
    return readings


def _measure(dec, data, chunk, cs):
    import micropython

    n = len(data)
    _pump(dec, data, n, chunk, cs)  # warm up: first use of every path
    gc.collect()
    gc.disable()
    a = gc.mem_alloc()
    r1 = _pump(dec, data, n, chunk, cs)
    delta = gc.mem_alloc() - a
    gc.enable()
    micropython.heap_lock()
    try:
        r2 = _pump(dec, data, n, chunk, cs)
    finally:
        micropython.heap_unlock()
    return delta, r1, r2


def _key(r, k):
    v = r.get(k)
    return bytes.fromhex(v) if v else None


def test_every_vector_allocates_nothing():
    _skip_on_cpython()
    chunk = bytearray(512)
    bad = []
    for r in corpus.load():
        data = bytearray(corpus.frame_bytes(r))
        dec = Decoder(Reading(), key=_key(r, "key_hex"), auth_key=_key(r, "auth_key_hex"))
        for cs in (1, 64, 512):
            delta, r1, r2 = _measure(dec, data, chunk, cs)
            if delta != 0 or r1 != r2:
                bad.append((r["id"], cs, delta, r1, r2))
    assert not bad, bad


def test_garbage_allocates_nothing():
    _skip_on_cpython()
    # Deterministic pseudo-random bytes (a 32-bit LCG), with frame-start bytes salted in.
    data = bytearray(20000)
    x = 12345
    for i in range(len(data)):
        x = (x * 1103515245 + 12345) & 0x7FFFFFFF
        data[i] = (x >> 16) & 0xFF
        if i % 97 == 0:
            data[i] = (0x7E, 0x2F, 0x68, 0xDB, 0xA0)[i % 5]
    dec = Decoder(Reading(), key=bytes(range(16)), auth_key=bytes(16))
    delta, r1, r2 = _measure(dec, data, bytearray(700), 700)
    assert delta == 0, delta
    assert r1 == r2


def test_corrupted_vectors_allocate_nothing():
    _skip_on_cpython()
    # Each vector with a flipped bit, cut in half, and doubled: every failure path.
    chunk = bytearray(256)
    bad = []
    for r in corpus.load():
        raw = corpus.frame_bytes(r)
        flipped = bytearray(raw)
        flipped[len(raw) // 2] ^= 0x04
        for data in (flipped, bytearray(raw[: len(raw) // 2]), bytearray(raw + raw)):
            dec = Decoder(Reading(), key=_key(r, "key_hex"), auth_key=_key(r, "auth_key_hex"))
            delta, r1, r2 = _measure(dec, data, chunk, 256)
            if delta != 0:
                bad.append((r["id"], len(data), delta))
    assert not bad, bad
