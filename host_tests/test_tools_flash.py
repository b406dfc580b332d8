# tools/flash.py and `make flash`, up to the esptool invocation (no hardware): the exact
# command lines per board, and clear errors for a missing or wrong image and a missing port.
import os
import subprocess

import pytest

import build
import flash
from conftest import ROOT

ESPTOOL = os.path.join(ROOT, ".venv", "bin", "esptool")
PYTHON = os.path.join(ROOT, ".venv", "bin", "python")
FLASHABLE = [b for b in build.board_names() if build.load_board(b).get("chip") != "host"]
# Verified offsets: esptool's BOOTLOADER_FLASH_OFFSET per target (ESP32 and S2 0x1000, the S2
# class inherits it from ESP32; S3 and C3 0x0), matching MicroPython's board metadata.
OFFSETS = {"esp32": "0x1000", "esp32s2": "0x1000", "esp32s3": "0x0", "esp32c3": "0x0"}


def fake_image(path, chip):
    # An Espressif image header: magic E9, then the extended header's chip id at byte 12.
    cid = flash.CHIP_IDS[chip]
    head = bytes([0xE9, 4, 2, 0x20, 0, 0, 0, 0, 0xEE, 0, 0, 0, cid & 0xFF, cid >> 8, 0, 0])
    path.write_bytes(head + bytes(4096))
    return str(path)


def make_flash(*args):
    return subprocess.run(["make", "-s", "-o", ".venv/.stamp", "flash", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)


def image_name(board):
    return board["firmware_image"].replace("<version>", "20260101-v1.27.0")


@pytest.mark.parametrize("name", FLASHABLE)
def test_dry_run_prints_the_exact_esptool_commands(tmp_path, name):
    board = build.load_board(name)
    assert board["flash_offset"] == OFFSETS[board["chip"]]
    img = fake_image(tmp_path / image_name(board), board["chip"])
    r = make_flash("BOARD=" + name, "PORT=/dev/ttyUSB7", "FIRMWARE=" + img, "DRY_RUN=1")
    assert r.returncode == 0, r.stderr
    chip = board["chip"]
    assert r.stdout.splitlines() == [
        "would run: %s --chip %s --port /dev/ttyUSB7 erase-flash" % (ESPTOOL, chip),
        "would run: %s --chip %s --port /dev/ttyUSB7 --baud 460800 write-flash %s %s"
        % (ESPTOOL, chip, board["flash_offset"], img),
        "would run: %s %s/tools/deploy.py %s --port /dev/ttyUSB7" % (PYTHON, ROOT, name),
    ]


def test_folder_of_downloads_picks_the_boards_image(tmp_path):
    fake_image(tmp_path / "ESP32_GENERIC_C3-20260101-v1.27.0.bin", "esp32c3")
    fake_image(tmp_path / "ESP32_GENERIC_S3-20260101-v1.27.0.bin", "esp32s3")
    want = fake_image(tmp_path / "ESP32_GENERIC-20260101-v1.27.0.bin", "esp32")
    r = make_flash("BOARD=esp32_devkitc", "PORT=/dev/ttyUSB0", "FIRMWARE=%s" % tmp_path,
                   "DRY_RUN=1", "BAUD=921600")
    assert r.returncode == 0, r.stderr
    assert "--baud 921600 write-flash 0x1000 %s" % want in r.stdout


@pytest.mark.parametrize("name", FLASHABLE)
def test_missing_image_names_the_file_to_download(name):
    board = build.load_board(name)
    r = make_flash("BOARD=" + name, "PORT=/dev/ttyUSB0", "DRY_RUN=1")
    assert r.returncode != 0
    assert board["firmware_image"] in r.stderr
    assert "micropython.org/download/%s/" % board["firmware_image"].split("-<")[0] in r.stderr
    assert "would run" not in r.stdout


def test_missing_port_and_image_both_reported():
    r = make_flash("BOARD=esp32c3_supermini")
    assert r.returncode != 0
    assert "no PORT given" in r.stderr and "ESP32_GENERIC_C3-<version>.bin" in r.stderr


def test_port_that_does_not_exist(tmp_path):
    img = fake_image(tmp_path / "ESP32_GENERIC_S3-x.bin", "esp32s3")
    assert flash.main(["esp32s3_devkitc", "--port", str(tmp_path / "ttyNONE"),
                       "--firmware", img]) == 2


def test_image_for_another_chip_is_refused(tmp_path, capsys):
    img = fake_image(tmp_path / "ESP32_GENERIC_S3-20260101-v1.27.0.bin", "esp32s3")
    rc = flash.main(["esp32_devkitc", "--port", "/dev/ttyUSB0", "--firmware", img, "--dry-run"])
    err = capsys.readouterr().err
    assert rc == 2 and "built for esp32s3" in err and "ESP32_GENERIC-<version>.bin" in err


def test_not_an_image(tmp_path, capsys):
    p = tmp_path / "LOLIN_S2_MINI-1.bin"
    p.write_bytes(b"<html>404</html>" * 4)
    assert flash.main(["lolin_s2_mini", "--port", "/dev/ttyACM0", "--firmware", str(p),
                       "--dry-run"]) == 2
    assert "not an ESP firmware image" in capsys.readouterr().err


def test_host_board_has_nothing_to_flash():
    r = make_flash("BOARD=host", "PORT=/dev/null", "DRY_RUN=1")
    assert r.returncode != 0 and "make deploy" in r.stderr
