# Helpers for the decoder tests (CPython and MicroPython): run bytes through a Decoder the
# way the device does and keep a plain snapshot of every reading.
from han import export, obis
from han.decoder import Decoder
from han.reading import Reading


def key_of(r, name="key_hex"):
    k = r.get(name)
    return bytes.fromhex(k) if k else None


def snapshot(rd, dec):
    items = export.obis_items(rd)
    decoded = {}
    objects = 0
    for code, text, num in items:
        decoded[code] = (text, num)
        if not code.endswith(":1.0.0"):
            objects += 1
    info = export.texts(rd)
    info["title"] = "".join("%02X" % b for b in dec.title) if dec.title_ok else None
    info["security"] = dec.security
    info["objects"] = objects
    info["names"] = export.numbers(rd)
    return decoded, info


def run(data, key=None, auth_key=None, chunk=4096, decoder=None, **kw):
    # -> (decoder, [snapshot per reading])
    dec = decoder or Decoder(Reading(), key=key, auth_key=auth_key, **kw)
    rd = dec.rd
    out = []
    buf = bytearray(chunk)
    off = 0
    while off < len(data):
        n = min(chunk, len(data) - off)
        for i in range(n):
            buf[i] = data[off + i]
        off += n
        pos = 0
        while True:
            pos = dec.feed(buf, pos, n)
            if dec.ready:
                out.append(snapshot(rd, dec))
            elif pos >= n:
                break
    while dec.flush():
        out.append(snapshot(rd, dec))
    return dec, out


def counter(dec, name):
    from han import status

    return dec.counters[status.COUNTER_NAMES.index(name)]


NAMES = obis.NAMES
