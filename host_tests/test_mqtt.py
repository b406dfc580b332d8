# firmware/app/mqtt.py end to end (host only): the real MicroPython unix port runs app.mqtt
# with umqtt.simple against a real mosquitto on a free loopback port; paho-mqtt listens.
# Nothing is mocked. Fixtures and helpers: host_tests/mqtt_support.py.
import os
import socket
import threading
import time

import corpus
import pytest
from mqtt_support import MOSQUITTO_PASSWD, Broker, Collector, MpyDriver, broker  # noqa: F401

DEV = "han-a1b2c3"
BASE = "han/" + DEV + "/"
STATE = BASE + "state"
STATUS = BASE + "status"
DIAG = BASE + "diagnostics"
CFG_PREFIX = "homeassistant/sensor/" + DEV + "/"

ONE_PHASE = {
    "active_power_import": "1234",
    "active_power_export": "0",
    "reactive_power_import": "150",
    "active_energy_import": "62414155",
    "reactive_energy_export": "15319720",
    "voltage_l1": "228.9",
    "current_l1": "9.60",
    "power_factor": "0.98",
    "frequency": "50.01",
}
METER = {"meter_id": "7359992890497997", "meter_type": "6534", "list_id": "AIDON_V0001"}

# What Home Assistant must be told per quantity: (device_class, state_class, unit).
CLASSES = {
    "active_power_import": ("power", "measurement", "W"),
    "active_power_export": ("power", "measurement", "W"),
    "reactive_power_import": ("reactive_power", "measurement", "var"),
    "active_energy_import": ("energy", "total_increasing", "Wh"),
    "reactive_energy_export": ("reactive_energy", "total_increasing", "varh"),
    "voltage_l1": ("voltage", "measurement", "V"),
    "current_l1": ("current", "measurement", "A"),
    "power_factor": ("power_factor", "measurement", None),
    "frequency": ("frequency", "measurement", "Hz"),
}


def start(d, port, host="127.0.0.1", **cfg):
    # A Publisher in the driver with the real config defaults plus overrides; waits for it.
    over = {"mqtt_host": host, "mqtt_port": port, "mqtt_keepalive": 30}
    over.update(cfg)
    d("import app.mqtt as M\nfrom app.mqtt import Publisher\nfrom app.config import merged")
    d("cfg = merged(%r)" % over)
    d("pub = Publisher(cfg, %r, log=log, model='host test')" % DEV)


def connect(d):
    assert d("=run_until(lambda: pub.connected, 3000)") is not None, d.output()


def retained(host, port, topic_filter, settle=0.3):
    # What a subscriber arriving now gets from the broker's retained store.
    with Collector(host, port, topic_filter) as late:
        time.sleep(settle)
        return {m.topic: m for m in late.snapshot() if m.retain}


