#!/usr/bin/env python3
"""Meter simulator: push real meter frames to a pty, a serial port or TCP clients.

Frames come from the corpus (host_tests/vectors/frames.jsonl) or from a capture file. They are
paced at real wire speed (baud and frame format), spaced by the meter's push interval, and can be
damaged on purpose (noise, truncation, bit flips, silences), reproducibly from a seed.

CLI:   python tools/meter_sim.py --ids ams-kamstrup-no-list2-b --loop        (see --help, docs/meter_sim.md)
API:   import meter_sim    (tools/ on sys.path)
       sim = meter_sim.MeterSim.from_corpus(kinds=["hdlc"], speed=0, count=5, seed=1)
       for data, fault in sim.frames(): ...                 # what goes on the wire, per frame
       master_fd, slave_path = meter_sim.open_pty()
       sim.run(meter_sim.PtyWriter(master_fd, slave_path))  # paced, blocking; sim.stop() ends it

CPython only (3.8+); pyserial is needed only for --serial.
"""

import argparse
import errno
import fcntl
import json
import os
import pty
import random
import select
import signal
import socket
import sys
import termios
import time
import tty
from collections import namedtuple

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
DEFAULT_VECTORS = os.path.join(ROOT, "host_tests", "vectors", "frames.jsonl")

MAX_NOISE = 32          # noise bursts are 1..MAX_NOISE random bytes
DRAIN_TIMEOUT = 5.0     # at the end, wait at most this long for the reader to take the last bytes
POLL_SLICE = 0.1        # longest single sleep, so stop() and signals are seen quickly
MIN_WRITE_GAP = 0.002   # paced writes are at least this far apart (bytes are grouped)
SERIAL_CHUNK = 256      # --serial: bytes per write ...
SERIAL_QUEUE = 1024     # ... and at most this many waiting in the driver before one


# ---------------------------------------------------------------------------------------------
# line settings

class Line(namedtuple("Line", "baud bytesize parity stopbits")):
    """Serial frame format. bits = start + data + parity + stop bits per byte on the wire."""

    __slots__ = ()

    @property
    def bits(self):
        return 1 + self.bytesize + (0 if self.parity == "N" else 1) + self.stopbits

    @property
    def byte_time(self):
        return self.bits / float(self.baud)

    def __str__(self):
        return "%d %d%s%d" % (self.baud, self.bytesize, self.parity, self.stopbits)


P1_LINE = Line(115200, 8, "N", 1)
KAMSTRUP_LINE = Line(2400, 8, "N", 1)
MBUS_LINE = Line(2400, 8, "E", 1)


def default_line(kind, meter="", data=b""):
    """The line a meter of this kind uses, by one simple rule:

    1. ASCII telegrams (kind ascii / encrypted-ascii, or data starting with '/'): 115200 8N1.
    2. Kamstrup (meter text says Kamstrup, or the bytes carry 'Kamstrup', a 'KAM' system title,
       or the Kamstrup HDLC addresses 2B 21): 2400 8N1.
    3. Everything else (HDLC, encrypted HDLC, M-Bus long frames, bare APDUs, unknown): 2400 8E1.
    """
    kind = (kind or "").lower()
    data = bytes(data or b"")
    if kind in ("ascii", "encrypted-ascii") or data[:1] == b"/":
        return P1_LINE
    if "kamstrup" in (meter or "").lower() or b"Kamstrup" in data or b"\xdb\x08KAM" in data:
        return KAMSTRUP_LINE
    if data[:1] == b"\x7e" and data[3:5] == b"\x2b\x21":
        return KAMSTRUP_LINE
    return MBUS_LINE


def parse_line_override(baud=None, bytesize=None, parity=None, stopbits=None):
    """Check CLI/API overrides; None means 'per frame default'."""
    if baud is not None and int(baud) <= 0:
        raise ValueError("baud must be positive")
    if bytesize is not None and int(bytesize) not in (5, 6, 7, 8):
        raise ValueError("bytesize must be 5..8")
    if parity is not None:
        parity = str(parity).upper()[:1]
        if parity not in ("N", "E", "O", "M", "S"):
            raise ValueError("parity must be N, E or O")
    if stopbits is not None and int(stopbits) not in (1, 2):
        raise ValueError("stopbits must be 1 or 2")
    return (None if baud is None else int(baud), None if bytesize is None else int(bytesize),
            parity, None if stopbits is None else int(stopbits))


def apply_override(line, override):
    baud, bytesize, parity, stopbits = override
    return Line(baud or line.baud, bytesize or line.bytesize, parity or line.parity,
                stopbits or line.stopbits)


# ---------------------------------------------------------------------------------------------
# sources: corpus records and capture files

Source = namedtuple("Source", "id kind data meter")


def load_vectors(path=None):
    """All corpus records (dicts), in file order."""
    path = path or DEFAULT_VECTORS
    out = []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line:
                out.append(json.loads(line))
    return out


