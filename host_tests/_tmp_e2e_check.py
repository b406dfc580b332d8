# End to end: the real firmware on the MicroPython unix port (host board, code compiled to
# .mpy as on a device, heap = code + 96 KB), real mosquitto, the meter simulator on a pty.
import os
import signal
import time
from decimal import Decimal

import pytest
from e2e_support import (ENERGY, FOUR_METERS, Firmware, Sim, diag_msgs, expected_by_name,
                         frame_values, mqtt_json, numbers_of, state_msgs)
from mqtt_support import Collector, broker  # noqa: F401  (pytest fixture)

pytestmark = pytest.mark.skipif(not os.path.exists(os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))), ".venv", "bin", "micropython")),
    reason="no MicroPython unix port (make setup)")

DEV = "han-00a1b2"  # host board MAC 02000000a1b2
BASE = "han/" + DEV + "/"


def _stop_all(*procs):
    for p in procs:
        if p is not None:
            p.stop()


def _match(state, candidates):
    # Which frame (vid) a state message carries: all its numbers equal the frame's.
    nums = numbers_of(state)
    for vid, want in candidates.items():
        if nums == want:
            return vid
    return None


def test_four_meter_makes_arrive_with_the_right_values_and_discovery(broker, tmp_path):
    want = {vid: frame_values(vid)[0] for vid in FOUR_METERS}
    # the decoder's values are the corpus' own expected values (table slots)
    for vid in FOUR_METERS:
        exp = expected_by_name(vid)
        assert len(exp) >= 5, vid
        for name, v in exp.items():
            assert want[vid].get(name) == v, (vid, name, want[vid].get(name), v)
    col = Collector(broker.host, broker.port, "#")
    sim = Sim(tmp_path, FOUR_METERS, speed=20, interval=4)
    fw = Firmware(tmp_path, "pty:" + sim.link, broker=broker)
    try:
        seen = {}
        end = time.monotonic() + 30
        while time.monotonic() < end and len(seen) < 4:
            for s in state_msgs(col):
                vid = _match(s, want)
                if vid:
                    seen[vid] = s
            time.sleep(0.2)
        states = state_msgs(col)
        assert set(seen) == set(FOUR_METERS), (sorted(seen), states[:3], fw.output()[-2000:])
        # every state message is exactly one of the frames: nothing invented, nothing lost
        for s in states:
            assert _match(s, want), s
        # spot checks against the corpus text, in base units
        p1 = seen["avi-se-ell5-p1"]
        assert p1["active_energy_import"] == Decimal("1605055")  # 00001605.055 kWh
        assert p1["voltage_l1"] == Decimal("234.4")
        assert p1["current_l3"] == Decimal("10.2")
        assert p1["active_power_import"] == Decimal("6000")
        assert seen["ams-kamstrup-no-list3"].get("meter_type")
        # the meter's id arrives as text
        assert any(s.get("meter_id") for s in seen.values())

        # discovery: retained, JSON, one unique_id each, wired to our state/availability topics
        # (a new subscriber gets the retained copies, flagged as retained)
        time.sleep(1.5)  # let the announcements of the last new values go out
        live = len({m.topic for m in col.snapshot() if m.topic.startswith("homeassistant/")})
        assert live >= 20
        with Collector(broker.host, broker.port, "homeassistant/#", BASE + "status") as late:
            late.wait_count(lambda m: m.topic.startswith("homeassistant/"), live, 5)
            late.wait_for(lambda m: m.topic == BASE + "status", 5)
            disc = [m for m in late.snapshot() if m.topic.endswith("/config") and m.retain]
            st = late.on(BASE + "status")
        assert len(disc) >= live, [m.topic for m in disc]
        uids = set()
        for m in disc:
            c = mqtt_json(m.payload)
            assert c["unique_id"] not in uids, c["unique_id"]
            uids.add(c["unique_id"])
            assert c["state_topic"].startswith(BASE), c
            assert c["availability_topic"] == BASE + "status", c
            assert "{{" in c["value_template"], c
            assert c["device"]["identifiers"], c
            assert c.get("name"), c
        by_key = {m.topic.split("/")[-2]: mqtt_json(m.payload) for m in disc}
        for k in ("active_energy_import", "active_power_import", "voltage_l1", "current_l1"):
            assert k in by_key, sorted(by_key)
        e = by_key["active_energy_import"]
        assert e["device_class"] == "energy" and e["state_class"] == "total_increasing", e
        assert e["unit_of_measurement"] in ("Wh", "kWh"), e
        assert by_key["voltage_l1"]["unit_of_measurement"] == "V"
        assert st and st[-1].payload == b"online" and st[-1].retain
        # diagnostics: counters by name, serial settings, version
        d = diag_msgs(col)
        assert d, fw.output()[-2000:]
        last = d[-1]
        assert last["counters"]["frames_ok"] >= 4
        assert last["serial"]["format"].startswith("115200")
        assert last["version"]
        assert fw.alive and not fw.crashed(), fw.output()[-3000:]
    finally:
        _stop_all(fw, sim)
        col.close()
    assert fw.proc.returncode == 0, fw.output()[-2000:]