def test_state_discovery_availability_and_last_will(broker, tmp_path):
    host, port = broker
    with Collector(host, port, "#") as col, MpyDriver(tmp_path) as d:
        start(d, port)
        connect(d)
        d("rd = mk(%r, %r)" % (ONE_PHASE, METER))
        assert d("=pub.reading(rd, FakeDec(), ticks_ms())") is True
        d("run(300)")

        st = col.wait_for(lambda m: m.topic == STATE)
        assert st is not None, d.output()
        # exactly what the frame carried, canonical names, exact decimals (9.60 stays 9.60)
        assert st.payload.decode() == d("=export.state_json(rd)")
        body = st.json()
        assert {k: v for k, v in body.items() if k not in METER} == {
            k: float(v) if "." in v else int(v) for k, v in ONE_PHASE.items()}
        assert b'"current_l1":9.60' in st.payload and b'"voltage_l1":228.9' in st.payload
        assert b'"active_energy_import":62414155' in st.payload
        assert {k: body[k] for k in METER} == METER

        ret = retained(host, port, "#")
        assert ret[STATUS].payload == b"online"
        configs = {t[len(CFG_PREFIX):-len("/config")]: m for t, m in ret.items()
                   if t.startswith(CFG_PREFIX)}
        # only what the meter sent: no L2/L3, no export energy
        assert set(configs) == set(ONE_PHASE)
        for key, m in configs.items():
            c = m.json()
            cls, scls, unit = CLASSES[key]
            assert c.get("device_class") == cls, key
            assert c.get("state_class") == scls, key
            assert c.get("unit_of_measurement") == unit, key
            assert c["unique_id"] == DEV + "_" + key
            assert c["state_topic"] == STATE
            assert c["availability_topic"] == STATUS
            assert "entity_category" not in c
            # a missing key renders '' (ignored by HA), never 0
            assert c["value_template"] == (
                "{{ value_json.%s if value_json.%s is defined else '' }}" % (key, key))
            dev = c["device"]
            assert dev["identifiers"] == [DEV, "meter-" + METER["meter_id"]]
            assert dev["manufacturer"] == "Aidon"
            assert dev["model"] == "6534"
            assert dev["serial_number"] == METER["meter_id"]
            assert dev["sw_version"] == d("=__import__('app.version').version.VERSION")
            assert dev["hw_version"] == "host test"
            assert c["origin"]["name"]
        assert configs["active_power_import"].json()["name"] == "Active power import"
        assert configs["voltage_l1"].json()["name"] == "Voltage L1"

        # diagnostics (shape of app.App.diagnostics): announced as diagnostic entities
        diag = {"version": "0.1.0", "uptime_s": 12, "free_heap": 81234, "rssi": -61,
                "ip": "192.168.1.50", "last_frame_age_s": 2, "reconnects": 0,
                "counters": {"bytes": 4096, "frames_ok": 9, "bad_crc": 1},
                "serial": {"format": "2400 8E1", "detect": "locked"}}
        assert d("=pub.diagnostics(%r, ticks_ms())" % diag) is True
        d("run(400)")
        m = col.wait_for(lambda m: m.topic == DIAG)
        assert m.json() == diag
        ret = retained(host, port, CFG_PREFIX + "+/config")
        bad = ret[CFG_PREFIX + "bad_crc/config"].json()
        assert bad["entity_category"] == "diagnostic"
        assert bad["state_topic"] == DIAG
        assert bad["state_class"] == "total_increasing"
        assert "counters.bad_crc" in bad["value_template"]
        rssi = ret[CFG_PREFIX + "rssi/config"].json()
        assert (rssi["device_class"], rssi["unit_of_measurement"]) == ("signal_strength", "dBm")
        assert ret[CFG_PREFIX + "serial_format/config"].json()["value_template"].startswith(
            "{{ value_json.serial.format")
        # the IP from the diagnostics became the configuration URL
        cu = ret[CFG_PREFIX + "active_energy_import/config"].json()["device"]
        assert cu["configuration_url"] == "http://192.168.1.50/"

        # availability: killed without a goodbye -> the broker publishes the last will
        col.clear()
        d.kill()
        m = col.wait_for(lambda m: m.topic == STATUS, timeout=5)
        assert m is not None and m.payload == b"offline"
        assert retained(host, port, STATUS)[STATUS].payload == b"offline"


def test_corpus_frames_decoded_and_published(broker, tmp_path):
    # Real frames through the real decoder: a one-phase Kaifa, a three-phase Kamstrup, and a
    # ciphered L+G whose maker comes from the DLMS system title ("LGZ...").
    host, port = broker
    with Collector(host, port, "#") as col, MpyDriver(tmp_path) as d:
        for vid, maker, model, absent in (
                ("hass-kaifa-1ph-list2", "Kaifa", "MA105H2E", ("voltage_l2", "voltage_l3")),
                ("ams-kamstrup-se-list3", "Kamstrup", "6841131BN245101092", ("frequency",)),
                ("ams-lg-e450-at-enc-1", "Landis+Gyr", "HAN meter", ("power_factor",))):
            start(d, port)  # a fresh device per meter: the meter identity is kept per boot
            connect(d)
            col.clear()
            r = corpus.by_id(vid)
            key = "bytes.fromhex(%r)" % r["key_hex"] if r.get("key_hex") else "None"
            d("rd, dec = decode_hex(%r, key=%s)" % (r["hex"], key))
            assert d("=pub.reading(rd, dec, ticks_ms())") is True
            d("run(200)")
            st = col.wait_for(lambda m: m.topic == STATE)
            assert st.payload.decode() == d("=export.state_json(rd)")
            sent = set(d("=list(export.numbers(rd))"))
            cfgs = col.wait_count(lambda m: m.topic.startswith(CFG_PREFIX), len(sent))
            announced = {m.topic[len(CFG_PREFIX):-len("/config")] for m in cfgs}
            assert announced == sent, vid
            for a in absent:
                assert a not in announced
            dev = cfgs[0].json()["device"]
            assert (dev["manufacturer"], dev["model"]) == (maker, model), vid
            # a second meter on the same bus does not replace the identity (no churn)
            d("pub.reading(mk({'active_power_import': '1'}, {'meter_id': '123', "
              "'meter_type': 'other'}), dec, ticks_ms())")
            d("pub.close()")
            time.sleep(0.2)
            assert all(m.json()["device"]["model"] == model
                       for m in col.snapshot() if m.topic.startswith(CFG_PREFIX))
        assert d("=RAISED") == []


