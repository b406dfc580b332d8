#!/usr/bin/env python3
"""Run the firmware on the MicroPython unix port with the host board.

    python3 tools/run_host.py --uart pty:/dev/pts/7 --broker 127.0.0.1:1883
    python3 tools/run_host.py --uart tcp:127.0.0.1:7000 --data ./run --set mqtt_prefix=home
    python3 tools/run_host.py --soak 260000 --broker 127.0.0.1:1883      (memory soak)

It makes a data directory (a temporary one unless --data is given) holding config.json,
points the firmware at boards/host.json, the UART and that directory through environment
variables (HAN_BOARD_FILE, HAN_UART, HAN_DATA; see firmware/app/board.py), and runs
firmware/main.py under `micropython -X heapsize=<n>`: by default the code's own footprint plus 96 KB. On the
unix port the compiled modules live in the heap (about 170 KB on x64); on a device image they
are frozen into flash, and 96 KB is about what an ESP32 without PSRAM has left with Wi-Fi up. Ctrl-C or SIGTERM stops the firmware gracefully
(it publishes "offline"), then the temporary directory is removed.

--soak N: the same App loop reads a preloaded buffer of real frames (Aidon, Kaifa,
Kamstrup, Swedish P1 from the corpus) as fast as it can instead of the UART, publishes every
reading to the broker, and prints "SOAK frames=.. alloc=.." after a gc.collect() every
--soak-every readings.
"""
import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
MICROPYTHON = os.path.join(ROOT, ".venv", "bin", "micropython")
MPLIB = os.path.join(ROOT, ".venv", "mplib")
FIRMWARE = os.path.join(ROOT, "firmware")
HOST_BOARD = os.path.join(ROOT, "boards", "host.json")
VECTORS = os.path.join(ROOT, "host_tests", "vectors", "frames.jsonl")
# One meter of each family the demo and the soak use.
SOAK_IDS = ("ams-aidon-se-a", "hass-kaifa-ma304h3e-list2", "ams-kamstrup-no-list2-b",
            "avi-se-ell5-p1", "hass-kamstrup-bad-fcs")


def host_config(broker=None, **overrides):
    # A provisioned config for the host: the host's network stands in for Wi-Fi.
    cfg = {"wifi_ssid": "host-network", "wifi_password": "", "ha_discovery": True,
           "mqtt_keepalive": 30}
    if broker:
        host, port = parse_hostport(broker)
        cfg["mqtt_host"] = host
        cfg["mqtt_port"] = port
    cfg.update(overrides)
    return cfg


def parse_hostport(text, default_port=1883):
    if ":" in text:
        h, p = text.rsplit(":", 1)
        return h or "127.0.0.1", int(p)
    return text, default_port


def write_config(data_dir, cfg):
    path = os.path.join(data_dir, "config.json")
    with open(path + ".tmp", "w") as f:
        json.dump(cfg, f)
    os.replace(path + ".tmp", path)
    return path


def soak_buffer(path, ids=SOAK_IDS):
    recs = {}
    with open(VECTORS) as f:
        for line in f:
            if line.strip():
                r = json.loads(line)
                recs[r["id"]] = r
    data = b"".join(bytes.fromhex(recs[i]["hex"]) for i in ids)
    with open(path, "wb") as f:
        f.write(data)
    return len(data)


def prepare_firmware(source=False):
    # The directory to run: the firmware compiled to .mpy for the host, as a device runs it
    # (from source, the unix port would need ~250 KB of heap just to compile the modules).
    # Built once per source content into build/host-run/<hash>, shared by parallel runs.
    if source:
        return FIRMWARE
    sys.path.insert(0, HERE)
    import hashlib

    import build as build_mod

    h = hashlib.sha256()
    for rel, full in build_mod.app_sources(FIRMWARE):
        h.update(rel.encode())
        with open(full, "rb") as f:
            h.update(f.read())
    with open(HOST_BOARD, "rb") as f:
        h.update(f.read())
    base = os.path.join(ROOT, "build", "host-run")
    out = os.path.join(base, h.hexdigest()[:16])
    if os.path.isdir(out):
        return out
    os.makedirs(base, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix="build-", dir=base)
    built, _ = build_mod.build("host", out=os.path.join(tmp, "fw"), quiet=True)
    try:
        os.rename(built, out)
    except OSError:  # another run built the same content first
        pass
    shutil.rmtree(tmp, ignore_errors=True)
    for old in os.listdir(base):  # keep the directory from growing without bound
        d = os.path.join(base, old)
        if d != out and not old.startswith("build-"):
            try:
                if os.path.getmtime(d) < os.path.getmtime(out) - 3600:
                    shutil.rmtree(d, ignore_errors=True)
            except OSError:
                pass
    return out


def firmware_env(data_dir, uart=None, diag_s=None, extra=None, base=None, fw_dir=None):
    env = dict(os.environ if base is None else base)
    env["MICROPYPATH"] = ".frozen:%s:%s" % (fw_dir or FIRMWARE, MPLIB)
    env["HAN_BOARD_FILE"] = HOST_BOARD
    env["HAN_DATA"] = data_dir
    if uart:
        env["HAN_UART"] = uart
    if diag_s:
        env["HAN_DIAG_S"] = str(diag_s)
    env.update(extra or {})
    return env


