# The real-frame corpus (host_tests/vectors/frames.jsonl; provenance in vectors/README.md),
# loaded the same way under CPython and MicroPython.
import json

try:
    import os

    _HERE = os.path.dirname(__file__)
except (ImportError, AttributeError):
    _HERE = ""
if not _HERE:
    _HERE = __file__.rsplit("/", 1)[0] if "/" in __file__ else "."

PATH = _HERE + "/vectors/frames.jsonl"
_cache = []


def load():
    if not _cache:
        with open(PATH) as f:
            for line in f:
                line = line.strip()
                if line:
                    _cache.append(json.loads(line))
    return _cache


def by_id(vid):
    for r in load():
        if r["id"] == vid:
            return r
    raise KeyError(vid)


def frame_bytes(r):
    return bytes.fromhex(r["hex"])
