# SPDX-License-Identifier: GPL-2.0-only
#
# One entry point for the CXL-PNM stack: setup, build, demo, check.
# Each component adds its rules from its own */build.mk fragment.

O ?= build
BUILD := $(abspath $(O))
BIN := $(BUILD)/bin
LIB := $(BUILD)/lib
OBJ := $(BUILD)/obj
TESTBIN := $(BUILD)/tests
TOP := $(abspath .)

CC ?= gcc
CFLAGS_COMMON := -std=gnu11 -O2 -g -Wall -Wextra -Werror -D_GNU_SOURCE \
	-I$(TOP)/uapi -I$(TOP)/driver -I$(TOP)/runtime
# Sanitizer builds of the host tests go to $(BUILD)/san.
SANFLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer \
	-fno-sanitize-recover=all

.PHONY: all setup userspace module demo check clean
all: userspace module

include qemu/build.mk
include qemu/vm.mk
include runtime/build.mk
include tools/build.mk
include tests/build.mk
include driver/build.mk
include setup.mk
-include tools/bench.mk
-include tools/bench-kernels.mk
-include tools/pnmctl.mk
-include install.mk

# Fragments add their own steps as prerequisites of clean.
clean:
	rm -rf $(BUILD)/bin $(BUILD)/lib $(BUILD)/obj $(BUILD)/tests $(BUILD)/san
