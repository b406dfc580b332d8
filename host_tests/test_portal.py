"""Setup portal on the real MicroPython unix port: AP record, captive DNS, HTTP edge cases.

The portal runs as tools/run_portal.py in a MicroPython subprocess with the host board, a
temporary config directory and free ports; these tests talk to it with raw sockets and
dnspython. The browser flows are in test_portal_browser.py, which reuses PortalProc.
"""
import json
import os
import socket
import subprocess
import tempfile
import threading
import time

import pytest

from conftest import MICROPYTHON, ROOT

AP_IP = "192.168.4.1"
HEAP = os.environ.get("HAN_PORTAL_HEAP", "96k")  # a cap, so a leak fails the tests
FROM_SOURCE = os.environ.get("HAN_PORTAL_SOURCE") == "1"  # else .mpy, as deployed


PORTAL_MODULES = ("__init__", "config", "net", "dns", "http", "portal", "portal_form", "portal_page")
_MPY_DIR = []


def mpy_lib():
    """The portal's modules compiled with mpy-cross into a temp dir (once per session), as they
    are deployed: compiling source on the device would need far more heap than running it."""
    if not _MPY_DIR:
        lib = tempfile.mkdtemp(prefix="han-portal-mpy-")
        os.makedirs(os.path.join(lib, "app"))
        cross = os.path.join(os.path.dirname(MICROPYTHON), "mpy-cross")
        for m in PORTAL_MODULES:
            subprocess.run([cross, "-o", os.path.join(lib, "app", m + ".mpy"),
                            os.path.join(ROOT, "firmware", "app", m + ".py")], check=True)
        _MPY_DIR.append(lib)
    return _MPY_DIR[0]


def free_port(kind=socket.SOCK_STREAM):
    s = socket.socket(socket.AF_INET, kind)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class PortalProc:
    """tools/run_portal.py on MicroPython, with its config, scan list and AP record in tmp."""

    def __init__(self, tmp, cfg=None, scan=None, stay=True):
        self.dir = str(tmp)
        self.cfg_path = os.path.join(self.dir, "config.json")
        self.record_path = os.path.join(self.dir, "net.json")
        self.stats_path = os.path.join(self.dir, "heap.json")
        self.http_port = free_port()
        self.dns_port = free_port(socket.SOCK_DGRAM)
        if cfg is not None:
            full = {"http_port": self.http_port, "dns_port": self.dns_port}
            full.update(cfg)
            with open(self.cfg_path, "w") as f:
                json.dump(full, f)
        path = ".frozen:firmware" if FROM_SOURCE else ".frozen:%s:firmware" % mpy_lib()
        env = dict(os.environ, MICROPYPATH=path, HAN_NET_RECORD=self.record_path)
        if scan is not None:
            scan_path = os.path.join(self.dir, "scan.json")
            with open(scan_path, "w") as f:
                json.dump(scan, f)
            env["HAN_SCAN_FILE"] = scan_path
        heap = "4m" if FROM_SOURCE else HEAP
        cmd = [MICROPYTHON, "-X", "heapsize=" + heap, "tools/run_portal.py", "--config",
               self.cfg_path, "--http-port", str(self.http_port), "--dns-port", str(self.dns_port),
               "--stats", self.stats_path]
        if stay:
            cmd.append("--stay")
        self.lines = []
        self.proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        deadline = time.time() + 10
        while not any(line.startswith("READY") for line in self.lines):
            if self.proc.poll() is not None or time.time() > deadline:
                raise RuntimeError("portal did not start:\n" + "\n".join(self.lines))
            time.sleep(0.02)
        self.url = "http://%s:%d/" % (AP_IP, self.http_port)

    def _read(self):
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def record(self):
        with open(self.record_path) as f:
            return json.load(f)

    def config_bytes(self):
        with open(self.cfg_path, "rb") as f:
            return f.read()

    def config(self):
        return json.loads(self.config_bytes())

    def heap(self):
        time.sleep(1.1)  # run_portal writes the figures once a second
        with open(self.stats_path) as f:
            return json.load(f)

    def request(self, raw, timeout=5.0):
        """Send raw bytes, return everything the portal answers until it closes."""
        s = socket.create_connection(("127.0.0.1", self.http_port), timeout=timeout)
        try:
            s.sendall(raw)
            out = b""
            while True:
                try:
                    chunk = s.recv(4096)
                except ConnectionResetError:
                    break
                if not chunk:
                    break
                out += chunk
            return out
        finally:
            s.close()

    def get(self, path, host="example.com"):
        return self.request(("GET %s HTTP/1.1\r\nHost: %s\r\n\r\n" % (path, host)).encode())

    def page_token(self):
        page = self.get("/", "%s:%d" % (AP_IP, self.http_port)).decode()
        i = page.index('name="token" value="') + len('name="token" value="')
        return page[i : page.index('"', i)]

    def post(self, path, body, ctype="application/x-www-form-urlencoded"):
        head = "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n" % (
            path, AP_IP, ctype, len(body))
        return self.request(head.encode() + body)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def status_of(resp):
    return int(resp.split(b" ", 2)[1])


