# SPDX-License-Identifier: GPL-2.0-only
#
# kselftest of io_uring passthrough (IORING_OP_URING_CMD) on cxl_pnm,
# linked statically with liburing for the VM.  tests/build.mk includes this
# fragment after tests/kselftest/build.mk and uses its KSELFTEST_CFLAGS.
#
#   make guest-tests      also builds $(BUILD)/guest/tests/cxl_pnm_uring_test
#   make kselftest-uring  builds it, the driver and the device model, then
#                         runs it alone in the VM

URING_KSELFTEST := $(BUILD)/guest/tests/cxl_pnm_uring_test
# liburing-dev ships the static archive the guest programs need.
LIBURING_A := $(firstword $(wildcard /usr/lib/*/liburing.a /usr/lib/liburing.a))

.PHONY: kselftest-uring liburing-check
guest-tests: $(URING_KSELFTEST)
clean: kselftest-uring-clean

$(URING_KSELFTEST): $(TOP)/tests/kselftest/cxl_pnm_uring_test.c \
		$(TOP)/uapi/linux/cxl_pnm.h | kselftest-harness liburing-check
	@mkdir -p $(@D)
	$(CC) $(KSELFTEST_CFLAGS) -pthread -static -o $@ $< -luring

liburing-check:
	@test -n "$(LIBURING_A)" || { \
		echo "liburing.a not found: install liburing-dev (make setup)" >&2; \
		exit 1; }

kselftest-uring: userspace module
	BUILD=$(BUILD) $(TOP)/qemu/pnm-vm -- /pnm/tests/cxl_pnm_uring_test

.PHONY: kselftest-uring-clean
kselftest-uring-clean:
	rm -f $(URING_KSELFTEST)
