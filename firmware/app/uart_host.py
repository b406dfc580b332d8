# The meter UART on the unix port: a pty, a serial device or a TCP socket behind the ESP32
# UART's reading interface, so the same loop runs on both:
#   readinto(buf) -> None when nothing is waiting (as the ESP32 UART with timeout=0), else n
#   init(baudrate, bits, parity, stop, invert): recorded (a pty has no baud rate); on a real
#     serial device the speed and parity are also set with termios
#   wait(ms): block until bytes arrive or ms pass (select.poll), so an idle loop costs nothing
# Spec strings: "pty:/dev/pts/5", "serial:/dev/ttyUSB0", "tcp:127.0.0.1:7000", "none" (also from the
# HAN_UART environment variable). A vanished device (simulator restarted) is reopened every
# second; until then readinto() returns None, like a silent line.
import select
import time

try:
    import termios
except ImportError:  # CPython without the module (never on the unix port)
    termios = None

_REOPEN_MS = 1000
# Linux termios values the unix port's module does not name.
_SPEEDS = {2400: 0o13, 4800: 0o14, 9600: 0o15, 19200: 0o16, 38400: 0o17,
           57600: 0o10001, 115200: 0o10002}
_PARENB = 0o400
_PARODD = 0o1000
_CSTOPB = 0o100
_CSIZE = 0o60
_CS7 = 0o40
_CS8 = 0o60
_VMIN = 6
_VTIME = 5


def parse_spec(spec):
    # "kind:rest" -> (kind, rest); a bare path is a pty/serial device.
    if ":" in spec:
        kind, rest = spec.split(":", 1)
        if kind in ("pty", "serial", "tcp", "none"):
            return kind, rest
    return "pty", spec


