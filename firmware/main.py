# Entry point. Kept tiny so it cannot brick the device: all logic is in app/ (host-tested).
# Safe mode (no application, no watchdog, REPL stays usable): a file /nomain, or the setup
# button held 5 s at boot (checked in app.start). On the host (unix port) the data directory
# is $HAN_DATA and a crash exits non-zero instead of resetting.
import sys
import time


def _nomain():
    import os

    d = os.getenv("HAN_DATA") if hasattr(os, "getenv") else ""
    try:
        os.stat((d or "") + "/nomain")
        return True
    except OSError:
        return False


def main():
    device = sys.platform == "esp32"
    if _nomain():
        print("main: nomain file present: safe mode")
        return
    try:
        from app import app

        r = app.start()
    except KeyboardInterrupt:
        print("main: interrupted")
        return
    except Exception as e:
        print("main: fatal error:")
        sys.print_exception(e)
        if not device:
            sys.exit(1)
        time.sleep(10)  # a window for Ctrl-C before the reset
        import machine

        machine.reset()
    if device and r == 1:  # RESTART: a new configuration was saved
        import machine

        machine.reset()


main()
