# SPDX-License-Identifier: GPL-2.0-only
#
# Running things in the test VM (qemu/pnm-vm, Documentation/vm.rst).
#
#   make demo [DEVICES=N] [MODE=pnm-kv|png-kv] [DEMO_ARGS="..."]
#                                             the decode demo in the VM
#   make vm CMD="..." [DEVICES=N]             any command in the VM

PNM_VM := BUILD=$(BUILD) $(TOP)/qemu/pnm-vm
DEVICES ?= 1
MODE ?= pnm-kv
DEMO_ARGS ?=
CMD ?= cat /proc/iomem

.PHONY: demo vm vm-clean
demo: userspace module
	$(PNM_VM) --devices $(DEVICES) -- \
		pnm-demo --devices $(DEVICES) --mode $(MODE) $(DEMO_ARGS)

vm: userspace module
	$(PNM_VM) --devices $(DEVICES) -- $(CMD)

clean: vm-clean
vm-clean:
	rm -rf $(BUILD)/vm
