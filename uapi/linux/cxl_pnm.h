/* SPDX-License-Identifier: GPL-2.0 WITH Linux-syscall-note */
/*
 * User interface of cxl_pnm, the CXL Processing-Near-Memory driver.
 *
 * Each accelerator is a character device /dev/cxl/pnmN.  A process
 * allocates regions of device memory, maps them with mmap(2), fills them
 * with KV pages, digests and queries, and submits commands that name memory
 * as (region handle, offset, length).  The driver resolves every such buffer
 * to device memory the caller owns before the device sees it.
 *
 * All structures have fixed sizes, checked by the kselftests.  Reserved
 * fields of input structures must be zero and are rejected with EINVAL
 * otherwise; the driver zeroes those of output structures.
 */
#ifndef _UAPI_LINUX_CXL_PNM_H
#define _UAPI_LINUX_CXL_PNM_H

#include <linux/ioctl.h>
#include <linux/types.h>

#define CXL_PNM_ABI_VERSION	1

/* Data types of keys, values and digests; queries and results are fp32. */
#define CXL_PNM_DTYPE_FP32	0
#define CXL_PNM_DTYPE_FP16	1
#define CXL_PNM_DTYPE_BF16	2

/* Command opcodes. */
#define CXL_PNM_OP_NOP		0	/* no operation, completes at once */
#define CXL_PNM_OP_DIGEST	1	/* compute page digests */
#define CXL_PNM_OP_SELECT	2	/* score pages, return the top k */
#define CXL_PNM_OP_ATTEND	3	/* attention over listed pages */
#define CXL_PNM_OP_SELECT_ATTEND 4	/* SELECT, then ATTEND its pages */

/* Command flags. */
#define CXL_PNM_CMD_KEEP_SINK	0x1U	/* always keep the first page */
#define CXL_PNM_CMD_KEEP_RECENT	0x2U	/* always keep the last page */

/**
 * struct cxl_pnm_info - device geometry, CXL_PNM_IOC_GET_INFO
 * @abi_version: CXL_PNM_ABI_VERSION of the driver
 * @hw_version: device interface version
 * @kv_size: bytes of device memory available for regions
 * @kv_free: bytes not allocated to any region
 * @nr_queues: hardware queue pairs
 * @queue_depth: entries per hardware queue
 * @dtypes: bitmap of supported CXL_PNM_DTYPE_* values
 * @max_head_dim: largest head_dim
 * @max_group: largest GQA group
 * @page_shifts: bitmap of supported page_shift values
 * @max_k: largest page budget
 * @max_batch: most commands in one CXL_PNM_IOC_SUBMIT
 * @region_align: regions' size and mmap granularity, bytes
 * @rsvd: zero
 */
struct cxl_pnm_info {
	__u32 abi_version;
	__u32 hw_version;
	__u64 kv_size;
	__u64 kv_free;
	__u32 nr_queues;
	__u32 queue_depth;
	__u32 dtypes;
	__u32 max_head_dim;
	__u32 max_group;
	__u32 page_shifts;
	__u32 max_k;
	__u32 max_batch;
	__u32 region_align;
	__u32 rsvd[5];
};

/**
 * struct cxl_pnm_region_alloc - CXL_PNM_IOC_REGION_ALLOC
 * @size: in: bytes, a non-zero multiple of cxl_pnm_info.region_align
 * @flags: in: zero
 * @handle: out: names the region in commands and CXL_PNM_IOC_REGION_FREE
 * @mmap_offset: out: offset to pass to mmap(2) to map the region
 * @rsvd: zero
 */
struct cxl_pnm_region_alloc {
	__u64 size;
	__u32 flags;
	__u32 handle;
	__u64 mmap_offset;
	__u64 rsvd[2];
};

/**
 * struct cxl_pnm_region_free - CXL_PNM_IOC_REGION_FREE
 * @handle: region to free; its memory is reused once no mapping and no
 *	command in flight refers to it
 * @rsvd: zero
 */
