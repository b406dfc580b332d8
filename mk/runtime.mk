# The firmware on the host: the demo, a host run, the memory soak and the end-to-end bench.
#
#   make demo [BROKER=host:port] [DEMO_SECONDS=N]   firmware + simulated meter + broker, live view
#   make run-host UART=pty:/dev/pts/N BROKER=host:port   just the firmware (tools/run_host.py)
#   make soak [SOAK_FRAMES=260000]                  a month of frames through the whole firmware
#   make bench-e2e                                  pty -> broker latency p50/p99, heap needed
BROKER ?=
DEMO_SECONDS ?=
UART ?=
SOAK_FRAMES ?= 260000

.PHONY: demo run-host soak bench-e2e

demo: $(STAMP)
	@$(PY) tools/demo.py $(if $(BROKER),--broker $(BROKER)) $(if $(DEMO_SECONDS),--seconds $(DEMO_SECONDS))

run-host: $(STAMP)
	$(PY) tools/run_host.py $(if $(UART),--uart $(UART)) $(if $(BROKER),--broker $(BROKER))

soak: $(STAMP) system-deps
	SOAK_FRAMES=$(SOAK_FRAMES) $(PY) -m pytest -q -s host_tests/test_e2e_soak.py

bench-e2e: $(STAMP) system-deps
	$(PY) tools/bench_e2e.py
