# Soak mode for the unix port: the same App loop, with the meter UART replaced by a buffer
# of real frames served as fast as the loop takes them, and the real publisher. Every
# `every` readings the heap is collected and sampled; one line per sample:
#   SOAK frames=<n> alloc=<bytes after collect> free=<bytes> ms=<elapsed>
# and at the end "SOAK done ...". tools/run_host.py --soak N sets this up.
import gc

from app.uart_host import BufferUart


def soak(app, board, total, env):
    path = env("HAN_SOAK_FILE")
    every = int(env("HAN_SOAK_EVERY") or 10000)
    with open(path, "rb") as f:
        data = f.read()
    app.uart = BufferUart(data, chunk=len(app.chunk), loops=1 << 30)
    clock = app.clock
    t0 = clock.ticks_ms()
    samples = []

    def on_frame(a):
        n = a.frames
        if n % every == 0 or n >= total:
            gc.collect()
            alloc = gc.mem_alloc()
            samples.append(alloc)
            print("SOAK frames=%d alloc=%d free=%d ms=%d reconnects=%d" % (
                n, alloc, gc.mem_free(), clock.ticks_diff(clock.ticks_ms(), t0),
                a.pub.reconnects if a.pub is not None else 0))
            if n >= total:
                a.stop()

    app.on_frame = on_frame
    gc.collect()
    print("SOAK start total=%d buffer=%d bytes alloc=%d" % (total, len(data), gc.mem_alloc()))
    try:
        app.run()
    except MemoryError as e:
        print("SOAK MemoryError after %d frames: %s" % (app.frames, e))
        raise
    ms = clock.ticks_diff(clock.ticks_ms(), t0)
    c = app.dec.counters
    print("SOAK done frames=%d ms=%d bad_crc=%d truncated=%d max_alloc=%d" % (
        app.frames, ms, c[2], c[4], max(samples) if samples else 0))