# Everything the firmware imports on the host (the portal's modules included).
CODE_MODULES = ("app.app", "app.board", "app.uart_host", "app.diag", "app.mqtt", "app.net",
                "app.portal", "umqtt.simple", "han.decoder", "han.export")


def code_footprint(fw_dir):
    # Heap the loaded firmware code takes on the unix port: .mpy bytecode is copied into the
    # heap here (x64: 8-byte words), while a device image freezes it into flash.
    script = ("import gc\ngc.collect()\na=gc.mem_alloc()\n"
              + "".join("import %s\n" % m for m in CODE_MODULES)
              + "gc.collect()\nprint(gc.mem_alloc()-a)\n")
    env = dict(os.environ)
    env["MICROPYPATH"] = ".frozen:%s:%s" % (fw_dir, MPLIB)
    r = subprocess.run([MICROPYTHON, "-X", "heapsize=4m", "-c", script], env=env,
                       capture_output=True, text=True, check=True)
    return int(r.stdout.split()[-1])


def heap_arg(spec, fw_dir):
    # "96k" as is; "code+96k" = the code footprint plus 96 KB of working heap.
    if spec and spec.startswith("code+"):
        n = spec[5:]
        k = int(n[:-1]) * 1024 if n.endswith("k") else int(n)
        return "%dk" % ((code_footprint(fw_dir) + k + 1023) // 1024)
    return spec


def firmware_cmd(heapsize="96k", fw_dir=None):
    cmd = [MICROPYTHON]
    if heapsize:
        cmd += ["-X", "heapsize=" + heapsize]
    return cmd + [os.path.join(fw_dir or FIRMWARE, "main.py")]


def parse_set(items):
    out = {}
    for it in items or ():
        k, _, v = it.partition("=")
        if v in ("true", "false"):
            out[k] = v == "true"
        else:
            try:
                out[k] = int(v)
            except ValueError:
                out[k] = v
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--uart", help="pty:/path | serial:/dev/ttyUSB0 | tcp:host:port (default: board)")
    ap.add_argument("--broker", help="MQTT broker host:port for the generated config")
    ap.add_argument("--data", help="data directory (kept); default: a temporary one")
    ap.add_argument("--config", help="use this config.json instead of generating one")
    ap.add_argument("--set", action="append", metavar="KEY=VALUE", help="config overrides")
    ap.add_argument("--no-config", action="store_true", help="start unprovisioned (portal)")
    ap.add_argument("--diag-s", type=float, help="diagnostics interval in seconds (default 60)")
    ap.add_argument("--heapsize", default="code+96k",
                    help="MicroPython heap: 256k, or code+96k (default: the loaded code plus "
                         "96 KB, the working heap an ESP32 has when the code is frozen)")
    ap.add_argument("--log", help="debug | info | warn | error")
    ap.add_argument("--source", action="store_true",
                    help="run firmware/*.py from source (needs --heapsize 256k or more)")
    ap.add_argument("--soak", type=int, metavar="N", help="soak: N readings from a buffer")
    ap.add_argument("--soak-every", type=int, default=10000)
    a = ap.parse_args(argv)

    tmp = None
    data_dir = a.data
    if not data_dir:
        tmp = tempfile.mkdtemp(prefix="han-host-")
        data_dir = tmp
    os.makedirs(data_dir, exist_ok=True)
    if a.config:
        shutil.copyfile(a.config, os.path.join(data_dir, "config.json"))
    elif not a.no_config and not os.path.exists(os.path.join(data_dir, "config.json")):
        write_config(data_dir, host_config(a.broker, **parse_set(a.set)))
    extra = {}
    if a.log:
        extra["HAN_LOG"] = a.log
    uart = a.uart
    if a.soak:
        buf = os.path.join(data_dir, "soak.bin")
        soak_buffer(buf)
        extra.update(HAN_SOAK=str(a.soak), HAN_SOAK_FILE=buf, HAN_SOAK_EVERY=str(a.soak_every))
        uart = uart or "none:"
    fw = prepare_firmware(a.source)
    env = firmware_env(data_dir, uart, a.diag_s, extra, fw_dir=fw)
    heap = heap_arg(a.heapsize, fw)
    if a.heapsize != heap:
        print("run_host: heapsize %s = %s" % (a.heapsize, heap), flush=True)
    proc = subprocess.Popen(firmware_cmd(heap, fw), env=env)

    def forward(signum, frame):
        # SIGINT lets the firmware close MQTT cleanly (KeyboardInterrupt on the unix port)
        try:
            proc.send_signal(signal.SIGINT)
        except ProcessLookupError:
            pass

    signal.signal(signal.SIGINT, forward)
    signal.signal(signal.SIGTERM, forward)
    try:
        rc = proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)
    return rc


if __name__ == "__main__":
    sys.exit(main())