def _split_list(v):
    if v is None:
        return None
    if isinstance(v, str):
        v = v.split(",")
    v = [x.strip() for x in v if x and x.strip()]
    return v or None


def select_records(records, ids=None, kinds=None, only_valid=False):
    """Filter corpus records. ids keeps the given order (unknown ids raise KeyError); kinds and
    only_valid filter further (all filters apply together). only_valid drops crc_ok false and
    expected null."""
    ids = _split_list(ids)
    kinds = _split_list(kinds)
    if ids:
        by_id = {}
        for r in records:
            by_id.setdefault(r["id"], r)
        missing = [i for i in ids if i not in by_id]
        if missing:
            raise KeyError("unknown id(s): " + ", ".join(missing))
        recs = [by_id[i] for i in ids]
    else:
        recs = list(records)
    if kinds:
        kinds = [k.lower() for k in kinds]
        recs = [r for r in recs if r.get("kind", "").lower() in kinds]
    if only_valid:
        recs = [r for r in recs if r.get("crc_ok") is not False and r.get("expected") is not None]
    return recs


def record_source(r):
    return Source(r["id"], r.get("kind", ""), bytes.fromhex(r["hex"]), r.get("meter", ""))


def read_capture(path, hex_text=False):
    """Bytes of a capture file: raw bytes, or hex text (whitespace ignored, '#' starts a comment,
    an optional 0x prefix per token is accepted)."""
    with open(path, "rb") as f:
        raw = f.read()
    if not hex_text:
        return raw
    return parse_hex(raw.decode("latin-1"))


def parse_hex(text):
    digits = []
    for line in text.splitlines():
        line = line.split("#", 1)[0]
        for tok in line.split():
            if tok[:2] in ("0x", "0X"):
                tok = tok[2:]
            digits.append(tok)
    s = "".join(digits)
    if len(s) % 2:
        raise ValueError("hex capture has an odd number of digits")
    return bytes.fromhex(s)


def _hdlc_frame_at(data, i):
    """End index (exclusive) of a length-delimited HDLC type-3 frame starting at data[i] == 0x7E,
    or 0. The closing flag must be where the 11-bit length field says."""
    n = len(data)
    if i + 2 >= n or data[i] != 0x7E or (data[i + 1] & 0xF0) != 0xA0:
        return 0
    length = ((data[i + 1] & 0x07) << 8) | data[i + 2]
    end = i + length + 1
    if length < 7 or end >= n or data[end] != 0x7E:
        return 0
    return end + 1


def _hdlc_more(frame):
    """True when another HDLC frame belongs to the same push: segmentation bit (format A8), or a
    DLMS general-block-transfer block (E0) without its 'last block' bit."""
    if frame[1] & 0x08:
        return True
    j = 3
    for _ in range(2):                  # destination and source address: ends at a byte with bit 0
        while j < len(frame) and not frame[j] & 1:
            j += 1
        j += 1
    j += 3                              # control byte + HCS
    info = frame[j:]
    if info[:2] in (b"\xe6\xe7", b"\xe6\xe6"):
        info = info[3:]
    return len(info) > 1 and info[0] == 0xE0 and not info[1] & 0x80


def _mbus_frame_at(data, i):
    """End index (exclusive) of an M-Bus long frame 68 L L 68 ... CS 16 at data[i], or 0."""
    n = len(data)
    if i + 5 >= n or data[i] != 0x68 or data[i + 3] != 0x68 or data[i + 1] != data[i + 2]:
        return 0
    for length in (data[i + 1], data[i + 1] + 256):     # Sagemcom: L may be the length - 256
        stop = i + 4 + length + 1
        if stop < n and data[stop] == 0x16:
            if (sum(data[i + 4:i + 4 + length]) & 0xFF) == data[i + 4 + length]:
                return stop + 1
    return 0


_P1_TEXT = set(range(0x20, 0x7F)) | {0x09, 0x0A, 0x0D}


def _p1_header(data, j):
    """'/XXXn': three letters (manufacturer) and a digit (baud character), as every P1 header."""
    h = data[j + 1:j + 5]
    return len(h) == 4 and h[:3].isalpha() and h[3:].isdigit()


def _p1_telegram_at(data, i, limit=16384):
    """End index (exclusive) of a P1 telegram '/' ... '!' [CRC hex] [CR LF] at data[i], or 0.
    A telegram without '!' (decrypted text, a cut capture) ends where the text ends or where a
    new line starts with '/'; it needs at least its header line."""
    if data[i] != 0x2F:
        return 0
    n = len(data)
    j = i + 1
    stop = min(n, i + limit)
    while j < stop and data[j] != 0x21:
        c = data[j]
        if c not in _P1_TEXT or (c == 0x2F and (data[j - 1] == 0x0A or _p1_header(data, j))):
            break
        j += 1
    if b"\n" not in data[i:j]:
        return 0
    if j >= stop or data[j] != 0x21:
        return j
    j += 1
    k = 0
    while j < n and k < 4 and chr(data[j]) in "0123456789abcdefABCDEF":
        j += 1
        k += 1
    if data[j:j + 2] == b"\r\n":
        j += 2
    elif data[j:j + 1] == b"\n":
        j += 1
    return j