class HostUart:
    def __init__(self, spec, log=None):
        self.kind, self.target = parse_spec(spec)
        self.log = log
        self.f = None
        self.sock = None
        self.poller = None
        self.next_open = 0
        self.baudrate = 0
        self.bits = 8
        self.parity = None
        self.stop = 1
        self.invert = 0
        self.inits = 0  # how often the settings were changed (autodetect tests read it)
        self.opens = 0
        self._open(time.ticks_ms())

    def __repr__(self):
        return "HostUart(%s:%s)" % (self.kind, self.target)

    # ---- ESP32 UART interface ----

    def init(self, baudrate=9600, bits=8, parity=None, stop=1, invert=0, **kw):
        self.baudrate = baudrate
        self.bits = bits
        self.parity = parity
        self.stop = stop
        self.invert = invert
        self.inits += 1
        if self.kind == "serial" and self.f is not None:
            self._apply_termios()

    def readinto(self, buf, n=None):
        src = self.f if self.f is not None else self.sock
        if src is None:
            now = time.ticks_ms()
            if time.ticks_diff(now, self.next_open) >= 0:
                self._open(now)
            return None
        try:
            k = src.readinto(buf) if n is None else src.readinto(buf, n)
        except OSError as e:
            if e.args and e.args[0] == 11:  # EAGAIN on a non-blocking socket
                return None
            self._lost("read error %s" % e)
            return None
        if k is None:
            return None
        if k == 0:
            if self.sock is not None:  # TCP peer closed
                self._lost("connection closed")
            return None
        return k

    def any(self):
        return 1 if self._ready(0) else 0

    def wait(self, ms):
        # Sleep until data or ms pass; returns True when data is waiting.
        if self.poller is None:
            time.sleep_ms(ms)
            return False
        return self._ready(ms)

    def deinit(self):
        self.close()

    # ---- internals ----

    def _ready(self, ms):
        if self.poller is None:
            return False
        for _obj, ev in self.poller.ipoll(ms):
            if ev & select.POLLIN:
                return True
            if ev & (select.POLLHUP | select.POLLERR):
                # pty master gone: do not spin on a hung-up descriptor
                self._lost("hang-up")
                return False
        return False

    def _open(self, now):
        self.next_open = time.ticks_add(now, _REOPEN_MS)
        if self.kind == "none":  # no meter line at all (soak runs replace the UART)
            return
        try:
            if self.kind == "tcp":
                self._open_tcp()
            else:
                self._open_tty()
        except OSError as e:
            if self.opens == 0 and self.log:
                self.log.warn("uart: cannot open %s:%s (%s), retrying", self.kind, self.target, e)
            self.opens += 1
            self.close()
            return
        self.opens += 1
        if self.log:
            self.log.info("uart: opened %s:%s", self.kind, self.target)

    def _open_tty(self):
        f = open(self.target, "rb")
        self.f = f
        if termios is not None:
            fd = f.fileno()
            termios.setraw(fd)
            a = termios.tcgetattr(fd)
            a[6][_VMIN] = 0  # return at once with what is there: readinto never blocks
            a[6][_VTIME] = 0
            termios.tcsetattr(fd, termios.TCSANOW, a)
            if self.kind == "serial" and self.baudrate:
                self._apply_termios()
        self.poller = select.poll()
        self.poller.register(f, select.POLLIN)

    def _open_tcp(self):
        import socket

        host, port = self.target.rsplit(":", 1)
        ai = socket.getaddrinfo(host, int(port))[0][-1]
        s = socket.socket()
        s.settimeout(2)
        try:
            s.connect(ai)
        except OSError:
            s.close()
            raise
        s.setblocking(False)
        self.sock = s
        self.poller = select.poll()
        self.poller.register(s, select.POLLIN)

    def _apply_termios(self):
        fd = self.f.fileno()
        a = termios.tcgetattr(fd)
        sp = _SPEEDS.get(self.baudrate)
        if sp is not None:
            a[4] = sp
            a[5] = sp
        c = a[2] & ~(_PARENB | _PARODD | _CSTOPB | _CSIZE)
        c |= _CS7 if self.bits == 7 else _CS8
        if self.parity is not None:
            c |= _PARENB | (_PARODD if self.parity == 1 else 0)
        if self.stop == 2:
            c |= _CSTOPB
        a[2] = c
        termios.tcsetattr(fd, termios.TCSANOW, a)

    def _lost(self, why):
        if self.log:
            self.log.warn("uart: %s:%s lost (%s), reopening", self.kind, self.target, why)
        self.close()
        self.next_open = time.ticks_add(time.ticks_ms(), _REOPEN_MS)

    def close(self):
        for o in (self.f, self.sock):
            if o is not None:
                try:
                    o.close()
                except OSError:
                    pass
        self.f = None
        self.sock = None
        self.poller = None


class BufferUart:
    # A fast stand-in that serves a preloaded byte buffer in chunks, looping `loops` times
    # (soak runs and benchmarks): no I/O; one transient memoryview per read.
    def __init__(self, data, chunk=256, loops=1):
        self.data = data
        self.mv = memoryview(data)
        self.chunk = chunk
        self.loops = loops
        self.pos = 0
        self.loop = 0
        self.baudrate = 0
        self.inits = 0

    def init(self, baudrate=9600, bits=8, parity=None, stop=1, invert=0, **kw):
        self.baudrate = baudrate
        self.inits += 1

    def readinto(self, buf, n=None):
        if self.loop >= self.loops:
            return None
        if n is None:
            n = len(buf)
        k = len(self.data) - self.pos
        if k > n:
            k = n
        if k > self.chunk:
            k = self.chunk
        p = self.pos
        buf[0:k] = self.mv[p:p + k]  # one small transient view per chunk, no per-byte loop
        self.pos = p + k
        if self.pos >= len(self.data):
            self.pos = 0
            self.loop += 1
        return k

    def done(self):
        return self.loop >= self.loops

    def wait(self, ms):
        return not self.done()

    def any(self):
        return 0 if self.done() else 1
