#!/usr/bin/env python3
"""Decode a meter capture with the firmware's own decoder.

    python3 tools/decode.py [--hex] [--key HEX] [--auth-key HEX] [FILE|-]

Reads raw bytes (or hex text with --hex; whitespace ignored), runs them through the same
decoder the device uses, and prints one JSON object per decoded frame on stdout; a one-line
summary of frames and failure counts goes to stderr. Exit status 1 when nothing decoded.
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "firmware"))

from han import export, status  # noqa: E402
from han.decoder import Decoder  # noqa: E402
from han.reading import Reading  # noqa: E402


def _key(text, name):
    if text is None:
        return None
    try:
        k = bytes.fromhex(text)
    except ValueError:
        k = b""
    if len(k) != 16:
        sys.exit("decode.py: %s must be 32 hex digits (16 bytes)" % name)
    return k


def read_input(path, as_hex):
    data = sys.stdin.buffer.read() if path in (None, "-") else open(path, "rb").read()
    if as_hex:
        text = "".join(data.decode("ascii", "replace").split())
        try:
            data = bytes.fromhex(text)
        except ValueError as e:
            sys.exit("decode.py: input is not hex: %s" % e)
    return data


def decode(data, key=None, auth_key=None, kamstrup_wh=False, chunk=4096, out=None, **scaling):
    """Decode bytes; write one JSON line per reading to out; return the decoder."""
    rd = Reading()
    dec = Decoder(rd, key=key, auth_key=auth_key, kamstrup_wh=kamstrup_wh, **scaling)
    buf = bytearray(chunk)
    for off in range(0, len(data), chunk):
        n = min(chunk, len(data) - off)
        buf[0:n] = data[off:off + n]
        pos = 0
        while True:
            pos = dec.feed(buf, pos, n)
            if dec.ready:
                _emit(dec, out)
            elif pos >= n:
                break
    while dec.flush():
        _emit(dec, out)
    return dec


def _emit(dec, out):
    if out is None:
        return
    extra = []
    if dec.rd.encrypted:
        extra = [("system_title", bytes(dec.title).hex().upper(), False),
                 ("security_control", str(dec.security), True)]
    out.write(export.decode_json(dec.rd, extra) + "\n")


def summary(dec):
    c = dec.counters
    parts = ["%s=%d" % (name, c[i]) for i, name in enumerate(status.COUNTER_NAMES)]
    line = "decoded %d frame(s): " % c[status.C_OK] + " ".join(parts)
    if dec.title_ok:
        line += " system_title=%s" % bytes(dec.title).hex().upper()
        if c[status.C_DECRYPT] and dec.gcm is None:
            line += " (encrypted frames: give --key)"
    return line


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("file", nargs="?", default="-", help="capture file, or - for stdin")
    ap.add_argument("--hex", action="store_true", help="input is hex text")
    ap.add_argument("--key", help="AES-128 decryption key (32 hex digits)")
    ap.add_argument("--auth-key", help="authentication key (32 hex digits), verifies the tag")
    ap.add_argument("--kamstrup-wh", action="store_true",
                    help="Kamstrup energy registers in Wh (Swedish HAN) instead of 10 Wh")
    for q in ("current", "voltage", "energy"):
        ap.add_argument("--%s-exp" % q, type=int, metavar="N",
                        help="%s = raw * 10**N for frames without scalers (per-meter fix)" % q)
    ap.add_argument("--chunk", type=int, default=4096, help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    data = read_input(a.file, a.hex)
    dec = decode(data, _key(a.key, "--key"), _key(a.auth_key, "--auth-key"), a.kamstrup_wh,
                 max(1, a.chunk), sys.stdout, current_exp=a.current_exp,
                 voltage_exp=a.voltage_exp, energy_exp=a.energy_exp)
    sys.stdout.flush()
    print(summary(dec), file=sys.stderr)
    return 0 if dec.counters[status.C_OK] else 1


if __name__ == "__main__":
    sys.exit(main())
