# CPython fallback for `micropython.const`; MicroPython never imports this module.


def const(x):
    return x
