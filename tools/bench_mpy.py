# Decoder speed and allocation on the MicroPython unix port; prints one JSON line.
# Run by tools/bench.py: MICROPYPATH=.frozen:firmware:host_tests micropython tools/bench_mpy.py
import gc
import json
import sys
import time

import corpus
from han.decoder import Decoder
from han.reading import Reading


def frames(kind):
    out = []
    for r in corpus.load():
        if r["kind"] == kind and r.get("crc_ok") is True and r.get("frame_count", 1) == 1:
            out.append(bytearray(corpus.frame_bytes(r)))
    return out


def feed_all(dec, fs, rounds):
    # Every frame, `rounds` times; returns the readings.
    n = 0
    for _ in range(rounds):
        for f in fs:
            pos = 0
            while True:
                pos = dec.feed(f, pos, len(f))
                if dec.ready:
                    n += 1
                elif pos >= len(f):
                    break
    return n


def per_frame_us(fs, rounds):
    dec = Decoder(Reading())
    t0 = time.ticks_us()
    n = feed_all(dec, fs, rounds)
    dt = time.ticks_diff(time.ticks_us(), t0)
    return dt / max(1, n), n


def alloc_per_frame(fs):
    dec = Decoder(Reading())
    feed_all(dec, fs, 1)
    gc.collect()
    gc.disable()
    a = gc.mem_alloc()
    n = feed_all(dec, fs, 5)
    d = gc.mem_alloc() - a
    gc.enable()
    return d / max(1, n)


def main():
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    hdlc = frames("hdlc")
    p1 = frames("ascii")
    aidon = [bytearray(corpus.frame_bytes(corpus.by_id("ams-aidon-se-a")))]  # 581 bytes
    res = {}
    res["hdlc_us"], _ = per_frame_us(hdlc, rounds)
    res["p1_us"], _ = per_frame_us(p1, rounds)
    res["aidon581_us"], _ = per_frame_us(aidon, rounds * 10)
    res["hdlc_bytes_alloc"] = alloc_per_frame(hdlc)
    res["p1_bytes_alloc"] = alloc_per_frame(p1)
    res["n_hdlc"] = len(hdlc)
    res["n_p1"] = len(p1)
    print(json.dumps(res))


main()
