#!/usr/bin/env python3
"""make bench: decoder speed and memory, measured in one run on the same corpus frames.

Prints a table: microseconds per frame on CPython for this decoder vs amshan (HDLC) and
dsmr_parser (P1), the same decoder on the MicroPython unix port, and bytes allocated per
frame there. The peers run in their own process (amshan's package is also named `han`).
"""
import json
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VENV_BIN = os.path.join(ROOT, ".venv", "bin")


def corpus_frames():
    sys.path.insert(0, os.path.join(ROOT, "host_tests"))
    import corpus

    hdlc, p1 = [], []
    for r in corpus.load():
        if r.get("crc_ok") is not True:
            continue
        if r["kind"] == "hdlc" and r.get("frame_count") == 1:
            hdlc.append((r["id"], corpus.frame_bytes(r)))
        elif r["kind"] == "ascii":
            p1.append((r["id"], corpus.frame_bytes(r)))
    return hdlc, p1


def timed(fn, frames, rounds):
    best = None
    for _ in range(3):
        t0 = time.perf_counter()
        n = 0
        for _ in range(rounds):
            for _, f in frames:
                n += fn(f)
        dt = time.perf_counter() - t0
        us = dt * 1e6 / max(1, n)
        best = us if best is None else min(best, us)
    return best


def ours(frames_by_set, rounds):
    sys.path.insert(0, os.path.join(ROOT, "firmware"))
    from han.decoder import Decoder
    from han.reading import Reading

    dec = Decoder(Reading())

    def one(f):
        n = 0
        pos = 0
        while True:
            pos = dec.feed(f, pos, len(f))
            if dec.ready:
                n += 1
            elif pos >= len(f):
                return n

    return {name: timed(one, fr, rounds) for name, fr in frames_by_set.items()}


def peers(frames_by_set, rounds):
    from dsmr_parser import telegram_specifications
    from dsmr_parser.parsers import TelegramParser
    from han.autodecoder import AutoDecoder
    from han.hdlc import HdlcFrameReader

    auto = AutoDecoder()

    def amshan(f):
        n = 0
        for frame in HdlcFrameReader(False).read(f):
            try:
                if frame.is_good_ffc and auto.decode_message_payload(frame.payload):
                    n += 1
            except Exception:  # noqa: BLE001 - a frame it cannot decode is not counted
                pass
        return n

    parser = TelegramParser(telegram_specifications.V5)

    def dsmr(f):
        try:
            parser.parse(f.decode("latin-1"))
            return 1
        except Exception:  # noqa: BLE001 - a telegram it cannot parse is not counted
            return 0

    out = {"hdlc": timed(amshan, frames_by_set["hdlc"], rounds),
           "p1": timed(dsmr, frames_by_set["p1"], rounds)}
    # which frames each peer actually decodes, so both sides time the same set
    out["hdlc_ok"] = [i for i, f in frames_by_set["hdlc"] if amshan(f)]
    out["p1_ok"] = [i for i, f in frames_by_set["p1"] if dsmr(f)]
    return out


def child(mode, ids, rounds):
    hdlc, p1 = corpus_frames()
    sets = {"hdlc": [x for x in hdlc if not ids or x[0] in ids["hdlc"]],
            "p1": [x for x in p1 if not ids or x[0] in ids["p1"]]}
    res = ours(sets, rounds) if mode == "ours" else peers(sets, rounds)
    print(json.dumps(res))


def run_child(mode, ids, rounds):
    env = dict(os.environ)
    p = subprocess.run([sys.executable, __file__, "--child", mode, json.dumps(ids), str(rounds)],
                       capture_output=True, text=True, cwd="/tmp", env=env, check=True)
    return json.loads(p.stdout.strip().splitlines()[-1])


def main():
    rounds = int(os.environ.get("BENCH_ROUNDS", "30"))
    first = run_child("peers", None, 1)
    ids = {"hdlc": first["hdlc_ok"], "p1": first["p1_ok"]}
    peer = run_child("peers", ids, rounds)
    mine = run_child("ours", ids, rounds)
    env = dict(os.environ, MICROPYPATH=".frozen:firmware:host_tests")
    p = subprocess.run([os.path.join(VENV_BIN, "micropython"), "-X", "heapsize=4m", "tools/bench_mpy.py", "20"],
                       capture_output=True, text=True, cwd=ROOT, env=env, check=True)
    mp = json.loads(p.stdout.strip().splitlines()[-1])
    rows = [
        ("HDLC frames, CPython (%d frames amshan decodes)" % len(ids["hdlc"]), mine["hdlc"], "amshan",
         peer["hdlc"], ">= 5x faster"),
        ("P1 telegrams, CPython (%d telegrams dsmr_parser reads)" % len(ids["p1"]), mine["p1"],
         "dsmr_parser", peer["p1"], ">= 5x faster"),
    ]
    print("Decoder benchmark (best of 3, %d rounds)" % rounds)
    print("%-58s %10s %12s %10s %8s  %s" % ("", "ours us", "peer", "peer us", "ratio", "target"))
    ok = True
    for name, us, pname, pus, target in rows:
        ratio = pus / us
        ok &= ratio >= 5
        print("%-58s %10.1f %12s %10.1f %7.1fx  %s %s" % (name, us, pname, pus, ratio, target,
                                                          "met" if ratio >= 5 else "NOT MET"))
    print()
    print("MicroPython unix port (x86-64):")
    print("  HDLC corpus frames (%d): %8.1f us per frame" % (mp["n_hdlc"], mp["hdlc_us"]))
    print("  P1 corpus telegrams (%d): %7.1f us per telegram" % (mp["n_p1"], mp["p1_us"]))
    met = mp["aidon581_us"] < 1000
    print("  581-byte Aidon SE frame:  %8.1f us   target < 1000 us: %s" % (mp["aidon581_us"], "met" if met else "NOT MET"))
    alloc_ok = mp["hdlc_bytes_alloc"] == 0 and mp["p1_bytes_alloc"] == 0
    print("  bytes allocated per frame: HDLC %.1f, P1 %.1f   target 0: %s" % (
        mp["hdlc_bytes_alloc"], mp["p1_bytes_alloc"], "met" if alloc_ok else "NOT MET"))
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        ids = json.loads(sys.argv[3])
        child(sys.argv[2], ids, int(sys.argv[4]))
    else:
        sys.exit(main())