def test_min_interval_per_value_and_raw(broker, tmp_path):
    host, port = broker
    with Collector(host, port, BASE + "#") as col, MpyDriver(tmp_path) as d:
        start(d, port, mqtt_min_interval=1, mqtt_per_value=True, mqtt_raw=True)
        connect(d)
        d("power = mk({'active_power_import': '500'}, %r)" % METER)
        d("hourly = mk({'active_power_import': '510', 'active_energy_import': '1000'})")
        d("fd = FakeDec(b'\\x7e\\xa0\\x1b\\x7e')")
        assert d("=pub.reading(power, fd, ticks_ms())") is True
        assert d("=pub.reading(power, fd, ticks_ms())") is False  # inside the interval
        # carries a value not sent in this window (the hourly energy): never held back
        assert d("=pub.reading(hourly, fd, ticks_ms())") is True
        assert d("=pub.reading(hourly, fd, ticks_ms())") is False
        time.sleep(1.05)
        assert d("=pub.reading(power, fd, ticks_ms())") is True
        d("run(200)")
        states = col.wait_count(lambda m: m.topic == STATE, 3)
        assert [m.json()["active_power_import"] for m in states] == [500, 510, 500]
        assert len(col.on(STATE)) == 3
        # one topic per value, exact text; the texts too
        per = col.on(BASE + "active_power_import")
        assert [m.payload for m in per] == [b"500", b"510", b"500"]
        assert col.last(BASE + "active_energy_import").payload == b"1000"
        assert col.last(BASE + "meter_id").payload == METER["meter_id"].encode()
        # raw frame hex: exactly dec.frame_buf[frame_start:frame_end]
        assert [m.payload for m in col.on(BASE + "raw")] == [b"7ea01b7e"] * 3
        assert all(not m.retain for m in col.on(STATE))


def test_broker_restart_backoff_and_resume(broker, tmp_path):
    host, port = broker
    with MpyDriver(tmp_path) as d:
        start(d, port)
        connect(d)
        d("rd = mk({'active_power_import': '700'}, %r)" % METER)
        assert d("=pub.reading(rd, FakeDec(), ticks_ms())") is True
        broker.kill()
        t0 = time.monotonic()
        # publishing into the dead link (no poll in between): the first write may still
        # "succeed", a later one fails (EPIPE/ECONNRESET); reading() returns False, never raises
        d("oks = []\n"
          "for _ in range(20):\n"
          "    oks.append(pub.reading(rd, FakeDec(), ticks_ms()))\n"
          "    if not pub.connected:\n"
          "        break\n"
          "    sleep_ms(20)")
        assert d("=(pub.connected, oks[-1], pub.errors)") == [False, False, 1]
        assert d("=run(3300)") is False  # loss found, attempts at +1 s and +3 s refused
        assert d("=pub.reading(rd, FakeDec(), ticks_ms())") is False  # dropped, not queued
        assert d("=pub.dropped") == 1
        broker.restart()
        with Collector(host, port, "#") as col:
            ms = d("=run_until(lambda: pub.connected, 6000)")
            assert ms is not None, d.output()
            waited = time.monotonic() - t0
            assert 6.0 < waited < 9.5  # the third retry comes 1 + 2 + 4 s after the loss
            assert d("=(pub.connects, pub.reconnects, pub.errors)") == [2, 1, 3]
            assert d("=RAISED") == []
            logs = d("=LOGS")
            waits = [int(l.split("in ")[-1].split()[0]) for l in logs if "next try in" in l
                     or "reconnect in" in l]
            assert waits == [1, 2, 4], logs
            assert any("connection lost" in l for l in logs)
            # publishing resumes, availability is back
            assert d("=pub.reading(rd, FakeDec(), ticks_ms())") is True
            assert col.wait_for(lambda m: m.topic == STATE) is not None
            assert col.wait_for(lambda m: m.topic == STATUS and m.payload == b"online")


