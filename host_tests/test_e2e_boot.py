# Boot paths of the real firmware on the unix port: first boot without a configuration
# (setup portal while metering), the button held at boot, safe mode, a crash exits non-zero,
# and secrets never reach the console.
import http.client
import json
import os
import socket
import time

from e2e_support import Firmware, Sim
from mqtt_support import Collector, broker, free_port  # noqa: F401  (pytest fixture)


def _get(port, path="/"):
    # As a phone on the setup network sees it: Host is the AP address (anything else is
    # answered with the captive-portal redirect).
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=3)
    c.request("GET", path, headers={"Host": "192.168.4.1:%d" % port})
    r = c.getresponse()
    body = r.read().decode("utf-8", "replace")
    c.close()
    return r.status, body


def _wait_http(port, timeout=10):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return True
        except OSError:
            time.sleep(0.05)
    return False


def test_first_boot_opens_the_portal_and_keeps_metering(tmp_path):
    http, dns = free_port(), free_port()
    data = tmp_path / "fw"
    data.mkdir()
    (data / "config.json").write_text(json.dumps({"http_port": http, "dns_port": dns}))
    record = tmp_path / "net.json"
    sim = Sim(tmp_path, ("avi-se-ell5-p1",), speed=20, interval=4)
    fw = Firmware(tmp_path, "pty:" + sim.link, config=False, diag_s=1,
                  env={"HAN_NET_RECORD": str(record)})
    try:
        line = fw.wait_line("Setup network:", 10)
        assert line, fw.output()
        name, pw = line.split("Setup network: ")[1].split("  password: ")
        saved = json.loads((data / "config.json").read_text())
        assert saved["ap_password"] == pw and len(pw) >= 8  # made at first boot and kept
        assert fw.wait_line("portal: setup network open (not configured)", 10), fw.output()
        assert _wait_http(http), fw.output()
        status, body = _get(http)
        assert status == 200 and "<form" in body
        ap = json.loads(record.read_text())["ap"][-1]
        assert ap["ssid"] == name and ap["security"] == "wpa2" and ap["password"] == pw
        # the meter is read all the while
        assert fw.wait_line("status: frames", 10)
        time.sleep(1.5)
        ok = [l for l in fw.output().splitlines() if "status: frames" in l]
        assert int(ok[-1].split("status: frames ")[1].split()[0]) >= 3, ok[-1]
        _, page = _get(http, "/status")
        assert "Meter frames" in page
        assert fw.alive and not fw.crashed()
    finally:
        fw.stop()
        sim.stop()
    # a second boot keeps the same setup password
    fw2 = Firmware(tmp_path, "none:", config=False, diag_s=1)
    try:
        assert fw2.wait_line("password: " + pw, 10), fw2.output()
    finally:
        fw2.stop()


def test_button_held_at_boot_opens_the_portal_beside_mqtt(broker, tmp_path):
    http, dns = free_port(), free_port()
    sim = Sim(tmp_path, ("avi-se-ell5-p1",), speed=20, interval=4)
    col = Collector(broker.host, broker.port, "han/#")
    fw = Firmware(tmp_path, "pty:" + sim.link, broker=broker,
                  cfg={"http_port": http, "dns_port": dns, "wifi_password": "wifi-secret-1",
                       "mqtt_password": "mqtt-secret-2", "mqtt_user": "u"},
                  env={"HAN_BUTTON": "held"})
    try:
        assert fw.wait_line("portal: setup network open (button)", 10), fw.output()
        assert _wait_http(http)
        assert _get(http)[0] == 200
    finally:
        fw.stop()
        sim.stop()
        col.close()
    out = fw.output()
    assert "wifi-secret-1" not in out and "mqtt-secret-2" not in out
    assert '"wifi_password": "(set)"' in out


def test_nomain_file_is_safe_mode(tmp_path):
    fw = Firmware(tmp_path, "none:", config=False)
    # created after the start? no: make the file first, then boot again
    fw.stop()
    open(os.path.join(fw.data, "nomain"), "w").close()
    fw = Firmware(tmp_path, "none:", config=False)
    assert fw.proc.wait(10) == 0
    assert "safe mode" in fw.output()


def test_a_crash_exits_non_zero_on_the_host(tmp_path):
    fw = Firmware(tmp_path, "none:", env={"HAN_BOARD_FILE": str(tmp_path / "missing.json")})
    assert fw.proc.wait(10) == 1
    assert "fatal error" in fw.output()
