/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Internals of the direct transport for host tests: raw hardware commands
 * and the device's counters.  Not part of the libpnm API.
 *
 * The direct transport checks commands exactly as the kernel driver does,
 * so some device statuses (BAD_OPCODE, BAD_RESERVED, BAD_RANGE) are out of
 * reach through pnm_submit().  pnm_direct_submit_raw() hands hardware
 * commands to the device unchecked to reach them.
 */
#ifndef PNM_DIRECT_H
#define PNM_DIRECT_H

#include <stdint.h>

#include "cxl_pnm_hw.h"
#include "pnm.h"

/**
 * struct pnm_direct_state - a snapshot of the device's control block
 * @status: PNM_HW_STATUS_* bits
 * @heartbeat: poll loop iterations of the device
 * @cmds_completed: commands completed since the device started
 * @cmds_failed: commands completed with a non-zero status
 * @bytes_read: bytes of device memory read by commands
 * @device_ns: modeled busy time, ns
 * @kv_offset: DPA of the KV area
 * @kv_size: bytes of the KV area
 * @dev_size: bytes of device memory
 */
struct pnm_direct_state {
	uint32_t status;
	uint64_t heartbeat;
	uint64_t cmds_completed;
	uint64_t cmds_failed;
	uint64_t bytes_read;
	uint64_t device_ns;
	uint64_t kv_offset;
	uint64_t kv_size;
	uint64_t dev_size;
};

/*
 * Run @nr hardware commands on queue 0 and copy their completions to @cqes
 * in command order.  No field is checked; DPAs are used as given.
 * @timeout_ms 0 means the default of 10 s.  Returns 0, -EINVAL (not a
 * direct device, or @nr 0), -ETIMEDOUT or -EIO (device stopped or FATAL).
 */
int pnm_direct_submit_raw(struct pnm_dev *dev, const struct pnm_hw_cmd *cmds,
			  struct pnm_hw_cqe *cqes, unsigned int nr,
			  unsigned int timeout_ms);

/* DPA of the first byte of @region, for building raw commands. */
uint64_t pnm_direct_region_dpa(const struct pnm_region *region);

/* Read the control block of a direct device. */
int pnm_direct_get_state(struct pnm_dev *dev, struct pnm_direct_state *state);

#endif /* PNM_DIRECT_H */
