# lolin_s2_mini: the application (../manifest.py) plus this board's profile, frozen as board_json.
# `make firmware BOARD=lolin_s2_mini` writes build/lolin_s2_mini-frozen/board_json.py from boards/lolin_s2_mini.json.
include("../manifest.py")
module("board_json.py", base_path="../../build/lolin_s2_mini-frozen")