def split_capture(data):
    """Split a capture into pushes without losing or reordering a byte.

    Returns a list of (bytes, kind); b"".join of the bytes is the input. Kinds: 'hdlc',
    'ascii', 'mbus', or 'raw' when nothing is recognised (then the whole capture is one piece).
    Recognised: length-delimited HDLC (7E..7E; segmented and general-block-transfer frames of
    one push are kept together), P1 telegrams ('/'..'!' CRC CR LF) and M-Bus long frames
    (68 L L 68 .. CS 16; multi-telegram pushes kept together by the CI 'final' bit). A push
    begins at a recognised frame start, so the idle gap always falls just before a frame;
    unrecognised bytes stay with the push before them (bytes before the first frame with the
    first push)."""
    data = bytes(data)
    n = len(data)
    starts = []         # (index, kind) where a new push begins
    i = 0
    more = False        # the previous frame said another one of the same push follows
    while i < n:
        b = data[i]
        end = 0
        kind = None
        frame_more = False
        if b == 0x7E:
            end = _hdlc_frame_at(data, i)
            if end:
                kind = "hdlc"
                frame_more = _hdlc_more(data[i:end])
                # a flag shared with the next frame (7E ... 7E ... 7E): leave it to the next one
                if end < n and data[end] != 0x7E and _hdlc_frame_at(data, end - 1):
                    end -= 1
        elif b == 0x2F:
            end = _p1_telegram_at(data, i)
            kind = "ascii" if end else None
        elif b == 0x68:
            end = _mbus_frame_at(data, i)
            if end:
                kind = "mbus"
                frame_more = end - i > 6 and not data[i + 6] & 0x10
        if not end:
            i += 1
            continue
        if not more:
            starts.append((i, kind))
        more = frame_more
        i = end
    if not starts:
        return [(data, "raw")] if data else []
    starts[0] = (0, starts[0][1])
    out = []
    for k, (s, kind) in enumerate(starts):
        e = starts[k + 1][0] if k + 1 < len(starts) else n
        out.append((data[s:e], kind))
    return out


def capture_sources(data, split=True, name="capture"):
    if not data:
        return []
    parts = split_capture(data) if split else [(bytes(data), "raw")]
    kinds = {"mbus": "encrypted-mbus"}
    return [Source("%s:%d" % (name, k + 1), kinds.get(kind, kind), chunk, "")
            for k, (chunk, kind) in enumerate(parts)]


# ---------------------------------------------------------------------------------------------
# the simulator

class Step(namedtuple("Step", "index id kind original data noise fault line silence_before")):
    """One push. index: 1-based frame number; original: the bytes as recorded; data: the bytes
    sent (after truncate/flip); noise: garbage sent on the line before it (may be b""); fault:
    text ('' = none); line: Line used for pacing; silence_before: extra idle seconds (unscaled)
    before it, from --silence."""

    __slots__ = ()

    @property
    def wire(self):
        return self.noise + self.data


class ReaderGone(Exception):
    """The reader went away in the middle of a write."""


def parse_silence(specs):
    """'S@N' strings (or lists of them, comma-separated allowed) -> [(seconds, after_n)]."""
    out = []
    if not specs:
        return out
    if isinstance(specs, str):
        specs = [specs]
    for spec in specs:
        if isinstance(spec, tuple):
            out.append((float(spec[0]), int(spec[1])))
            continue
        for part in str(spec).split(","):
            part = part.strip()
            if not part:
                continue
            s, sep, n = part.partition("@")
            if not sep:
                raise ValueError("silence must be SECONDS@AFTER_N, got %r" % part)
            s, n = float(s), int(n)
            if s < 0 or n < 0:
                raise ValueError("silence values must not be negative: %r" % part)
            out.append((s, n))
    return out


def _check_prob(name, p):
    p = float(p or 0)
    if not 0.0 <= p <= 1.0:
        raise ValueError("%s must be a probability 0..1" % name)
    return p


