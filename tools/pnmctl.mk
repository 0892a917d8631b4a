# SPDX-License-Identifier: GPL-2.0-only
#
# pnmctl (tools/pnmctl/, Documentation/pnmctl.1): $(BIN)/pnmctl for the
# host and $(BUILD)/guest/bin/pnmctl for the test VM.
#
# pnmctl creates CXL regions through libcxl, and Debian ships libcxl only
# as a shared library (no libcxl.a), so the guest build cannot be static.
# It is linked against the host's libraries with /pnm/lib as its run path
# (DT_RPATH: unlike DT_RUNPATH it also serves the dependencies of libcxl)
# and program interpreter, and those libraries (libcxl and what it pulls
# in: libkmod, libudev, libuuid, libc...) are copied into
# $(BUILD)/guest/lib, which the VM launcher packs as /pnm/lib.
# Documentation/pnmctl.1 (NOTES) explains the choice.

PNMCTL_DIR := $(TOP)/tools/pnmctl
PNMCTL_SRCS := $(addprefix $(PNMCTL_DIR)/,pnmctl.c util.c device.c region.c \
	selftest.c perf.c perf_model.c) $(TOP)/qemu/pnm_timing.c
PNMCTL_HDRS := $(PNMCTL_DIR)/pnmctl.h $(PNMCTL_DIR)/perf_model.h \
	$(TOP)/qemu/pnm_timing.h
PNMCTL_DEPS := $(PNMCTL_SRCS) $(PNMCTL_HDRS) $(LIBPNM_A) $(RUNTIME_HDRS)
PREFIX ?= /usr/local
# Where the installed pnmctl finds perf-plot.py; the build tree's copy is
# the fallback, so $(BIN)/pnmctl works uninstalled.
PNMCTL_CFLAGS = $(CFLAGS_COMMON) -I$(PNMCTL_DIR) -I$(TOP)/qemu \
	-DPNMCTL_DATADIR='"$(PREFIX)/share/pnmctl"' \
	-DPNMCTL_SRC_PLOT='"$(TOP)/tools/perf-plot.py"'
PNMCTL_LDLIBS := $(LIBPNM_A) -lcxl $(LIBPNM_LDLIBS) -lpthread
PNMCTL_GUEST_LIBDIR := $(BUILD)/guest/lib
PNMCTL_INTERP := /lib64/ld-linux-x86-64.so.2

.PHONY: pnmctl
pnmctl: $(BIN)/pnmctl $(BUILD)/guest/bin/pnmctl
userspace: pnmctl

$(BIN)/pnmctl: $(PNMCTL_DEPS)
	@mkdir -p $(@D)
	$(CC) $(PNMCTL_CFLAGS) -o $@ $(PNMCTL_SRCS) $(PNMCTL_LDLIBS)

# The guest build, then every shared library it needs (as ldd resolves
# them on this host) into /pnm/lib.
$(BUILD)/guest/bin/pnmctl: $(PNMCTL_DEPS)
	@mkdir -p $(@D) $(PNMCTL_GUEST_LIBDIR)
	$(CC) $(PNMCTL_CFLAGS) -o $@ $(PNMCTL_SRCS) $(PNMCTL_LDLIBS) \
		-Wl,--disable-new-dtags -Wl,-rpath,/pnm/lib \
		-Wl,--dynamic-linker=/pnm/lib/ld-linux-x86-64.so.2
	@set -e; \
	for lib in $$(ldd $@ | awk '/=> \//{print $$3}') $(PNMCTL_INTERP); do \
		cp -L $$lib $(PNMCTL_GUEST_LIBDIR)/; \
	done
