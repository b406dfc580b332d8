# `make deploy` for real against the MicroPython unix port behind a pty (socat), as
# micropython.md section 10.4 describes: files arrive, hashes match, a first configuration
# is written and then kept, stale modules go, and the deployed application runs.
import hashlib
import json
import os
import re
import signal
import subprocess
import time

import pytest

import build
import deploy
from conftest import MICROPYTHON, ROOT

pytestmark = pytest.mark.skipif(not os.path.exists("/usr/bin/socat")
                                and not subprocess.run(["which", "socat"]).returncode == 0,
                                reason="socat is not installed")


def start_unix_device(tmp_path, env=None):
    # The unix port's REPL on a pty; its cwd (the "device filesystem") is tmp_path/fs.
    fs = tmp_path / "fs"
    fs.mkdir()
    link = str(tmp_path / "ttyHAN")
    proc = subprocess.Popen(
        ["socat", "pty,link=%s,raw,echo=0" % link,
         "EXEC:%s,pty,raw,echo=0,stderr" % MICROPYTHON],
        cwd=str(fs), start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        env=env)
    for _ in range(100):
        if os.path.exists(link):
            break
        time.sleep(0.05)
    return proc, link, fs


def stop(proc):
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    proc.wait(timeout=10)


@pytest.fixture
def unix_device(tmp_path):
    proc, link, fs = start_unix_device(tmp_path)
    yield link, fs
    stop(proc)


