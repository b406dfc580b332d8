# Property tests of the streaming decoder (CPython, hypothesis). `make fuzz` runs the same
# properties with a million cases (HYPOTHESIS_PROFILE=fuzz).
import os
import sys

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import corpus
from decode_support import counter, key_of, run
from han.decoder import Decoder
from han.reading import Reading

settings.register_profile("ci", max_examples=150, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("fuzz", max_examples=int(os.environ.get("FUZZ_EXAMPLES", "250000")),
                          deadline=None, suppress_health_check=list(HealthCheck))
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

RECORDS = [r for r in corpus.load()]
# Wire frames (bare APDU print-outs are delimited only by the end of input).
PLAIN = [r for r in RECORDS if r["kind"] in ("hdlc", "ascii") and not r.get("key_hex")]
_alone = {}


def _readings_alone(r):
    if r["id"] not in _alone:
        _alone[r["id"]] = len(run(corpus.frame_bytes(r), key_of(r), key_of(r, "auth_key_hex"))[1])
    return _alone[r["id"]]


def _consistent(dec, data, readings):
    assert counter(dec, "bytes") == len(data)
    assert counter(dec, "frames_ok") == readings
    for name in ("bad_crc", "too_long", "truncated", "decrypt_failed", "unknown_layout",
                 "malformed", "skipped_bytes"):
        assert counter(dec, name) >= 0


class CallCounter:
    # Counts the decoder's method calls: a bound on the work done per input byte.
    def __init__(self):
        self.calls = 0

    def __call__(self, frame, event, arg):
        if event == "call" and frame.f_code.co_filename.endswith(("decoder.py", "dlms.py")):
            self.calls += 1


@given(st.binary(max_size=3000), st.integers(1, 600))
def test_random_bytes_never_raise_and_work_is_bounded(data, chunk):
    prof = CallCounter()
    sys.setprofile(prof)
    try:
        dec, out = run(data, key=bytes(16), auth_key=bytes(16), chunk=chunk)
    finally:
        sys.setprofile(None)
    _consistent(dec, data, len(out))
    # every byte is a frame start at most a few times; nothing is re-parsed per byte
    assert prof.calls <= 12 * len(data) + 200, (prof.calls, len(data))


@given(st.sampled_from(RECORDS), st.data())
def test_mutated_frames_never_raise(r, data):
    raw = bytearray(corpus.frame_bytes(r))
    for _ in range(data.draw(st.integers(1, 4))):
        op = data.draw(st.sampled_from(("flip", "insert", "delete", "cut")))
        i = data.draw(st.integers(0, max(0, len(raw) - 1)))
        if op == "flip" and raw:
            raw[i] ^= 1 << data.draw(st.integers(0, 7))
        elif op == "insert":
            raw[i:i] = data.draw(st.binary(min_size=1, max_size=8))
        elif op == "delete" and raw:
            del raw[i]
        elif op == "cut":
            raw = raw[:i]
    dec, out = run(bytes(raw), key_of(r), key_of(r, "auth_key_hex"), chunk=data.draw(st.integers(1, 300)))
    _consistent(dec, raw, len(out))
    assert len(out) <= max(1, _readings_alone(r)) + 1


@given(st.lists(st.tuples(st.sampled_from(PLAIN),
                          st.binary(max_size=40).map(lambda b: bytes(x for x in b if x not in (0x7E, 0x2F, 0x68, 0xDB)))),
                min_size=1, max_size=6),
       st.integers(1, 700))
def test_frames_concatenated_with_noise_all_decode(items, chunk):
    stream = b""
    want = 0
    for r, noise in items:
        data = corpus.frame_bytes(r)
        if r["kind"] == "ascii" and b"!" not in data:
            continue  # ends only with the input
        stream += noise + data
        want += _readings_alone(r)
    dec, out = run(stream, chunk=chunk)
    _consistent(dec, stream, len(out))
    assert len(out) == want


@given(st.lists(st.tuples(st.sampled_from(PLAIN), st.binary(max_size=40)), min_size=1, max_size=5))
def test_frames_with_any_noise_lose_nothing_else(items):
    # Noise may contain frame-start bytes: it can cost readings only by being a false start,
    # never raise, and every reading that comes out is one of the frames'.
    stream = b""
    want = 0
    for r, noise in items:
        stream += noise + corpus.frame_bytes(r)
        want += _readings_alone(r)
    dec, out = run(stream, chunk=97)
    _consistent(dec, stream, len(out))
    assert len(out) <= want


def test_every_frame_split_at_every_offset():
    # Two chunks, split at every possible offset: always the same readings as whole.
    for r in RECORDS:
        data = corpus.frame_bytes(r)
        k, ak = key_of(r), key_of(r, "auth_key_hex")
        _, whole = run(data, k, ak)
        step = 1 if len(data) < 400 else 3
        for cut in range(1, len(data), step):
            dec = Decoder(Reading(), key=k, auth_key=ak)
            out = []
            from decode_support import snapshot

            for part in (data[:cut], data[cut:]):
                buf = bytearray(part)
                pos = 0
                while True:
                    pos = dec.feed(buf, pos, len(buf))
                    if dec.ready:
                        out.append(snapshot(dec.rd, dec))
                    elif pos >= len(buf):
                        break
            while dec.flush():
                out.append(snapshot(dec.rd, dec))
            assert out == whole, (r["id"], cut)
