#!/usr/bin/env python3
# Copy the built application to a device with mpremote and check every file by hash:
#   1. build/<board>/ (tools/build.py runs first unless --no-build)
#   2. a first /config.json when the device has none (or RESET_CONFIG=1): a random setup
#      network password plus whatever settings.local.json holds (Wi-Fi, MQTT, meter keys)
#   3. mpremote fs sha256sum of every file against the local one
#   4. an import check of the decoder core and the config module on the device
#   5. reset (not for the host board: the unix port has no reset, the check is the start)
#   6. the setup network's name (HAN-XXXX from the device's MAC) and password, with a QR code
#
#   python3 tools/deploy.py BOARD --port PORT [--settings FILE] [--reset-config] [--no-build]
#                           [--config-only]   (FROZEN=1: the image has the application frozen in)
#                           [--build-dir DIR] (DEPLOY_DIR=: deploy a tree built elsewhere)
# PORT is anything mpremote connects to: /dev/ttyUSB0, a pty path, socket://host:port, ...
import argparse
import hashlib
import json
import os
import string
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import build  # noqa: E402

ROOT = build.ROOT
CONFIG_FILE = "config.json"  # relative: the device's cwd is / on an ESP32, the run dir on the host
PACKAGES = ("app", "han")
PASSWORD_CHARS = string.ascii_letters + string.digits
MARK = "@@deploy@@"


class DeployError(Exception):
    pass


def firmware_module(name):
    # app.config / app.portal from the source tree, loaded by CPython; None if missing or broken.
    fw = os.path.join(ROOT, "firmware")
    if fw not in sys.path:
        sys.path.insert(0, fw)
    try:
        return __import__(name, None, None, ["*"])
    except Exception:
        return None


class Device:
    def __init__(self, port, resume, mpremote=None, verbose=False):
        self.port = port
        self.resume = resume
        self.mpremote = mpremote or build.venv_tool("mpremote")
        self.verbose = verbose

    def run(self, *args, check=True, timeout=120):
        cmd = [self.mpremote, "connect", self.port] + (["resume"] if self.resume else []) + list(args)
        if self.verbose:
            print("+ " + " ".join(cmd))
        try:
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise DeployError("mpremote timed out on %s: is a program running that ignores Ctrl-C?"
                              % self.port)
        if check and r.returncode != 0:
            raise DeployError("mpremote failed (%d): %s" % (
                r.returncode, (r.stderr.strip() or r.stdout.strip())[-800:]))
        return r

    def exec(self, code, timeout=60):
        # Run code on the device; what it prints after MARK comes back as JSON.
        out = self.run("exec", code, timeout=timeout).stdout
        for line in out.splitlines():
            if line.startswith(MARK):
                return json.loads(line[len(MARK):])
        raise DeployError("no answer from the device; output was:\n" + out[-800:])


SURVEY = r"""
import os, json
try:
    import hashlib, binascii
except ImportError:
    hashlib = None
def _sha(p):
    if hashlib is None:
        return None
    h = hashlib.sha256()
    b = bytearray(512)
    with open(p, "rb") as f:
        while True:
            n = f.readinto(b)
            if not n:
                break
            h.update(b if n == len(b) else b[:n])
    return binascii.hexlify(h.digest()).decode()
def _ls(d):
    try:
        return [e[0] for e in os.ilistdir(d) if e[1] == 0x8000]
    except OSError:
        return None
r = {"pkgs": {}, "config": None, "sha": {}}
for d in %r:
    r["pkgs"][d] = _ls(d)
    for n in r["pkgs"][d] or ():
        r["sha"][d + "/" + n] = _sha(d + "/" + n)
for n in %r:
    try:
        r["sha"][n] = _sha(n)
    except OSError:
        pass
try:
    with open(%r) as f:
        r["config"] = f.read()
except OSError:
    pass
print(%r + json.dumps(r))
"""

