# SPDX-License-Identifier: GPL-2.0-only
#
# Running things in the test VM (qemu/pnm-vm, Documentation/vm.rst).
#
#   make demo [DEVICES=N] [MODE=pnm-kv|png-kv] [DEMO_ARGS="..."]
#                                             the decode demo in the VM
#   make vm CMD="..." [DEVICES=N]             any command in the VM
#
# CMD and DEMO_ARGS reach the guest intact: the guest's sh runs them, so
# quotes, redirections, pipes and $VARIABLES take effect in the guest,
# never on the host.

PNM_VM := BUILD=$(BUILD) $(TOP)/qemu/pnm-vm
DEVICES ?= 1
MODE ?= pnm-kv
DEMO_ARGS ?=
CMD ?= cat /proc/iomem

# $(call vm_quote,TEXT): TEXT as one single-quoted word of the host's sh.
vm_quote = '$(subst ','\'',$(1))'

# The arguments are checked before anything is built or booted; each
# message names the make variable.  $(value ...) keeps a '$' in CMD or
# DEMO_ARGS for the guest's sh instead of expanding it as make's.
vm_bad_devices = $(or $(filter-out 1 2 3 4,$(DEVICES)),$(filter-out 1,$(words $(DEVICES))))
vm_bad_mode = $(or $(filter-out pnm-kv png-kv,$(MODE)),$(filter-out 1,$(words $(MODE))))
vm_demo_cmd = pnm-demo --devices $(DEVICES) --mode $(MODE) $(value DEMO_ARGS)

.PHONY: demo vm vm-clean vm-check-devices vm-check-demo vm-check-cmd
vm-check-devices:
	$(if $(vm_bad_devices),$(error DEVICES='$(DEVICES)' is invalid: give 1 to 4 emulated devices, e.g. make demo DEVICES=2))
vm-check-demo: vm-check-devices
	$(if $(vm_bad_mode),$(error MODE='$(MODE)' is invalid: give pnm-kv or png-kv, e.g. make demo MODE=png-kv))
vm-check-cmd: vm-check-devices
	$(if $(strip $(value CMD)),,$(error CMD is empty: give the command to run in the guest, e.g. make vm CMD='cat /proc/iomem'))

# Listed first, the checks run before the build (in parallel builds, the
# build stops at their error).
demo: vm-check-demo userspace module
	$(PNM_VM) --devices $(DEVICES) -- sh -c $(call vm_quote,$(vm_demo_cmd))

vm: vm-check-cmd userspace module
	$(PNM_VM) --devices $(DEVICES) -- sh -c $(call vm_quote,$(value CMD))

clean: vm-clean
vm-clean:
	rm -rf $(BUILD)/vm
