# SPDX-License-Identifier: GPL-2.0-only
#
# Device model: $(BIN)/pnm-device, a host process that plays the CXL-PNM
# accelerator on QEMU's shared memory file.  The host unit tests also run it
# built with $(SANFLAGS), from $(BUILD)/san/bin.
#
# PNM_EXEC_SRCS is the executor without the process around it (decoding,
# validation, kernels, compute units): the kernel tests and the kernel
# benchmark link it directly.  The vector kernels carry their own target
# attributes, so the whole build keeps the baseline x86-64 flags and picks
# a path at run time.

PNM_EXEC_SRCS := $(addprefix $(TOP)/qemu/,pnm_exec.c pnm_kernels.c \
	pnm_kernels_avx2.c pnm_kernels_avx512.c pnm_units.c pnm_timing.c)
PNM_EXEC_HDRS := $(addprefix $(TOP)/qemu/,pnm_exec.h pnm_kernels.h \
	pnm_kernels_simd.h pnm_dtype.h pnm_units.h pnm_timing.h) \
	$(TOP)/driver/cxl_pnm_hw.h
PNM_EXEC_LDLIBS := -lm -lpthread
PNM_DEVICE_SRCS := $(TOP)/qemu/pnm_device.c $(PNM_EXEC_SRCS)
PNM_DEVICE_DEPS := $(PNM_DEVICE_SRCS) $(PNM_EXEC_HDRS)

$(BIN)/pnm-device: $(PNM_DEVICE_DEPS)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS_COMMON) -o $@ $(PNM_DEVICE_SRCS) $(PNM_EXEC_LDLIBS)

$(BUILD)/san/bin/pnm-device: $(PNM_DEVICE_DEPS)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS_COMMON) $(SANFLAGS) -o $@ $(PNM_DEVICE_SRCS) $(PNM_EXEC_LDLIBS)

userspace: $(BIN)/pnm-device
