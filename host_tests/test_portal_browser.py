"""The setup portal in a real headless Chromium, as a phone on the setup network would use it.

Chromium uses the portal's HTTP port as its proxy, so every URL it opens (a probe URL of any
host, then http://192.168.4.1:<port>/) reaches the portal, which is what the captive DNS
achieves on the access point. The portal runs on the MicroPython unix port (PortalProc).
Screenshots go to artifacts/ (git-ignored); docs/portal*.png are written when missing or
when HAN_UPDATE_DOCS=1.
"""
import json
import os
import shutil
import socket
import tempfile
import time

import pytest

from conftest import ROOT
from test_portal import PortalProc

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
ARTIFACTS = os.path.join(ROOT, "artifacts")

pytestmark = pytest.mark.skipif(not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)),
                                reason="chromium and chromedriver are needed (make system-deps)")

INJECT = '<b id="inj">x</b>'  # an access point name that tries to become markup
SCAN = [["HomeNet", -48, True], ["Neighbour", -75, True], [INJECT, -60, False],
        ["HomeNet", -70, True], ["", -40, True]]
START = {"ap_password": "setup-pass-42", "mqtt_password": "kept-mqtt-secret"}


@pytest.fixture(scope="module")
def portal(tmp_path_factory):
    p = PortalProc(tmp_path_factory.mktemp("portal_browser"), cfg=START, scan=SCAN)
    yield p
    p.stop()


@pytest.fixture(scope="module")
def browser(portal):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="han-chromium-")
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for a in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
              "--disable-background-networking", "--disable-component-update", "--disable-sync",
              "--disable-dev-shm-usage", "--user-data-dir=" + profile, "--window-size=420,900",
              "--proxy-server=http://127.0.0.1:%d" % portal.http_port,
              "--disable-client-side-phishing-detection", "--no-default-browser-check",
              "--disable-features=HttpsUpgrades,HttpsFirstBalancedModeAutoEnable,"
              "AutofillServerCommunication,PasswordLeakDetection,OptimizationHints"):
        opts.add_argument(a)
    opts.add_experimental_option("prefs", {"credentials_enable_service": False,
                                           "profile.password_manager_enabled": False,
                                           "autofill.profile_enabled": False})
    drv = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    drv.set_page_load_timeout(15)
    drv.implicitly_wait(0)  # pages are complete once loaded; missing elements fail at once
    yield drv
    drv.quit()
    shutil.rmtree(profile, ignore_errors=True)


def _shot(drv, name):
    os.makedirs(ARTIFACTS, exist_ok=True)
    h = drv.execute_script("return document.documentElement.scrollHeight")
    drv.set_window_size(420, min(max(h + 160, 400), 4000))  # the whole page, no scrollbar
    path = os.path.join(ARTIFACTS, name)
    drv.save_screenshot(path)
    drv.set_window_size(420, 900)
    doc = os.path.join(ROOT, "docs", name)
    if os.environ.get("HAN_UPDATE_DOCS") == "1" or not os.path.exists(doc):
        shutil.copyfile(path, doc)
    return path


def _open_form(drv, portal):
    drv.get(portal.url)
    _loaded(drv)
    assert drv.find_element("id", "setup")


def _set(drv, field, value):
    # set like a user typing, but also for values a user cannot type (control chars, huge)
    el = drv.find_element("id", field)
    drv.execute_script("arguments[0].value = arguments[1]", el, value)


def _select(drv, field, value):
    from selenium.webdriver.support.ui import Select

    Select(drv.find_element("id", field)).select_by_value(value)


def _fill_valid(drv):
    drv.find_element("css selector", 'input[name=wifi_ssid][value="HomeNet"]').click()
    _set(drv, "wifi_password", "home-wifi-pw")
    _set(drv, "mqtt_host", "192.168.1.10")
    _set(drv, "mqtt_port", "8883")
    _set(drv, "mqtt_user", "meter")


def _submit(drv, button="save"):
    drv.execute_script("window.hanOld = 1")  # gone once the next page has replaced this one
    drv.find_element("id", button).click()
    _loaded(drv)


