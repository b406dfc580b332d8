#!/usr/bin/env python3
# Put the official MicroPython image on a board, then deploy the application:
#   esptool --chip <chip> --port PORT erase-flash
#   esptool --chip <chip> --port PORT --baud BAUD write-flash <flash_offset> IMAGE
#   tools/deploy.py BOARD PORT
# The chip and offset come from boards/<board>.json. --dry-run prints the command lines and
# runs nothing (the image and port are still checked, so the error messages can be tested).
#
#   python3 tools/flash.py BOARD --port PORT --firmware IMAGE|DIR [--baud N] [--no-deploy]
#                          [--frozen] [--dry-run]
import argparse
import glob
import os
import re
import shlex
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import build  # noqa: E402  (board profiles)

DOWNLOAD_PAGE = "https://micropython.org/download/%s/"
# Espressif image header: magic 0xE9 at byte 0; the extended header's chip id at bytes 12..13.
IMAGE_MAGIC = 0xE9
CHIP_IDS = {"esp32": 0, "esp32s2": 2, "esp32c3": 5, "esp32s3": 9, "esp32c6": 13}


class FlashError(Exception):
    pass


def image_id(board):
    # "ESP32_GENERIC_C3-<version>.bin" -> "ESP32_GENERIC_C3" (the download page's board id).
    return board["firmware_image"].split("-<", 1)[0]


def download_hint(board):
    return ("download the official MicroPython image for this board, %s (the newest release, "
            "named like %s) from %s" % (board["firmware_image"],
                                        board["firmware_image"].replace("<version>", "<date>-v1.xx.y"),
                                        DOWNLOAD_PAGE % image_id(board)))


def find_image(board, path):
    # An image file, or a folder holding downloads: the newest file named like the board's image.
    if not path:
        raise FlashError("no FIRMWARE given; " + download_hint(board) +
                         ", then: make flash BOARD=%s PORT=<port> FIRMWARE=<file>" % board["name"])
    path = os.path.expanduser(path)
    if os.path.isdir(path):
        pat = re.compile(re.escape(image_id(board)) + r"-\d[^/]*\.bin$")
        hits = [p for p in glob.glob(os.path.join(path, "*.bin")) if pat.match(os.path.basename(p))]
        if not hits:
            raise FlashError("no %s in %s; %s" % (board["firmware_image"], path, download_hint(board)))
        path = max(hits, key=os.path.getmtime)
    if not os.path.isfile(path):
        raise FlashError("firmware image %s not found; %s" % (path, download_hint(board)))
    check_image(board, path)
    return path


def check_image(board, path):
    with open(path, "rb") as f:
        head = f.read(16)
    if len(head) < 16 or head[0] != IMAGE_MAGIC:
        raise FlashError("%s is not an ESP firmware image (first byte %s, want 0xe9); %s" % (
            path, ("0x%02x" % head[0]) if head else "missing", download_hint(board)))
    chip = head[12] | head[13] << 8
    want = CHIP_IDS.get(board["chip"])
    if want is not None and chip != want:
        names = {v: k for k, v in CHIP_IDS.items()}
        raise FlashError("%s is built for %s, but board %s is an %s; %s" % (
            path, names.get(chip, "chip id %d" % chip), board["name"], board["chip"],
            download_hint(board)))


def check_port(board, port, dry_run):
    if not port:
        raise FlashError("no PORT given: plug the board in and name its serial port, for example "
                         "PORT=/dev/ttyUSB0 (USB-UART bridge) or PORT=/dev/ttyACM0 (native USB); "
                         "`%s` lists them" % "python3 -m serial.tools.list_ports")
    if not dry_run and "://" not in port and not os.path.exists(port):
        raise FlashError("serial port %s does not exist (is the board plugged in? "
                         "`python3 -m serial.tools.list_ports` lists the ports)" % port)


def commands(board, port, image, baud=460800, deploy=True, esptool="esptool", python=None,
             frozen=False):
    chip = board["chip"]
    cmds = [[esptool, "--chip", chip, "--port", port, "erase-flash"],
            [esptool, "--chip", chip, "--port", port, "--baud", str(baud), "write-flash",
             board["flash_offset"], image]]
    if deploy:
        cmds.append([python or sys.executable, os.path.join(build.ROOT, "tools", "deploy.py"),
                     board["name"], "--port", port] + (["--config-only"] if frozen else []))
    return cmds


def wait_for_port(port, seconds):
    # Native-USB boards (S2, S3, C3) drop off the bus while resetting.
    if "://" in port:
        return
    end = time.time() + seconds
    while time.time() < end and not os.path.exists(port):
        time.sleep(0.2)
    time.sleep(2.0)  # give MicroPython time to boot before mpremote interrupts it


def main(argv=None):
    ap = argparse.ArgumentParser(description="erase, write the MicroPython image, deploy")
    ap.add_argument("board")
    ap.add_argument("--port", default=os.environ.get("PORT", ""))
    ap.add_argument("--firmware", default=os.environ.get("FIRMWARE", ""))
    ap.add_argument("--baud", type=int, default=460800)
    ap.add_argument("--no-deploy", action="store_true")
    ap.add_argument("--frozen", action="store_true",
                    default=os.environ.get("FROZEN", "") not in ("", "0"),
                    help="the image has the application frozen in: deploy only the configuration")
    ap.add_argument("--dry-run", action="store_true",
                    default=os.environ.get("DRY_RUN", "") not in ("", "0"))
    a = ap.parse_args(argv)
    try:
        board = build.load_board(a.board)
        if board.get("chip") == "host" or "flash_offset" not in board:
            raise FlashError("board %s has no flash: use `make deploy BOARD=%s PORT=...`"
                             % (a.board, a.board))
    except (FlashError, build.BuildError) as e:
        print("flash: " + str(e), file=sys.stderr)
        return 2
    problems = []
    image = None
    try:
        image = find_image(board, a.firmware)
    except FlashError as e:
        problems.append(str(e))
    try:
        check_port(board, a.port, a.dry_run)
    except FlashError as e:
        problems.append(str(e))
    if problems:
        for p in problems:
            print("flash: " + p, file=sys.stderr)
        return 2
    esptool = build.venv_tool("esptool")
    cmds = commands(board, a.port, image, a.baud, not a.no_deploy, esptool, frozen=a.frozen)
    for i, cmd in enumerate(cmds):
        print(("would run: " if a.dry_run else "+ ") + shlex.join(cmd), flush=True)
        if a.dry_run:
            continue
        if i == 2:
            wait_for_port(a.port, 15)
        r = subprocess.run(cmd)
        if r.returncode != 0:
            hint = (" (hold BOOT, tap RESET, release BOOT to enter the bootloader, then retry)"
                    if i < 2 else "")
            print("flash: step failed with exit code %d%s" % (r.returncode, hint), file=sys.stderr)
            return r.returncode
    return 0


if __name__ == "__main__":
    sys.exit(main())
