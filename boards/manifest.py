# The application frozen into a MicroPython image (see `make firmware` in mk/tools.mk and
# docs/flashing.md). Paths are relative to this file. Each boards/<board>/manifest.py
# includes this one and adds its profile as the frozen module board_json (TEXT = the JSON),
# because a frozen image holds modules, not data files.
#
# The port's own manifest keeps what the stock image has (asyncio, umqtt.simple and
# umqtt.robust, ssl, mip, ...); the application needs umqtt.simple from it.
include("$(PORT_DIR)/boards/manifest.py")

package("han", base_path="../firmware")
package("app", base_path="../firmware")

# Frozen main.py and boot.py run in place of any on the filesystem (MicroPython looks for a
# frozen one first), so a frozen image always boots the frozen application. Develop with
# `mpremote mount firmware exec "import main"` or with the stock image and `make deploy`.
module("boot.py", base_path="../firmware")
module("main.py", base_path="../firmware")
