# SPDX-License-Identifier: GPL-2.0-only
#
# Submission benchmark (tools/bench-submit.c, Documentation/benchmarks.rst).
#
#   make bench-submit [BENCH_SUBMIT_ARGS="--min-ms 300"]
#       runs bench-submit in the VM against /dev/cxl/pnm0 (ioctl, io_uring,
#       raw io_uring, the IORING_OP_NOP floor), then on the host against a
#       pnm-device through the direct transport.

BENCH_SUBMIT_SRC := $(TOP)/tools/bench-submit.c
BENCH_SUBMIT_ARGS ?=
BENCH_SUBMIT_DEPS := $(BENCH_SUBMIT_SRC) $(LIBPNM_A) $(RUNTIME_HDRS)

.PHONY: bench-submit
userspace: $(BIN)/bench-submit $(BUILD)/guest/bin/bench-submit

$(BIN)/bench-submit: $(BENCH_SUBMIT_DEPS)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS_COMMON) -o $@ $< $(LIBPNM_A) $(LIBPNM_LDLIBS)

$(BUILD)/guest/bin/bench-submit: $(BENCH_SUBMIT_DEPS)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS_COMMON) -static -o $@ $< $(LIBPNM_A) $(LIBPNM_LDLIBS)

# The host half starts its own device model on a /dev/shm file and stops it
# (and removes the file) on every exit path.
bench-submit: userspace module
	$(PNM_VM) --timeout 900 -- bench-submit $(BENCH_SUBMIT_ARGS)
	@set -e; mem=/dev/shm/pnm-bench-submit-$$$$; log=$$mem.log; \
	trap 'kill $$pid 2>/dev/null; wait $$pid 2>/dev/null; rm -f $$mem $$log' EXIT; \
	$(BIN)/pnm-device --mem $$mem 2>$$log & pid=$$!; \
	for i in $$(seq 100); do grep -q "ready" $$log && break; sleep 0.1; done; \
	grep -q "ready" $$log || { cat $$log; exit 1; }; \
	$(BIN)/bench-submit --device direct:$$mem $(BENCH_SUBMIT_ARGS)
