# SPDX-License-Identifier: GPL-2.0-only
#
# make setup: install the packages the build and the VM need and fetch the
# guest kernel (image, headers, a few source files) into $(BUILD)/kernel,
# then describe it in $(BUILD)/kernel.mk (KVER, KABI, KDIR, KSRC, KIMAGE,
# KMODULES). Needs root; safe to run again (downloads are cached).

setup:
	$(TOP)/tools/setup/setup.sh $(BUILD)
