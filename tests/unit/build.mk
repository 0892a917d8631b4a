# SPDX-License-Identifier: GPL-2.0-only
#
# Host unit tests of the device model and the direct transport: each
# program starts pnm-device processes on /dev/shm files and prints TAP
# through the kselftest harness.  They are built twice: normally into
# $(TESTBIN)/host against $(BIN)/pnm-device, and with $(SANFLAGS) into
# $(BUILD)/san/tests/host against the sanitizer builds of libpnm and
# pnm-device.  PNM_DEVICE=path overrides the device binary at run time.

-include $(BUILD)/kernel.mk

UNIT_DIR := $(TOP)/tests/unit
UNIT_TESTS := device_commands device_errors device_process device_faults
UNIT_BINS := $(addprefix $(TESTBIN)/host/,$(UNIT_TESTS))
UNIT_SAN_BINS := $(addprefix $(BUILD)/san/tests/host/,$(UNIT_TESTS))
UNIT_DEPS := $(UNIT_DIR)/pnm_unit.c $(UNIT_DIR)/pnm_unit.h \
	$(TOP)/runtime/direct.h $(TOP)/runtime/pnm.h $(TOP)/runtime/pnm_ref.h \
	$(TOP)/driver/cxl_pnm_hw.h $(TOP)/uapi/linux/cxl_pnm.h
# kselftest_harness.h (6.12) is written for the selftests' -Wall; -Wextra
# warns about its own code (unused wrapper parameters, EXPECT_EQ(0, x)
# mixing signedness, `child` kept across setjmp), so those three are off.
UNIT_CFLAGS = $(CFLAGS_COMMON) -I$(KSRC)/tools/testing/selftests -I$(UNIT_DIR) \
	-Wno-unused-parameter -Wno-sign-compare -Wno-clobbered

$(UNIT_BINS): $(TESTBIN)/host/%: $(UNIT_DIR)/%.c $(UNIT_DEPS) $(LIBPNM_A) \
		$(BIN)/pnm-device
	@test -n "$(KSRC)" || { echo "KSRC unset: run 'make setup' first" >&2; exit 1; }
	@mkdir -p $(@D)
	$(CC) $(UNIT_CFLAGS) -DPNM_DEVICE_BIN='"$(BIN)/pnm-device"' -o $@ \
		$< $(UNIT_DIR)/pnm_unit.c $(LIBPNM_A) $(LIBPNM_LDLIBS)

$(UNIT_SAN_BINS): $(BUILD)/san/tests/host/%: $(UNIT_DIR)/%.c $(UNIT_DEPS) \
		$(LIBPNM_SAN_A) $(BUILD)/san/bin/pnm-device
	@test -n "$(KSRC)" || { echo "KSRC unset: run 'make setup' first" >&2; exit 1; }
	@mkdir -p $(@D)
	$(CC) $(UNIT_CFLAGS) $(SANFLAGS) \
		-DPNM_DEVICE_BIN='"$(BUILD)/san/bin/pnm-device"' -o $@ \
		$< $(UNIT_DIR)/pnm_unit.c $(LIBPNM_SAN_A) $(LIBPNM_LDLIBS)

# kernel_paths runs the executor in process, every kernel path against the
# scalar one: it links the device model's executor (qemu/build.mk) itself.
# The sanitizer build covers the vector paths too.
KPATH_SRCS := $(UNIT_DIR)/kernel_paths.c $(UNIT_DIR)/pnm_unit.c $(PNM_EXEC_SRCS)
KPATH_CFLAGS = $(UNIT_CFLAGS) -I$(TOP)/qemu -DPNM_DEVICE_BIN='"$(BIN)/pnm-device"'

$(TESTBIN)/host/kernel_paths: $(KPATH_SRCS) $(UNIT_DEPS) $(PNM_EXEC_HDRS) $(LIBPNM_A)
	@test -n "$(KSRC)" || { echo "KSRC unset: run 'make setup' first" >&2; exit 1; }
	@mkdir -p $(@D)
	$(CC) $(KPATH_CFLAGS) -o $@ $(KPATH_SRCS) $(LIBPNM_A) $(LIBPNM_LDLIBS) \
		$(PNM_EXEC_LDLIBS)

$(BUILD)/san/tests/host/kernel_paths: $(KPATH_SRCS) $(UNIT_DEPS) $(PNM_EXEC_HDRS) \
		$(LIBPNM_SAN_A)
	@test -n "$(KSRC)" || { echo "KSRC unset: run 'make setup' first" >&2; exit 1; }
	@mkdir -p $(@D)
	$(CC) $(KPATH_CFLAGS) $(SANFLAGS) -o $@ $(KPATH_SRCS) $(LIBPNM_SAN_A) \
		$(LIBPNM_LDLIBS) $(PNM_EXEC_LDLIBS)

.PHONY: host-tests
host-tests: $(UNIT_BINS) $(UNIT_SAN_BINS) $(TESTBIN)/host/kernel_paths \
	$(BUILD)/san/tests/host/kernel_paths
check: host-tests

# The executor fuzzer (tests/fuzz/) joins the host tests.
-include $(TOP)/tests/fuzz/build.mk