PREPARE = r"""
import os
for d in %r:
    try:
        os.mkdir(d)
    except OSError:
        pass
for p in %r:
    try:
        os.remove(p)
    except OSError:
        pass
for d in %r:
    try:
        os.rmdir(d)
    except OSError:
        pass
print(%r + "null")
"""

# The application arms a 30 s watchdog that survives Ctrl-C and soft resets, so a running
# device is first restarted into main.py's safe mode (a /nomain file) before copying.
SAFE_MODE = r"""
import os
try:
    os.stat("main.py")
    f = open("nomain", "w")
    f.close()
    print(%r + "true")
    import machine
    machine.reset()
except OSError:
    print(%r + "false")
"""

CHECK = r"""
import sys, json
r = {"ok": [], "failed": {}, "mac": ""}
for m in %r:
    try:
        __import__(m)
        r["ok"].append(m)
    except Exception as e:
        r["failed"][m] = "%%s: %%s" %% (type(e).__name__, e)
try:
    with open("board.json") as f:
        b = json.load(f)
    from app.net import make_net
    r["mac"] = make_net(b).mac_hex()
except Exception as e:
    try:
        import network, binascii
        w = network.WLAN(network.STA_IF)
        r["mac"] = binascii.hexlify(w.config("mac")).decode()
    except Exception as e2:
        r["mac_error"] = "%%s; %%s" %% (e, e2)
print(%r + json.dumps(r))
"""


def enter_safe_mode(dev):
    r = dev.run("exec", SAFE_MODE % (MARK, MARK), check=False, timeout=30)
    if MARK + "true" not in r.stdout:
        return  # nothing installed yet (a freshly flashed board)
    print("restarting the device into safe mode (/nomain) for the copy")
    import time

    end = time.time() + 20
    while "://" not in dev.port and not os.path.exists(dev.port) and time.time() < end:
        time.sleep(0.2)  # native-USB boards drop off the bus while resetting
    time.sleep(3)
    for _ in range(5):
        if dev.run("exec", "print(1)", check=False, timeout=20).returncode == 0:
            return
        time.sleep(2)
    raise DeployError("the device did not come back after the reset into safe mode")


def local_files(out):
    # {device path: local path} for everything in the build folder.
    files = {}
    for dirpath, _, names in os.walk(out):
        for n in sorted(names):
            full = os.path.join(dirpath, n)
            files[os.path.relpath(full, out).replace(os.sep, "/")] = full
    return dict(sorted(files.items()))


def sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def parse_sha256sum(out):
    # mpremote prints "sha256sum :path" then the digest on the next line, per file.
    got, name = {}, None
    for line in out.splitlines():
        line = line.strip()
        if line.startswith("sha256sum :"):
            name = line[len("sha256sum :"):]
        elif name is not None and len(line) == 64 and all(c in "0123456789abcdef" for c in line):
            got[name] = line
            name = None
    return got


def make_password(n=16):
    # 16 characters from letters and digits, without 0/O/1/l/I so it can be typed from the screen.
    chars = "".join(c for c in PASSWORD_CHARS if c not in "0O1lI")
    out = []
    while len(out) < n:
        for b in os.urandom(n):
            if b < 256 - 256 % len(chars):  # no modulo bias
                out.append(chars[b % len(chars)])
    return "".join(out[:n])


def load_settings(path):
    if not path or not os.path.exists(path):
        return {}
    with open(path) as f:
        try:
            data = json.load(f)
        except ValueError as e:
            raise DeployError("%s is not valid JSON: %s" % (path, e))
    if not isinstance(data, dict):
        raise DeployError("%s must hold one JSON object" % path)
    return data


def first_config(settings):
    cfg = dict(settings)
    if not cfg.get("ap_password") and not cfg.get("ap_open"):
        cfg["ap_password"] = make_password()
    config = firmware_module("app.config")
    if config is not None:
        errors = config.validate(cfg)
        if errors:
            raise DeployError("settings: " + "; ".join(
                "%s %s" % (k, errors[k]) for k in sorted(errors)))
    return cfg