struct cxl_pnm_region_free {
	__u32 handle;
	__u32 rsvd;
};

/**
 * struct cxl_pnm_buf - a buffer in a region
 * @handle: region handle, from CXL_PNM_IOC_REGION_ALLOC; 0 means no buffer
 *	and then @length and @offset must be zero
 * @length: bytes
 * @offset: bytes from the start of the region
 */
struct cxl_pnm_buf {
	__u32 handle;
	__u32 length;
	__u64 offset;
};

/**
 * struct cxl_pnm_cmd - one command (80 bytes, an io_uring SQE128 payload)
 * @opcode: CXL_PNM_OP_*
 * @dtype: CXL_PNM_DTYPE_* of keys, values and digests
 * @page_shift: log2 of tokens per page
 * @group: query heads sharing the KV head (GQA group), at least 1
 * @head_dim: channels per head
 * @flags: CXL_PNM_CMD_* bits
 * @rsvd: zero
 * @n_tokens: tokens in the stream; its last page may be partial
 * @k: page budget of SELECT and SELECT_ATTEND; pages listed for ATTEND
 * @n_list: pages excluded from SELECT and SELECT_ATTEND
 * @pool: page pool: page slots, then one digest per slot
 * @table: page table, a __u32 slot index per page of the stream
 * @in: fp32 query [group][head_dim], then a __u32 page list
 * @out: results; Documentation/device-interface.rst gives the layout
 *
 * The fields up to @pool have the layout of the device's own command.
 */
struct cxl_pnm_cmd {
	__u8 opcode;
	__u8 dtype;
	__u8 page_shift;
	__u8 group;
	__u16 head_dim;
	__u8 flags;
	__u8 rsvd;
	__u32 n_tokens;
	__u16 k;
	__u16 n_list;
	struct cxl_pnm_buf pool;
	struct cxl_pnm_buf table;
	struct cxl_pnm_buf in;
	struct cxl_pnm_buf out;
};

/* Device status of a completed command, cxl_pnm_result.status. */
#define CXL_PNM_STATUS_OK		0
#define CXL_PNM_STATUS_BAD_OPCODE	1
#define CXL_PNM_STATUS_BAD_DTYPE	2
#define CXL_PNM_STATUS_BAD_SHAPE	3
#define CXL_PNM_STATUS_BAD_RESERVED	4
#define CXL_PNM_STATUS_BAD_RANGE	5
#define CXL_PNM_STATUS_SHORT_BUFFER	6
#define CXL_PNM_STATUS_BAD_PAGE		7
#define CXL_PNM_STATUS_BAD_LIST		8
#define CXL_PNM_STATUS_BAD_K		9
#define CXL_PNM_STATUS_BAD_LENGTH	10
#define CXL_PNM_STATUS_OVERLAP		11

/**
 * struct cxl_pnm_result - outcome of one command (16 bytes)
 * @status: CXL_PNM_STATUS_*, the device's verdict
 * @rsvd: zero
 * @count: pages selected or attended
 * @device_ns: modeled time of the command on CXL-PNM hardware, ns
 */
struct cxl_pnm_result {
	__u16 status;
	__u16 rsvd;
	__u32 count;
	__u64 device_ns;
};

/**
 * struct cxl_pnm_submit - CXL_PNM_IOC_SUBMIT, a synchronous batch
 * @cmds: user pointer to @nr struct cxl_pnm_cmd
 * @results: user pointer to @nr struct cxl_pnm_result, written on return
 * @nr: commands in the batch, 1 to cxl_pnm_info.max_batch
 * @timeout_ms: how long to wait for the whole batch; 0 for the default
 * @flags: zero
 * @rsvd: zero
 *
 * Every command is validated before any is submitted; the first invalid one
 * fails the call with EINVAL (bad field or buffer outside its region) or
 * ENOENT (unknown region handle).  Once submitted, each command's outcome is
 * in its result, and the call returns 0; or ETIMEDOUT if the batch did not
 * complete in time, EIO if the device died or its queues were reset after
 * a timeout, ENODEV if it was removed, EINTR on a fatal signal.
 * Documentation/uapi.rst lists every errno.
 */
