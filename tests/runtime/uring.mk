# SPDX-License-Identifier: GPL-2.0-only
#
# Runtime tests of io_uring submission and the asynchronous API.  The guest
# program (kernel transport) goes to $(BUILD)/guest/tests; the host program
# (the core's generic queue over the direct transport) to $(TESTBIN)/host
# and, with the sanitizers, to $(BUILD)/san/tests/host.  tests/build.mk
# includes this fragment after tests/runtime/build.mk, whose RT_TEST_CFLAGS
# it uses.
#
#   make guest-tests   also builds $(BUILD)/guest/tests/runtime_uring_async
#   make host-tests    also builds runtime_uring_fallback (plain, sanitized)

RT_URING_GUEST := $(BUILD)/guest/tests/runtime_uring_async
RT_URING_HOST := $(TESTBIN)/host/runtime_uring_fallback
RT_URING_SAN := $(BUILD)/san/tests/host/runtime_uring_fallback
RT_URING_DEPS := $(RUNTIME_HDRS) $(TOP)/tests/runtime/device_model.h

guest-tests: $(RT_URING_GUEST)
host-tests: $(RT_URING_HOST) $(RT_URING_SAN)
clean: rt-uring-clean

$(RT_URING_GUEST): $(TOP)/tests/runtime/uring_async.c $(RT_URING_DEPS) \
		$(LIBPNM_A)
	@mkdir -p $(@D)
	$(CC) $(RT_TEST_CFLAGS) -static -o $@ $< $(LIBPNM_A) $(LIBPNM_LDLIBS)

$(RT_URING_HOST): $(TOP)/tests/runtime/uring_fallback.c $(RT_URING_DEPS) \
		$(LIBPNM_A)
	@mkdir -p $(@D)
	$(CC) $(RT_TEST_CFLAGS) -DPNM_DEVICE_BIN='"$(BIN)/pnm-device"' \
		-o $@ $< $(LIBPNM_A) $(LIBPNM_LDLIBS)

$(RT_URING_SAN): $(TOP)/tests/runtime/uring_fallback.c $(RT_URING_DEPS) \
		$(LIBPNM_SAN_A)
	@mkdir -p $(@D)
	$(CC) $(RT_TEST_CFLAGS) $(SANFLAGS) \
		-DPNM_DEVICE_BIN='"$(BUILD)/san/bin/pnm-device"' \
		-o $@ $< $(LIBPNM_SAN_A) $(LIBPNM_LDLIBS)

.PHONY: rt-uring-clean
rt-uring-clean:
	rm -f $(RT_URING_GUEST) $(RT_URING_HOST) $(RT_URING_SAN)
