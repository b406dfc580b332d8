# tools/meter_sim.py: the meter simulator (CPython only: ptys, subprocesses, sockets).
# Timing assertions are few and loose; speed figures belong in benches.
import os
import re
import select
import signal
import socket
import subprocess
import sys
import time
import tty

import pytest

import corpus
import meter_sim

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SIM = os.path.join(ROOT, "tools", "meter_sim.py")

KAMSTRUP = "ams-kamstrup-no-list2-b"       # 228 B, 2400 8N1
KAIFA = "ams-kaifa-no-list2-b"             # 123 B, 2400 8E1
P1 = "dsmr-v42-kaifa"                      # ASCII, 115200 8N1
MBUS = "ams-sagemcom-t210d-at-enc-mbus"    # two M-Bus long frames, 2400 8E1
MIX = [KAMSTRUP, P1, MBUS, KAIFA]
LOG_RE = re.compile(r"^meter_sim: #(\d+) (\S+) (\d+)B (\d+ \d[NEO]\d) fault=(\S+)$", re.M)


def raw(vid):
    return corpus.frame_bytes(corpus.by_id(vid))


class Sim:
    """The CLI as a subprocess with --pty, and a raw non-blocking reader on its slave."""

    def __init__(self, tmp_path, *args, connect=True):
        self.err_path = str(tmp_path / "sim.err")
        self.err = open(self.err_path, "w")
        self.p = subprocess.Popen([sys.executable, SIM] + list(args), stdout=subprocess.PIPE,
                                  stderr=self.err, text=True)
        first = self.p.stdout.readline().split()
        assert first and first[0] == "PTY", first
        self.path = first[1]
        self.fd = None
        if connect:
            self.connect()

    def connect(self):
        self.fd = os.open(self.path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        tty.setraw(self.fd)

    def read(self, want=None, idle=3.0):
        """Read until `want` bytes, EOF/EIO, or `idle` seconds without data.
        Returns (bytes, [(time, total_so_far), ...])."""
        buf = bytearray()
        stamps = []
        while want is None or len(buf) < want:
            r, _, _ = select.select([self.fd], [], [], idle)
            if not r:
                break
            try:
                d = os.read(self.fd, 65536)
            except BlockingIOError:
                continue
            except OSError:         # EIO: the simulator closed the master
                break
            if not d:
                break
            buf += d
            stamps.append((time.monotonic(), len(buf)))
        return bytes(buf), stamps

    def close_reader(self):
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

    def wait(self, timeout=10):
        rc = self.p.wait(timeout)
        self.close_reader()
        self.err.close()
        return rc

    def log(self):
        with open(self.err_path) as f:
            return f.read()

    def kill(self):
        if self.p.poll() is None:
            self.p.kill()
            self.p.wait()
        self.close_reader()
        if not self.err.closed:
            self.err.close()


@pytest.fixture
def sims():
    started = []
    yield started
    for s in started:
        s.kill()


def run_sim(sims, tmp_path, *args, **kw):
    s = Sim(tmp_path, *args, **kw)
    sims.append(s)
    return s


# --- unit: line rule, selection, capture splitting ------------------------------------------

def test_default_line_rule():
    rec = corpus.by_id
    line = lambda vid: meter_sim.default_line(rec(vid)["kind"], rec(vid)["meter"], raw(vid))
    assert str(line(KAMSTRUP)) == "2400 8N1" and line(KAMSTRUP).bits == 10
    assert str(line("ams-kamstrup-ch-enc-nokey")) == "2400 8N1"
    assert str(line(KAIFA)) == "2400 8E1" and line(KAIFA).bits == 11
    assert str(line("hass-aidon-list2")) == "2400 8E1"
    assert str(line(MBUS)) == "2400 8E1"
    assert str(line(P1)) == "115200 8N1"
    assert str(line("ams-kamstrup-omnia-se-p1")) == "115200 8N1"    # Kamstrup, but a P1 telegram
    assert str(line("oh-smarty-lu-enc")) == "115200 8N1"
    # captures have no meter text: sniffed from the bytes
    assert str(meter_sim.default_line("hdlc", "", raw(KAMSTRUP))) == "2400 8N1"
    assert str(meter_sim.default_line("raw", "", raw(KAIFA))) == "2400 8E1"


def test_select_records():
    recs = meter_sim.load_vectors()
    assert len(recs) == len(corpus.load())
    sel = meter_sim.select_records(recs, ids="%s,%s" % (P1, KAMSTRUP))
    assert [r["id"] for r in sel] == [P1, KAMSTRUP]
    hd = meter_sim.select_records(recs, kinds="hdlc", only_valid=True)
    assert hd and all(r["kind"] == "hdlc" and r["crc_ok"] and r["expected"] is not None for r in hd)
    with pytest.raises(KeyError):
        meter_sim.select_records(recs, ids="no-such-frame")


def test_split_capture_gives_back_the_records():
    # every complete framed record of the corpus, back to back, splits into exactly those records
    # (segmented Iskra, L+G block transfer over several frames, 2-telegram M-Bus, trailing junk)
    incomplete = {"ams-iskra-ie5-hr-segment1", "ams-lg-e450-ch-gbt-incomplete", "hass-kaifa-bad-length"}
    recs = [r for r in corpus.load()
            if r["kind"] in ("hdlc", "encrypted-hdlc", "ascii", "encrypted-mbus") and r["id"] not in incomplete]
    frames = [corpus.frame_bytes(r) for r in recs]
    parts = meter_sim.split_capture(b"".join(frames))
    assert [p for p, _ in parts] == frames
    assert parts[[r["id"] for r in recs].index(MBUS)][1] == "mbus"
    # a flag shared between two frames; garbage before the first frame stays with it
    f = raw("ams-kaifa-no-list1")
    parts = meter_sim.split_capture(b"\x00\x11" + f[:-1] + f)
    assert [p for p, _ in parts] == [b"\x00\x11" + f[:-1], f]
    # nothing recognisable: one raw piece
    assert meter_sim.split_capture(b"\x01\x02\x03") == [(b"\x01\x02\x03", "raw")]


def test_api_faults_are_seeded_and_shaped():
    kw = dict(kinds="hdlc", only_valid=True, speed=0)
    clean = [d for d, f in meter_sim.MeterSim.from_corpus(**kw).frames()]
    trunc = list(meter_sim.MeterSim.from_corpus(truncate=1, seed=1, **kw).steps())
    assert all(len(s.data) < len(s.original) and s.original.startswith(s.data) for s in trunc)
    assert all(s.fault.startswith("truncate:") for s in trunc)
    for s in meter_sim.MeterSim.from_corpus(flip=1, seed=2, **kw).steps():
        assert len(s.data) == len(s.original)
        assert sum(bin(a ^ b).count("1") for a, b in zip(s.data, s.original)) == 1
    noisy = list(meter_sim.MeterSim.from_corpus(noise=1, seed=3, **kw).steps())
    assert all(1 <= len(s.noise) <= meter_sim.MAX_NOISE and s.data == s.original for s in noisy)
    assert [s.data for s in noisy] == clean
    a = list(meter_sim.MeterSim.from_corpus(noise=.5, truncate=.5, flip=.5, seed=9, **kw).frames())
    b = list(meter_sim.MeterSim.from_corpus(noise=.5, truncate=.5, flip=.5, seed=9, **kw).frames())
    c = list(meter_sim.MeterSim.from_corpus(noise=.5, truncate=.5, flip=.5, seed=10, **kw).frames())
    assert a == b and a != c
    # run() with a plain callable writer sends exactly frames(), in order
    sim = meter_sim.MeterSim.from_corpus(ids=MIX, speed=0, count=6, noise=.5, seed=4)
    out = []
    assert sim.run(out.append) == 6
    assert b"".join(out) == b"".join(d for d, _ in sim.frames())


# --- the CLI over a pty ---------------------------------------------------------------------

def test_pty_delivers_exact_bytes_in_order(sims, tmp_path):
    link = str(tmp_path / "ttyMETER")
    s = run_sim(sims, tmp_path, "--pty", "--link", link, "--ids", ",".join(MIX), "--speed", "0",
                "--seed", "1", connect=False)
    assert os.path.realpath(link) == os.path.realpath(s.path)
    s.connect()
    want = b"".join(raw(i) for i in MIX)
    got, _ = s.read(len(want))
    assert got == want
    assert s.wait() == 0
    assert not os.path.lexists(link)
    log = LOG_RE.findall(s.log())
    assert [m[1] for m in log] == MIX
    assert [m[3] for m in log] == ["2400 8N1", "115200 8N1", "2400 8E1", "2400 8E1"]
    assert "seed 1" in s.log()


def test_pacing_at_2400_8n1(sims, tmp_path):
    # 228 bytes x 10 bits at 2400 baud = 0.95 s on the wire
    s = run_sim(sims, tmp_path, "--ids", KAMSTRUP, "--count", "1", "--quiet")
    got, stamps = s.read(228)
    assert got == raw(KAMSTRUP)
    span = stamps[-1][0] - stamps[0][0]
    assert 0.8 < span < 1.6, span
    assert len(stamps) > 20            # it trickles; not one burst
    assert s.wait() == 0


def test_speed_zero_is_fast(sims, tmp_path):
    want = b"".join(corpus.frame_bytes(r) for r in corpus.load() if r["kind"] == "hdlc")
    t0 = time.monotonic()
    s = run_sim(sims, tmp_path, "--kind", "hdlc", "--speed", "0", "--quiet")
    got, _ = s.read(len(want))
    assert got == want                   # ~46 s of wire time at 2400 8E1
    assert time.monotonic() - t0 < 5
    assert s.wait() == 0


def test_cli_truncate(sims, tmp_path):
    ids = [KAMSTRUP, P1, KAIFA]
    s = run_sim(sims, tmp_path, "--ids", ",".join(ids), "--speed", "0", "--truncate", "1", "--seed", "5")
    got, _ = s.read(idle=2)
    assert s.wait() == 0
    log = LOG_RE.findall(s.log())
    assert [m[1] for m in log] == ids
    lens = [int(m[2]) for m in log]
    assert all(n < len(raw(i)) for n, i in zip(lens, ids))
    assert got == b"".join(raw(i)[:n] for n, i in zip(lens, ids))


def test_cli_flip(sims, tmp_path):
    ids = [KAMSTRUP, P1, KAIFA]
    s = run_sim(sims, tmp_path, "--ids", ",".join(ids), "--speed", "0", "--flip", "1", "--seed", "6")
    want = [raw(i) for i in ids]
    got, _ = s.read(sum(map(len, want)))
    assert s.wait() == 0
    pos = 0
    for w in want:
        part = got[pos:pos + len(w)]
        pos += len(w)
        assert sum(bin(a ^ b).count("1") for a, b in zip(part, w)) == 1
    assert pos == len(got)
    assert all(m[4].startswith("flip:") for m in LOG_RE.findall(s.log()))


def test_cli_noise_between_frames(sims, tmp_path):
    ids = [KAMSTRUP, P1, KAIFA]
    s = run_sim(sims, tmp_path, "--ids", ",".join(ids), "--speed", "0", "--noise", "1", "--seed", "7",
                "--quiet")
    got, _ = s.read(idle=2)
    assert s.wait() == 0
    assert len(got) > sum(len(raw(i)) for i in ids)
    pos = 0
    for i in ids:                        # every frame intact, in order, with garbage before it
        at = got.index(raw(i), pos)
        assert at > pos
        pos = at + len(raw(i))
    # and it is exactly what the API predicts for the same seed
    sim = meter_sim.MeterSim.from_corpus(ids=ids, speed=0, noise=1, seed=7)
    assert got == b"".join(d for d, _ in sim.frames())


def test_cli_silence_makes_a_gap(sims, tmp_path):
    a, b = raw(KAIFA), raw(P1)
    s = run_sim(sims, tmp_path, "--ids", "%s,%s" % (KAIFA, P1), "--speed", "0",
                "--silence", "0.8@1", "--quiet")
    got, stamps = s.read(len(a) + len(b))
    assert got == a + b
    first_done = next(t for t, n in stamps if n >= len(a))
    second = next(t for t, n in stamps if n > len(a))
    assert second - first_done >= 0.6
    assert s.wait() == 0


def test_capture_hex_replay(sims, tmp_path):
    frames = [b"\x00\xff", raw(KAIFA), raw(P1), raw(MBUS), b"\x55\x66"]
    data = b"".join(frames)
    hexfile = tmp_path / "cap.hex"
    h = data.hex()
    # whitespace of all sorts and a comment line are ignored
    hexfile.write_text("# a capture\n" + "\n".join(" ".join(h[j:j + 2] for j in range(k, min(k + 64, len(h)), 2))
                                                  for k in range(0, len(h), 64)) + "\n")
    assert meter_sim.read_capture(str(hexfile), hex_text=True) == data
    s = run_sim(sims, tmp_path, "--capture", str(hexfile), "--hex", "--speed", "0")
    got, _ = s.read(len(data))
    assert got == data
    assert s.wait() == 0
    log = LOG_RE.findall(s.log())
    assert len(log) == 3 and [m[3] for m in log] == ["2400 8E1", "115200 8N1", "2400 8E1"]
    # a binary capture streamed as one piece
    binfile = tmp_path / "cap.bin"
    binfile.write_bytes(data)
    s2 = run_sim(sims, tmp_path, "--capture", str(binfile), "--no-split", "--speed", "0")
    got, _ = s2.read(len(data))
    assert got == data and s2.wait() == 0
    assert len(LOG_RE.findall(s2.log())) == 1


def test_tcp_client(tmp_path):
    ids = [KAMSTRUP, P1]
    p = subprocess.Popen([sys.executable, SIM, "--tcp", "127.0.0.1:0", "--ids", ",".join(ids),
                          "--speed", "0", "--quiet"], stdout=subprocess.PIPE, text=True)
    try:
        first = p.stdout.readline().split()
        assert first[0] == "TCP"
        host, port = first[1].rsplit(":", 1)
        c = socket.create_connection((host, int(port)), timeout=5)
        buf = b""
        while True:
            d = c.recv(65536)
            if not d:
                break
            buf += d
        c.close()
        assert buf == b"".join(raw(i) for i in ids)
        assert p.wait(10) == 0
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


def test_interval_is_scaled_by_speed(sims, tmp_path):
    # push interval 20 s at --speed 40: frames start 0.5 s apart (a Kaifa frame takes 14 ms)
    a = raw(KAIFA)
    s = run_sim(sims, tmp_path, "--ids", KAIFA, "--count", "2", "--interval", "20", "--speed", "40",
                "--quiet")
    got, stamps = s.read(2 * len(a))
    assert got == a + a
    t1 = stamps[0][0]
    t2 = next(t for t, n in stamps if n > len(a))
    assert 0.35 < t2 - t1 < 1.0, t2 - t1
    assert s.wait() == 0


def test_serial_output_on_a_pty(tmp_path):
    # --serial goes through pyserial; the slave of our own pty stands in for a USB adapter
    import pty
    master, slave = pty.openpty()
    tty.setraw(master)
    tty.setraw(slave)
    p = subprocess.Popen([sys.executable, SIM, "--serial", os.ttyname(slave), "--ids", "%s,%s" % (KAIFA, P1),
                          "--speed", "0", "--quiet"], stdout=subprocess.PIPE, text=True)
    try:
        assert p.stdout.readline().split() == ["SERIAL", os.ttyname(slave), "2400", "8E1"]
        want = raw(KAIFA) + raw(P1)
        buf = b""
        while len(buf) < len(want):
            r, _, _ = select.select([master], [], [], 5)
            if not r:
                break
            buf += os.read(master, 65536)
        assert buf == want
        assert p.wait(10) == 0
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        os.close(master)
        os.close(slave)


def _cpu_seconds(pid):
    fields = open("/proc/%d/stat" % pid).read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@pytest.mark.skipif(not os.path.exists("/proc/self/stat"), reason="needs /proc")
def test_reader_gone_no_spin_and_sigterm(sims, tmp_path):
    s = run_sim(sims, tmp_path, "--kind", "hdlc", "--speed", "0", "--loop")
    got, _ = s.read(20000)
    assert len(got) >= 20000
    s.close_reader()
    time.sleep(0.3)
    c0 = _cpu_seconds(s.p.pid)
    time.sleep(1.0)
    assert _cpu_seconds(s.p.pid) - c0 < 0.3       # paused, not spinning
    # a new reader gets fresh frames (the unread rest was dropped), starting at a frame
    s.connect()
    got, _ = s.read(200)
    assert got[:1] == b"\x7e"
    t0 = time.monotonic()
    s.p.send_signal(signal.SIGTERM)
    assert s.wait(5) == 0
    assert time.monotonic() - t0 < 3
    assert "stopped after" in s.log()


def test_bad_arguments():
    for args in (["--ids", "no-such-frame"], ["--noise", "2"], ["--silence", "5"],
                 ["--capture", "x", "--ids", KAIFA], ["--tcp", "127.0.0.1:0", "--link", "/tmp/x"]):
        p = subprocess.run([sys.executable, SIM] + args, capture_output=True, text=True, timeout=10)
        assert p.returncode == 2, (args, p.stderr)
