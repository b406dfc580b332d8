# tools/decode.py as a user runs it: a capture file in, JSON lines out, a summary on stderr.
import json
import os
import subprocess
import sys

import corpus
import expect
from conftest import ROOT

TOOL = os.path.join(ROOT, "tools", "decode.py")


def _decode(args, data):
    p = subprocess.run([sys.executable, TOOL] + args, input=data, capture_output=True, timeout=60)
    lines = [json.loads(x) for x in p.stdout.decode().splitlines() if x.strip()]
    return p.returncode, lines, p.stderr.decode()


def _as_decoded(obj):
    # decode.py's "obis" map -> {code: (text, is_number)} as expect.compare wants it
    out = {}
    for k, v in obj["obis"].items():
        out[k] = (str(v), False) if isinstance(v, str) else (_num_text(v), True)
    return out


def _num_text(v):
    return repr(v) if isinstance(v, float) else str(v)


def test_reproduces_every_expected_value(tmp_path):
    bad = []
    n = 0
    for r in corpus.load():
        if not r.get("expected") or r.get("crc_ok") is False:
            continue
        args = ["--hex"]
        if r.get("key_hex"):
            args += ["--key", r["key_hex"]]
        if r.get("auth_key_hex"):
            args += ["--auth-key", r["auth_key_hex"]]
        code, lines, err = _decode(args, r["hex"].encode())
        n += 1
        if not lines:
            # encrypted without a published key: the summary names the system title
            assert code == 1 and "decrypt_failed=1" in err and "give --key" in err, r["id"]
            mism = expect.compare(r["expected"], {}, {"title": err.split("system_title=")[1].split()[0]})
        else:
            assert code == 0 and "decoded %d frame(s)" % len(lines) in err, r["id"]
            obj = lines[-1]
            info = {k: obj.get(k) for k in ("meter_type", "list_id", "meter_time")}
            info["title"] = obj.get("system_title")
            info["security"] = obj.get("security_control")
            info["objects"] = len([k for k in obj["obis"] if not k.endswith(":1.0.0")])
            mism = expect.compare(r["expected"], _as_decoded(obj), info)
            assert obj["format"] in ("hdlc", "p1", "mbus", "apdu")
        bad += ["%s: %s" % (r["id"], m) for m in mism]
    assert n >= 55
    assert not bad, "\n".join(bad)


def test_raw_file_input_and_counts(tmp_path):
    good = corpus.frame_bytes(corpus.by_id("ams-kamstrup-no-list2-b"))
    bad = corpus.frame_bytes(corpus.by_id("ams-kamstrup-no-bad-fcs"))
    f = tmp_path / "cap.bin"
    f.write_bytes(b"\x00\xff" + good + bad + good)
    p = subprocess.run([sys.executable, TOOL, str(f)], capture_output=True, timeout=60)
    assert p.returncode == 0
    lines = p.stdout.decode().splitlines()
    assert len(lines) == 2
    obj = json.loads(lines[0])
    assert obj["format"] == "hdlc" and obj["list_id"] == "Kamstrup_V0001"
    assert obj["active_power_import"] == 3825 and obj["voltage_l1"] == 242
    assert obj["obis"]["1-1:1.7.0"] == 3825
    err = p.stderr.decode()
    assert "frames_ok=2" in err and "bad_crc=1" in err and "skipped_bytes=" in err


def test_hex_with_whitespace_and_nothing_decoded_exits_1():
    h = corpus.by_id("hass-kaifa-list3")["hex"]
    spaced = " ".join(h[i:i + 2] for i in range(0, len(h), 2)).encode() + b"\n"
    code, lines, _ = _decode(["--hex"], spaced)
    assert code == 0 and len(lines) == 1 and lines[0]["meter_type"] == "MA304H3E"
    code, lines, err = _decode([], b"not a meter at all")
    assert code == 1 and lines == [] and "decoded 0 frame(s)" in err


def test_bad_key_argument_is_named():
    code, _, err = _decode(["--key", "1234"], b"")
    assert code != 0 and "--key must be 32 hex digits" in err


def test_kamstrup_wh_option():
    h = corpus.by_id("ams-kamstrup-se-list3")["hex"].encode()
    _, ten, _ = _decode(["--hex"], h)
    _, one, _ = _decode(["--hex", "--kamstrup-wh"], h)
    assert ten[0]["active_energy_import"] == 320141580
    assert one[0]["active_energy_import"] == 32014158


def test_scaling_override_for_meters_without_scalers():
    # A Kaifa list sends no scalers: mA by convention; a user may say otherwise.
    h = corpus.by_id("hass-kaifa-list3")["hex"].encode()
    _, conv, _ = _decode(["--hex"], h)
    _, fixed, _ = _decode(["--hex", "--current-exp", "-2", "--voltage-exp", "0"], h)
    assert conv[0]["current_l1"] == 0.678 and conv[0]["voltage_l1"] == 228.7
    assert fixed[0]["current_l1"] == 6.78 and fixed[0]["voltage_l1"] == 2287
    # frames that carry scalers are not affected
    a = corpus.by_id("ams-aidon-se-a")["hex"].encode()
    _, one, _ = _decode(["--hex", "--current-exp", "0"], a)
    assert one[0]["current_l1"] == 9.6
