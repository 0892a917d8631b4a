# SPDX-License-Identifier: GPL-2.0-only
#
# pnmctl tests.  tests/build.mk includes this fragment.
#
#   $(TESTBIN)/host/pnmctl_test          perf, selftest (direct transport)
#                                        and argument errors, on the host
#   $(BUILD)/san/tests/host/pnmctl_test  the same with pnmctl and
#                                        pnm-device built with $(SANFLAGS)
#   $(TESTBIN)/host/install_test         make install DESTDIR, then the
#                                        example built with pkg-config
#   $(BUILD)/guest/tests/pnmctl_test     list, info, stats, bind, unbind,
#                                        region create/destroy and selftest
#                                        against the driver, in the VM
#
# The scripts are made self-contained: tap.sh is pasted in at the
# "# @TAP_INCLUDE@" line and the paths are filled in.

PNMCTL_TEST_DIR := $(TOP)/tests/pnmctl
PNMCTL_TEST_TAP := $(PNMCTL_TEST_DIR)/tap.sh
PNMCTL_SAN := $(BUILD)/san/bin/pnmctl

# $(call pnmctl_script,SOURCE,PNMCTL,PNM_DEVICE)
define pnmctl_script
	@mkdir -p $(@D)
	sed -e '/^# @TAP_INCLUDE@$$/{r $(PNMCTL_TEST_TAP)' -e 'd}' \
		-e 's|@PNMCTL@|$(2)|g' -e 's|@PNM_DEVICE@|$(3)|g' \
		-e 's|@TOP@|$(TOP)|g' -e 's|@BUILD@|$(BUILD)|g' $(1) >$@.tmp
	chmod +x $@.tmp
	mv $@.tmp $@
endef

$(TESTBIN)/host/pnmctl_test: $(PNMCTL_TEST_DIR)/pnmctl_test.sh $(PNMCTL_TEST_TAP) \
		$(BIN)/pnmctl $(BIN)/pnm-device
	$(call pnmctl_script,$<,$(BIN)/pnmctl,$(BIN)/pnm-device)

$(BUILD)/san/tests/host/pnmctl_test: $(PNMCTL_TEST_DIR)/pnmctl_test.sh \
		$(PNMCTL_TEST_TAP) $(PNMCTL_SAN) $(BUILD)/san/bin/pnm-device
	$(call pnmctl_script,$<,$(PNMCTL_SAN),$(BUILD)/san/bin/pnm-device)

$(TESTBIN)/host/install_test: $(PNMCTL_TEST_DIR)/install_test.sh $(PNMCTL_TEST_TAP) \
		$(TOP)/examples/pnm-hello.c $(TOP)/examples/Makefile $(BIN)/pnm-device
	$(call pnmctl_script,$<,$(BIN)/pnmctl,$(BIN)/pnm-device)

$(BUILD)/guest/tests/pnmctl_test: $(PNMCTL_TEST_DIR)/pnmctl_guest_test.sh \
		$(PNMCTL_TEST_TAP) $(BUILD)/guest/bin/pnmctl
	$(call pnmctl_script,$<,/pnm/bin/pnmctl,)

$(PNMCTL_SAN): $(PNMCTL_SRCS) $(PNMCTL_HDRS) $(LIBPNM_SAN_A)
	@mkdir -p $(@D)
	$(CC) $(PNMCTL_CFLAGS) $(SANFLAGS) -o $@ $(PNMCTL_SRCS) $(LIBPNM_SAN_A) \
		-lcxl $(LIBPNM_LDLIBS) -lpthread

.PHONY: pnmctl-tests
pnmctl-tests: $(TESTBIN)/host/pnmctl_test $(BUILD)/san/tests/host/pnmctl_test \
	$(TESTBIN)/host/install_test $(BUILD)/guest/tests/pnmctl_test
check: pnmctl-tests
