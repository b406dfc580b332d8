# Serial settings: configured, remembered, or found by trying the usual HAN line settings.
#
# Candidates, in order (each with the board's RX inversion first, then the other):
#   115200 8N1  Swedish/Finnish P1 (ASCII) and Swedish Aidon HDLC on RJ12
#   2400 8E1    Norwegian HAN-NVE (Aidon, Kaifa) and Austrian M-Bus
#   2400 8N1    Kamstrup HAN-NVE
#   9600 8N1, 38400 8N1   less common meters (Iskra AM550 at 38400)
# A setting is right when a frame with a valid checksum arrives: a decoded reading, but also a
# frame that fails only later (wrong key, unknown layout), so a wrong key reads as "decrypt
# failed", not as "no data". Each candidate gets dwell_ms (a push interval plus a frame); the
# one that works is kept (save callback: a small state file) and tried first at the next boot.
# After relock_ms without a good frame the search starts again, beginning with the old one.
# Configured settings (cfg meter_baud != 0) are used alone; meter_invert yes/no fixes the
# inversion. No I/O here: the caller passes the decoder's counters and applies settings.
from han import status

try:
    from micropython import const
except ImportError:
    def const(x):
        return x

DEFAULT_ORDER = ((115200, "none"), (2400, "even"), (2400, "none"), (9600, "none"), (38400, "none"))
SEARCHING = const(0)
LOCKED = const(1)
STATE_NAMES = ("searching", "locked")
_GOOD = (status.C_OK, status.C_DECRYPT, status.C_UNKNOWN, status.C_MALFORMED)


def good_frames(counters):
    # Frames whose checksum verified, whatever became of them afterwards.
    n = 0
    for i in _GOOD:
        n += counters[i]
    return n


def candidates(cfg, board_invert, remembered=None):
    baud = cfg.get("meter_baud", 0)
    lines = ((baud, cfg.get("meter_parity", "none")),) if baud else DEFAULT_ORDER
    inv = cfg.get("meter_invert", "auto")
    inverts = (True,) if inv == "yes" else (False,) if inv == "no" else (board_invert, not board_invert)
    out = [(b, p, i) for b, p in lines for i in inverts]
    if remembered:
        r = (remembered.get("baud"), remembered.get("parity"), remembered.get("invert"))
        if r in out:
            out.remove(r)
            out.insert(0, r)
    return out


class SerialDetect:
    def __init__(self, cands, apply, save=None, log=None, dwell_ms=12500, relock_ms=300000):
        # apply(baud, parity, invert): reconfigure the UART; save(dict): remember a lock.
        self.cands = cands
        self.apply = apply
        self.save = save
        self.log = log
        self.dwell_ms = dwell_ms
        self.relock_ms = relock_ms
        self.idx = 0
        self.state = SEARCHING
        self.t_start = 0
        self.good0 = 0
        self.last_good_t = 0
        self.last_good_n = 0
        self.tries = 0  # settings applied so far
        self.cycles = 0
        self.saved = None

    @property
    def current(self):
        return self.cands[self.idx]

    def start(self, now_ms, counters):
        self._try(self.idx, now_ms, counters)

    def _try(self, idx, now_ms, counters):
        self.idx = idx
        self.t_start = now_ms
        self.good0 = good_frames(counters)
        self.tries += 1
        b, p, i = self.cands[idx]
        if self.log and len(self.cands) > 1:
            self.log.info("serial: trying %s", line_text(b, p, i))
        self.apply(b, p, i)

    def poll(self, now_ms, counters, diff):
        # diff: ticks_diff. Returns True when the UART settings were changed.
        g = good_frames(counters)
        if self.state == LOCKED:
            if g != self.last_good_n:
                self.last_good_n = g
                self.last_good_t = now_ms
                return False
            if diff(now_ms, self.last_good_t) < self.relock_ms or len(self.cands) < 2:
                return False
            if self.log:
                self.log.warn("serial: no valid frame for %d s, detecting again",
                              self.relock_ms // 1000)
            self.state = SEARCHING
            self._try(self.idx, now_ms, counters)
            return True
        if g > self.good0:
            self._lock(now_ms, g)
            return False
        if len(self.cands) < 2 or diff(now_ms, self.t_start) < self.dwell_ms:
            return False
        nxt = self.idx + 1
        if nxt >= len(self.cands):
            nxt = 0
            self.cycles += 1
        self._try(nxt, now_ms, counters)
        return True

    def _lock(self, now_ms, g):
        self.state = LOCKED
        self.last_good_t = now_ms
        self.last_good_n = g
        b, p, i = self.current
        if self.log:
            self.log.info("serial: meter found at %s", line_text(b, p, i))
        rec = {"baud": b, "parity": p, "invert": i}
        if self.save is not None and rec != self.saved:
            try:
                self.save(rec)
                self.saved = rec
            except Exception as e:  # a full flash must not stop metering
                if self.log:
                    self.log.warn("serial: cannot save settings: %s", e)

    def info(self):
        b, p, i = self.current
        return {"baud": b, "parity": p, "invert": i, "format": line_text(b, p, i),
                "detect": STATE_NAMES[self.state] if len(self.cands) > 1 else "fixed",
                "tries": self.tries}


def line_text(baud, parity, invert):
    return "%d 8%s1%s" % (baud, parity[0].upper(), " inverted" if invert else "")


def uart_parity(parity):
    # config text -> machine.UART parity argument
    return None if parity == "none" else 0 if parity == "even" else 1