def make_deploy(port, *args, build_dir=None):
    # DEPLOY_DIR: a tree built by this test, so a concurrent `make build` cannot race it
    extra = ["DEPLOY_DIR=" + build_dir] if build_dir else []
    return subprocess.run(["make", "-s", "-o", ".venv/.stamp", "deploy", "BOARD=host",
                           "PORT=" + port, *extra, *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)


def sha(path):
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


SMOKE = """
import json, binascii
from app import config
cfg, problem = config.load("config.json")
with open("board.json") as f:
    board = json.load(f)
from han.reading import Reading
from han.decoder import Decoder
data = binascii.unhexlify("%s")
rd = Reading()
dec = Decoder(rd)
pos = 0
while True:
    pos = dec.feed(data, pos, len(data))
    if dec.ready or pos >= len(data):
        break
dec.flush()
print(json.dumps({"problem": problem, "board": board["name"], "ssid": cfg["wifi_ssid"],
                  "frames": dec.counters[1], "file": config.__file__}))
"""


def test_make_deploy_to_the_unix_port(unix_device, tmp_path):
    port, fs = unix_device
    settings = tmp_path / "settings.local.json"
    settings.write_text(json.dumps({"wifi_ssid": "home", "wifi_password": "secret-pw",
                                    "mqtt_host": "192.0.2.10"}))
    build_dir, _ = build.build("host", out=str(tmp_path / "build"), quiet=True)
    r = make_deploy(port, "SETTINGS=%s" % settings, build_dir=build_dir)
    assert r.returncode == 0, r.stderr + r.stdout
    out = r.stdout

    # every built file arrived intact
    files = deploy.local_files(build_dir)
    assert "main.py" in files and "board.json" in files and "app/config.mpy" in files
    for rel, local in files.items():
        assert sha(fs / rel) == sha(local), rel
    assert "all sha256 sums match" in out

    # a first configuration: random setup password plus the local settings
    cfg = json.loads((fs / "config.json").read_text())
    assert cfg["wifi_ssid"] == "home" and cfg["mqtt_host"] == "192.0.2.10"
    assert len(cfg["ap_password"]) >= 12
    assert "password: %s" % cfg["ap_password"] in out
    m = re.search(r"setup network: (HAN-[0-9A-F]{4})", out)
    assert m, out
    assert "█" in out or "▀" in out  # the QR code

    # the deployed application runs from the device directory
    vec = [json.loads(l) for l in open(os.path.join(ROOT, "host_tests", "vectors", "frames.jsonl"))
           if '"hass-aidon-list2"' in l][0]
    run = subprocess.run([MICROPYTHON, "-c", SMOKE % vec["hex"]], cwd=str(fs),
                         env=dict(os.environ, MICROPYPATH=".frozen"), capture_output=True,
                         text=True, timeout=60)
    assert run.returncode == 0, run.stdout + run.stderr
    res = json.loads(run.stdout.strip().splitlines()[-1])
    assert res["problem"] is None and res["board"] == "host" and res["ssid"] == "home"
    assert res["frames"] == 1 and res["file"].endswith("config.mpy")

    # deploying again keeps the device's configuration and removes modules not in the build
    (fs / "app" / "stale.py").write_text("raise ImportError\n")
    r2 = make_deploy(port, "SETTINGS=%s" % settings, build_dir=build_dir)
    assert r2.returncode == 0, r2.stderr
    assert "kept the device's configuration" in r2.stdout
    assert "app/stale.py" in r2.stdout and not (fs / "app" / "stale.py").exists()
    assert json.loads((fs / "config.json").read_text()) == cfg

    # RESET_CONFIG=1 writes a new one
    r3 = make_deploy(port, "RESET_CONFIG=1", "SETTINGS=%s" % (tmp_path / "none.json"),
                     build_dir=build_dir)
    assert r3.returncode == 0, r3.stderr
    cfg3 = json.loads((fs / "config.json").read_text())
    assert cfg3["ap_password"] != cfg["ap_password"] and "wifi_ssid" not in cfg3


def test_bad_settings_are_refused_before_copying(unix_device, tmp_path):
    port, fs = unix_device
    settings = tmp_path / "s.json"
    settings.write_text(json.dumps({"mqtt_port": "1883", "wifi_sid": "typo"}))
    r = make_deploy(port, "SETTINGS=%s" % settings)
    assert r.returncode != 0
    assert "mqtt_port" in r.stderr and "wifi_sid" in r.stderr
    assert not (fs / "config.json").exists() and not (fs / "main.py").exists()


def test_deploy_without_port():
    r = subprocess.run(["make", "-s", "-o", ".venv/.stamp", "deploy", "BOARD=host"], cwd=ROOT,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode != 0 and "no PORT given" in r.stderr


def test_password_and_wifi_qr_text():
    pw = deploy.make_password()
    assert len(pw) >= 12 and pw.isalnum() and not set(pw) & set("0O1lI")
    assert len({deploy.make_password() for _ in range(20)}) == 20
    t = deploy.wifi_qr_text("HAN-A1B2", "pa;ss")
    assert t.startswith("WIFI:") and "S:HAN-A1B2;" in t and "pa\\;ss" in t
    assert deploy.parse_sha256sum("sha256sum :a\n" + "ab" * 32 + "\n") == {"a": "ab" * 32}


def test_frozen_image_gets_only_profile_and_config(tmp_path):
    # A "frozen" application: the host build on MICROPYPATH stands in for the frozen modules.
    frozen, _ = build.build("host", out=str(tmp_path / "frozen"), quiet=True)
    env = dict(os.environ, MICROPYPATH=".frozen:" + frozen)
    proc, port, fs = start_unix_device(tmp_path, env)
    try:
        (fs / "app").mkdir()
        (fs / "app" / "config.py").write_text("raise ImportError('shadow')\n")
        r = make_deploy(port, "FROZEN=1", "SETTINGS=%s" % (tmp_path / "none.json"),
                        build_dir=frozen)
        assert r.returncode == 0, r.stderr + r.stdout
        assert sorted(os.listdir(fs)) == ["board.json", "config.json"]
        assert "device imports" in r.stdout and "setup network: HAN-" in r.stdout
    finally:
        stop(proc)


class FakeDevice:
    # Answers like mpremote would: the safe-mode script says whether main.py exists.
    def __init__(self, installed, port):
        self.installed = installed
        self.port = port
        self.calls = []

    def run(self, *args, check=True, timeout=0):
        self.calls.append(args)

        class R:
            returncode = 0
            stdout = deploy.MARK + ("true" if self.installed else "false") + "\n"
        return R()


def test_running_device_is_restarted_into_safe_mode(monkeypatch, tmp_path):
    import time as _time

    monkeypatch.setattr(_time, "sleep", lambda s: None)
    port = tmp_path / "ttyACM0"
    port.write_text("")
    dev = FakeDevice(True, str(port))
    deploy.enter_safe_mode(dev)
    assert 'open("nomain", "w")' in dev.calls[0][1] and "machine.reset()" in dev.calls[0][1]
    assert dev.calls[1] == ("exec", "print(1)")
    fresh = FakeDevice(False, str(port))
    deploy.enter_safe_mode(fresh)
    assert len(fresh.calls) == 1