def ap_name(mac_hex, cfg):
    portal = firmware_module("app.portal")
    if portal is not None and hasattr(portal, "ap_name"):
        try:
            return portal.ap_name(mac_hex)
        except Exception:
            pass
    return "HAN-" + mac_hex[-4:].upper()


def wifi_qr_text(ssid, password):
    portal = firmware_module("app.portal")
    if portal is not None and hasattr(portal, "wifi_qr_text"):
        try:
            return portal.wifi_qr_text(ssid, password)
        except Exception:
            pass

    def esc(s):
        return "".join("\\" + c if c in '\\;,:"' else c for c in s)
    if not password:
        return "WIFI:T:nopass;S:%s;;" % esc(ssid)
    return "WIFI:T:WPA;S:%s;P:%s;;" % (esc(ssid), esc(password))


def print_qr(text):
    try:
        import qrcode
    except ImportError:
        print("(install the qrcode package for a QR code here)")
        return
    qr = qrcode.QRCode(border=2)
    qr.add_data(text)
    qr.make(fit=True)
    qr.print_ascii(invert=True)


def check_modules(files):
    # The han core (no I/O, so it imports anywhere) and the config module.
    mods = []
    for rel in files:
        if rel.startswith("han/") and rel.endswith((".mpy", ".py")) and rel.count("/") == 1:
            name = rel[4:].rsplit(".", 1)[0]
            if name != "compat" and not name.endswith("_cpython"):  # CPython-only twins
                mods.append("han" if name == "__init__" else "han." + name)
    if "app/config.mpy" in files or "app/config.py" in files:
        mods.append("app.config")
    return mods


def deploy(board_name, port, settings_path=None, reset_config=False, do_build=True,
           mpremote=None, verbose=False, config_only=False, build_dir=None):
    # config_only: for an image with the application frozen in (make firmware): copy only
    # board.json and the configuration, and remove app/ and han/ copies that would shadow
    # the frozen modules.
    board = build.load_board(board_name)
    host = board.get("chip") == "host"
    settings = load_settings(settings_path)
    first_config(settings)  # refuse bad settings before touching the device
    out = build_dir or os.path.join(ROOT, "build", board_name)
    if do_build and not build_dir:
        build.build(board_name, quiet=True)
    if not os.path.isdir(out):
        raise DeployError("nothing built in %s: run make build BOARD=%s" % (out, board_name))
    built = local_files(out)
    files = {"board.json": built["board.json"]} if config_only else built
    dev = Device(port, resume=host, mpremote=mpremote, verbose=verbose)

    if not host:
        enter_safe_mode(dev)
    roots = [r for r in files if "/" not in r]
    survey = dev.exec(SURVEY % (PACKAGES, roots, CONFIG_FILE, MARK))
    stale = []
    for pkg, names in sorted(survey["pkgs"].items()):
        for n in names or ():
            if "%s/%s" % (pkg, n) not in files:
                stale.append("%s/%s" % (pkg, n))
    # a frozen image's packages must not be shadowed, not even by an empty folder
    if config_only:
        dev.exec(PREPARE % ((), stale, PACKAGES, MARK))
    else:
        dev.exec(PREPARE % (PACKAGES, stale, (), MARK))
    if stale:
        print("removed from the device (not in this build): " + ", ".join(stale))

    cfg, wrote_config = None, False
    if survey["config"] is not None and not reset_config:
        try:
            cfg = json.loads(survey["config"])
        except ValueError:
            cfg = {}
        print("kept the device's configuration (RESET_CONFIG=1 replaces it)")
    else:
        cfg = first_config(settings)
        wrote_config = True

    with tempfile.TemporaryDirectory() as tmp:
        to_check = dict(files)
        if wrote_config:
            p = os.path.join(tmp, CONFIG_FILE)
            with open(p, "w") as f:
                json.dump(cfg, f)
            to_check[CONFIG_FILE] = p
        args, copied = [], []
        for rel, full in to_check.items():
            if survey["sha"].get(rel) != sha256(full):  # unchanged files stay
                args += ["cp", full, ":" + rel, "+"]
                copied.append(rel)
        if args:
            dev.run(*args[:-1], timeout=600)
        got = parse_sha256sum(dev.run("fs", "sha256sum", *[":" + r for r in to_check]).stdout)
        bad = [r for r, p in to_check.items() if got.get(r) != sha256(p)]
    if bad:
        raise DeployError("hash mismatch after copying: " + ", ".join(bad))
    total = sum(os.path.getsize(p) for p in files.values())
    print("copied %d changed of %d files (%d bytes in all) to %s, all sha256 sums match%s" % (
        len([c for c in copied if c in files]), len(files), total, port,
        ", wrote a first " + CONFIG_FILE if wrote_config else ""))

    chk = dev.exec(CHECK % (check_modules(built), MARK))
    if chk["failed"]:
        raise DeployError("modules the device cannot import: " + "; ".join(
            "%s (%s)" % kv for kv in sorted(chk["failed"].items())))
    print("device imports %d modules: ok" % len(chk["ok"]))
    if host:
        print("host board: no reset. Run it from the port's directory with "
              "HAN_BOARD_FILE=board.json HAN_DATA=. micropython main.py")
    else:
        dev.run("exec", "import os\ntry:\n os.remove('nomain')\nexcept OSError:\n pass",
                check=False)
        dev.run("reset", check=False, timeout=30)
        print("device reset")
    show_setup(chk.get("mac") or "", cfg, chk.get("mac_error"))
    return {"files": files, "config": cfg, "mac": chk.get("mac"), "wrote_config": wrote_config}


