# The network seam: one small object for the station (joining the user's Wi-Fi) and the
# setup access point. On an ESP32 it wraps network.WLAN; on the host board it is a stand-in
# whose scan list is canned and whose AP requests are recorded to a JSON file for tests.
#
#   net = make_net(board)
#   net.mac_hex(); net.sta_connect(ssid, pw); net.sta_connected(); net.sta_status(); net.rssi(); net.ip()
#   net.scan() -> [(ssid, rssi, secure)]   strongest first; call before ap_start() and cache it
#   net.ap_start(ssid, pw, open_=False); net.ap_stop(); net.ap_ip(); net.bind_ip()
import json
import os

_DEFAULT_AP_IP = "192.168.4.1"
_MAX_SCAN = 20  # networks kept from a scan; a page with more is hard to use anyway

# wifi_err_reason_t values and MicroPython's own states (micropython.md section 5)
_STATUS_TEXT = {
    1000: "idle",
    1001: "connecting",
    1010: "connected",
    201: "network not found",
    202: "wrong password",
    200: "lost the access point (beacon timeout)",
    203: "association failed",
    204: "handshake timeout",
    15: "handshake timeout",
}


def make_net(board):
    if (board or {}).get("chip") == "host":
        return HostNet(board)
    return WlanNet(board)


def tidy_scan(entries):
    # [(ssid, rssi, secure)] -> one entry per name (the strongest), hidden ones dropped,
    # strongest first, at most _MAX_SCAN.
    best = {}
    for ssid, rssi, secure in entries:
        if not ssid:
            continue
        old = best.get(ssid)
        if old is None or rssi > old[1]:
            best[ssid] = (ssid, rssi, secure)
    out = sorted(best.values(), key=lambda e: -e[1])
    return out[:_MAX_SCAN]


class WlanNet:
    # ESP32: network.WLAN for both interfaces. Every call that can fail on a radio that is
    # busy or off is guarded, so the main loop never has to catch OSError from here.
    def __init__(self, board=None):
        import network

        self._network = network
        w = network.WLAN
        self.sta = w(getattr(w, "IF_STA", getattr(network, "STA_IF", 0)))
        self.ap = w(getattr(w, "IF_AP", getattr(network, "AP_IF", 1)))

    def mac_hex(self):
        import binascii

        return binascii.hexlify(self.sta.config("mac")).decode()

    def set_hostname(self, name):
        # must happen before the interface is activated (micropython.md section 5)
        try:
            self._network.hostname(name[:32])
        except (AttributeError, OSError, ValueError):
            pass

    def sta_connect(self, ssid, password):
        self.sta.active(True)
        try:
            self.sta.disconnect()
        except OSError:
            pass
        self.sta.connect(ssid, password or None)

    def sta_disconnect(self):
        try:
            self.sta.disconnect()
        except OSError:
            pass

    def sta_connected(self):
        return self.sta.isconnected()

    def sta_status(self):
        try:
            code = self.sta.status()
        except OSError:
            return "off"
        if not self.sta.active():
            return "off"
        return _STATUS_TEXT.get(code, "status %d" % code)

    def rssi(self):
        if not self.sta.isconnected():
            return None
        try:
            return self.sta.status("rssi")
        except (OSError, ValueError):
            return None

    def ip(self):
        return self.sta.ifconfig()[0] if self.sta.isconnected() else None

    def scan(self):
        self.sta.active(True)
        try:
            raw = self.sta.scan()
        except OSError:
            return []
        found = []
        for entry in raw:
            try:
                name = entry[0].decode()
            except UnicodeError:
                continue  # not UTF-8: cannot be shown or typed; the hidden-SSID field remains
            found.append((name, entry[3], entry[4] != 0))
        return tidy_scan(found)

    def ap_start(self, ssid, password, open_=False):
        net = self._network
        self.ap.active(True)
        w = net.WLAN
        if open_:
            mode = getattr(w, "SEC_OPEN", getattr(net, "AUTH_OPEN", 0))
            self._ap_config(ssid=ssid, security=mode)
        else:
            mode = getattr(w, "SEC_WPA2", getattr(net, "AUTH_WPA2_PSK", 3))
            self._ap_config(ssid=ssid, key=password, security=mode)
        try:
            self.ap.config(max_clients=4)
        except (OSError, ValueError):
            pass

    def _ap_config(self, **kw):
        try:
            self.ap.config(**kw)
        except (OSError, ValueError, TypeError):
            # firmware before "security" existed calls it authmode
            kw["authmode"] = kw.pop("security")
            self.ap.config(**kw)

    def ap_stop(self):
        self.ap.active(False)

    def ap_ip(self):
        return self.ap.ifconfig()[0] if self.ap.active() else _DEFAULT_AP_IP

    def bind_ip(self):
        # The portal listens on the AP address only, so it is never reachable from the
        # user's LAN while the station happens to be connected too.
        return self.ap_ip()


