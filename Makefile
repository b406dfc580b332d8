# HAN module firmware. `make demo` runs the firmware's main job on embedded defaults,
# `make test` runs every test. Both set up what they need on a fresh machine.
VENV := .venv
PY := $(VENV)/bin/python
MICROPYTHON := $(VENV)/bin/micropython
STAMP := $(VENV)/.stamp
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: all setup test test-mpy fuzz bench demo clean help
all: test

help:
	@echo "make demo        run the firmware on MicroPython against an embedded broker and a simulated meter"
	@echo "make test        run every test (CPython and MicroPython, end to end, portal in a browser)"
	@echo "make bench       speed and memory figures"
	@echo "make fuzz        a long fuzzing run (a million cases)"
	@echo "make build BOARD=<board> / flash / deploy / firmware: see README.md"

setup: $(STAMP)
$(STAMP): tools/setup_env.sh requirements-host.txt
	@bash tools/setup_env.sh

# System packages the end-to-end and browser tests need (mosquitto, chromium, socat).
system-deps:
	@bash tools/system_deps.sh

test: $(STAMP) system-deps
	$(PY) -m pytest -q host_tests

test-mpy: $(STAMP)
	$(MICROPYTHON) host_tests/run_mpy.py

clean:
	rm -rf $(VENV) build artifacts .pytest_cache .hypothesis

-include mk/*.mk