def header(resp, name):
    head = resp.split(b"\r\n\r\n", 1)[0].decode()
    for line in head.split("\r\n")[1:]:
        k, _, v = line.partition(":")
        if k.strip().lower() == name.lower():
            return v.strip()
    return None


STORED = {"ap_password": "setup-pass-42", "wifi_ssid": "OldNet", "wifi_password": "old-wifi-secret",
          "mqtt_host": "broker.lan", "mqtt_password": "old-mqtt-secret",
          "meter_key": "00112233445566778899AABBCCDDEEFF"}


@pytest.fixture(scope="module")
def portal(tmp_path_factory):
    p = PortalProc(tmp_path_factory.mktemp("portal"), cfg=STORED)
    yield p
    p.stop()


# -- the setup network ------------------------------------------------------------------------


def test_ap_record_wpa2_with_configured_password(portal):
    rec = portal.record()
    assert rec["ap"] == [{"ssid": "HAN-A1B2", "security": "wpa2", "password": "setup-pass-42"}]
    assert rec["scans"] == 1  # scanned once, before the AP came up


def test_ap_open_only_when_configured(tmp_path):
    p = PortalProc(tmp_path, cfg={"ap_open": True})
    try:
        assert p.record()["ap"] == [{"ssid": "HAN-A1B2", "security": "open", "password": ""}]
    finally:
        p.stop()


def test_first_boot_creates_and_keeps_a_password(tmp_path):
    p = PortalProc(tmp_path, cfg=None)  # no configuration file at all
    try:
        ap = p.record()["ap"][0]
        assert ap["ssid"] == "HAN-A1B2" and ap["security"] == "wpa2"
        assert len(ap["password"]) >= 12
        assert p.config()["ap_password"] == ap["password"]
        assert ap["password"] not in "\n".join(p.lines)  # not in the log
    finally:
        p.stop()


# -- captive DNS ------------------------------------------------------------------------------


def _dns(portal, name, rdtype):
    import dns.message
    import dns.query

    q = dns.message.make_query(name, rdtype)
    return dns.query.udp(q, "127.0.0.1", port=portal.dns_port, timeout=2)


def test_dns_answers_every_name_with_the_ap_address(portal):
    import dns.rcode
    import dns.rdatatype

    for name in ("connectivitycheck.gstatic.com", "captive.apple.com", "www.msftconnecttest.com",
                 "detectportal.firefox.com", "x7.some-random-name.example", "a.b.c.d.e.f"):
        r = _dns(portal, name, "A")
        assert r.rcode() == dns.rcode.NOERROR
        (rrset,) = r.answer
        assert rrset.rdtype == dns.rdatatype.A
        assert [rd.address for rd in rrset] == [AP_IP]
        assert str(rrset.name).rstrip(".") == name
    r = _dns(portal, "captive.apple.com", "AAAA")
    assert r.rcode() == dns.rcode.NOERROR and r.answer == []  # NODATA: the client uses IPv4


def test_dns_ignores_malformed_packets(portal):
    import dns.message

    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(0.3)
    good = dns.message.make_query("example.org", "A").to_wire()
    bad = [b"", b"\x00" * 5, good[:14], good[:2] + b"\x81\x80" + good[4:],  # a response
           good[:4] + b"\x00\x02" + good[6:],  # two questions claimed
           good[:12] + b"\xc0\x0c" + good[-4:],  # compression pointer in the question
           good[:12] + b"\x3f" + b"a" * 10]  # label runs past the end
    for pkt in bad:
        s.sendto(pkt, ("127.0.0.1", portal.dns_port))
        with pytest.raises(socket.timeout):
            s.recvfrom(512)
    s.sendto(good, ("127.0.0.1", portal.dns_port))
    reply = dns.message.from_wire(s.recvfrom(512)[0])
    assert reply.answer[0][0].address == AP_IP
    s.close()


# -- HTTP: probes, redirects, refusals ---------------------------------------------------------

