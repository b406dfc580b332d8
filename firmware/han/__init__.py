# HAN decoder core: bytes in, a filled preallocated Reading out. No I/O, no clock, no globals.
