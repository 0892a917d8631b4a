# SPDX-License-Identifier: GPL-2.0-only
#
# Device model: $(BIN)/pnm-device, a host process that plays the CXL-PNM
# accelerator on QEMU's shared memory file.  The host unit tests also run it
# built with $(SANFLAGS), from $(BUILD)/san/bin.

PNM_DEVICE_SRCS := $(addprefix $(TOP)/qemu/,pnm_device.c pnm_exec.c pnm_timing.c)
PNM_DEVICE_DEPS := $(PNM_DEVICE_SRCS) $(TOP)/qemu/pnm_exec.h \
	$(TOP)/qemu/pnm_timing.h $(TOP)/driver/cxl_pnm_hw.h

$(BIN)/pnm-device: $(PNM_DEVICE_DEPS)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS_COMMON) -o $@ $(PNM_DEVICE_SRCS) -lm

$(BUILD)/san/bin/pnm-device: $(PNM_DEVICE_DEPS)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS_COMMON) $(SANFLAGS) -o $@ $(PNM_DEVICE_SRCS) -lm

userspace: $(BIN)/pnm-device