class MeterSim:
    """Plays sources (Source tuples) as a meter would push them.

    speed: time acceleration (1 = real time, 0 = no waiting at all, except --silence which then
    counts in real seconds). interval: push interval in meter seconds, start to start. count:
    frames to send (cycling the sources), loop: forever; neither: each source once. seed: the
    fault RNG (None = pick one; see .seed). noise/truncate/flip: probabilities per frame.
    silences: [(seconds, after_n)] or 'S@N' strings. baud/bytesize/parity/stopbits: override
    the per-frame default line (default_line). log: callable(str) or None."""

    def __init__(self, sources, speed=1.0, interval=10.0, count=None, loop=False, seed=None,
                 noise=0.0, truncate=0.0, flip=0.0, silences=None, baud=None, bytesize=None,
                 parity=None, stopbits=None, log=None):
        self.sources = list(sources)
        if not self.sources:
            raise ValueError("no frames selected")
        self.speed = float(speed)
        if self.speed < 0:
            raise ValueError("speed must be >= 0")
        self.interval = float(interval)
        if self.interval < 0:
            raise ValueError("interval must be >= 0")
        if count is not None and int(count) < 1:
            raise ValueError("count must be >= 1")
        self.count = None if count is None else int(count)
        self.loop = bool(loop)
        if seed is None:
            seed = random.SystemRandom().randrange(1 << 31)
        self.seed = int(seed)
        self.noise = _check_prob("noise", noise)
        self.truncate = _check_prob("truncate", truncate)
        self.flip = _check_prob("flip", flip)
        self.silences = parse_silence(silences)
        self.override = parse_line_override(baud, bytesize, parity, stopbits)
        self.log = log
        self._stopped = False
        self.sent_frames = 0

    # construction helpers -------------------------------------------------------------------
    @classmethod
    def from_corpus(cls, ids=None, kinds=None, only_valid=False, vectors=None, **kw):
        recs = select_records(load_vectors(vectors), ids, kinds, only_valid)
        return cls([record_source(r) for r in recs], **kw)

    @classmethod
    def from_capture(cls, capture, hex_text=False, split=True, **kw):
        """capture: a path, or the bytes themselves."""
        if isinstance(capture, (bytes, bytearray)):
            data, name = bytes(capture), "capture"
        else:
            data, name = read_capture(capture, hex_text), os.path.basename(capture)
        return cls(capture_sources(data, split, name), **kw)

    # control ---------------------------------------------------------------------------------
    def stop(self):
        """Ask run() to return soon (safe from a signal handler or another thread)."""
        self._stopped = True

    @property
    def stopped(self):
        return self._stopped

    def line_for(self, src):
        return apply_override(default_line(src.kind, src.meter, src.data), self.override)

    def _log(self, msg):
        if self.log:
            self.log(msg)

    # the frame plan ------------------------------------------------------------------------------
    def _source_cycle(self):
        k = 0
        total = len(self.sources)
        while True:
            if self.count is not None:
                if k >= self.count:
                    return
            elif not self.loop and k >= total:
                return
            yield self.sources[k % total]
            k += 1

    def steps(self):
        """Yield a Step per frame, faults drawn from the seed (the same seed and options give the
        same steps). Each fault kind has its own random stream, so enabling one does not move
        the others."""
        r_noise = random.Random("%d/noise" % self.seed)
        r_trunc = random.Random("%d/truncate" % self.seed)
        r_flip = random.Random("%d/flip" % self.seed)
        silence_after = {}
        for s, n in self.silences:
            silence_after[n] = silence_after.get(n, 0.0) + s
        for k, src in enumerate(self._source_cycle()):
            index = k + 1
            data = src.data
            faults = []
            noise = b""
            if self.noise and r_noise.random() < self.noise:
                m = r_noise.randint(1, MAX_NOISE)
                noise = bytes(r_noise.getrandbits(8) for _ in range(m))
                faults.append("noise:%d" % m)
            if self.truncate and r_trunc.random() < self.truncate and len(data) >= 2:
                keep = r_trunc.randint(1, len(data) - 1)
                faults.append("truncate:%d/%d" % (keep, len(data)))
                data = data[:keep]
            if self.flip and r_flip.random() < self.flip and data:
                pos = r_flip.randrange(len(data))
                bit = r_flip.randrange(8)
                data = data[:pos] + bytes((data[pos] ^ (1 << bit),)) + data[pos + 1:]
                faults.append("flip:%d.%d" % (pos, bit))
            yield Step(index, src.id, src.kind, src.data, data, noise, ",".join(faults),
                       self.line_for(src), silence_after.get(index - 1, 0.0))

    def frames(self):
        """Yield (bytes, fault) per frame: the exact bytes put on the line for it (noise first,
        then the possibly damaged frame) and the fault text ('' = clean)."""
        for st in self.steps():
            yield st.wire, st.fault

    # pacing ----------------------------------------------------------------------------------
    def _scaled(self, seconds):
        return seconds / self.speed if self.speed > 0 else 0.0

    def _sleep_until(self, deadline):
        while not self._stopped:
            dt = deadline - time.monotonic()
            if dt <= 0:
                return
            time.sleep(min(dt, POLL_SLICE))

    def _send(self, w, data, line):
        """Write data at wire speed: byte k is handed over when its stop bit would be done."""
        if not data:
            return
        if self.speed <= 0:
            w.write(data)
            return
        bt = line.byte_time / self.speed
        n = len(data)
        chunk = max(1, int(MIN_WRITE_GAP / bt))
        t0 = time.monotonic()
        sent = 0
        while sent < n and not self._stopped:
            now = time.monotonic()
            due = min(n, int((now - t0) / bt))
            if due > sent:
                w.write(data[sent:due])
                sent = due
                now = time.monotonic()
                if (now - t0) - sent * bt > 0.1:        # the writer stalled: no catch-up burst
                    t0 = now - sent * bt
            if sent < n:
                self._sleep_until(t0 + min(n, sent + chunk) * bt)

    def _wait_ready(self, w):
        fn = getattr(w, "wait_ready", None)
        if fn is None:
            return not self._stopped
        return bool(fn(self)) and not self._stopped

    def run(self, writer):
        """Send every step through writer, paced; returns the number of frames sent.

        writer: an object with write(bytes) (file-like or one of PtyWriter/TcpWriter/SerialWriter),
        or a callable taking bytes. Optional writer methods used when present: wait_ready(sim) ->
        bool (block until someone listens; False = give up), drain(timeout) at the end. A write
        may raise ReaderGone: the rest of that frame is dropped and the run goes on."""
        w = _as_writer(writer)
        if hasattr(w, "sim"):
            w.sim = self
        prev_end = None         # when the previous frame ended
        next_start = None       # scheduled start of the next frame (push interval)
        self.sent_frames = 0
        for st in self.steps():
            if self._stopped:
                break
            now = time.monotonic()
            if prev_end is None:
                target = now
                prev_end = now
            else:
                target = max(next_start, prev_end)
            if st.silence_before:
                sil = self._scaled(st.silence_before) if self.speed > 0 else st.silence_before
                self._log("silence %.3g s after frame %d" % (st.silence_before, st.index - 1))
                target += sil
            try:
                if st.noise:
                    self._sleep_until(prev_end + (target - prev_end) / 2.0)
                    if not self._wait_ready(w):
                        break
                    self._send(w, st.noise, st.line)
                self._sleep_until(target)
                if not self._wait_ready(w):
                    break
                start = time.monotonic()
                self._send(w, st.data, st.line)
            except ReaderGone as e:
                self._log("frame %d %s cut: %s" % (st.index, st.id, e or "reader gone"))
                start = time.monotonic()
            if self._stopped:
                break
            self.sent_frames += 1
            prev_end = time.monotonic()
            next_start = start + self._scaled(self.interval)
            self._log("#%d %s %dB %s fault=%s" % (st.index, st.id, len(st.data), st.line,
                                                  st.fault or "-"))
        if not self._stopped and hasattr(w, "drain"):
            w.drain(DRAIN_TIMEOUT)
        return self.sent_frames


