# SPDX-License-Identifier: GPL-2.0-only
#
# Runtime tests.  Host programs (CPU reference, KV generator, KV-cache
# manager and the direct transport's lock over pnm-device processes) go to
# $(TESTBIN)/host and, built with $(SANFLAGS), to $(BUILD)/san/tests/host;
# runtime_tools_test, which runs the tools pnm-demo and pnm-accuracy of
# $(BIN), is built once, plain.  The guest programs runtime_e2e and
# runtime_multidev (kernel transport) go to $(BUILD)/guest/tests.
#
#   make host-tests      build them all
#   make runtime-check   build and run the host programs, plain and sanitized

-include $(BUILD)/kernel.mk

RT_TEST_DIR := $(TOP)/tests/runtime
RT_HOST_NAMES := runtime_ref_test runtime_kvgen_test runtime_kvcache_test \
	runtime_merge_test runtime_steady_test runtime_multidev_test \
	runtime_png_test runtime_direct_lock_test
RT_HOST_TESTS := $(RT_HOST_NAMES:%=$(TESTBIN)/host/%)
RT_TOOLS_TEST := $(TESTBIN)/host/runtime_tools_test
RT_SAN_TESTS := $(RT_HOST_NAMES:%=$(BUILD)/san/tests/host/%)
RT_GUEST_NAMES := runtime_e2e runtime_multidev
RT_GUEST_TESTS := $(RT_GUEST_NAMES:%=$(BUILD)/guest/tests/%)
RT_TEST_DEPS := $(RT_TEST_DIR)/decode_check.h $(RT_TEST_DIR)/device_model.h \
	$(RUNTIME_HDRS)

# The harness trips three -Wextra warnings of its own (unused parameters of
# its wrappers, signed/unsigned EXPECT_EQ of literals, a variable set after
# setjmp); they are turned off for test programs only.
RT_TEST_CFLAGS := $(CFLAGS_COMMON) -I$(KSRC)/tools/testing/selftests \
	-Wno-unused-parameter -Wno-sign-compare -Wno-clobbered

runtime_ref_test_SRC := $(RT_TEST_DIR)/ref_test.c
runtime_kvgen_test_SRC := $(RT_TEST_DIR)/kvgen_test.c
runtime_kvcache_test_SRC := $(RT_TEST_DIR)/kvcache_test.c
runtime_merge_test_SRC := $(RT_TEST_DIR)/merge_test.c
runtime_steady_test_SRC := $(RT_TEST_DIR)/steady_test.c
runtime_multidev_test_SRC := $(RT_TEST_DIR)/multidev_test.c
runtime_png_test_SRC := $(RT_TEST_DIR)/png_test.c
runtime_direct_lock_test_SRC := $(RT_TEST_DIR)/direct_lock_test.c

.PHONY: host-tests guest-tests runtime-check
host-tests: $(RT_HOST_TESTS) $(RT_SAN_TESTS) $(RT_TOOLS_TEST) \
	$(BIN)/pnm-device $(BUILD)/san/bin/pnm-device
guest-tests: $(RT_GUEST_TESTS)
check: host-tests guest-tests

# A static pattern rule: more specific than the pattern rule below.
$(RT_TOOLS_TEST): $(TESTBIN)/host/%: $(RT_TEST_DIR)/tools_test.c $(RT_TEST_DEPS) \
		$(BIN)/pnm-demo $(BIN)/pnm-accuracy $(BIN)/pnm-device
	@mkdir -p $(@D)
	$(CC) $(RT_TEST_CFLAGS) -DPNM_DEVICE_BIN='"$(BIN)/pnm-device"' \
		-DPNM_BIN_DIR='"$(BIN)"' -o $@ $<

$(TESTBIN)/host/%: $(RT_TEST_DIR)/*.c $(RT_TEST_DEPS) $(LIBPNM_A)
	@mkdir -p $(@D)
	$(CC) $(RT_TEST_CFLAGS) -DPNM_DEVICE_BIN='"$(BIN)/pnm-device"' \
		-o $@ $($*_SRC) $(LIBPNM_A) $(LIBPNM_LDLIBS)

$(BUILD)/san/tests/host/%: $(RT_TEST_DIR)/*.c $(RT_TEST_DEPS) $(LIBPNM_SAN_A)
	@mkdir -p $(@D)
	$(CC) $(RT_TEST_CFLAGS) $(SANFLAGS) \
		-DPNM_DEVICE_BIN='"$(BUILD)/san/bin/pnm-device"' \
		-o $@ $($*_SRC) $(LIBPNM_SAN_A) $(LIBPNM_LDLIBS)

$(RT_GUEST_TESTS): $(BUILD)/guest/tests/%: $(RT_TEST_DIR)/%.c $(RT_TEST_DEPS) $(LIBPNM_A)
	@mkdir -p $(@D)
	$(CC) $(RT_TEST_CFLAGS) -static -o $@ $< $(LIBPNM_A) $(LIBPNM_LDLIBS)

runtime-check: host-tests
	@set -e; for t in $(RT_HOST_TESTS) $(RT_TOOLS_TEST) $(RT_SAN_TESTS); do \
		echo "# $$t"; $$t; \
	done