def test_connect_timeout_on_silent_server(tmp_path):
    # A server that accepts TCP and never answers: one poll() is bounded by CONNECT_TIMEOUT
    # (umqtt.simple 1.3.4 has no connect(timeout=): the socket shim supplies it).
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(4)
    port = srv.getsockname()[1]
    try:
        with MpyDriver(tmp_path) as d:
            start(d, port)
            d("M.CONNECT_TIMEOUT = 1")
            d("t0 = ticks_ms(); pub.poll(ticks_ms()); dt = ticks_diff(ticks_ms(), t0)")
            dt = d("=dt")
            assert 900 <= dt <= 2500, dt
            assert d("=(pub.connected, pub.errors)") == [False, 1]
            assert "ETIMEDOUT" in d("=pub.last_error") or "110" in d("=pub.last_error")
            # the next attempt waits for the backoff (1 s from the failed attempt's now_ms)
            d("t1 = ticks_ms(); pub.poll(ticks_add(t0, 900)); dt = ticks_diff(ticks_ms(), t1)")
            assert d("=dt") < 100
            assert d("=pub.errors") == 1
    finally:
        srv.close()


class Relay:
    # TCP relay between the device and the broker that can go silent (a half-dead link:
    # nothing arrives, nothing is refused).
    def __init__(self, port):
        self.dst = port
        self.lsn = socket.socket()
        self.lsn.bind(("127.0.0.1", 0))
        self.lsn.listen(2)
        self.port = self.lsn.getsockname()[1]
        self.frozen = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                a, _ = self.lsn.accept()
            except OSError:
                return
            b = socket.create_connection(("127.0.0.1", self.dst))
            for x, y in ((a, b), (b, a)):
                threading.Thread(target=self._pump, args=(x, y), daemon=True).start()

    def _pump(self, src, dst):
        while True:
            try:
                data = src.recv(4096)
            except OSError:
                return
            if not data:
                return
            while self.frozen:
                time.sleep(0.05)
            try:
                dst.sendall(data)
            except OSError:
                return

    def close(self):
        self.lsn.close()


def test_keepalive_pings_and_dead_link(broker, tmp_path):
    host, port = broker
    relay = Relay(port)
    try:
        with Collector(host, port, STATUS) as col, MpyDriver(tmp_path) as d:
            start(d, relay.port, mqtt_keepalive=1)
            connect(d)
            # the broker drops a client silent for 1.5 x keepalive: pings keep it up
            assert d("=run(2500)") is True
            assert d("=pub.errors") == 0
            relay.frozen = True  # no PINGRESP from now on
            ms = d("=run_until(lambda: not pub.connected, 4000)")
            assert ms is not None and ms <= 2500, ms
            assert "110" in d("=pub.last_error")
            assert d("=RAISED") == []
            # meanwhile the broker timed the silent client out and sent its will
            assert col.wait_for(lambda m: m.payload == b"offline", timeout=3) is not None
    finally:
        relay.close()


def test_home_assistant_online_reannounces(broker, tmp_path):
    host, port = broker
    with Collector(host, port, "homeassistant/#") as col, MpyDriver(tmp_path) as d:
        start(d, port)
        connect(d)
        d("rd = mk(%r, %r)" % (ONE_PHASE, METER))
        d("pub.reading(rd, FakeDec(), ticks_ms())")
        first = col.wait_count(lambda m: m.topic.startswith(CFG_PREFIX), len(ONE_PHASE))
        assert len(first) == len(ONE_PHASE)
        time.sleep(0.2)
        col.clear()
        col.publish("homeassistant/status", "online")
        d("run(500)")  # a few per poll, so the UART loop keeps running
        again = col.wait_count(lambda m: m.topic.startswith(CFG_PREFIX), len(ONE_PHASE))
        assert {m.topic for m in again} == {m.topic for m in first}


def test_meter_without_id_is_announced_after_a_wait(broker, tmp_path):
    host, port = broker
    with Collector(host, port, "homeassistant/#") as col, MpyDriver(tmp_path) as d:
        start(d, port)
        d("M.ID_WAIT_MS = 300")
        connect(d)
        d("rd = mk({'active_power_import': '42'})")
        d("pub.reading(rd, FakeDec(), ticks_ms())")
        time.sleep(0.1)
        assert col.snapshot() == []  # waiting for a meter id
        d("run(500)")
        m = col.wait_for(lambda m: m.topic == CFG_PREFIX + "active_power_import/config")
        assert m is not None
        dev = m.json()["device"]
        assert dev["identifiers"] == [DEV] and dev["model"] == "HAN meter"
        # the id arrives later: everything is announced again with it
        col.clear()
        d("pub.reading(mk({'active_power_import': '43'}, %r), FakeDec(), ticks_ms())" % METER)
        d("run(300)")
        m = col.wait_for(lambda m: m.topic == CFG_PREFIX + "active_power_import/config")
        assert m.json()["device"]["identifiers"] == [DEV, "meter-" + METER["meter_id"]]