class _CallableWriter:
    def __init__(self, fn):
        self.write = fn


class _FileWriter:
    """A plain binary file object: flushed after every write, so pacing reaches the reader."""

    def __init__(self, f):
        self.f = f

    def write(self, data):
        self.f.write(data)
        self.f.flush()


def _as_writer(writer):
    if hasattr(writer, "write"):
        if hasattr(writer, "flush") and not hasattr(writer, "drain"):
            return _FileWriter(writer)
        return writer
    if callable(writer):
        return _CallableWriter(writer)
    raise TypeError("writer needs a write(bytes) method or must be callable")


# ---------------------------------------------------------------------------------------------
# outputs

def open_pty(link=None):
    """Create a pty pair in raw mode. Returns (master_fd, slave_path); the slave fd is closed
    again so the master can see whether a reader has the slave open (POLLHUP while none has).
    link: optional symlink path made to point at the slave (replaced if it is a symlink)."""
    master, slave = pty.openpty()
    tty.setraw(master)
    tty.setraw(slave)
    attrs = termios.tcgetattr(slave)
    attrs[3] &= ~(termios.ECHO | termios.ECHONL | termios.ICANON | termios.ISIG | termios.IEXTEN)
    termios.tcsetattr(slave, termios.TCSANOW, attrs)
    path = os.ttyname(slave)
    os.close(slave)
    if link:
        _make_link(link, path)
    return master, path


def _make_link(link, target):
    if os.path.islink(link):
        os.unlink(link)
    elif os.path.exists(link):
        raise OSError(errno.EEXIST, "refusing to replace a file that is not a symlink", link)
    os.symlink(target, link)