def test_broker_restarts_availability_and_no_zero_totals(broker, tmp_path):
    vids = ("ams-kamstrup-no-list3", "avi-se-ell5-p1", "ams-aidon-se-a")
    want = {vid: frame_values(vid)[0] for vid in vids}
    col = Collector(broker.host, broker.port, "#")
    sim = Sim(tmp_path, vids, speed=20, interval=4)
    fw = Firmware(tmp_path, "pty:" + sim.link, broker=broker,
                  cfg={"mqtt_keepalive": 5})
    try:
        assert col.wait_for(lambda m: m.topic == BASE + "state", 20), fw.output()[-2000:]
        all_states = []
        for cycle in range(3):
            broker.kill()
            time.sleep(1.0 + cycle)  # readings arrive meanwhile and must be dropped, not queued
            broker.restart()
            all_states += state_msgs(col)
            col.close()
            col = Collector(broker.host, broker.port, "#")
            # the firmware reconnects (backoff <= a few s) and says online again (retained)
            on = col.wait_for(lambda m: m.topic == BASE + "status" and m.payload == b"online", 20)
            assert on is not None, (cycle, fw.output()[-3000:])
            n = col.wait_count(lambda m: m.topic == BASE + "state", 2, 15)
            assert len(n) >= 2, (cycle, fw.output()[-3000:])
            assert fw.alive, fw.output()[-3000:]
        dm = col.wait_for(lambda m: m.topic == BASE + "diagnostics"
                          and mqtt_json(m.payload)["reconnects"] >= 3, 5)
        assert dm is not None, diag_msgs(col)[-1:]
        all_states += state_msgs(col)
        # never a zero total where the frame's total is not zero; every state is a real frame
        for s in all_states:
            vid = _match(s, want)
            assert vid, s
            for k in ENERGY:
                if k in s and want[vid][k] != 0:
                    assert s[k] != 0, (vid, k, s)
        assert not fw.crashed(), fw.output()[-3000:]
        # a firmware that dies without a goodbye: the broker publishes the last will
        fw.stop(signal.SIGKILL)
        off = col.wait_for(lambda m: m.topic == BASE + "status" and m.payload == b"offline", 30)
        assert off is not None
    finally:
        _stop_all(fw, sim)
        col.close()


