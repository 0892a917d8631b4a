# SPDX-License-Identifier: GPL-2.0-only
#
# make install [PREFIX=/usr/local] [DESTDIR=]: libpnm (shared, versioned
# soname libpnm.so.1, and static), libpnm.pc, the headers, pnmctl,
# pnm-demo, pnm-accuracy and the man page.  DESTDIR stages the tree for a
# package; nothing outside $(DESTDIR)$(PREFIX) is written.
#
#   $(PREFIX)/lib/libpnm.so.$(LIBPNM_VERSION), libpnm.so.1, libpnm.so, libpnm.a
#   $(PREFIX)/lib/pkgconfig/libpnm.pc
#   $(PREFIX)/include/pnm/{pnm,pnm_ref,kvcache,kvgen,steady}.h
#   $(PREFIX)/include/pnm/linux/cxl_pnm.h     (the uapi header pnm.h includes)
#   $(PREFIX)/bin/{pnmctl,pnm-demo,pnm-accuracy}
#   $(PREFIX)/share/pnmctl/perf-plot.py
#   $(PREFIX)/share/man/man1/pnmctl.1
#
# Headers go under include/pnm so that the uapi copy of linux/cxl_pnm.h
# never shadows the system's linux/ headers: pkg-config adds -I.../pnm.

PREFIX ?= /usr/local
DESTDIR ?=
LIBPNM_VERSION := 1.0.0
INSTALL_LIBDIR := $(PREFIX)/lib
INSTALL_STAGE := $(BUILD)/install
INSTALL_HDRS := $(addprefix $(TOP)/runtime/,pnm.h pnm_ref.h kvcache.h kvgen.h \
	steady.h)

.PHONY: install uninstall
install: userspace $(INSTALL_STAGE)/libpnm.pc $(INSTALL_STAGE)/pnmctl
	install -d $(DESTDIR)$(INSTALL_LIBDIR)/pkgconfig \
		$(DESTDIR)$(PREFIX)/include/pnm/linux $(DESTDIR)$(PREFIX)/bin \
		$(DESTDIR)$(PREFIX)/share/pnmctl $(DESTDIR)$(PREFIX)/share/man/man1
	install -m 0755 $(LIBPNM_SO) \
		$(DESTDIR)$(INSTALL_LIBDIR)/libpnm.so.$(LIBPNM_VERSION)
	ln -sf libpnm.so.$(LIBPNM_VERSION) $(DESTDIR)$(INSTALL_LIBDIR)/libpnm.so.1
	ln -sf libpnm.so.1 $(DESTDIR)$(INSTALL_LIBDIR)/libpnm.so
	install -m 0644 $(LIBPNM_A) $(DESTDIR)$(INSTALL_LIBDIR)/libpnm.a
	install -m 0644 $(INSTALL_STAGE)/libpnm.pc $(DESTDIR)$(INSTALL_LIBDIR)/pkgconfig/
	install -m 0644 $(INSTALL_HDRS) $(DESTDIR)$(PREFIX)/include/pnm/
	install -m 0644 $(TOP)/uapi/linux/cxl_pnm.h $(DESTDIR)$(PREFIX)/include/pnm/linux/
	install -m 0755 $(INSTALL_STAGE)/pnmctl $(BIN)/pnm-demo $(BIN)/pnm-accuracy \
		$(DESTDIR)$(PREFIX)/bin/
	install -m 0755 $(TOP)/tools/perf-plot.py $(DESTDIR)$(PREFIX)/share/pnmctl/
	install -m 0644 $(TOP)/Documentation/pnmctl.1 $(DESTDIR)$(PREFIX)/share/man/man1/

uninstall:
	rm -f $(addprefix $(DESTDIR)$(INSTALL_LIBDIR)/,libpnm.so.$(LIBPNM_VERSION) \
		libpnm.so.1 libpnm.so libpnm.a pkgconfig/libpnm.pc)
	rm -rf $(DESTDIR)$(PREFIX)/include/pnm $(DESTDIR)$(PREFIX)/share/pnmctl
	rm -f $(addprefix $(DESTDIR)$(PREFIX)/bin/,pnmctl pnm-demo pnm-accuracy) \
		$(DESTDIR)$(PREFIX)/share/man/man1/pnmctl.1

# Rebuilt on every install: PREFIX is compiled in (libdir, the plot script).
.PHONY: $(INSTALL_STAGE)/libpnm.pc $(INSTALL_STAGE)/pnmctl
$(INSTALL_STAGE)/libpnm.pc: $(TOP)/runtime/libpnm.pc.in
	@mkdir -p $(@D)
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@LIBDIR@|$(INSTALL_LIBDIR)|' \
		-e 's|@VERSION@|$(LIBPNM_VERSION)|' \
		-e 's|@LIBS_PRIVATE@|$(LIBPNM_LDLIBS) -lpthread|' $< >$@

$(INSTALL_STAGE)/pnmctl: $(PNMCTL_DEPS)
	@mkdir -p $(@D)
	$(CC) $(PNMCTL_CFLAGS) -o $@ $(PNMCTL_SRCS) $(PNMCTL_LDLIBS)

# DKMS: the module's sources under /usr/src, then `dkms install
# cxl-pnm/$(LIBPNM_VERSION)`.  dkms.conf explains where the dax bus's
# private headers come from.
DKMS_SRC := /usr/src/cxl-pnm-$(LIBPNM_VERSION)

.PHONY: install-dkms
install-dkms:
	install -d $(DESTDIR)$(DKMS_SRC)/driver $(DESTDIR)$(DKMS_SRC)/uapi/linux
	install -m 0644 $(TOP)/Kbuild $(TOP)/dkms.conf $(DESTDIR)$(DKMS_SRC)/
	install -m 0755 $(TOP)/dkms-pre-build.sh $(DESTDIR)$(DKMS_SRC)/
	install -m 0644 $(TOP)/driver/Kbuild $(wildcard $(TOP)/driver/*.c) \
		$(wildcard $(TOP)/driver/*.h) $(DESTDIR)$(DKMS_SRC)/driver/
	install -m 0644 $(TOP)/uapi/linux/cxl_pnm.h $(DESTDIR)$(DKMS_SRC)/uapi/linux/