class PtyWriter:
    """Writes to a pty master. Waits (sleeping, not spinning) while no reader has the slave
    open, drops the unread rest when a reader goes away, and drains at the end."""

    def __init__(self, master_fd, slave_path=None, link=None, log=None):
        self.fd = master_fd
        self.path = slave_path
        self.link = link
        self.log = log
        self.sim = None
        self._had_reader = False
        os.set_blocking(self.fd, False)
        self._poll = select.poll()
        self._poll.register(self.fd, select.POLLOUT)

    def _revents(self, timeout_ms=0):
        ev = 0
        for _, e in self._poll.poll(timeout_ms):
            ev |= e
        return ev

    def reader_present(self):
        return not self._revents(0) & select.POLLHUP

    def _flush_stale(self):
        """Drop what the gone reader left unread, so the next one starts with fresh frames."""
        if not self.path:
            return
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        except OSError:
            return
        try:
            termios.tcflush(fd, termios.TCIFLUSH)
        except termios.error:
            pass
        finally:
            os.close(fd)

    def _lost(self):
        if self._had_reader:
            self._had_reader = False
            self._flush_stale()
            if self.log:
                self.log("reader closed %s" % (self.path or "the pty"))

    def wait_ready(self, sim=None):
        if self.reader_present():
            self._had_reader = True
            return True
        self._lost()
        if self.log:
            self.log("waiting for a reader on %s" % (self.path or "the pty"))
        while not (sim and sim.stopped):
            time.sleep(POLL_SLICE)
            if self.reader_present():
                self._had_reader = True
                return True
        return False

    def write(self, data):
        view = memoryview(bytes(data))
        while view:
            ev = self._revents(0)
            if ev & select.POLLHUP:
                self._lost()
                raise ReaderGone("reader closed")
            try:
                k = os.write(self.fd, view)
                view = view[k:]
            except BlockingIOError:
                self._revents(200)              # the reader is slow: wait, do not spin
                if self.sim is not None and self.sim.stopped:
                    return
            except OSError as e:
                if e.errno == errno.EIO:
                    raise ReaderGone("pty closed")
                raise

    def _pending(self):
        """Bytes waiting in the slave's input queue, or None if it cannot be opened."""
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        except OSError:
            return None
        try:
            buf = bytearray(4)
            fcntl.ioctl(fd, termios.FIONREAD, buf)
            return int.from_bytes(buf, sys.byteorder)
        except OSError:
            return None
        finally:
            os.close(fd)

    def drain(self, timeout=DRAIN_TIMEOUT):
        """Wait until the reader has read everything (or timeout, or the reader left): closing
        the master makes the slave return EIO, and bytes not yet read would be lost. The pty
        hands written bytes to the slave asynchronously, so an empty queue must be seen twice."""
        if not self.path:
            return
        end = time.monotonic() + timeout
        empty = 0
        while time.monotonic() < end and empty < 2:
            time.sleep(0.02)
            if not self.reader_present():
                return
            n = self._pending()
            if n is None:
                return
            empty = empty + 1 if n == 0 else 0

    def close(self):
        if self.fd is not None:
            try:
                os.close(self.fd)
            except OSError:
                pass
            self.fd = None
        if self.link and os.path.islink(self.link) and os.readlink(self.link) == self.path:
            try:
                os.unlink(self.link)
            except OSError:
                pass


class TcpWriter:
    """Listens on host:port and sends every frame to every connected client. New clients join
    at the next frame start; waits (sleeping) while there is none. Anything clients send is
    read and ignored."""

    def __init__(self, host="127.0.0.1", port=0, log=None, send_timeout=5.0):
        self.log = log
        self.send_timeout = send_timeout
        self.sim = None
        self.clients = []
        infos = socket.getaddrinfo(host or None, int(port), 0, socket.SOCK_STREAM, 0,
                                   socket.AI_PASSIVE)
        family, _, _, _, addr = infos[0]
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(addr)
        self.sock.listen(8)
        self.sock.setblocking(False)
        self.address = self.sock.getsockname()[:2]

    def _accept(self):
        while True:
            try:
                c, addr = self.sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            c.setblocking(True)
            c.settimeout(self.send_timeout)
            c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.clients.append(c)
            if self.log:
                self.log("client %s:%d connected" % addr[:2])

    def _reap(self):
        """Drop clients that closed; discard anything they sent."""
        if not self.clients:
            return
        r, _, _ = select.select(self.clients, [], [], 0)
        for c in r:
            try:
                c.setblocking(False)
                gone = c.recv(4096) == b""
            except (BlockingIOError, InterruptedError):
                gone = False
            except OSError:
                gone = True
            finally:
                try:
                    c.settimeout(self.send_timeout)
                except OSError:
                    pass
            if gone:
                self._drop(c, "closed")

    def _drop(self, c, why):
        if c in self.clients:
            self.clients.remove(c)
        try:
            c.close()
        except OSError:
            pass
        if self.log:
            self.log("client dropped (%s)" % why)

    def wait_ready(self, sim=None):
        self._accept()
        self._reap()
        if self.clients:
            return True
        if self.log:
            self.log("waiting for a TCP client on %s:%d" % tuple(self.address))
        while not (sim and sim.stopped):
            r, _, _ = select.select([self.sock], [], [], POLL_SLICE)
            if r:
                self._accept()
                if self.clients:
                    return True
        return False

    def write(self, data):
        data = bytes(data)
        for c in list(self.clients):
            try:
                c.sendall(data)
            except (OSError, socket.timeout) as e:
                self._drop(c, e.__class__.__name__)
        if not self.clients:
            raise ReaderGone("no TCP client left")

    def drain(self, timeout=DRAIN_TIMEOUT):
        for c in list(self.clients):
            try:
                c.shutdown(socket.SHUT_WR)
            except OSError:
                pass

    def close(self):
        for c in self.clients:
            try:
                c.close()
            except OSError:
                pass
        self.clients = []
        try:
            self.sock.close()
        except OSError:
            pass