PROBES = [("connectivitycheck.gstatic.com", "/generate_204"), ("www.google.com", "/gen_204"),
          ("clients3.google.com", "/generate_204"), ("captive.apple.com", "/hotspot-detect.html"),
          ("www.msftconnecttest.com", "/connecttest.txt"), ("www.msftncsi.com", "/ncsi.txt"),
          ("www.msftconnecttest.com", "/redirect"), ("detectportal.firefox.com", "/canonical.html"),
          ("detectportal.firefox.com", "/success.txt"), ("anything.example", "/some/page?x=1"),
          ("", "/generate_204")]


@pytest.mark.parametrize("host,path", PROBES)
def test_probe_urls_redirect_to_the_portal(portal, host, path):
    resp = portal.get(path, host)
    assert status_of(resp) == 302
    assert header(resp, "Location") == portal.url


def test_absolute_form_request_and_portal_page(portal):
    resp = portal.request(b"GET http://captive.apple.com/hotspot-detect.html HTTP/1.1\r\n"
                          b"Host: captive.apple.com\r\n\r\n")
    assert header(resp, "Location") == portal.url
    page = portal.get("/", "%s:%d" % (AP_IP, portal.http_port))
    assert status_of(page) == 200
    assert b"HAN-A1B2 setup" in page
    assert len(page) < 8000  # one small page


def test_secrets_never_sent_back(portal):
    page = portal.get("/", "%s:%d" % (AP_IP, portal.http_port))
    status = portal.get("/status", AP_IP)
    for k in ("ap_password", "wifi_password", "mqtt_password", "meter_key"):
        assert STORED[k].encode() not in page and STORED[k].encode() not in status
    assert b"stored; leave empty to keep" in page
    assert b"Content-Security-Policy: default-src 'none'" in page


def test_status_page(portal):
    page = portal.get("/status", AP_IP)
    assert status_of(page) == 200 and b"frames (host stand-in)" in page and b"Wi-Fi" in page


@pytest.mark.parametrize("raw,code", [
    (b"GARBAGE\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\nNo colon here\r\n\r\n", 400),
    (b"GET /\xff HTTP/1.1\r\n\r\n", 400),
    (b"CONNECT captive.apple.com:443 HTTP/1.1\r\n\r\n", 405),
    (b"DELETE / HTTP/1.1\r\n\r\n", 405),
    (b"GET / HTTP/1.1\r\nX-Big: " + b"a" * 3000 + b"\r\n\r\n", 431),
    (b"POST /save HTTP/1.1\r\nContent-Length: 10\r\nTransfer-Encoding: chunked\r\n\r\n", 411),
    (b"POST /save HTTP/1.1\r\nContent-Length: -5\r\n\r\n", 400),
    (b"POST /save HTTP/1.1\r\nContent-Type: text/plain\r\nContent-Length: 3\r\n\r\nabc", 415),
])
def test_malformed_requests_are_refused(portal, raw, code):
    before = portal.config_bytes()
    assert status_of(portal.request(raw)) == code
    assert portal.config_bytes() == before


def test_oversized_body_is_refused(portal):
    before = portal.config_bytes()
    body = b"token=" + portal.page_token().encode() + b"&mqtt_host=" + b"a" * 6000
    assert status_of(portal.post("/save", body)) == 413
    # announced as huge but never sent: refused at once, not waited for
    t = time.time()
    resp = portal.request(b"POST /save HTTP/1.1\r\nContent-Length: 99999999\r\n\r\n")
    assert status_of(resp) == 413 and time.time() - t < 2
    assert portal.config_bytes() == before


def test_form_without_token_is_refused(portal):
    before = portal.config_bytes()
    resp = portal.post("/save", b"wifi_ssid=Evil&mqtt_host=evil.example&token=wrong")
    assert status_of(resp) == 403
    assert portal.config_bytes() == before


def test_invalid_utf8_and_bad_escapes_are_field_errors(portal):
    before = portal.config_bytes()
    tok = portal.page_token().encode()
    resp = portal.post("/save", b"token=" + tok + b"&wifi_ssid=%C3%28&mqtt_host=%zzhost")
    assert status_of(resp) == 200
    text = resp.decode("utf-8", "replace")
    assert "Not saved." in text and "not valid UTF-8" in text and "not properly encoded" in text
    assert portal.config_bytes() == before


def test_slow_and_half_open_clients_do_not_block(portal):
    idle = [socket.create_connection(("127.0.0.1", portal.http_port)) for _ in range(4)]
    slow = []
    for _ in range(6):
        s = socket.create_connection(("127.0.0.1", portal.http_port))
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")  # never finishes its head
        slow.append(s)
    t = time.time()
    resp = portal.get("/", "%s:%d" % (AP_IP, portal.http_port))
    assert status_of(resp) == 200 and time.time() - t < 1.5
    for s in idle + slow:
        s.close()