def show_setup(mac, cfg, mac_error=None):
    if not mac:
        print("could not read the MAC (%s); the setup network is HAN-<last 4 hex digits of the MAC>"
              % (mac_error or "unknown"))
        return
    ssid = ap_name(mac, cfg)
    if cfg.get("wifi_ssid") and cfg.get("mqtt_host"):
        print("configured for Wi-Fi %r and MQTT %s: the setup network opens only when that fails"
              % (cfg["wifi_ssid"], cfg["mqtt_host"]))
    print("setup network: %s" % ssid)
    pw = cfg.get("ap_password", "")
    if cfg.get("ap_open"):
        print("password: (none, the network is open)")
    elif not pw:
        print("password: made by the device at first boot (see `mpremote cat :%s`)" % CONFIG_FILE)
        return
    else:
        print("password: %s" % pw)
    print_qr(wifi_qr_text(ssid, "" if cfg.get("ap_open") else pw))


def main(argv=None):
    env = os.environ.get
    ap = argparse.ArgumentParser(description="copy the application to a device with mpremote")
    ap.add_argument("board")
    ap.add_argument("--port", default=env("PORT", ""))
    ap.add_argument("--settings", default=env("SETTINGS", os.path.join(ROOT, "settings.local.json")))
    ap.add_argument("--reset-config", action="store_true",
                    default=env("RESET_CONFIG", "") not in ("", "0"))
    ap.add_argument("--no-build", action="store_true")
    ap.add_argument("--build-dir", default=env("DEPLOY_DIR", ""),
                    help="deploy this already built tree instead of building build/<board>")
    ap.add_argument("--config-only", action="store_true",
                    default=env("FROZEN", "") not in ("", "0"),
                    help="the device runs an image with the application frozen in")
    ap.add_argument("-v", "--verbose", action="store_true")
    a = ap.parse_args(argv)
    if not a.port:
        print("deploy: no PORT given, for example PORT=/dev/ttyUSB0, PORT=/dev/ttyACM0 or "
              "PORT=socket://127.0.0.1:17777", file=sys.stderr)
        return 2
    try:
        deploy(a.board, a.port, a.settings, a.reset_config, not a.no_build, verbose=a.verbose,
               config_only=a.config_only, build_dir=a.build_dir or None)
    except (DeployError, build.BuildError) as e:
        print("deploy: " + str(e), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
