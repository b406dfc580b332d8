# Runs before main.py on the device. Deliberately empty of logic: nothing here may fail.
# (The watchdog is armed in app.start, after the safe-mode check; see main.py.)