# -- pure helpers (CPython; the same code runs in the subprocess above) -----------------------


def test_ap_name_and_password_and_qr():
    from app.portal import ap_name, new_ap_password, wifi_qr_text

    assert ap_name("a1b2c3d4e5f6") == "HAN-E5F6"
    pws = {new_ap_password() for _ in range(50)}
    assert len(pws) == 50
    for pw in pws:
        assert len(pw) == 14 and pw[4] == pw[9] == "-" and 8 <= len(pw) <= 63
    assert wifi_qr_text("HAN-E5F6", "abcd-efgh-jkmn") == "WIFI:T:WPA;S:HAN-E5F6;P:abcd-efgh-jkmn;;"
    assert wifi_qr_text('a;b,c:d\\e"', 'p;w') == 'WIFI:T:WPA;S:a\\;b\\,c\\:d\\\\e\\";P:p\\;w;;'
    assert wifi_qr_text("Open", "") == "WIFI:T:nopass;S:Open;;"


def test_new_ap_password_on_micropython():
    out = subprocess.run([MICROPYTHON, "-c", "from app.portal import new_ap_password as n; print(n())"],
                         cwd=ROOT, env=dict(os.environ, MICROPYPATH=".frozen:firmware"),
                         capture_output=True, text=True, check=True).stdout.strip()
    assert len(out) == 14 and out.count("-") == 2


def test_form_rules():
    from app import config
    from app.portal_form import apply, parse_form

    cfg = config.merged(STORED)
    base = (b"wifi_ssid=HomeNet&mqtt_host=b.lan&mqtt_port=1883&mqtt_prefix=han"
            b"&meter_protocol=auto&meter_baud=0&meter_parity=none&meter_invert=auto")

    def run(extra=b""):
        fields, bad = parse_form(base + extra)
        return apply(cfg, fields, bad)

    new, err = run()
    assert err == {}
    # empty secrets keep the stored value; clear_ removes an optional one
    assert new["wifi_password"] == "old-wifi-secret" and new["meter_key"] == STORED["meter_key"]
    new, err = run(b"&clear_meter_key=on&wifi_password=brand-new-pw")
    assert err == {} and new["meter_key"] == "" and new["wifi_password"] == "brand-new-pw"
    assert new["mqtt_tls"] is False and new["ha_discovery"] is False  # unticked boxes
    new, err = run(b"&meter_key=0011 2233 4455 6677 8899 aabb ccdd eeff")
    assert err == {} and new["meter_key"] == "00112233445566778899aabbccddeeff"
    cases = {
        b"&wifi_ssid_hidden=" + b"x" * 33: "wifi_ssid",
        b"&wifi_ssid_hidden=" + "å".encode() * 17: "wifi_ssid",  # 17 chars, 34 bytes
        b"&mqtt_port=0": "mqtt_port",
        b"&mqtt_port=65536": "mqtt_port",
        b"&mqtt_port=12a": "mqtt_port",
        b"&meter_baud=1234": "meter_baud",
        b"&meter_protocol=zigbee": "meter_protocol",
        b"&meter_key=00112233445566778899AABBCCDDEEFG": "meter_key",
        b"&meter_auth_key=0011": "meter_auth_key",
        b"&wifi_password=short": "wifi_password",
        b"&ap_password=abc": "ap_password",
        b"&mqtt_host=": "mqtt_host",
        b"&mqtt_host=a%20b": "mqtt_host",
        b"&mqtt_prefix=a/%23": "mqtt_prefix",
        b"&mqtt_user=%01x": "mqtt_user",
        b"&mqtt_user=" + b"u" * 300: "mqtt_user",
    }
    for extra, field in cases.items():
        new, err = run(extra)
        assert field in err, (extra, err)
    fields, bad = parse_form(b"&".join(b"f%d=1" % i for i in range(50)))
    assert "form" in bad


def test_half_open_and_stalled_clients_are_timed_out(portal):
    # a client that sends its request and shuts its side still gets the answer
    s = socket.create_connection(("127.0.0.1", portal.http_port), timeout=5)
    s.sendall(b"GET /generate_204 HTTP/1.1\r\nHost: a\r\n\r\n")
    s.shutdown(socket.SHUT_WR)
    assert status_of(s.recv(4096)) == 302
    s.close()
    # one that stalls half way through its head is closed at the deadline (8 s)
    t = time.time()
    s = socket.create_connection(("127.0.0.1", portal.http_port), timeout=12)
    s.sendall(b"POST /save HTTP/1.1\r\nContent-Le")
    assert s.recv(100) == b""  # closed by the portal
    assert 6 < time.time() - t < 11
    s.close()