def _loaded(drv):
    from selenium.common.exceptions import WebDriverException
    from selenium.webdriver.support.ui import WebDriverWait

    def ready(d):
        try:
            return d.execute_script("return !window.hanOld && document.readyState == 'complete'")
        except WebDriverException:  # between two documents
            return False

    WebDriverWait(drv, 10, poll_frequency=0.05).until(ready)


def test_probe_opens_portal_then_save(portal, browser):
    drv = browser
    drv.get("http://connectivitycheck.gstatic.com/generate_204")
    assert drv.current_url == portal.url  # the 302 was followed to the portal
    assert drv.title == "HAN-A1B2 setup"
    names = [e.get_attribute("value") for e in drv.find_elements("css selector", "input[name=wifi_ssid]")]
    assert names == ["HomeNet", INJECT, "Neighbour"]  # strongest first, one each, no hidden
    assert drv.find_elements("id", "inj") == []  # shown as text, not markup
    shown = [e.text for e in drv.find_elements("css selector", "label.c span")]
    assert shown == ["HomeNet", INJECT, "Neighbour"]
    _shot(drv, "portal.png")

    drv.find_element("css selector", 'input[name=wifi_ssid][value="HomeNet"]').click()
    drv.find_element("id", "wifi_password").send_keys("home-wifi-pw")
    host = drv.find_element("id", "mqtt_host")
    host.send_keys("192.168.1.10")
    port = drv.find_element("id", "mqtt_port")
    port.clear()
    port.send_keys("8883")
    drv.find_element("id", "mqtt_user").send_keys("meter")
    drv.find_element("id", "mqtt_tls").click()  # off -> on
    prefix = drv.find_element("id", "mqtt_prefix")
    prefix.clear()
    prefix.send_keys("home/han")
    drv.find_element("id", "ha_discovery").click()  # on -> off
    _select(drv, "meter_protocol", "hdlc")
    _select(drv, "meter_baud", "2400")
    _select(drv, "meter_parity", "even")
    _select(drv, "meter_invert", "yes")
    drv.find_element("id", "meter_key").send_keys("00112233445566778899AABBCCDDEEFF")
    drv.find_element("id", "meter_auth_key").send_keys("ffeeddccbbaa99887766554433221100")
    drv.find_element("id", "ap_password").send_keys("new-setup-pw")
    _submit(drv)

    assert drv.find_element("id", "saved").text == "Saved"
    assert drv.find_element("id", "name").text == "HAN-A1B2"
    assert drv.find_element("id", "ssid").text == "HomeNet"
    assert drv.find_element("id", "broker").text == "192.168.1.10:8883 (TLS)"
    _shot(drv, "portal-saved.png")
    cfg = portal.config()
    expect = {"wifi_ssid": "HomeNet", "wifi_password": "home-wifi-pw", "mqtt_host": "192.168.1.10",
              "mqtt_port": 8883, "mqtt_user": "meter", "mqtt_password": "kept-mqtt-secret",
              "mqtt_tls": True, "mqtt_prefix": "home/han", "ha_discovery": False,
              "meter_protocol": "hdlc", "meter_baud": 2400, "meter_parity": "even",
              "meter_invert": "yes", "meter_key": "00112233445566778899AABBCCDDEEFF",
              "meter_auth_key": "ffeeddccbbaa99887766554433221100",
              "ap_password": "new-setup-pw", "ap_open": False}
    for k, v in expect.items():
        assert cfg[k] == v, k
    deadline = time.time() + 5
    while "SAVED" not in portal.lines and time.time() < deadline:
        time.sleep(0.05)
    assert "SAVED" in portal.lines  # poll() reported it: the main loop would restart now
    for secret in ("home-wifi-pw", "new-setup-pw", "kept-mqtt-secret", "00112233445566778899"):
        assert secret not in "\n".join(portal.lines)


def test_form_after_save_shows_no_secrets(portal, browser):
    _open_form(browser, portal)
    src = browser.page_source
    for secret in ("home-wifi-pw", "new-setup-pw", "kept-mqtt-secret", "00112233445566778899"):
        assert secret not in src
    for field in ("wifi_password", "mqtt_password", "meter_key", "meter_auth_key", "ap_password"):
        el = browser.find_element("id", field)
        assert el.get_attribute("value") == ""


