# Decoder core: benchmarks and long fuzzing runs.
.PHONY: bench bench-decoder fuzz

# `make bench`: decoder speed and memory, then the end-to-end latency/heap figures.
bench: bench-decoder bench-e2e

bench-decoder: $(STAMP)
	$(PY) tools/bench.py

# `make fuzz`: the hypothesis properties of host_tests/test_host_fuzz.py with a million cases
# in all (FUZZ_EXAMPLES per property, four properties).
fuzz: $(STAMP)
	HYPOTHESIS_PROFILE=fuzz FUZZ_EXAMPLES=$${FUZZ_EXAMPLES:-250000} $(PY) -m pytest -q -p no:cacheprovider \
		host_tests/test_host_fuzz.py -k "not every_frame_split"
