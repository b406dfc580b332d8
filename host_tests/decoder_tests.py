# The decoder's test files: each runs unchanged under CPython (pytest) and MicroPython
# (run_mpy.py, driven from test_host_mpy.py).
MODULES = ("test_reading", "test_crc", "test_corpus", "test_stream", "test_p1", "test_gcm", "test_noalloc")
