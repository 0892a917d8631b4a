# SPDX-License-Identifier: GPL-2.0-only
#
# make setup: install the packages the build and the VM need and fetch the
# guest kernel (image, headers, a few source files) into $(BUILD)/kernel,
# then describe it in $(BUILD)/kernel.mk (KVER, KABI, KDIR, KSRC, KIMAGE,
# KMODULES). Needs root; safe to run again (downloads are cached).

setup:
	$(TOP)/tools/setup/setup.sh $(BUILD)

# Targets that build against the guest kernel include $(BUILD)/kernel.mk;
# when it is missing, make runs setup to create it and then starts over, so
# `make demo` and `make check` work on a fresh machine.
ifeq ($(filter setup clean,$(MAKECMDGOALS)),)
$(BUILD)/kernel.mk:
	$(TOP)/tools/setup/setup.sh $(BUILD)
endif