def test_graceful_stop_says_offline(broker, tmp_path):
    col = Collector(broker.host, broker.port, BASE + "#")
    sim = Sim(tmp_path, ("avi-se-ell5-p1",), speed=20, interval=4)
    fw = Firmware(tmp_path, "pty:" + sim.link, broker=broker)
    try:
        assert col.wait_for(lambda m: m.topic == BASE + "status" and m.payload == b"online", 20)
        assert fw.stop(signal.SIGINT) == 0, fw.output()[-2000:]
        off = col.wait_for(lambda m: m.topic == BASE + "status" and m.payload == b"offline", 5)
        assert off is not None
        with Collector(broker.host, broker.port, BASE + "status") as late:
            kept = late.wait_for(lambda m: True, 3)
        assert kept is not None and kept.payload == b"offline" and kept.retain
    finally:
        _stop_all(fw, sim)
        col.close()


def test_noise_truncation_and_silence(broker, tmp_path):
    vids = ("ams-kamstrup-no-list3", "avi-se-ell5-p1", "ams-kaifa-no-list2-b")
    want = {vid: frame_values(vid)[0] for vid in vids}
    col = Collector(broker.host, broker.port, BASE + "#")
    # speed 20, interval 4 meter-s: a frame every 0.2 s; silence 120 meter-s = 6 s after frame 25
    sim = Sim(tmp_path, vids, speed=20, interval=4,
              extra=["--noise", "0.3", "--truncate", "0.2", "--flip", "0.1",
                     "--silence", "120@25"])
    fw = Firmware(tmp_path, "pty:" + sim.link, broker=broker, diag_s=1)
    try:
        # the silence shows: last_frame_age_s grows while the line is quiet
        quiet = col.wait_for(lambda m: m.topic.endswith("/diagnostics")
                             and (mqtt_json(m.payload)["last_frame_age_s"] or 0) >= 3, 30)
        assert quiet is not None, fw.output()[-3000:]
        t_quiet = time.monotonic()
        # ... and the next valid frame after it is published
        after = col.wait_for(lambda m: m.t > t_quiet and m.topic.endswith("/state"), 15)
        assert after is not None, fw.output()[-3000:]
        dm = col.wait_for(lambda m: m.t > after.t + 0.5 and m.topic.endswith("/diagnostics"), 5)
        assert dm is not None
        d = mqtt_json(dm.payload)
        c = d["counters"]
        assert c["frames_ok"] >= 10, c
        assert c["truncated"] + c["bad_crc"] >= 2, c
        assert c["skipped_bytes"] > 0, c
        assert d["last_frame_age_s"] <= 2, d
        for s in state_msgs(col):  # damaged frames never leak out as readings
            assert _match(s, want), s
        assert fw.alive and not fw.crashed(), fw.output()[-3000:]
    finally:
        _stop_all(fw, sim)
        col.close()


def test_wrong_key_shows_as_decrypt_failures_not_as_no_data(broker, tmp_path):
    col = Collector(broker.host, broker.port, BASE + "#")
    sim = Sim(tmp_path, ("ams-lg-e450-at-enc-1",), speed=20, interval=4)
    fw = Firmware(tmp_path, "pty:" + sim.link, broker=broker, diag_s=1,
                  cfg={"meter_key": "00112233445566778899aabbccddeeff"})
    try:
        ok = col.wait_for(lambda m: m.topic.endswith("/diagnostics")
                          and mqtt_json(m.payload)["counters"]["decrypt_failed"] >= 3, 30)
        assert ok is not None, fw.output()[-3000:]
        d = mqtt_json(ok.payload)
        assert d["counters"]["frames_ok"] == 0
        assert d["counters"]["bytes"] > 0
        # the line settings were found from the frames' checksums even without the key
        assert d["serial"]["detect"] == "locked", d["serial"]
        assert not [m for m in col.snapshot() if m.topic.endswith("/state")]
        assert "decrypt failed" in fw.output()
        # the key never appears in logs or MQTT
        assert "00112233445566778899aabbccddeeff" not in fw.output().lower()
        for m in col.snapshot():
            assert b"00112233445566778899" not in m.payload.lower()
    finally:
        _stop_all(fw, sim)
        col.close()
