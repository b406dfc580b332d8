# The decoder's byte loops (copy, CRC), in the fastest form each interpreter allows:
#   MicroPython: @viper loops over raw pointers (fast_viper.py), else the bytecode loops;
#   CPython: slices and 16-bit CRC tables (fast_cpython.py).
# Every form is checked against the plain bytecode loops on the same vectors
# (host_tests/test_fast.py, under both interpreters).
import sys

if sys.implementation.name == "micropython":
    try:
        from han.fast_viper import copy, crc16_arc, crc16_x25  # noqa: F401
    except Exception:  # noqa: BLE001 - a build without the native emitter
        from han.fast_loop import copy, crc16_arc, crc16_x25  # noqa: F401
else:
    from han.fast_cpython import copy, crc16_arc, crc16_x25  # noqa: F401