struct cxl_pnm_submit {
	__u64 cmds;
	__u64 results;
	__u32 nr;
	__u32 timeout_ms;
	__u32 flags;
	__u32 rsvd;
};

/*
 * 0xCE is the CXL ioctl type; uapi/linux/cxl_mem.h uses numbers 0x01-0x02,
 * cxl_pnm takes 0x40-0x4f.
 */
#define CXL_PNM_IOC_MAGIC	0xCE

#define CXL_PNM_IOC_GET_INFO	_IOR(CXL_PNM_IOC_MAGIC, 0x40, struct cxl_pnm_info)
#define CXL_PNM_IOC_REGION_ALLOC _IOWR(CXL_PNM_IOC_MAGIC, 0x41, struct cxl_pnm_region_alloc)
#define CXL_PNM_IOC_REGION_FREE	_IOW(CXL_PNM_IOC_MAGIC, 0x42, struct cxl_pnm_region_free)
#define CXL_PNM_IOC_SUBMIT	_IOW(CXL_PNM_IOC_MAGIC, 0x43, struct cxl_pnm_submit)

/*
 * io_uring passthrough (IORING_OP_URING_CMD) on /dev/cxl/pnmN.  The ring
 * must be set up with IORING_SETUP_SQE128 and IORING_SETUP_CQE32; other
 * rings get -EOPNOTSUPP.  The command numbers share the ioctl space so that
 * they never collide with an ioctl.
 *
 * CXL_PNM_URING_CMD_SUBMIT: sqe->cmd_op; the 80-byte command area of the
 * SQE128 entry (sqe->cmd) contains one struct cxl_pnm_cmd.  The command is
 * validated as one command of CXL_PNM_IOC_SUBMIT is, and a rejected one
 * completes at once with the same errno.  Completion:
 *   cqe->res         0 once the device completed the command, or -errno:
 *                    EINVAL, ENOENT (as CXL_PNM_IOC_SUBMIT), ENOTTY
 *                    (unknown cmd_op), EOPNOTSUPP (ring without SQE128 and
 *                    CQE32), ECANCELED (the ring or task went away), EIO
 *                    (dead device, queues reset after a timeout, or a
 *                    count the result cannot hold), ENODEV (device
 *                    removed), ENOMEM
 *   cqe->big_cqe[0]  when res is 0, the struct cxl_pnm_result packed by
 *                    CXL_PNM_URING_RESULT_*() below
 *   cqe->big_cqe[1]  zero
 *
 * The result is packed into one 64-bit word because the 6.12 kernel's
 * io_uring_cmd_done() passes a single value to the big CQE and clears the
 * second.  Every field fits: status is a CXL_PNM_STATUS_* value, count is
 * at most k (a __u16; a larger one fails the command with EIO), and
 * device_ns saturates at 2^32 - 1 ns (4.29 s, far beyond any command under
 * the timing model of device-interface.rst).
 */
#define CXL_PNM_URING_CMD_SUBMIT _IOW(CXL_PNM_IOC_MAGIC, 0x48, struct cxl_pnm_cmd)

#define CXL_PNM_URING_RESULT_STATUS(res2)	((__u16)((res2) & 0xffff))
#define CXL_PNM_URING_RESULT_COUNT(res2)	((__u32)(((res2) >> 16) & 0xffff))
#define CXL_PNM_URING_RESULT_NS(res2)		((__u64)((res2) >> 32))
#define CXL_PNM_URING_RESULT(status, count, ns) \
	((__u64)(status) | ((__u64)(count) << 16) | ((__u64)(ns) << 32))

#endif /* _UAPI_LINUX_CXL_PNM_H */