SECRETS = {"wifi_password": "wifi-Pass-4242", "mqtt_password": "S3cret-mqtt-pw",
           "meter_key": "00112233445566778899AABBCCDDEEFF",
           "meter_auth_key": "FFEEDDCCBBAA99887766554433221100", "ap_password": "ap-Pass-9999"}


@pytest.mark.skipif(not os.path.exists(MOSQUITTO_PASSWD), reason="mosquitto_passwd missing")
def test_credentials_work_and_secrets_never_leak(tmp_path):
    b = Broker(users={"meter": SECRETS["mqtt_password"], "reader": "reader-pw"},
               workdir=str(tmp_path)).start()
    try:
        with Collector(b.host, b.port, "#", user="reader", password="reader-pw") as col, \
                MpyDriver(tmp_path) as d:
            start(d, b.port, mqtt_user="meter", mqtt_per_value=True, mqtt_raw=True, **SECRETS)
            connect(d)  # the password went into CONNECT: the broker let us in
            d("rd = mk(%r, %r)" % (ONE_PHASE, METER))
            d("pub.reading(rd, FakeDec(b'\\x01\\x02'), ticks_ms())")
            # even a careless diagnostics dict does not carry a secret out
            d("pub.diagnostics({'uptime_s': 1, 'mqtt_password': cfg['mqtt_password'], "
              "'meter_key': cfg['meter_key']}, ticks_ms())")
            d("run(400)")
            d("pub.close()")
            assert d("=(run(200), pub.connects)") == [False, 1]  # closed: no reconnect
            time.sleep(0.1)
            msgs = col.snapshot()
            assert any(m.topic == STATE for m in msgs)
            assert col.last(STATUS).payload == b"offline"  # close() says goodbye
            # a wrong password: refused, counted, logged without the password
            d("cfg['mqtt_password'] = 'wrong-' + cfg['mqtt_password']")
            d("pub2 = Publisher(cfg, 'han-x', log=log); pub2.poll(ticks_ms())")
            assert d("=(pub2.connected, pub2.errors)") == [False, 1]
            out = b"".join(m.topic.encode() + m.payload for m in msgs)
            logs = "\n".join(d("=LOGS")) + d.output()
            assert "failed" in logs
            for s in SECRETS.values():
                assert s.encode() not in out and s.lower().encode() not in out.lower()
                assert s not in logs
    finally:
        b.stop()


def test_poll_never_raises_without_broker_and_tls_params(tmp_path):
    # Nothing listening, and a client factory that fails: poll() and reading() just count.
    with MpyDriver(tmp_path) as d:
        start(d, 1, host="127.0.0.1")
        d("rd = mk({'active_power_import': '1'})")
        d("run(1200)")
        assert d("=(pub.connected, pub.errors >= 1, RAISED)") == [False, True, []]
        assert d("=pub.reading(rd, FakeDec(), ticks_ms())") is False
        # no broker configured: poll() is a no-op
        d("np = Publisher(merged({}), 'han-n', log=log); np.poll(ticks_ms())")
        assert d("=(np.connected, np.errors, np.client)") == [False, 0, None]
        # TLS: the factory gets an SSLContext (umqtt >= 1.6) and legacy ssl_params (older)
        d("seen = []\n"
          "def factory(*a):\n"
          "    seen.append(a)\n"
          "    raise OSError(113)\n"
          "cfg2 = dict(cfg, mqtt_tls=True, mqtt_host='broker.example', mqtt_port=8883)\n"
          "tp = Publisher(cfg2, 'han-t', client_factory=factory, log=log)\n"
          "tp.poll(ticks_ms())")
        assert d("=(tp.errors, len(seen))") == [1, 1]
        assert d("=type(seen[0][6]).__name__") == "SSLContext"
        assert d("=seen[0][7]") == {"server_hostname": "broker.example"}
        assert d("=seen[0][1:3]") == ["broker.example", 8883]
        assert d("=RAISED") == []
