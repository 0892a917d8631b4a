# SPDX-License-Identifier: GPL-2.0-only
#
# make check: build everything, run every host test program (plain and
# sanitizer builds), then boot the VM and run every guest test program.
# Each suite's fragment builds its programs and adds them as prerequisites
# of check; tests/run-all.sh finds them by directory:
#   $(TESTBIN)/host/*, $(BUILD)/san/tests/host/*   on the host
#   $(BUILD)/guest/tests/*                         in the VM (/pnm/tests)

-include $(TOP)/tests/unit/build.mk
-include $(TOP)/tests/kselftest/build.mk
-include $(TOP)/tests/kselftest/uring.mk
-include $(TOP)/tests/runtime/build.mk
-include $(TOP)/tests/runtime/uring.mk
-include $(TOP)/tests/pnmctl/build.mk

check: userspace module
	BUILD=$(BUILD) TESTBIN=$(TESTBIN) $(TOP)/tests/run-all.sh
