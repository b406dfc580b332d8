# tools/build.py and `make build`: every board's modules carry the header its MicroPython
# loads, and the host build imports and decodes on the unix port.
import json
import os
import subprocess

import pytest

import build
from conftest import MICROPYTHON, ROOT

HEADER_BYTE = {"xtensawin": 0x2B, "rv32imc": 0x2F, "x64": 0x0B}
NATIVE_SRC = """
import micropython

@micropython.native
def add1(x):
    return x + 1

@micropython.viper
def twice(x: int) -> int:
    return x * 2
"""


def make(*args, **kw):
    # -o: treat the venv stamp as current, so a test never reinstalls the environment
    return subprocess.run(["make", "-s", "-o", ".venv/.stamp", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=120, **kw)


def corpus_hex(vid):
    with open(os.path.join(ROOT, "host_tests", "vectors", "frames.jsonl")) as f:
        for line in f:
            if line.strip():
                r = json.loads(line)
                if r["id"] == vid:
                    return r["hex"]
    raise KeyError(vid)


@pytest.mark.parametrize("board", build.board_names())
def test_make_build_board(board):
    r = make("build", "BOARD=" + board)
    assert r.returncode == 0, r.stderr
    assert "total" in r.stdout and "bytes in" in r.stdout  # the size report
    out = os.path.join(ROOT, "build", board)
    prof = build.load_board(board)
    with open(os.path.join(ROOT, "boards", board + ".json"), "rb") as f:
        assert open(os.path.join(out, "board.json"), "rb").read() == f.read()
    sources = [rel for rel, _ in build.app_sources()]
    mpys = 0
    for rel in sources:
        if rel in build.SOURCE_FILES:
            assert os.path.exists(os.path.join(out, rel)), rel  # kept as source
            continue
        if not rel.endswith(".py"):
            continue
        path = os.path.join(out, rel[:-3] + ".mpy")
        assert not os.path.exists(os.path.join(out, rel)), "source shipped: " + rel
        head = open(path, "rb").read(4)
        assert head[:2] == b"M\x06", rel
        assert head[2] in (0, HEADER_BYTE[prof["mpy_arch"]]), (rel, head)
        assert head[3] <= 31
        assert build.check_mpy(head, prof["mpy_arch"], rel) is None
        mpys += 1
    assert mpys >= 5


def test_make_build_without_board_lists_boards():
    r = make("build")
    assert r.returncode != 0
    assert "esp32_devkitc" in r.stdout


@pytest.mark.parametrize("board,byte2", [("esp32_devkitc", 0x2B), ("lolin_s2_mini", 0x2B),
                                         ("esp32s3_devkitc", 0x2B), ("esp32c3_supermini", 0x2F),
                                         ("host", 0x0B)])
def test_native_code_gets_the_board_arch(tmp_path, board, byte2):
    src = tmp_path / "src"
    (src / "han").mkdir(parents=True)
    (src / "han" / "fast.py").write_text(NATIVE_SRC)
    (src / "main.py").write_text("import han.fast\n")
    out, rows = build.build(board, out=str(tmp_path / "out"), src=str(src), quiet=True)
    head = open(os.path.join(out, "han", "fast.mpy"), "rb").read(4)
    assert head == bytes([0x4D, 6, byte2, 0x1F])  # 'M', v6, arch << 2 | 3, 31-bit small ints
    assert open(os.path.join(out, "main.py")).read() == "import han.fast\n"


def test_check_mpy_refuses_what_the_target_rejects():
    assert build.check_mpy(b"M\x06\x00\x1f", "xtensawin") is None  # bytecode: any arch
    assert build.check_mpy(b"M\x06\x2b\x1f", "xtensawin") is None
    assert "native code for xtensawin" in build.check_mpy(b"M\x06\x2b\x1f", "rv32imc")
    assert "native code for rv32imc" in build.check_mpy(b"M\x06\x2f\x1f", "xtensawin")
    assert "native code for x64" in build.check_mpy(b"M\x06\x0b\x1f", "xtensawin")
    assert "version 5" in build.check_mpy(b"M\x05\x00\x1f", "xtensawin")
    assert "sub-version 2" in build.check_mpy(b"M\x06\x2a\x1f", "xtensawin")
    assert "small ints" in build.check_mpy(b"M\x06\x00\x3f", "rv32imc")
    assert "not an .mpy" in build.check_mpy(b"C\x06\x00\x1f", "x64")


def test_profile_with_the_wrong_arch_is_refused(tmp_path, monkeypatch):
    bad = {"name": "bad", "chip": "esp32c3", "mpy_arch": "xtensawin", "uart": {}}
    (tmp_path / "bad.json").write_text(json.dumps(bad))
    monkeypatch.setattr(build, "BOARDS", str(tmp_path))
    with pytest.raises(build.BuildError, match="esp32c3 loads rv32imc"):
        build.load_board("bad")
    with pytest.raises(build.BuildError, match="unknown board"):
        build.load_board("nope")


def test_mpy_cross_failure_is_reported(tmp_path):
    src = tmp_path / "src"
    (src / "app").mkdir(parents=True)
    (src / "app" / "broken.py").write_text("def f(:\n")
    with pytest.raises(build.BuildError, match="app/broken.py"):
        build.build("host", out=str(tmp_path / "out"), src=str(src), quiet=True)
    assert not (tmp_path / "out").exists()


def run_mpy(code, path, cwd):
    env = dict(os.environ, MICROPYPATH=".frozen:" + path)
    return subprocess.run([MICROPYTHON, "-c", code], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=60)


DECODE = """
import binascii
from han.reading import Reading
from han.decoder import Decoder
import han.reading
data = binascii.unhexlify("%s")
rd = Reading()
dec = Decoder(rd)
pos = 0
n = len(data)
ok = 0
while True:
    pos = dec.feed(data, pos, n)
    if dec.ready:
        ok += 1
    elif pos >= n:
        break
dec.flush()
print("decoded", ok, dec.counters[1], han.reading.__file__)
"""


def test_host_build_imports_and_decodes_on_the_unix_port(tmp_path):
    out, _ = build.build("host", out=str(tmp_path / "host"), quiet=True)
    r = run_mpy(DECODE % corpus_hex("hass-aidon-list2"), out, str(tmp_path))
    assert r.returncode == 0, r.stderr + r.stdout
    words = r.stdout.split()
    assert words[0] == "decoded" and int(words[1]) >= 1 and int(words[2]) >= 1
    assert words[3].endswith("reading.mpy")  # the compiled module, not a source file


def test_native_modules_load_only_on_their_arch(tmp_path):
    src = tmp_path / "src"
    (src / "han").mkdir(parents=True)
    (src / "han" / "fast.py").write_text(NATIVE_SRC)
    code = "import han.fast; print(han.fast.add1(41), han.fast.twice(21))"
    out, _ = build.build("host", out=str(tmp_path / "x64"), src=str(src), quiet=True)
    r = run_mpy(code, out, str(tmp_path))
    assert r.stdout.split() == ["42", "42"], r.stderr
    # what the header check exists to prevent: another arch's native code on this port
    out, _ = build.build("esp32_devkitc", out=str(tmp_path / "xt"), src=str(src), quiet=True)
    r = run_mpy(code, out, str(tmp_path))
    assert r.returncode != 0 and "incompatible .mpy arch" in r.stderr + r.stdout
