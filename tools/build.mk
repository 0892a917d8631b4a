# SPDX-License-Identifier: GPL-2.0-only
#
# Tools: pnm-demo, for the host ($(BIN)) and, linked statically, for the
# guest ($(BUILD)/guest/bin); pnm-accuracy, host only (it drives a device
# model through the direct transport, or starts one).

TOOLS_DEMO_SRC := $(TOP)/tools/pnm-demo.c
TOOLS_ACCURACY_SRC := $(TOP)/tools/pnm-accuracy.c

.PHONY: tools
tools: $(BIN)/pnm-demo $(BUILD)/guest/bin/pnm-demo $(BIN)/pnm-accuracy
userspace: tools

$(BIN)/pnm-demo: $(TOOLS_DEMO_SRC) $(TOP)/tools/cli.h $(LIBPNM_A) $(RUNTIME_HDRS)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS_COMMON) -o $@ $< $(LIBPNM_A) $(LIBPNM_LDLIBS)

$(BUILD)/guest/bin/pnm-demo: $(TOOLS_DEMO_SRC) $(TOP)/tools/cli.h $(LIBPNM_A) $(RUNTIME_HDRS)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS_COMMON) -static -o $@ $< $(LIBPNM_A) $(LIBPNM_LDLIBS)

# The plot script is found in the source tree.
$(BIN)/pnm-accuracy: $(TOOLS_ACCURACY_SRC) $(TOP)/tools/cli.h $(LIBPNM_A) $(RUNTIME_HDRS)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS_COMMON) -DPNM_TOOLS_DIR='"$(TOP)/tools"' -o $@ $< \
		$(LIBPNM_A) $(LIBPNM_LDLIBS)
