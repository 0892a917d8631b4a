# SPDX-License-Identifier: GPL-2.0-only
#
# make bench: the device model's kernels against the memory read bandwidth
# (tools/bench-kernels.c), on the host, no VM and no root.  Results go to
# $(BUILD)/bench/kernels.{csv,png,txt}; Documentation/accelerator-performance.rst
# records a run.  BENCH_KERNELS_ARGS adds options (--units, --kernels, ...).

BENCH_KERNELS := $(BIN)/pnm-bench-kernels
BENCH_KERNELS_OUT := $(BUILD)/bench
BENCH_KERNELS_ARGS ?=

$(BENCH_KERNELS): $(TOP)/tools/bench-kernels.c $(PNM_EXEC_SRCS) $(PNM_EXEC_HDRS)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS_COMMON) -I$(TOP)/qemu -DPNM_TOP='"$(TOP)"' -o $@ \
		$(TOP)/tools/bench-kernels.c $(PNM_EXEC_SRCS) $(PNM_EXEC_LDLIBS)

.PHONY: bench bench-kernels
userspace: $(BENCH_KERNELS)
bench: bench-kernels
bench-kernels: $(BENCH_KERNELS)
	@mkdir -p $(BENCH_KERNELS_OUT)
	$(BENCH_KERNELS) --csv $(BENCH_KERNELS_OUT)/kernels.csv \
		--plot $(BENCH_KERNELS_OUT)/kernels.png $(BENCH_KERNELS_ARGS) \
		| tee $(BENCH_KERNELS_OUT)/kernels.txt
