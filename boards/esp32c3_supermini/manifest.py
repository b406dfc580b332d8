# esp32c3_supermini: the application (../manifest.py) plus this board's profile, frozen as board_json.
# `make firmware BOARD=esp32c3_supermini` writes build/esp32c3_supermini-frozen/board_json.py from boards/esp32c3_supermini.json.
include("../manifest.py")
module("board_json.py", base_path="../../build/esp32c3_supermini-frozen")