BAD = [
    ("wifi_ssid_hidden", "x" * 33, "wifi_ssid"),
    ("wifi_ssid_hidden", "å" * 17, "wifi_ssid"),  # 17 characters, 34 bytes
    ("wifi_ssid_hidden", '<img src=x onerror="window.pwned=1"><b id="inj2">' + "y" * 20, "wifi_ssid"),
    ("wifi_password", "short", "wifi_password"),
    ("mqtt_host", "", "mqtt_host"),
    ("mqtt_port", "70000", "mqtt_port"),
    ("mqtt_port", "http", "mqtt_port"),
    ("mqtt_user", "tab\there", "mqtt_user"),
    ("mqtt_prefix", "han/#", "mqtt_prefix"),
    ("meter_key", "00112233445566778899AABBCCDDEEF", "meter_key"),
    ("meter_auth_key", "not-hex-not-hex-not-hex-not-hex!", "meter_auth_key"),
    ("ap_password", "abc", "ap_password"),
]


def test_invalid_submissions_show_errors_and_keep_config(portal, browser):
    drv = browser
    before = portal.config_bytes()
    for field, value, shown in BAD:
        _open_form(drv, portal)
        _fill_valid(drv)
        _set(drv, field, value)
        _submit(drv)
        boxes = drv.find_elements("id", "errors")
        assert boxes, (field, value, drv.find_element("tag name", "body").text[:300], portal.lines[-5:])
        box = boxes[0]
        assert "Not saved." in box.text, (field, value)
        assert drv.find_elements("id", "e_" + shown), (field, value, box.text)
        assert drv.find_elements("id", "inj2") == []
        assert drv.execute_script("return window.pwned") is None
        # what was typed comes back (escaped), secrets do not
        assert drv.find_element("id", "wifi_password").get_attribute("value") == ""
        assert drv.find_element("id", "mqtt_host").get_attribute("value") == (
            value if field == "mqtt_host" else "192.168.1.10")
        assert portal.config_bytes() == before, (field, value)
    # the injected name is echoed back as text in the hidden-network field
    _open_form(drv, portal)
    _fill_valid(drv)
    _set(drv, "wifi_ssid_hidden", BAD[2][1])
    _submit(drv)
    assert drv.find_element("id", "wifi_ssid_hidden").get_attribute("value") == BAD[2][1]


def test_oversized_submission_is_refused(portal, browser):
    drv = browser
    before = portal.config_bytes()
    _open_form(drv, portal)
    _fill_valid(drv)
    _set(drv, "mqtt_user", "u" * 5000)
    _submit(drv)
    assert "413" in drv.find_element("tag name", "body").text
    assert portal.config_bytes() == before


def test_rescan_and_status(portal, browser):
    drv = browser
    scans = portal.record()["scans"]
    _open_form(drv, portal)
    _submit(drv, "rescan")
    assert drv.find_element("id", "setup")
    assert portal.record()["scans"] == scans + 1
    drv.get("http://192.168.4.1:%d/status" % portal.http_port)
    text = drv.find_element("id", "status").text
    assert "HAN-A1B2" in text and "Meter" in text and "Broker" in text


def test_slow_clients_do_not_block_a_browser(portal, browser):
    socks = []
    for i in range(8):
        s = socket.create_connection(("127.0.0.1", portal.http_port))
        if i % 2:
            s.sendall(b"POST /save HTTP/1.1\r\nContent-Length: 4000\r\n\r\nwifi")  # body never ends
        socks.append(s)
    t = time.time()
    _open_form(browser, portal)
    assert time.time() - t < 3
    for s in socks:
        s.close()


def test_heap_while_serving(portal, browser):
    _open_form(browser, portal)
    heap = portal.heap()
    os.makedirs(ARTIFACTS, exist_ok=True)
    with open(os.path.join(ARTIFACTS, "portal-heap.json"), "w") as f:
        json.dump(heap, f, indent=1)
    assert heap["peak_live"] - heap["idle_alloc"] < 24 * 1024