class SerialWriter:
    """A real serial port (or any pyserial URL) with a fixed line setting."""

    def __init__(self, device, line, write_timeout=2.0):
        import serial   # only needed here
        parity = {"N": serial.PARITY_NONE, "E": serial.PARITY_EVEN, "O": serial.PARITY_ODD,
                  "M": serial.PARITY_MARK, "S": serial.PARITY_SPACE}[line.parity]
        stop = {1: serial.STOPBITS_ONE, 2: serial.STOPBITS_TWO}[line.stopbits]
        self.sim = None
        self.port = serial.serial_for_url(device, baudrate=line.baud, bytesize=line.bytesize,
                                          parity=parity, stopbits=stop, timeout=0,
                                          write_timeout=write_timeout)

    def _room(self):
        """Wait (sleeping) while the driver still has much to send: at 2400 baud a full buffer
        takes seconds to go out, longer than the write timeout (matters at --speed 0 or > 1)."""
        while not (self.sim is not None and self.sim.stopped):
            try:
                queued = self.port.out_waiting
            except Exception:       # URL handlers without an output queue count
                return
            if queued < SERIAL_QUEUE:
                return
            time.sleep(0.02)

    def write(self, data):
        import serial
        data = bytes(data)
        try:
            for k in range(0, len(data), SERIAL_CHUNK):
                self._room()
                if self.sim is not None and self.sim.stopped:
                    return
                self.port.write(data[k:k + SERIAL_CHUNK])
        except serial.SerialTimeoutException:
            raise ReaderGone("serial write timed out")

    def drain(self, timeout=DRAIN_TIMEOUT):
        self.port.flush()

    def close(self):
        self.port.close()


# ---------------------------------------------------------------------------------------------
# CLI

def _parser():
    p = argparse.ArgumentParser(
        prog="meter_sim.py",
        description="Push real meter frames (corpus records or a capture) to a pty, a serial port "
                    "or TCP clients at real wire speed, with optional fault injection.")
    src = p.add_argument_group("frames")
    src.add_argument("--vectors", metavar="FILE", help="corpus file (default: %s)" % os.path.relpath(DEFAULT_VECTORS, ROOT))
    src.add_argument("--ids", metavar="ID,...", help="corpus ids, sent in this order")
    src.add_argument("--kind", metavar="KIND,...", help="corpus kinds: hdlc, ascii, encrypted-hdlc, "
                     "encrypted-mbus, encrypted-ascii, apdu")
    src.add_argument("--only-valid", action="store_true", help="skip records with crc_ok false or expected null")
    src.add_argument("--capture", metavar="FILE", help="replay a capture file instead of the corpus")
    src.add_argument("--hex", action="store_true", help="the capture is hex text (whitespace and # comments ignored)")
    src.add_argument("--no-split", action="store_true", help="stream the capture as one piece, no frame splitting")
    src.add_argument("--list", action="store_true", help="list the selected frames with their default line and exit")

    out = p.add_argument_group("output (one; default --pty)")
    ex = out.add_mutually_exclusive_group()
    ex.add_argument("--pty", action="store_true", help="create a pty pair; prints 'PTY <slave path>' first on stdout")
    ex.add_argument("--serial", metavar="DEV", help="write to a serial device (or pyserial URL)")
    ex.add_argument("--tcp", metavar="HOST:PORT", help="listen and stream to each client; prints 'TCP <host>:<port>' (port 0 = any)")
    out.add_argument("--link", metavar="PATH", help="with --pty: symlink PATH to the slave (removed at exit)")

    ln = p.add_argument_group("line and pacing")
    ln.add_argument("--baud", type=int, help="baud for every frame (default: per frame, see docs)")
    ln.add_argument("--parity", choices=["N", "E", "O", "n", "e", "o"], help="parity for every frame")
    ln.add_argument("--stopbits", type=int, choices=[1, 2], help="stop bits for every frame")
    ln.add_argument("--bytesize", type=int, choices=[7, 8], help="data bits for every frame (default 8)")
    ln.add_argument("--speed", type=float, default=1.0, help="time acceleration; 0 = as fast as possible (default 1)")
    ln.add_argument("--interval", type=float, default=10.0, help="push interval, start to start, in meter seconds (default 10)")
    rep = ln.add_mutually_exclusive_group()
    rep.add_argument("--count", type=int, help="send N frames (cycling the selection), then exit")
    rep.add_argument("--loop", action="store_true", help="cycle the selection forever")

    f = p.add_argument_group("fault injection (per frame, reproducible with --seed)")
    f.add_argument("--seed", type=int, help="RNG seed (default: random, printed in the log)")
    f.add_argument("--noise", type=float, default=0.0, metavar="P", help="probability of 1..%d garbage bytes before a frame" % MAX_NOISE)
    f.add_argument("--truncate", type=float, default=0.0, metavar="P", help="probability of cutting a frame short")
    f.add_argument("--flip", type=float, default=0.0, metavar="P", help="probability of flipping one random bit in a frame")
    f.add_argument("--silence", action="append", metavar="S@N", help="stay silent S extra seconds after frame N (repeatable)")
    p.add_argument("--quiet", "-q", action="store_true", help="no per-frame log on stderr")
    return p


