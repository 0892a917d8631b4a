# SPDX-License-Identifier: GPL-2.0-only
#
# libpnm, the runtime library: $(LIB)/libpnm.a, $(LIB)/libpnm.so.1 (soname
# libpnm.so.1, exports listed in runtime/libpnm.map) and a sanitizer build
# $(BUILD)/san/lib/libpnm.a for the host tests.  Every runtime/*.c is part
# of it.

RUNTIME_SRCS := $(sort $(wildcard $(TOP)/runtime/*.c))
RUNTIME_HDRS := $(wildcard $(TOP)/runtime/*.h) $(TOP)/uapi/linux/cxl_pnm.h \
	$(TOP)/driver/cxl_pnm_hw.h
RUNTIME_OBJS := $(RUNTIME_SRCS:$(TOP)/runtime/%.c=$(OBJ)/runtime/%.o)
RUNTIME_PIC_OBJS := $(RUNTIME_SRCS:$(TOP)/runtime/%.c=$(OBJ)/runtime/pic/%.o)
RUNTIME_SAN_OBJS := $(RUNTIME_SRCS:$(TOP)/runtime/%.c=$(BUILD)/san/obj/runtime/%.o)

LIBPNM_A := $(LIB)/libpnm.a
LIBPNM_SO := $(LIB)/libpnm.so.1
LIBPNM_SAN_A := $(BUILD)/san/lib/libpnm.a
# What a program linked with libpnm.a needs besides it: the kernel
# transport submits through io_uring.
LIBPNM_LDLIBS := -luring -lm

.PHONY: runtime
runtime: $(LIBPNM_A) $(LIBPNM_SO)
userspace: runtime

$(OBJ)/runtime/%.o: $(TOP)/runtime/%.c $(RUNTIME_HDRS)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS_COMMON) -c $< -o $@

$(OBJ)/runtime/pic/%.o: $(TOP)/runtime/%.c $(RUNTIME_HDRS)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS_COMMON) -fPIC -c $< -o $@

$(BUILD)/san/obj/runtime/%.o: $(TOP)/runtime/%.c $(RUNTIME_HDRS)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS_COMMON) $(SANFLAGS) -c $< -o $@

$(LIBPNM_A): $(RUNTIME_OBJS)
	@mkdir -p $(@D)
	rm -f $@
	$(AR) rcs $@ $^

$(LIBPNM_SAN_A): $(RUNTIME_SAN_OBJS)
	@mkdir -p $(@D)
	rm -f $@
	$(AR) rcs $@ $^

$(LIBPNM_SO): $(RUNTIME_PIC_OBJS) $(TOP)/runtime/libpnm.map
	@mkdir -p $(@D)
	$(CC) -shared -Wl,-soname,libpnm.so.1 \
		-Wl,--version-script=$(TOP)/runtime/libpnm.map -Wl,-z,defs \
		-o $@ $(RUNTIME_PIC_OBJS) $(LIBPNM_LDLIBS)
	ln -sf libpnm.so.1 $(LIB)/libpnm.so
