/* SPDX-License-Identifier: GPL-2.0-only OR BSD-3-Clause */
/*
 * CXL-PNM device interface, version 1.
 *
 * The accelerator sits inside a CXL Type-3 memory expander.  Everything the
 * host and the accelerator share lives in device memory, addressed by device
 * physical address (DPA): a control block at DPA 0, doorbells, hardware
 * submission and completion queues, and the KV area that the driver hands out
 * as regions.  There are no interrupts; the host polls completion queues.
 *
 * This header is shared by the kernel driver, the device model and the
 * runtime's direct transport.  All multi-byte fields are little-endian.
 * Documentation/device-interface.rst describes every field.
 */
#ifndef CXL_PNM_HW_H
#define CXL_PNM_HW_H

#include <linux/types.h>

#define PNM_HW_MAGIC		0x314d4e504c5843ULL	/* "CXLPNM1" */
#define PNM_HW_VERSION		1

/* Device memory layout. */
#define PNM_HW_CTRL_DPA		0
#define PNM_HW_CTRL_SIZE	4096
#define PNM_HW_DOORBELL_STRIDE	128	/* SQ tail and CQ head, a line each */
#define PNM_HW_CACHELINE	64
#define PNM_HW_ALIGN		4096	/* alignment of each area */

/* Bits of pnm_hw_ctrl.status, written by the device. */
#define PNM_HW_STATUS_READY	0x1U	/* control block valid */
#define PNM_HW_STATUS_ENABLED	0x2U	/* queues are live */
#define PNM_HW_STATUS_FATAL	0x4U	/* device stopped on an error */

/* Bits of pnm_hw_ctrl.control, written by the host. */
#define PNM_HW_CONTROL_ENABLE	0x1U
#define PNM_HW_CONTROL_RESET	0x2U

/* Data types, also the bit numbers of pnm_hw_ctrl.dtypes. */
enum pnm_hw_dtype {
	PNM_DTYPE_FP32 = 0,
	PNM_DTYPE_FP16 = 1,
	PNM_DTYPE_BF16 = 2,
	PNM_DTYPE_COUNT
};

/**
 * struct pnm_hw_ctrl - control block at DPA 0
 * @magic: PNM_HW_MAGIC once the device has formatted its memory
 * @version: interface version, PNM_HW_VERSION
 * @status: PNM_HW_STATUS_* bits, written by the device
 * @nr_queues: number of submission/completion queue pairs
 * @queue_depth: entries per queue, a power of two
 * @dtypes: bitmap of supported enum pnm_hw_dtype values
 * @max_head_dim: largest head_dim a command may use
 * @max_group: largest GQA group (query heads per KV head)
 * @page_shifts: bitmap of supported page_shift values (bit n: 2^n tokens)
 * @max_k: largest page budget k
 * @rsvd0: zero
 * @doorbell_offset: DPA of the doorbell area
 * @doorbell_size: bytes of the doorbell area
 * @queue_offset: DPA of the queue area (all SQs, then all CQs)
 * @queue_size: bytes of the queue area
 * @kv_offset: DPA of the KV area, the memory handed out as regions
 * @kv_size: bytes of the KV area
 * @dev_size: bytes of device memory
 * @rsvd1: zero
 * @control: PNM_HW_CONTROL_* bits, written by the host
 * @rsvd2: zero
 * @heartbeat: advanced by the device while it is alive
 * @rsvd3: zero
 * @cmds_completed: commands completed since the device started
 * @cmds_failed: commands completed with a non-zero status
 * @bytes_read: bytes of device memory read by commands
 * @device_ns: modeled device busy time, nanoseconds
 * @rsvd4: zero
 *
 * The host writes only @control; its own cache line keeps it apart from
 * the fields the device writes.
 */
