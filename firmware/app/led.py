# Status LED: one state at a time, shown as a blink pattern; on the host the state changes are
# printed instead. poll(now_ms) is cheap and allocation-free; call it every loop.
#
#   state        pattern                              meaning
#   BOOTING      steady on                            starting up
#   NO_DATA      1 Hz, half on                        no valid meter frame for a while
#   DATA_OK      a 60 ms blink every 3 s + per frame  frames decode and the network is fine
#   NET_TROUBLE  fast 2.5 Hz                          meter OK, but Wi-Fi or MQTT is down
#   PORTAL       mostly on, short off every 2 s       the setup network is open
try:
    from micropython import const
except ImportError:
    def const(x):
        return x

BOOTING = const(0)
NO_DATA = const(1)
DATA_OK = const(2)
NET_TROUBLE = const(3)
PORTAL = const(4)
NAMES = ("booting", "no meter data", "data ok", "network trouble", "setup portal")
# (period ms, on ms); period 0 = steady
_PATTERNS = ((0, 1), (1000, 500), (3000, 60), (400, 200), (2000, 1800))
_FLASH_MS = const(40)


class Led:
    def __init__(self, pin=None, active_high=True, out=None):
        # pin: a machine.Pin set up as output, or None (host: print state changes via out).
        self.pin = pin
        self.active_high = active_high
        self.out = out
        self.state = -1
        self.is_on = None
        self.t0 = 0
        self.flash_until = 0
        self.flashing = False

    def set(self, state, now_ms=0):
        if state == self.state:
            return
        self.state = state
        self.t0 = now_ms
        if self.out is not None:
            self.out("LED: " + NAMES[state])
        self.poll(now_ms)

    def flash(self, now_ms):
        # A short off-blink (or on-blink) marking a frame; only in the DATA_OK pattern.
        if self.state == DATA_OK:
            self.flashing = True
            self.flash_until = now_ms + _FLASH_MS

    def _write(self, on):
        if on == self.is_on:
            return
        self.is_on = on
        if self.pin is not None:
            self.pin.value(1 if on == self.active_high else 0)

    def poll(self, now_ms):
        if self.state < 0:
            return
        period, on_ms = _PATTERNS[self.state]
        if self.flashing:
            if now_ms - self.flash_until < 0:
                self._write(True)
                return
            self.flashing = False
        if period == 0:
            self._write(True)
        else:
            self._write((now_ms - self.t0) % period < on_ms)
