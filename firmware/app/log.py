# Console log: one line per event, formatted only when the level is enabled.
#   from app import log
#   log.info("wifi: connected to %s", ssid)
# Lines go to print() (the USB console on the device, stdout on the host) and, when a sink is
# set, also to that callable (a file on the device, a list in tests). Never pass a secret here:
# use app.config.redacted() for configuration.
import time

try:
    _ticks = time.ticks_ms
    _diff = time.ticks_diff
except AttributeError:  # CPython (host tests)
    def _ticks():
        return int(time.monotonic() * 1000)

    def _diff(a, b):
        return a - b

DEBUG = 10
INFO = 20
WARN = 30
ERROR = 40
_NAMES = {DEBUG: "D", INFO: "I", WARN: "W", ERROR: "E"}

level = INFO
sink = None
_t0 = _ticks()


def _emit(lv, fmt, args):
    if lv < level:
        return
    try:
        msg = fmt % args if args else fmt
    except Exception:  # a bad format must never take the firmware down
        msg = fmt + " " + repr(args)
    t = _diff(_ticks(), _t0)
    line = "%d.%03d %s %s" % (t // 1000, t % 1000, _NAMES.get(lv, "?"), msg)
    print(line)
    if sink is not None:
        try:
            sink(line)
        except Exception:
            pass


def debug(fmt, *args):
    if DEBUG >= level:
        _emit(DEBUG, fmt, args)


def info(fmt, *args):
    _emit(INFO, fmt, args)


def warn(fmt, *args):
    _emit(WARN, fmt, args)


def error(fmt, *args):
    _emit(ERROR, fmt, args)


def exc(e, what):
    # An exception with its type, for the console (tracebacks go through sys.print_exception).
    _emit(ERROR, "%s: %s %s", (what, type(e).__name__, e))
