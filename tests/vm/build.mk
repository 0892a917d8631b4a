# SPDX-License-Identifier: GPL-2.0-only
#
# VM reliability tests (Documentation/reliability.rst): a fuzzer of the
# ioctl, io_uring and mmap interface, lifecycle races and device faults.
# Static programs with the kselftest harness, run in the guest by
# tests/run-all.sh.  tests/kselftest/build.mk includes this fragment and
# provides KSELFTEST_CFLAGS and the harness check.
#
#   $(BUILD)/guest/tests/cxl_pnm_fuzz, cxl_pnm_lifecycle
#                       run with the other guest tests (/pnm/tests)
#   $(BUILD)/guest/faults/cxl_pnm_faults
#                       run after every other guest test (/pnm/faults): it
#                       kills the last device and unloads cxl_pnm
#   make vm-faults      build, then run the fault tests alone in a VM

VM_TEST_DIR := $(TOP)/tests/vm
VM_TEST_PROGS := $(BUILD)/guest/tests/cxl_pnm_fuzz \
	$(BUILD)/guest/tests/cxl_pnm_lifecycle \
	$(BUILD)/guest/faults/cxl_pnm_faults

.PHONY: vm-tests vm-faults vm-tests-clean
vm-tests: $(VM_TEST_PROGS)
guest-tests: vm-tests
clean: vm-tests-clean

$(BUILD)/guest/tests/%: $(VM_TEST_DIR)/%.c $(VM_TEST_DIR)/pnm_vm_test.h \
		$(TOP)/uapi/linux/cxl_pnm.h | kselftest-harness liburing-check
	@mkdir -p $(@D)
	$(CC) $(KSELFTEST_CFLAGS) -pthread -static -o $@ $< -luring

$(BUILD)/guest/faults/%: $(VM_TEST_DIR)/%.c $(VM_TEST_DIR)/pnm_vm_test.h \
		$(TOP)/uapi/linux/cxl_pnm.h | kselftest-harness liburing-check
	@mkdir -p $(@D)
	$(CC) $(KSELFTEST_CFLAGS) -pthread -static -o $@ $< -luring

vm-faults: userspace module
	BUILD=$(BUILD) $(TOP)/qemu/pnm-vm --devices 2 -- /pnm/faults/cxl_pnm_faults

vm-tests-clean:
	rm -f $(VM_TEST_PROGS)
