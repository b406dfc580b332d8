# Run the setup portal on the MicroPython unix port with the host board, for tests and
# development. From the repository root:
#
#   MICROPYPATH=.frozen:firmware .venv/bin/micropython -X heapsize=64k tools/run_portal.py \
#       --config /tmp/han/config.json [--board boards/host.json] [--http-port 18080]
#       [--dns-port 15353] [--stay] [--stats /tmp/han/heap.json]
#
# Then browse http://127.0.0.1:18080/ (or use it as an HTTP proxy, which is how the browser
# tests make every URL land here, as on the real access point) and ask DNS on 127.0.0.1:15353.
# Prints "READY <http> <dns>" once listening and "SAVED" when a configuration was stored;
# exits then, unless --stay. --stats writes heap figures (gc.mem_alloc peaks) every second.
import gc
import json
import sys
import time

from app import config
from app.net import make_net
from app.portal import Portal


def _args(argv):
    opts = {"board": "boards/host.json", "config": "config.json", "http-port": None,
            "dns-port": None, "stay": False, "stats": None}
    i = 1
    while i < len(argv):
        a = argv[i]
        if not a.startswith("--") or a[2:] not in opts:
            raise SystemExit("unknown argument: " + a)
        k = a[2:]
        if k == "stay":
            opts[k] = True
        else:
            i += 1
            opts[k] = argv[i]
        i += 1
    return opts


def _log(line):
    print(line)


def main():
    opts = _args(sys.argv)
    with open(opts["board"]) as f:
        board = json.loads(f.read())
    cfg, problem = config.load(opts["config"])
    print("config: " + (problem or "ok"))
    for k in ("http-port", "dns-port"):
        if opts[k]:
            cfg[k.replace("-", "_")] = int(opts[k])
    net = make_net(board)
    frames = [0]

    def status():
        # stand-in for what the main loop reports on a device
        return {"Meter": "%d frames (host stand-in)" % frames[0], "Broker": "not connected"}

    portal = Portal(cfg, opts["config"], net, status=status, log=_log)
    portal.start()
    print("READY %d %d" % (cfg["http_port"], cfg["dns_port"]))
    stats = opts["stats"]
    gc.collect()
    base = gc.mem_alloc()
    peak = peak_live = base
    next_dump = time.ticks_add(time.ticks_ms(), 1000)
    while True:
        if stats:
            gc.collect()
            live = gc.mem_alloc()
            peak_live = max(peak_live, live)
        saved = portal.poll()
        if stats:
            peak = max(peak, gc.mem_alloc())
            if time.ticks_diff(time.ticks_ms(), next_dump) >= 0:
                next_dump = time.ticks_add(time.ticks_ms(), 1000)
                with open(stats, "w") as f:
                    f.write(json.dumps({"idle_alloc": base, "peak_live": peak_live,
                                        "peak_in_poll": peak, "heap_total": gc.mem_alloc() + gc.mem_free(),
                                        "http": portal.http.stats if portal.http else {},
                                        "dns_answered": portal.dns.answered if portal.dns else 0}))
        if saved:
            print("SAVED")
            if not opts["stay"]:
                break
        frames[0] += 1
        time.sleep_ms(2)
    portal.stop()


main()
