# Runs the decoder's test files under the MicroPython unix port: imports each module and
# calls every test_* function, like pytest does under CPython. Exit status = failures.
#   MICROPYPATH=.frozen:firmware:host_tests micropython host_tests/run_mpy.py [module ...]
import sys

from decoder_tests import MODULES as DECODER_TESTS


class Skip(Exception):
    pass


def run_module(name):
    passed = failed = skipped = 0
    mod = __import__(name)
    for attr in sorted(dir(mod)):
        if not attr.startswith("test_"):
            continue
        fn = getattr(mod, attr)
        try:
            fn()
            passed += 1
            print("PASS", name + "." + attr)
        except Exception as e:  # noqa: BLE001 - report and go on, like a test runner
            if type(e).__name__ in ("Skipped", "Skip"):
                skipped += 1
                print("SKIP", name + "." + attr, e)
                continue
            failed += 1
            print("FAIL", name + "." + attr, repr(e))
            sys.print_exception(e)
    return passed, failed, skipped


def main(names):
    totals = [0, 0, 0]
    for name in names or DECODER_TESTS:
        try:
            r = run_module(name)
        except ImportError as e:
            print("FAIL", name, "cannot import:", repr(e))
            r = (0, 1, 0)
        for i in range(3):
            totals[i] += r[i]
    print("%d passed, %d failed, %d skipped" % tuple(totals))
    return totals[1]


sys.exit(main(sys.argv[1:]))
