# SPDX-License-Identifier: GPL-2.0-only
#
# kselftests of the cxl_pnm ioctl and mmap interface.  They run inside the
# VM (the initramfs copies $(BUILD)/guest to /pnm), so they are linked
# statically.  kselftest_harness.h comes from the kernel source files that
# `make setup` extracts into $(KSRC); it is never copied into this tree.
#
#   make guest-tests   build $(BUILD)/guest/tests/cxl_pnm_test
#   make kselftest     build it, the driver and the device model, then run
#                      it alone in the VM (make check runs it with the rest)

-include $(BUILD)/kernel.mk

KSELFTEST_DIR := $(TOP)/tests/kselftest
KSELFTEST_HARNESS := $(KSRC)/tools/testing/selftests/kselftest_harness.h
KSELFTEST_PROGS := $(BUILD)/guest/tests/cxl_pnm_test
# kselftest_harness.h (6.12) is written for the selftests' -Wall, and -Wextra
# finds three warnings in it, each turned off here only:
# - unused-parameter: its test wrappers and timeout handler take arguments
#   that not every test uses;
# - sign-compare: EXPECT_EQ(0, x) compares the type of the literal with the
#   type of x, so any unsigned field mixes signedness (the harness prints
#   each side with its own signedness);
# - clobbered: its test wrapper sets `child` = fork() after setjmp() and
#   reads it again after the longjmp() of a failed ASSERT.  Built this way,
#   a failing FIXTURE_SETUP still reports each test once, as FAIL (checked
#   by running the program where /dev/cxl/pnm0 does not exist).
KSELFTEST_CFLAGS := $(CFLAGS_COMMON) -I$(KSRC)/tools/testing/selftests \
	-Wno-unused-parameter -Wno-sign-compare -Wno-clobbered

.PHONY: guest-tests kselftest kselftest-clean
guest-tests: $(KSELFTEST_PROGS)
userspace: guest-tests
clean: kselftest-clean

$(BUILD)/guest/tests/cxl_pnm_test: $(KSELFTEST_DIR)/cxl_pnm_test.c \
		$(TOP)/uapi/linux/cxl_pnm.h | kselftest-harness
	@mkdir -p $(@D)
	$(CC) $(KSELFTEST_CFLAGS) -static -o $@ $< -lm

# A clear message instead of "No rule to make target" before `make setup`.
.PHONY: kselftest-harness
kselftest-harness:
	@test -n "$(KSRC)" -a -f "$(KSELFTEST_HARNESS)" || { \
		echo "kselftest: $(if $(KSRC),$(KSELFTEST_HARNESS) is missing,KSRC is not set ($(BUILD)/kernel.mk missing)): run make setup" >&2; \
		exit 1; }

kselftest: userspace module
	BUILD=$(BUILD) $(TOP)/qemu/pnm-vm -- /pnm/tests/cxl_pnm_test

kselftest-clean:
	rm -f $(KSELFTEST_PROGS)

# The VM reliability tests share this fragment's flags and harness check.
-include $(TOP)/tests/vm/build.mk