def _log_to_stderr(msg):
    try:
        sys.stderr.write("meter_sim: %s\n" % msg)
        sys.stderr.flush()
    except (OSError, ValueError):
        pass


def _sources_from_args(a):
    if a.capture:
        if a.ids or a.kind or a.only_valid or a.vectors:
            raise ValueError("--capture cannot be combined with --ids/--kind/--only-valid/--vectors")
        data = read_capture(a.capture, a.hex)
        return capture_sources(data, not a.no_split, os.path.basename(a.capture))
    if a.hex or a.no_split:
        raise ValueError("--hex and --no-split need --capture")
    recs = select_records(load_vectors(a.vectors), a.ids, a.kind, a.only_valid)
    return [record_source(r) for r in recs]


def main(argv=None):
    p = _parser()
    a = p.parse_args(argv)
    if a.link and (a.serial or a.tcp):
        p.error("--link goes with --pty")
    log = None if a.quiet else _log_to_stderr
    try:
        sources = _sources_from_args(a)
        if not sources:
            raise ValueError("no frames selected")
        override = parse_line_override(a.baud, a.bytesize, a.parity, a.stopbits)
    except (ValueError, KeyError, OSError) as e:
        p.error(str(e).strip("'\""))
    if a.list:
        try:
            for s in sources:
                line = apply_override(default_line(s.kind, s.meter, s.data), override)
                print("%-36s %-16s %5dB  %-12s %s" % (s.id, s.kind, len(s.data), line, s.meter))
            sys.stdout.flush()
        except BrokenPipeError:         # e.g. piped into head
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    if a.serial:
        # a real port has one line setting: given, or the first frame's default
        first = default_line(sources[0].kind, sources[0].meter, sources[0].data)
        fixed = apply_override(first, override)
        others = {str(apply_override(default_line(s.kind, s.meter, s.data), override)) for s in sources}
        if log and len(others) > 1:
            log("frames have different default lines (%s); all sent at %s" % (", ".join(sorted(others)), fixed))
        override = tuple(fixed)
    try:
        sim = MeterSim(sources, speed=a.speed, interval=a.interval, count=a.count, loop=a.loop,
                       seed=a.seed, noise=a.noise, truncate=a.truncate, flip=a.flip,
                       silences=a.silence, baud=override[0], bytesize=override[1],
                       parity=override[2], stopbits=override[3], log=log)
    except ValueError as e:
        p.error(str(e))

    def on_signal(signum, frame):
        sim.stop()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)

    writer = None
    try:
        if a.serial:
            writer = SerialWriter(a.serial, Line(*override))
            print("SERIAL %s %s" % (a.serial, Line(*override)), flush=True)
        elif a.tcp:
            host, sep, port = a.tcp.rpartition(":")
            if not sep:
                p.error("--tcp needs HOST:PORT")
            writer = TcpWriter(host.strip("[]") or "0.0.0.0", int(port), log=log)
            h, pt = writer.address
            print("TCP %s:%d" % (h, pt), flush=True)
        else:
            master, path = open_pty(a.link)
            writer = PtyWriter(master, path, link=a.link, log=log)
            print("PTY %s" % path, flush=True)
    except (OSError, ValueError, ImportError) as e:
        _log_to_stderr("cannot open output: %s" % e)
        return 1
    writer.sim = sim
    if log:
        log("%d source frame(s), seed %d, %s" % (len(sources), sim.seed,
            "speed 0 (no pacing)" if sim.speed <= 0 else "speed %g, interval %g s" % (sim.speed, sim.interval)))
    try:
        n = sim.run(writer)
    except BrokenPipeError:
        n = sim.sent_frames
    finally:
        writer.close()
    if log:
        log("%s after %d frame(s)" % ("stopped" if sim.stopped else "done", n))
    return 0


if __name__ == "__main__":
    sys.exit(main())