struct pnm_hw_ctrl {
	__le64 magic;			/* 0x000 */
	__le32 version;			/* 0x008 */
	__le32 status;			/* 0x00c */
	__le32 nr_queues;		/* 0x010 */
	__le32 queue_depth;		/* 0x014 */
	__le32 dtypes;			/* 0x018 */
	__le32 max_head_dim;		/* 0x01c */
	__le32 max_group;		/* 0x020 */
	__le32 page_shifts;		/* 0x024 */
	__le32 max_k;			/* 0x028 */
	__le32 rsvd0;			/* 0x02c */
	__le64 doorbell_offset;		/* 0x030 */
	__le64 doorbell_size;		/* 0x038 */
	__le64 queue_offset;		/* 0x040 */
	__le64 queue_size;		/* 0x048 */
	__le64 kv_offset;		/* 0x050 */
	__le64 kv_size;			/* 0x058 */
	__le64 dev_size;		/* 0x060 */
	__le64 rsvd1[3];		/* 0x068 */
	__le32 control;			/* 0x080 */
	__le32 rsvd2[15];		/* 0x084 */
	__le64 heartbeat;		/* 0x0c0 */
	__le64 rsvd3[7];		/* 0x0c8 */
	__le64 cmds_completed;		/* 0x100 */
	__le64 cmds_failed;		/* 0x108 */
	__le64 bytes_read;		/* 0x110 */
	__le64 device_ns;		/* 0x118 */
	__le64 rsvd4[28];		/* 0x120 */
};					/* 0x200 */

/**
 * struct pnm_hw_doorbell - doorbells of one queue pair
 * @sq_tail: next SQ slot the host will fill; the device consumes up to it
 * @rsvd0: pads @sq_tail to a cache line
 * @cq_head: next CQ slot the host will read; frees the slots before it
 * @rsvd1: pads @cq_head to a cache line
 *
 * Both are free-running indices modulo queue_depth, written by the host.
 */
struct pnm_hw_doorbell {
	__le32 sq_tail;
	__le32 rsvd0[15];
	__le32 cq_head;
	__le32 rsvd1[15];
};

/* Commands. */
enum pnm_hw_opcode {
	PNM_OP_NOP = 0,
	PNM_OP_DIGEST = 1,
	PNM_OP_SELECT = 2,
	PNM_OP_ATTEND = 3,
	PNM_OP_SELECT_ATTEND = 4,
	PNM_OP_COUNT
};

/* Bits of pnm_hw_cmd.flags. */
#define PNM_CMD_KEEP_SINK	0x1U	/* always select the first page */
#define PNM_CMD_KEEP_RECENT	0x2U	/* always select the last page */
#define PNM_CMD_FLAGS_ALL	(PNM_CMD_KEEP_SINK | PNM_CMD_KEEP_RECENT)

/**
 * struct pnm_hw_cmd - a submission queue entry (64 bytes)
 * @opcode: enum pnm_hw_opcode
 * @dtype: enum pnm_hw_dtype of keys, values and digests
 * @page_shift: log2 of tokens per page
 * @group: GQA group, query heads sharing this KV head (>= 1)
 * @head_dim: channels per head
 * @flags: PNM_CMD_* bits
 * @rsvd: zero
 * @n_tokens: tokens in the stream; the last page may be partial
 * @k: page budget of SELECT and SELECT_ATTEND; pages listed for ATTEND
 * @n_list: pages excluded (SELECT, SELECT_ATTEND), listed after the query
 * @pool_dpa: page pool: page slots, then one digest per slot
 * @table_dpa: page table, __le32 slot index per page of the stream
 * @in_dpa: fp32 query [group][head_dim], then __le32 page list
 * @out_dpa: results, laid out per opcode
 * @pool_len: bytes of the page pool
 * @table_len: bytes of the page table
 * @in_len: bytes of the input buffer
 * @out_len: bytes of the output buffer
 *
 * A page slot holds K[P][head_dim] then V[P][head_dim], P = 1 << page_shift.
 * A pool of length L holds S = L / (slot_bytes + digest_bytes) slots: slot s
 * at s * slot_bytes, its digest (per-channel min[head_dim] then
 * max[head_dim] of the keys) at S * slot_bytes + s * digest_bytes.
 *
 * The command's SQ slot index identifies it in its completion, so the host
 * reuses a slot only after that slot's completion arrives.
 */
