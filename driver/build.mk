# SPDX-License-Identifier: GPL-2.0-only
#
# Kernel driver cxl_pnm.ko, built against the guest kernel of make setup.
#
#   make module       build $(BUILD)/guest/cxl_pnm.ko
#   make driver-lint  checkpatch --strict on every driver file, then a sparse
#                     build (C=2); fails on any warning
#
# kbuild writes its objects next to the sources, and the 6.12 kbuild cannot
# put them elsewhere, so the build runs on a mirror of symlinks in
# $(DRIVER_TREE).

-include $(BUILD)/kernel.mk

DRIVER_TREE := $(BUILD)/kbuild
DRIVER_FILES := $(sort $(wildcard $(TOP)/driver/*.c $(TOP)/driver/*.h)) \
	$(TOP)/driver/Kbuild
# The user ABI header is kernel code too.
DRIVER_LINT_FILES := $(filter %.c %.h,$(DRIVER_FILES)) $(TOP)/uapi/linux/cxl_pnm.h
DRIVER_KMAKE = $(MAKE) -C $(KDIR) M=$(DRIVER_TREE) CXL_PNM_KSRC=$(KSRC)

.PHONY: module driver-tree driver-lint driver-clean

driver-tree:
	@test -n "$(KDIR)" || { echo "no $(BUILD)/kernel.mk: run 'make setup'" >&2; exit 1; }
	@mkdir -p $(DRIVER_TREE)/driver $(DRIVER_TREE)/uapi/linux
	@ln -sfn $(TOP)/Kbuild $(DRIVER_TREE)/Kbuild
	@ln -sfn $(TOP)/uapi/linux/cxl_pnm.h $(DRIVER_TREE)/uapi/linux/cxl_pnm.h
	@for f in $(DRIVER_FILES); do ln -sfn $$f $(DRIVER_TREE)/driver/; done
	@# Drop links to sources that no longer exist.
	@find $(DRIVER_TREE) -xtype l -delete

module: driver-tree
	+$(DRIVER_KMAKE) modules
	@mkdir -p $(BUILD)/guest
	cp $(DRIVER_TREE)/driver/cxl_pnm.ko $(BUILD)/guest/cxl_pnm.ko

# C=2 checks every source file, built or not; sparse reports on stderr.
driver-lint: driver-tree
	$(KSRC)/scripts/checkpatch.pl --strict --no-tree --quiet --show-types \
		-f $(DRIVER_LINT_FILES)
	+$(DRIVER_KMAKE) C=2 CHECK=sparse modules 2>$(DRIVER_TREE)/sparse.log; \
		rc=$$?; cat $(DRIVER_TREE)/sparse.log; \
		test $$rc = 0 && ! grep -E ': (warning|error):' $(DRIVER_TREE)/sparse.log >/dev/null

driver-clean:
	rm -rf $(DRIVER_TREE) $(BUILD)/guest/cxl_pnm.ko

clean: driver-clean
