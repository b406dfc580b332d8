# esp32_devkitc: the application (../manifest.py) plus this board's profile, frozen as board_json.
# `make firmware BOARD=esp32_devkitc` writes build/esp32_devkitc-frozen/board_json.py from boards/esp32_devkitc.json.
include("../manifest.py")
module("board_json.py", base_path="../../build/esp32_devkitc-frozen")