struct pnm_hw_cmd {
	__u8 opcode;			/* 0x00 */
	__u8 dtype;			/* 0x01 */
	__u8 page_shift;		/* 0x02 */
	__u8 group;			/* 0x03 */
	__le16 head_dim;		/* 0x04 */
	__u8 flags;			/* 0x06 */
	__u8 rsvd;			/* 0x07 */
	__le32 n_tokens;		/* 0x08 */
	__le16 k;			/* 0x0c */
	__le16 n_list;			/* 0x0e */
	__le64 pool_dpa;		/* 0x10 */
	__le64 table_dpa;		/* 0x18 */
	__le64 in_dpa;			/* 0x20 */
	__le64 out_dpa;			/* 0x28 */
	__le32 pool_len;		/* 0x30 */
	__le32 table_len;		/* 0x34 */
	__le32 in_len;			/* 0x38 */
	__le32 out_len;			/* 0x3c */
};

/* Completion status, pnm_hw_cqe.status.  Zero is success. */
enum pnm_hw_status {
	PNM_STATUS_OK = 0,
	PNM_STATUS_BAD_OPCODE = 1,	/* unknown opcode */
	PNM_STATUS_BAD_DTYPE = 2,	/* unsupported dtype */
	PNM_STATUS_BAD_SHAPE = 3,	/* head_dim, group or page_shift */
	PNM_STATUS_BAD_RESERVED = 4,	/* a reserved field or flag is set */
	PNM_STATUS_BAD_RANGE = 5,	/* an operand leaves device memory */
	PNM_STATUS_SHORT_BUFFER = 6,	/* an operand is too small */
	PNM_STATUS_BAD_PAGE = 7,	/* a page table slot is past the pool */
	PNM_STATUS_BAD_LIST = 8,	/* a listed page is past the stream */
	PNM_STATUS_BAD_K = 9,		/* k is zero or above max_k */
	PNM_STATUS_BAD_LENGTH = 10,	/* the stream has more than 2^24 pages */
	PNM_STATUS_OVERLAP = 11,	/* the output overlaps an input */
	PNM_STATUS_COUNT
};

#define PNM_CQE_PHASE		0x1U

/**
 * struct pnm_hw_cqe - a completion queue entry (32 bytes)
 * @slot: SQ slot of the completed command
 * @sq_head: the device's SQ head after fetching this command
 * @status: enum pnm_hw_status
 * @flags: PNM_CQE_PHASE; the device flips the phase each pass of the CQ
 * @result: pages selected or attended
 * @rsvd: zero
 * @device_ns: modeled time of the command on CXL-PNM hardware, ns
 * @bytes_read: bytes of device memory the command read
 *
 * The device writes the whole entry, then @flags last, so a host that sees
 * the expected phase may read the rest.
 */
struct pnm_hw_cqe {
	__le16 slot;			/* 0x00 */
	__le16 sq_head;			/* 0x02 */
	__le16 status;			/* 0x04 */
	__le16 flags;			/* 0x06 */
	__le32 result;			/* 0x08 */
	__le32 rsvd;			/* 0x0c */
	__le64 device_ns;		/* 0x10 */
	__le64 bytes_read;		/* 0x18 */
};

/*
 * Output layouts, offsets from out_dpa:
 *   SELECT:        __le32 page[result], ascending page order
 *   ATTEND:        fp32 out[group][head_dim], fp32 lse[group]
 *   SELECT_ATTEND: fp32 out[group][head_dim], fp32 lse[group],
 *                  __le32 page[result], ascending page order
 *   DIGEST:        none; writes the digests of the pages in the table
 */

static inline __u32 pnm_hw_dtype_size(unsigned int dtype)
{
	return dtype == PNM_DTYPE_FP32 ? 4 : 2;
}

/* Bytes of one page slot: K then V. */
static inline __u64 pnm_hw_slot_bytes(unsigned int dtype,
				      unsigned int page_shift,
				      unsigned int head_dim)
{
	return 2ULL * head_dim * pnm_hw_dtype_size(dtype) << page_shift;
}

/* Bytes of one page digest: min then max of each key channel. */
static inline __u64 pnm_hw_digest_bytes(unsigned int dtype,
					unsigned int head_dim)
{
	return 2ULL * head_dim * pnm_hw_dtype_size(dtype);
}

#endif /* CXL_PNM_HW_H */