_DEFAULT_SCAN = (
    ("HomeNet", -48, True),
    ("HomeNet-5G", -60, True),
    ("Neighbour", -71, True),
    ("CafeGuest", -80, False),
)


class HostNet:
    # Host board stand-in. board["net"] (optional): {"scan_file", "record_file", "mac",
    # "ap_ip", "bind_ip"}; env HAN_SCAN_FILE, HAN_NET_RECORD and HAN_MAC override them.
    # The host's own network is "up", so the station connects whenever an SSID is given.
    def __init__(self, board=None):
        opts = (board or {}).get("net") or {}
        env = getattr(os, "getenv", lambda k: None)
        self._scan_file = env("HAN_SCAN_FILE") or opts.get("scan_file") or ""
        self._record_file = env("HAN_NET_RECORD") or opts.get("record_file") or ""
        self._mac = (env("HAN_MAC") or opts.get("mac") or "02000000a1b2").lower()
        self._ap_ip = opts.get("ap_ip") or _DEFAULT_AP_IP
        self._bind_ip = opts.get("bind_ip") or "127.0.0.1"
        self._ssid = ""
        self._ap = None
        self._record = {"ap": [], "ap_stop": 0, "sta": [], "scans": 0}

    def _save_record(self):
        if not self._record_file:
            return
        tmp = self._record_file + ".tmp"
        with open(tmp, "w") as f:
            f.write(json.dumps(self._record))
        os.rename(tmp, self._record_file)

    def mac_hex(self):
        return self._mac

    def set_hostname(self, name):
        pass

    def sta_connect(self, ssid, password):
        self._ssid = ssid
        # only the fact and the name: a password never goes into a file from here
        self._record["sta"].append({"ssid": ssid, "password_set": bool(password)})
        self._save_record()

    def sta_disconnect(self):
        self._ssid = ""

    def sta_connected(self):
        return bool(self._ssid)

    def sta_status(self):
        return "connected" if self._ssid else "idle"

    def rssi(self):
        return -55 if self._ssid else None

    def ip(self):
        return "127.0.0.1" if self._ssid else None

    def scan(self):
        self._record["scans"] += 1
        self._save_record()
        entries = _DEFAULT_SCAN
        if self._scan_file:
            try:
                with open(self._scan_file) as f:
                    entries = [(e[0], int(e[1]), bool(e[2])) for e in json.loads(f.read())]
            except (OSError, ValueError, IndexError, TypeError):
                entries = _DEFAULT_SCAN
        return tidy_scan(entries)

    def ap_start(self, ssid, password, open_=False):
        # What a test needs to check: the name, the security and the key the firmware asked
        # for. This file exists only on the host; a real device has no such record.
        self._ap = {"ssid": ssid, "security": "open" if open_ else "wpa2",
                    "password": "" if open_ else password}
        self._record["ap"].append(self._ap)
        self._save_record()

    def ap_stop(self):
        self._ap = None
        self._record["ap_stop"] += 1
        self._save_record()

    def ap_ip(self):
        return self._ap_ip

    def bind_ip(self):
        return self._bind_ip
